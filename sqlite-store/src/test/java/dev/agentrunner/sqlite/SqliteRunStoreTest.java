package dev.agentrunner.sqlite;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.agentrunner.Page;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.StoreException;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.Heartbeat;
import dev.agentrunner.spi.NewRun;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The store's behaviour on a real file, operation by operation. */
class SqliteRunStoreTest {
  private static final Duration LEASE = Duration.ofSeconds(30);

  @TempDir Path dir;
  final MutableClock clock = new MutableClock();
  SqliteRunStore store;

  @BeforeEach
  void open() {
    store = SqliteRunStore.builder(dir.resolve("runs.db")).clock(clock).build();
  }

  @AfterEach
  void close() {
    store.close();
  }

  private RunRecord insert(String agent, String input) {
    return store.insert(NewRun.of(RunRequest.of(agent, input)));
  }

  private List<RunRecord> claim(String owner, int limit, String... agents) {
    Map<String, Integer> quotas = new java.util.HashMap<>();
    for (String a : agents) {
      quotas.put(a, 1000);
    }
    return store.claim(new ClaimRequest(owner, quotas, limit, LEASE));
  }

  private List<String> eventTypes(long id) {
    return store.events(id).stream().map(RunEvent::type).toList();
  }

  @Test
  void insertReturnsTheStoredRowWithItsQueuedEvent() {
    RunRecord r = store.insert(new NewRun(
        RunRequest.of("scan", "{\"repo\":\"acme\"}").withSerialKey("k").withPriority(3), 2));
    assertThat(r.id()).isPositive();
    assertThat(r.status()).isEqualTo(RunStatus.QUEUED);
    assertThat(r.input()).isEqualTo("{\"repo\":\"acme\"}");
    assertThat(r.serialKey()).isEqualTo("k");
    assertThat(r.priority()).isEqualTo(3);
    assertThat(r.maxAttempts()).isEqualTo(2);
    assertThat(r.attempt()).isZero();
    assertThat(r.createdAt()).isEqualTo(clock.instant());
    assertThat(r.notBefore()).isEqualTo(clock.instant());
    assertThat(r.usage()).isEqualTo(Usage.ZERO);
    assertThat(store.find(r.id())).contains(r);
    List<RunEvent> events = store.events(r.id());
    assertThat(events).singleElement().satisfies(e -> {
      assertThat(e.type()).isEqualTo("queued");
      assertThat(e.attempt()).isZero();
      assertThat(e.at()).isEqualTo(clock.instant());
    });
  }

  @Test
  void idsIncreaseAndAreNeverReusedAfterPurge() {
    RunRecord a = insert("a", "1");
    RunRecord b = insert("a", "2");
    assertThat(b.id()).isGreaterThan(a.id());
    store.cancel(b.id());
    clock.advance(Duration.ofSeconds(1));
    assertThat(store.purge(clock.instant())).isEqualTo(1);
    assertThat(insert("a", "3").id()).isGreaterThan(b.id());
  }

  @Test
  void duplicateIdempotencyKeyReturnsTheStoredRunAndWritesNothing() {
    RunRecord first = store.insert(NewRun.of(RunRequest.of("a", "one").withIdempotencyKey("k1")));
    RunRecord again = store.insert(NewRun.of(RunRequest.of("a", "one").withIdempotencyKey("k1")));
    assertThat(again).isEqualTo(first);
    assertThat(store.events(first.id())).hasSize(1);
    assertThat(store.stats().agent("a").queued()).isEqualTo(1);
  }

  @Test
  void instantsRoundTripExactly() {
    Instant nb = Instant.parse("2031-05-06T07:08:09.987654321Z");
    RunRecord r = store.insert(NewRun.of(RunRequest.of("a", "x").withNotBefore(nb)));
    assertThat(r.notBefore()).isEqualTo(nb);
    assertThat(store.find(r.id()).orElseThrow().notBefore()).isEqualTo(nb);
    RunRecord far = store.insert(NewRun.of(RunRequest.of("a", "x").withNotBefore(Instant.MAX)));
    assertThat(far.notBefore()).isAfter(Instant.parse("2262-01-01T00:00:00Z"));
    assertThat(claim("w", 10, "a")).isEmpty();
  }

  @Test
  void claimTakesDueRunsByPriorityThenIdWithinQuotas() {
    RunRecord low = insert("a", "low");
    RunRecord high = store.insert(NewRun.of(RunRequest.of("a", "high").withPriority(5)));
    RunRecord b1 = insert("b", "b1");
    RunRecord b2 = insert("b", "b2");
    RunRecord other = insert("c", "not in quotas");
    RunRecord later = store.insert(NewRun.of(
        RunRequest.of("a", "later").withNotBefore(clock.instant().plusSeconds(60))));

    List<RunRecord> claimed = store.claim(
        new ClaimRequest("w1", Map.of("a", 5, "b", 1), 10, LEASE));
    assertThat(claimed).extracting(RunRecord::id).containsExactly(high.id(), low.id(), b1.id());
    RunRecord h = claimed.get(0);
    assertThat(h.status()).isEqualTo(RunStatus.RUNNING);
    assertThat(h.attempt()).isEqualTo(1);
    assertThat(h.owner()).isEqualTo("w1");
    assertThat(h.startedAt()).isEqualTo(clock.instant());
    assertThat(h.leaseUntil()).isEqualTo(clock.instant().plus(LEASE));
    assertThat(store.find(h.id())).contains(h);
    assertThat(eventTypes(h.id())).containsExactly("queued", "started");
    assertThat(store.events(h.id()).get(1).data()).isEqualTo("w1");

    assertThat(store.find(other.id()).orElseThrow().status()).isEqualTo(RunStatus.QUEUED);
    assertThat(store.find(later.id()).orElseThrow().status()).isEqualTo(RunStatus.QUEUED);
    assertThat(store.claim(new ClaimRequest("w2", Map.of("a", 5, "b", 5), 1, LEASE)))
        .extracting(RunRecord::id).containsExactly(b2.id());
    clock.advance(Duration.ofSeconds(61));
    assertThat(claim("w2", 10, "a")).extracting(RunRecord::id).containsExactly(later.id());
  }

  @Test
  void claimRespectsTheGlobalLimitInClaimOrder() {
    List<Long> ids = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      ids.add(insert(i % 2 == 0 ? "a" : "b", "x" + i).id());
    }
    assertThat(claim("w", 3, "a", "b")).extracting(RunRecord::id)
        .containsExactly(ids.get(0), ids.get(1), ids.get(2));
  }

  @Test
  void serialKeyRunsOneAtATimeOldestFirstEvenAgainstPriority() {
    RunRecord first = store.insert(NewRun.of(RunRequest.of("a", "1").withSerialKey("conv")));
    RunRecord second = store.insert(
        NewRun.of(RunRequest.of("a", "2").withSerialKey("conv").withPriority(9)));
    RunRecord free = insert("a", "free");

    assertThat(claim("w", 10, "a")).extracting(RunRecord::id)
        .containsExactly(first.id(), free.id());
    assertThat(claim("w", 10, "a")).isEmpty();
    store.finish(Finish.succeeded(first.id(), 1, "w", "ok", Usage.ZERO));
    assertThat(claim("w", 10, "a")).extracting(RunRecord::id).containsExactly(second.id());
  }

  @Test
  void theDatabaseRefusesASecondRunningRunOfASerialKey() throws Exception {
    RunRecord a = store.insert(NewRun.of(RunRequest.of("a", "1").withSerialKey("k")));
    RunRecord b = store.insert(NewRun.of(RunRequest.of("a", "2").withSerialKey("k")));
    claim("w", 1, "a");
    try (var c = java.sql.DriverManager.getConnection("jdbc:sqlite:" + store.path());
        var s = c.createStatement()) {
      assertThatThrownBy(() -> s.executeUpdate("UPDATE runs SET status = 'RUNNING', owner = 'x',"
          + " lease_until = 1 WHERE id = " + b.id()))
          .hasMessageContaining("UNIQUE");
    }
    assertThat(store.find(a.id()).orElseThrow().status()).isEqualTo(RunStatus.RUNNING);
  }

  @Test
  void finishIsFencedByAttemptAndOwner() {
    RunRecord r = insert("a", "x");
    RunRecord c = claim("w", 1, "a").get(0);
    assertThat(store.finish(Finish.succeeded(r.id(), 2, "w", "no", Usage.ZERO))).isEmpty();
    assertThat(store.finish(Finish.succeeded(r.id(), 1, "zombie", "no", Usage.ZERO))).isEmpty();
    clock.advance(Duration.ofSeconds(2));
    RunRecord done = store.finish(
        Finish.succeeded(r.id(), c.attempt(), "w", "out", Usage.of(10, 20, 30))).orElseThrow();
    assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
    assertThat(done.output()).isEqualTo("out");
    assertThat(done.finishedAt()).isEqualTo(clock.instant());
    assertThat(done.leaseUntil()).isNull();
    assertThat(done.owner()).isEqualTo("w");
    assertThat(done.usage()).isEqualTo(Usage.of(10, 20, 30));
    assertThat(store.find(r.id())).contains(done);
    assertThat(eventTypes(r.id())).containsExactly("queued", "started", "succeeded");
    // terminal is final
    assertThat(store.finish(Finish.unsuccessful(r.id(), 1, "w", RunStatus.FAILED, "late",
        Usage.ZERO))).isEmpty();
    assertThat(store.cancel(r.id())).contains(done);
    assertThat(eventTypes(r.id())).hasSize(3);
  }

  @Test
  void retryRequeuesWithBackoffAndAddsUsage() {
    RunRecord r = store.insert(new NewRun(RunRequest.of("a", "x"), 3));
    claim("w", 1, "a");
    Instant retryAt = clock.instant().plusSeconds(5);
    RunRecord back = store.finish(Finish.retry(r.id(), 1, "w", "boom", Usage.of(1, 1, 1),
        Duration.ofSeconds(5))).orElseThrow();
    assertThat(back.status()).isEqualTo(RunStatus.QUEUED);
    assertThat(back.attempt()).isEqualTo(1);
    assertThat(back.owner()).isNull();
    assertThat(back.startedAt()).isNull();
    assertThat(back.error()).isEqualTo("boom");
    assertThat(back.notBefore()).isEqualTo(retryAt);
    assertThat(claim("w", 1, "a")).isEmpty();
    clock.advance(Duration.ofSeconds(5));
    RunRecord again = claim("w", 1, "a").get(0);
    assertThat(again.attempt()).isEqualTo(2);
    RunRecord failed = store.finish(Finish.unsuccessful(r.id(), 2, "w", RunStatus.FAILED, "bad",
        Usage.of(1, 1, 1))).orElseThrow();
    assertThat(failed.usage()).isEqualTo(Usage.of(2, 2, 2));
    assertThat(eventTypes(r.id()))
        .containsExactly("queued", "started", "requeued", "started", "failed");
  }

  @Test
  void releaseGivesClaimedRunsBack() {
    RunRecord r1 = insert("a", "1");
    RunRecord r2 = insert("a", "2");
    List<RunRecord> claimed = claim("w", 2, "a");
    assertThat(store.release("other", claimed)).isZero();
    assertThat(store.release("w", claimed)).isEqualTo(2);
    RunRecord back = store.find(r1.id()).orElseThrow();
    assertThat(back.status()).isEqualTo(RunStatus.QUEUED);
    assertThat(back.attempt()).isZero();
    assertThat(back.owner()).isNull();
    assertThat(eventTypes(r2.id())).containsExactly("queued", "started", "released");
    assertThat(store.release("w", claimed)).isZero();
  }

  @Test
  void cancelQueuedRunningAndTerminal() {
    RunRecord q = insert("a", "q");
    RunRecord cancelled = store.cancel(q.id()).orElseThrow();
    assertThat(cancelled.status()).isEqualTo(RunStatus.CANCELLED);
    assertThat(cancelled.finishedAt()).isEqualTo(clock.instant());
    assertThat(eventTypes(q.id())).containsExactly("queued", "cancelled");

    RunRecord r = insert("a", "r");
    claim("w", 1, "a");
    RunRecord requested = store.cancel(r.id()).orElseThrow();
    assertThat(requested.status()).isEqualTo(RunStatus.RUNNING);
    assertThat(requested.cancelRequested()).isTrue();
    assertThat(store.cancel(r.id())).contains(requested);
    assertThat(eventTypes(r.id())).containsExactly("queued", "started", "cancel_requested");
    Heartbeat hb = store.heartbeat("w", Set.of(r.id()), LEASE);
    assertThat(hb.extended()).isEqualTo(1);
    assertThat(hb.cancelRequested()).containsExactly(r.id());
    RunRecord end = store.finish(Finish.unsuccessful(r.id(), 1, "w", RunStatus.CANCELLED,
        "stopped", Usage.ZERO)).orElseThrow();
    assertThat(end.cancelRequested()).isFalse();
    assertThat(store.cancel(424242)).isEmpty();
  }

  @Test
  void heartbeatExtendsTheListedLeasesOfTheOwner() {
    insert("a", "1");
    insert("a", "2");
    insert("a", "3");
    List<RunRecord> mine = claim("w1", 2, "a");
    RunRecord theirs = claim("w2", 1, "a").get(0);
    clock.advance(Duration.ofSeconds(20));
    Heartbeat hb = store.heartbeat("w1", Set.of(mine.get(0).id(), mine.get(1).id(), theirs.id()),
        LEASE);
    assertThat(hb.extended()).isEqualTo(2);
    assertThat(hb.cancelRequested()).isEmpty();
    clock.advance(Duration.ofSeconds(15));
    List<RunRecord> recovered = store.recoverExpiredLeases();
    assertThat(recovered).singleElement().satisfies(r -> {
      assertThat(r.status()).isEqualTo(RunStatus.FAILED); // one attempt only
      assertThat(r.error()).contains("w2").contains("lost");
    });
  }

  @Test
  void recoveryRequeuesOrFailsWhenAttemptsAreUsed() {
    RunRecord once = store.insert(new NewRun(RunRequest.of("a", "once"), 1));
    RunRecord twice = store.insert(new NewRun(RunRequest.of("a", "twice"), 2));
    claim("w", 2, "a");
    clock.advance(LEASE);
    assertThat(store.recoverExpiredLeases()).isEmpty(); // lease ends exactly now: not yet
    clock.advance(Duration.ofMillis(1));
    List<RunRecord> recovered = store.recoverExpiredLeases();
    assertThat(recovered).extracting(RunRecord::id).containsExactly(once.id(), twice.id());
    RunRecord failed = recovered.get(0);
    assertThat(failed.status()).isEqualTo(RunStatus.FAILED);
    assertThat(failed.finishedAt()).isEqualTo(clock.instant());
    assertThat(failed.error()).contains("was lost");
    RunRecord requeued = recovered.get(1);
    assertThat(requeued.status()).isEqualTo(RunStatus.QUEUED);
    assertThat(requeued.attempt()).isEqualTo(1);
    assertThat(requeued.notBefore()).isEqualTo(clock.instant());
    assertThat(eventTypes(once.id())).containsExactly("queued", "started", "failed");
    assertThat(eventTypes(twice.id())).containsExactly("queued", "started", "recovered");
    // the zombie's late finish changes nothing
    assertThat(store.finish(Finish.succeeded(twice.id(), 1, "w", "late", Usage.ZERO))).isEmpty();
    assertThat(claim("w2", 1, "a").get(0).attempt()).isEqualTo(2);
  }

  @Test
  void appendEventIsFencedByAttempt() {
    RunRecord r = insert("a", "x");
    assertThat(store.appendEvent(r.id(), 0, "progress", "no")).isEmpty();
    claim("w", 1, "a");
    RunEvent e = store.appendEvent(r.id(), 1, "progress", "50%").orElseThrow();
    assertThat(e.runId()).isEqualTo(r.id());
    assertThat(e.attempt()).isEqualTo(1);
    assertThat(e.data()).isEqualTo("50%");
    assertThat(store.appendEvent(r.id(), 2, "progress", "no")).isEmpty();
    assertThat(store.events(r.id())).last().isEqualTo(e);
    assertThat(store.events(999)).isEmpty();
  }

  @Test
  void queryPagesNewestFirstByKeyset() {
    List<Long> ids = new ArrayList<>();
    for (int i = 0; i < 7; i++) {
      ids.add(insert(i % 2 == 0 ? "a" : "b", "x" + i).id());
    }
    store.cancel(ids.get(0));
    Page<RunRecord> p1 = store.query(RunQuery.agent("a").limit(2));
    assertThat(p1.items()).extracting(RunRecord::id).containsExactly(ids.get(6), ids.get(4));
    Page<RunRecord> p2 = store.query(RunQuery.agent("a").limit(2).after(p1.nextCursor().get()));
    assertThat(p2.items()).extracting(RunRecord::id).containsExactly(ids.get(2), ids.get(0));
    assertThat(p2.hasNext()).isFalse();
    assertThat(store.query(RunQuery.all().status(RunStatus.CANCELLED)).items())
        .extracting(RunRecord::id).containsExactly(ids.get(0));
    assertThat(store.query(RunQuery.all().limit(1000)).items()).hasSize(7);
  }

  @Test
  void statsCountByAgentAndStatusWithUsage() {
    insert("a", "1");
    insert("a", "2");
    insert("b", "3");
    RunRecord c = claim("w", 1, "a").get(0);
    store.finish(Finish.succeeded(c.id(), 1, "w", "ok", Usage.of(5, 6, 7)));
    claim("w", 1, "b");
    RunStats stats = store.stats();
    assertThat(stats.agent("a").succeeded()).isEqualTo(1);
    assertThat(stats.agent("a").queued()).isEqualTo(1);
    assertThat(stats.agent("a").usage()).isEqualTo(Usage.of(5, 6, 7));
    assertThat(stats.agent("b").running()).isEqualTo(1);
    assertThat(stats.total().total()).isEqualTo(3);
  }

  @Test
  void purgeDeletesOldTerminalRunsWithTheirEvents() throws Exception {
    RunRecord old = insert("a", "old");
    store.cancel(old.id());
    RunRecord running = insert("a", "running");
    claim("w", 1, "a");
    clock.advance(Duration.ofHours(1));
    RunRecord recent = insert("a", "recent");
    store.cancel(recent.id());
    assertThat(store.purge(clock.instant().minusSeconds(60))).isEqualTo(1);
    assertThat(store.find(old.id())).isEmpty();
    assertThat(store.events(old.id())).isEmpty();
    assertThat(store.find(running.id())).isPresent();
    assertThat(store.find(recent.id())).isPresent();
    assertThat(store.stats().agent("a").cancelled()).isEqualTo(1);
    try (var c = java.sql.DriverManager.getConnection("jdbc:sqlite:" + store.path());
        var rs = c.createStatement().executeQuery(
            "SELECT count(*) FROM events WHERE run_id = " + old.id())) {
      rs.next();
      assertThat(rs.getInt(1)).isZero();
    }
  }

  @Test
  void readersAndTheWriterDoNotWaitForEachOther() throws Exception {
    RunRecord r = insert("a", "x");
    // An open read transaction elsewhere (an old snapshot) does not hold up writes...
    try (var reader = java.sql.DriverManager.getConnection("jdbc:sqlite:" + store.path().toUri());
        var s = reader.createStatement()) {
      s.execute("BEGIN");
      try (var rs = s.executeQuery("SELECT count(*) FROM runs")) {
        rs.next();
      }
      for (int i = 0; i < 20; i++) {
        insert("a", "while reading " + i);
      }
      s.execute("COMMIT");
    }
    // ...and a write transaction in progress does not hold up reads.
    java.util.concurrent.CountDownLatch inside = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    Thread writerBusy = Thread.ofPlatform().start(() -> store.writer().submit("long write", tx -> {
      tx.execute("UPDATE runs SET priority = 7 WHERE id = " + r.id());
      inside.countDown();
      try {
        release.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      return null;
    }));
    assertThat(inside.await(10, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
    long started = System.nanoTime();
    assertThat(store.find(r.id()).orElseThrow().priority()).isZero(); // the committed state
    assertThat(store.stats().agent("a").queued()).isEqualTo(21);
    assertThat(store.events(r.id())).hasSize(1);
    assertThat(System.nanoTime() - started).isLessThan(java.time.Duration.ofSeconds(2).toNanos());
    release.countDown();
    writerBusy.join();
    assertThat(store.find(r.id()).orElseThrow().priority()).isEqualTo(7);
  }

  @Test
  void closedStoreRefusesCalls() {
    store.close();
    store.close();
    assertThatThrownBy(() -> insert("a", "x"))
        .isInstanceOf(StoreException.class).hasMessageContaining("closed")
        .hasMessageContaining(store.path().toString());
    assertThatThrownBy(() -> store.find(1)).isInstanceOf(StoreException.class);
  }

  @Test
  void dataSurvivesReopening() {
    RunRecord r = insert("a", "kept");
    store.close();
    store = SqliteRunStore.builder(dir.resolve("runs.db")).clock(clock).build();
    assertThat(store.find(r.id())).contains(r);
  }
}
