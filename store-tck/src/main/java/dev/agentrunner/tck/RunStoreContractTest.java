package dev.agentrunner.tck;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.agentrunner.AgentStats;
import dev.agentrunner.Page;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.IdempotencyConflictException;
import dev.agentrunner.MissedFirePolicy;
import dev.agentrunner.ScheduleSpec;
import dev.agentrunner.Schedule;
import dev.agentrunner.SerialKeyPolicy;
import dev.agentrunner.SerialKeyBusyException;
import dev.agentrunner.StoreException;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.Heartbeat;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntFunction;
import java.util.stream.Collectors;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The {@link RunStore} contract suite. A store proves it keeps the invariants of the design
 * (I1 unique ids, I2 one claim per attempt, I3 fencing, I4 the state machine, I5 a status change
 * and its event commit together, I6 serial keys, I8 leases) by extending this class once:
 *
 * <pre>{@code
 * class MyRunStoreContractTest extends RunStoreContractTest {
 *   protected RunStore newStore(TestClock clock) { return MyRunStore.open(freshDatabase(), clock); }
 *   protected AutoCloseable failEventWrites(RunStore store) { return installFailingEventTrigger(); }
 * }
 * }</pre>
 *
 * <p>Every test gets a new, empty store on a {@link TestClock} that only moves when the test
 * moves it, so lease and {@code notBefore} behaviour is checked exactly and no test waits on the
 * wall clock. The concurrent tests carry a {@link Timeout}, so a deadlocked store fails instead
 * of hanging the build. The suite closes the store after each test.
 *
 * <p>Thread-safety: JUnit creates one instance per test method and the instance is not shared;
 * the concurrent tests start their own threads and join them before they assert.
 */
public abstract class RunStoreContractTest {

  /** An agent name the suite uses. */
  protected static final String ALPHA = "alpha";
  /** A second agent name. */
  protected static final String BETA = "beta";
  /** A third agent name, often left out of a claim's quotas. */
  protected static final String GAMMA = "gamma";
  /** The lease of the suite's claims. */
  protected static final Duration LEASE = Duration.ofSeconds(30);

  /** Generous, since a slow database is no failure; a deadlock is. */
  private static final long CONCURRENT_TIMEOUT_SECONDS = 120;

  private static final Set<String> TERMINAL_EVENT_TYPES =
      Set.of("succeeded", "failed", "cancelled", "timed_out");

  private TestClock clock;
  private RunStore store;
  private boolean closedByTest;
  private int inputs;

  /**
   * A new, empty store whose timestamps and leases come from {@code clock}. Called once per test;
   * the suite closes it.
   */
  protected abstract RunStore newStore(TestClock clock) throws Exception;

  /**
   * While the returned handle is open, every event write of {@code store} fails inside its
   * transaction (a real fault, e.g. a SQL trigger that raises).
   */
  protected abstract AutoCloseable failEventWrites(RunStore store) throws Exception;

  /**
   * Whether the store claims a run at insert when nothing comes before it
   * ({@link RunStore#insertAndClaim}). The default, false, accepts a store that always returns
   * the run QUEUED, as the SPI's default method does; every store is checked never to claim a
   * run that something should precede. Return true to have the suite also require the claim.
   */
  protected boolean claimsAtInsert() {
    return false;
  }

  /** The store under test in the current test. */
  protected final RunStore store() {
    return store;
  }

  /** The clock of the store under test. */
  protected final TestClock clock() {
    return clock;
  }

  @BeforeEach
  final void openStore() throws Exception {
    clock = new TestClock();
    store = newStore(clock);
    assertThat(store).as("newStore(clock)").isNotNull();
  }

  @AfterEach
  final void closeStore() {
    if (store != null && !closedByTest) {
      store.close();
    }
  }

  // ---------------------------------------------------------------- insert and ids (I1)

  @Test
  @DisplayName("insert stores a QUEUED run as requested, with the store's clock and a queued event")
  public void insertStoresAQueuedRunAsRequested() {
    clock.advance(Duration.ofSeconds(5));
    Instant now = clock.instant();
    Instant later = now.plusSeconds(60);
    RunRequest request = RunRequest.of(ALPHA, "{\"q\":1}").withSerialKey("conversation-1")
        .withIdempotencyKey("idem-1").withPriority(7).withNotBefore(later);

    RunRecord stored = store.insert(new NewRun(request, 3));
    RunRecord plain = insert(ALPHA);

    assertThat(stored.id()).isPositive();
    assertThat(stored.agent()).isEqualTo(ALPHA);
    assertThat(stored.status()).isEqualTo(RunStatus.QUEUED);
    assertThat(stored.input()).isEqualTo("{\"q\":1}");
    assertThat(stored.output()).isNull();
    assertThat(stored.error()).isNull();
    assertThat(stored.serialKey()).isEqualTo("conversation-1");
    assertThat(stored.idempotencyKey()).isEqualTo("idem-1");
    assertThat(stored.priority()).isEqualTo(7);
    assertThat(stored.attempt()).isZero();
    assertThat(stored.maxAttempts()).isEqualTo(3);
    assertThat(stored.createdAt()).isEqualTo(now);
    assertThat(stored.notBefore()).isEqualTo(later);
    assertThat(stored.startedAt()).isNull();
    assertThat(stored.finishedAt()).isNull();
    assertThat(stored.owner()).isNull();
    assertThat(stored.leaseUntil()).isNull();
    assertThat(stored.cancelRequested()).isFalse();
    assertThat(stored.usage()).isEqualTo(Usage.ZERO);
    assertThat(store.find(stored.id())).contains(stored);

    assertThat(plain.id()).isGreaterThan(stored.id());
    assertThat(plain.notBefore()).as("notBefore defaults to createdAt").isEqualTo(now);
    assertThat(plain.maxAttempts()).isEqualTo(1);

    List<RunEvent> events = store.events(stored.id());
    assertThat(events).hasSize(1);
    assertThat(events.get(0).type()).isEqualTo("queued");
    assertThat(events.get(0).runId()).isEqualTo(stored.id());
    assertThat(events.get(0).attempt()).isZero();
    assertThat(events.get(0).at()).isEqualTo(now);
  }

  @Test
  @DisplayName("I1: 16 threads x 1,000 concurrent inserts get distinct ids, each the id of its own row")
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  public void concurrentInsertsEachGetTheIdOfTheirOwnRow() throws Exception {
    int threads = 16;
    int perThread = 1_000;
    List<long[]> idsByThread = inParallel(threads, t -> {
      long[] ids = new long[perThread];
      for (int i = 0; i < perThread; i++) {
        String input = inputOf(t, i);
        RunRecord stored = store.insert(NewRun.of(RunRequest.of(ALPHA, input)));
        if (!stored.input().equals(input)) {
          throw new AssertionError("insert of " + input + " returned the row of " + stored.input());
        }
        ids[i] = stored.id();
      }
      return ids;
    });

    Set<Long> distinct = new HashSet<>();
    List<String> problems = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      long[] ids = idsByThread.get(t);
      for (int i = 0; i < perThread; i++) {
        if (!distinct.add(ids[i])) {
          problems.add("id " + ids[i] + " was returned to two inserts");
        }
        if (i > 0 && ids[i] <= ids[i - 1]) {
          problems.add("thread " + t + " got id " + ids[i] + " after " + ids[i - 1]);
        }
        RunRecord row = store.find(ids[i]).orElse(null);
        if (row == null || !row.input().equals(inputOf(t, i))) {
          problems.add("id " + ids[i] + " returned to " + inputOf(t, i) + " holds "
              + (row == null ? "no row" : row.input()));
        }
      }
    }
    assertThat(problems).as("problems (first 10)").isEmpty();
    assertThat(distinct).hasSize(threads * perThread);
    assertThat(store.stats().total().queued()).isEqualTo(threads * perThread);
  }

  private static String inputOf(int thread, int i) {
    return "{\"thread\":" + thread + ",\"i\":" + i + "}";
  }

  // ---------------------------------------------------------------- idempotency

  @Test
  @DisplayName("a second insert with the same idempotency key returns the stored run and writes nothing")
  public void secondInsertWithTheSameIdempotencyKeyReturnsTheStoredRun() {
    RunRecord first = insert(RunRequest.of(ALPHA, "first").withIdempotencyKey("once"));
    Snapshot before = snapshot();
    clock.advance(Duration.ofSeconds(1));

    // The same request again (a client retrying), with a priority that must not be applied.
    RunRecord second = insert(RunRequest.of(ALPHA, "first").withIdempotencyKey("once")
        .withPriority(9));

    assertThat(second).isEqualTo(first);
    assertThat(snapshot()).isEqualTo(before);
    // Another key is another run.
    assertThat(insert(RunRequest.of(ALPHA, "x").withIdempotencyKey("twice")).id())
        .isNotEqualTo(first.id());
  }

  @Test
  @DisplayName("32 threads inserting one idempotency key at once make one run, and all get its id")
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  public void concurrentInsertsWithOneIdempotencyKeyMakeOneRun() throws Exception {
    int rounds = 5;
    for (int round = 0; round < rounds; round++) {
      String key = "key-" + round;
      String input = "{\"order\":" + round + "}";
      List<Long> ids = inParallel(32, t ->
          store.insert(NewRun.of(RunRequest.of(ALPHA, input).withIdempotencyKey(key))).id());
      assertThat(Set.copyOf(ids)).as("ids returned for %s", key).hasSize(1);
      assertThat(current(ids.get(0)).input()).isEqualTo(input);
      assertThat(eventTypes(ids.get(0))).as("events of the one run").containsExactly("queued");
    }
    assertThat(scan(RunQuery.all())).hasSize(rounds);
    assertThat(store.stats().total().total()).isEqualTo(rounds);
  }

  @Test
  @DisplayName("reusing an idempotency key for another agent or input is refused and writes nothing")
  void anIdempotencyKeyReusedForAnotherRequestIsRefused() throws Exception {
    RunRecord first = insert(RunRequest.of(ALPHA, "{\"order\":1}").withIdempotencyKey("k"));
    Snapshot before = snapshot();
    assertThatThrownBy(() -> insert(RunRequest.of(ALPHA, "{\"order\":2}")
        .withIdempotencyKey("k")))
        .isInstanceOfSatisfying(IdempotencyConflictException.class, e -> {
          assertThat(e.storedRunId()).isEqualTo(first.id());
          assertThat(e.idempotencyKey()).isEqualTo("k");
        })
        .hasMessageContaining("another input");
    assertThatThrownBy(() -> insert(RunRequest.of(BETA, "{\"order\":1}")
        .withIdempotencyKey("k")))
        .isInstanceOf(IdempotencyConflictException.class)
        .hasMessageContaining("agent \"" + ALPHA + "\"");
    assertThat(snapshot()).isEqualTo(before);
    assertThat(insert(RunRequest.of(ALPHA, "{\"order\":1}").withIdempotencyKey("k")).id())
        .as("the same request again").isEqualTo(first.id());
  }

  // ---------------------------------------------------------------- claim (I2)

  @Test
  @DisplayName("claim sets RUNNING, attempt 1, owner, startedAt and the lease, and writes a started event")
  public void claimStartsAnAttempt() {
    RunRecord run = insert(ALPHA);
    clock.advance(Duration.ofSeconds(3));
    Instant now = clock.instant();

    RunRecord claimed = claimOne("w1");

    assertThat(claimed.id()).isEqualTo(run.id());
    assertThat(claimed.status()).isEqualTo(RunStatus.RUNNING);
    assertThat(claimed.attempt()).isEqualTo(1);
    assertThat(claimed.owner()).isEqualTo("w1");
    assertThat(claimed.startedAt()).isEqualTo(now);
    assertThat(claimed.leaseUntil()).isEqualTo(now.plus(LEASE));
    assertThat(claimed.input()).isEqualTo(run.input());
    assertThat(claimed.createdAt()).isEqualTo(run.createdAt());
    assertThat(store.find(run.id())).contains(claimed);
    assertThat(eventTypes(run.id())).containsExactly("queued", "started");
    assertThat(last(store.events(run.id())).attempt()).isEqualTo(1);
    assertThat(claim("w2", 10)).as("a RUNNING run is not claimed again").isEmpty();
  }

  @Test
  @DisplayName("I2: 8 racing claimers take each of 10,000 runs exactly once, at attempt 1")
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  public void concurrentClaimsTakeEachRunExactlyOnce() throws Exception {
    int runs = 10_000;
    insertMany(runs, i -> RunRequest.of(i % 3 == 0 ? BETA : ALPHA, "run-" + i));
    Map<Long, String> claimedBy = new ConcurrentHashMap<>();
    Queue<String> problems = new ConcurrentLinkedQueue<>();

    inParallel(8, t -> {
      String owner = "worker-" + t;
      int limit = 1 + t * 7;
      int betaQuota = Math.max(1, limit / 2);
      ClaimRequest request =
          new ClaimRequest(owner, Map.of(ALPHA, limit, BETA, betaQuota), limit, LEASE);
      while (true) {
        List<RunRecord> got = store.claim(request);
        if (got.isEmpty()) {
          return null;
        }
        if (got.size() > limit) {
          problems.add(owner + " asked for " + limit + " runs and got " + got.size());
        }
        long betas = got.stream().filter(r -> r.agent().equals(BETA)).count();
        if (betas > betaQuota) {
          problems.add(owner + " had a quota of " + betaQuota + " for beta and got " + betas);
        }
        for (RunRecord r : got) {
          if (r.status() != RunStatus.RUNNING || r.attempt() != 1 || !owner.equals(r.owner())) {
            problems.add(owner + " got " + r);
          }
          String previous = claimedBy.putIfAbsent(r.id(), owner);
          if (previous != null) {
            problems.add("run " + r.id() + " was claimed by " + previous + " and by " + owner);
          }
        }
      }
    });

    assertThat(problems).as("problems").isEmpty();
    assertThat(claimedBy).hasSize(runs);
    List<RunRecord> rows = scan(RunQuery.all().limit(RunQuery.MAX_LIMIT));
    assertThat(rows).hasSize(runs);
    for (RunRecord row : rows) {
      if (row.status() != RunStatus.RUNNING || row.attempt() != 1
          || !row.owner().equals(claimedBy.get(row.id()))) {
        problems.add("stored " + row + " but the claim went to " + claimedBy.get(row.id()));
      }
      long started = store.events(row.id()).stream().filter(e -> e.type().equals("started"))
          .count();
      if (started != 1) {
        problems.add("run " + row.id() + " has " + started + " started events");
      }
    }
    assertThat(problems).as("problems").isEmpty();
    assertThat(scan(RunQuery.all().status(RunStatus.QUEUED))).as("runs left QUEUED").isEmpty();
    assertThat(store.stats().total().running()).isEqualTo(runs);
  }

  @Test
  @DisplayName("I2: claim takes at most its limit")
  public void claimHonoursTheLimit() {
    for (int i = 0; i < 5; i++) {
      insert(ALPHA);
    }
    assertThat(claim("w1", 3)).hasSize(3);
    assertThat(claim("w1", 3)).hasSize(2);
    assertThat(claim("w1", 3)).isEmpty();
  }

  @Test
  @DisplayName("I2: claim honours per-agent quotas and never takes an agent without a quota")
  public void claimHonoursPerAgentQuotas() {
    List<Long> gammas = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      insert(ALPHA);
      insert(BETA);
      gammas.add(insert(GAMMA).id());
    }
    ClaimRequest request = new ClaimRequest("w1", Map.of(ALPHA, 2, BETA, 1), 10, LEASE);

    assertThat(agentsOf(store.claim(request))).containsExactlyInAnyOrder(ALPHA, ALPHA, BETA);
    assertThat(agentsOf(store.claim(request))).containsExactlyInAnyOrder(ALPHA, BETA);
    assertThat(agentsOf(store.claim(request))).containsExactly(BETA);
    assertThat(store.claim(request)).isEmpty();
    for (long id : gammas) {
      assertThat(current(id).status()).isEqualTo(RunStatus.QUEUED);
      assertThat(current(id).attempt()).isZero();
    }
  }

  @Test
  @DisplayName("I2: claim takes higher priority first, then lower id")
  public void claimTakesHigherPriorityFirstThenLowerId() {
    int[] priorities = {0, 5, 0, 5, -1, 9};
    List<RunRecord> runs = new ArrayList<>();
    for (int p : priorities) {
      runs.add(insert(RunRequest.of(ALPHA, nextInput()).withPriority(p)));
    }
    List<Long> order = new ArrayList<>();
    for (int i = 0; i < priorities.length; i++) {
      order.add(claimOne("w1").id());
    }
    assertThat(order).containsExactly(runs.get(5).id(), runs.get(1).id(), runs.get(3).id(),
        runs.get(0).id(), runs.get(2).id(), runs.get(4).id());

    // A batch takes the best runs, whatever order it lists them in.
    List<RunRecord> again = new ArrayList<>();
    for (int p : priorities) {
      again.add(insert(RunRequest.of(ALPHA, nextInput()).withPriority(p)));
    }
    assertThat(idsOf(claim("w1", 3)))
        .containsExactlyInAnyOrder(again.get(5).id(), again.get(1).id(), again.get(3).id());
  }

  @Test
  @DisplayName("I2: a run whose notBefore is in the future is not claimed until the clock passes it")
  public void claimWaitsForNotBefore() {
    Instant due = clock.instant().plusSeconds(60);
    RunRecord later = insert(RunRequest.of(ALPHA, nextInput()).withNotBefore(due));
    RunRecord now = insert(ALPHA);

    assertThat(idsOf(claim("w1", 10))).containsExactly(now.id());
    clock.advance(Duration.ofSeconds(59));
    assertThat(claim("w1", 10)).isEmpty();
    clock.advance(Duration.ofSeconds(2));
    RunRecord claimed = claimOne("w1");
    assertThat(claimed.id()).isEqualTo(later.id());
    assertThat(claimed.attempt()).isEqualTo(1);
    assertThat(claimed.startedAt()).isEqualTo(clock.instant());
  }

  // ---------------------------------------------------------------- fencing (I3)

  @Test
  @DisplayName("I3: a finish with a wrong attempt or a wrong owner returns empty and changes nothing")
  public void finishWithAWrongFenceChangesNothing() {
    RunRecord claimed = claimedRun(ALPHA, "w1");
    Snapshot before = snapshot();
    long id = claimed.id();
    Usage usage = Usage.of(10, 10, 10);

    assertThat(store.finish(Finish.succeeded(id, 2, "w1", "out", usage))).isEmpty();
    assertThat(store.finish(Finish.succeeded(id, 1, "w2", "out", usage))).isEmpty();
    assertThat(store.finish(
        Finish.unsuccessful(id, 1, "w2", RunStatus.FAILED, "no", usage))).isEmpty();
    assertThat(store.finish(
        Finish.retry(id, 2, "w1", "again", usage, Duration.ofSeconds(5)))).isEmpty();
    assertThat(store.finish(Finish.succeeded(id + 1_000_000, 1, "w1", "out", usage))).isEmpty();
    assertThat(snapshot()).isEqualTo(before);

    RunRecord done = store.finish(Finish.succeeded(id, 1, "w1", "out", usage)).orElseThrow();
    assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
    assertThat(done.output()).isEqualTo("out");
  }

  @Test
  @DisplayName("I3: after a lease is recovered and the run re-claimed, the zombie's finish is a no-op")
  public void aZombiesLateFinishIsANoOp() {
    RunRecord first = store.insert(new NewRun(RunRequest.of(ALPHA, nextInput()), 3));
    RunRecord zombie = claimOne("w1");
    clock.advance(LEASE.plusSeconds(1));
    assertThat(idsOf(store.recoverExpiredLeases())).containsExactly(first.id());

    assertThat(store.finish(success(zombie, "zombie"))).as("finish while QUEUED").isEmpty();
    assertThat(current(first.id()).status()).isEqualTo(RunStatus.QUEUED);

    RunRecord fresh = claimOne("w2");
    assertThat(fresh.attempt()).isEqualTo(2);
    RunRecord beforeZombie = current(first.id());
    List<RunEvent> eventsBeforeZombie = store.events(first.id());
    assertThat(store.finish(success(zombie, "zombie"))).isEmpty();
    assertThat(store.finish(Finish.succeeded(first.id(), 1, "w2", "x", Usage.ZERO))).isEmpty();
    assertThat(store.finish(Finish.succeeded(first.id(), 2, "w1", "x", Usage.ZERO))).isEmpty();
    assertThat(store.appendEvent(first.id(), 1, "progress", "zombie")).isEmpty();
    assertThat(current(first.id())).isEqualTo(beforeZombie);
    assertThat(store.events(first.id())).isEqualTo(eventsBeforeZombie);

    RunRecord done = store.finish(success(fresh, "fresh")).orElseThrow();
    assertThat(done.output()).isEqualTo("fresh");
    assertThat(store.finish(success(zombie, "zombie"))).isEmpty();
    assertThat(current(first.id()).output()).isEqualTo("fresh");

    // The same worker re-claiming does not revive its old attempt either.
    RunRecord second = store.insert(new NewRun(RunRequest.of(BETA, nextInput()), 3));
    RunRecord old = claimOne("w1");
    clock.advance(LEASE.plusSeconds(1));
    store.recoverExpiredLeases();
    RunRecord again = claimOne("w1");
    assertThat(again.id()).isEqualTo(second.id());
    assertThat(store.finish(success(old, "old"))).isEmpty();
    assertThat(store.finish(success(again, "new")).orElseThrow().output()).isEqualTo("new");
  }

  @Test
  @DisplayName("I3: racing finishes of one attempt let exactly one apply")
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  public void racingFinishesOfOneAttemptLetExactlyOneApply() throws Exception {
    int runs = 300;
    insertMany(runs, i -> RunRequest.of(ALPHA, "run-" + i));
    List<RunRecord> claimed = claimAll("w1");
    assertThat(claimed).hasSize(runs);
    RunStatus[] statuses =
        {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED};
    Map<Long, RunStatus> winners = new ConcurrentHashMap<>();
    Queue<String> problems = new ConcurrentLinkedQueue<>();

    inParallel(statuses.length, t -> {
      RunStatus status = statuses[t];
      for (int k = 0; k < runs; k++) {
        // Each thread starts elsewhere in the list, so every pair of threads meets somewhere.
        RunRecord run = claimed.get((k + t * runs / statuses.length) % runs);
        Finish finish = status == RunStatus.SUCCEEDED
            ? Finish.succeeded(run.id(), run.attempt(), run.owner(), "ok", Usage.ZERO)
            : Finish.unsuccessful(run.id(), run.attempt(), run.owner(), status, "x", Usage.ZERO);
        if (store.finish(finish).isPresent()) {
          RunStatus previous = winners.putIfAbsent(run.id(), status);
          if (previous != null) {
            problems.add("run " + run.id() + " finished " + previous + " and " + status);
          }
        }
      }
      return null;
    });

    assertThat(problems).isEmpty();
    assertThat(winners).hasSize(runs);
    for (RunRecord run : claimed) {
      assertThat(current(run.id()).status()).isEqualTo(winners.get(run.id()));
      assertThat(eventTypes(run.id()).stream().filter(TERMINAL_EVENT_TYPES::contains))
          .as("terminal events of run %d", run.id()).hasSize(1);
    }
    assertStatsMatchRows();
  }

  @Test
  @DisplayName("I3: lease recovery racing a late finish lets exactly one of them apply")
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  public void recoveryRacingALateFinishLetsExactlyOneApply() throws Exception {
    int runs = 300;
    insertMany(runs, i -> RunRequest.of(ALPHA, "run-" + i));
    List<RunRecord> claimed = claimAll("w1");
    clock.advance(LEASE.plusSeconds(1));
    Set<Long> finished = ConcurrentHashMap.newKeySet();
    Set<Long> recovered = ConcurrentHashMap.newKeySet();
    AtomicBoolean finisherDone = new AtomicBoolean();

    inParallel(List.<Callable<Object>>of(
        () -> {
          try {
            for (RunRecord run : claimed.reversed()) {
              if (store.finish(success(run, "late")).isPresent()) {
                finished.add(run.id());
              }
            }
          } finally {
            finisherDone.set(true);
          }
          return null;
        },
        () -> {
          while (!finisherDone.get()) {
            store.recoverExpiredLeases().forEach(r -> recovered.add(r.id()));
          }
          store.recoverExpiredLeases().forEach(r -> recovered.add(r.id()));
          return null;
        }));

    assertThat(intersection(finished, recovered)).as("finished and recovered").isEmpty();
    assertThat(finished.size() + recovered.size()).isEqualTo(runs);
    for (long id : finished) {
      assertThat(current(id).status()).isEqualTo(RunStatus.SUCCEEDED);
    }
    for (long id : recovered) {
      assertThat(current(id).status()).isEqualTo(RunStatus.FAILED);
    }
    assertStatsMatchRows();
  }

  // ---------------------------------------------------------------- state machine (I4)

  @Test
  @DisplayName("I4: a finish of a QUEUED run is refused, also when the attempt number matches")
  public void finishOfAQueuedRunIsRefused() {
    RunRecord fresh = insert(ALPHA);
    RunRecord retried = store.insert(new NewRun(RunRequest.of(BETA, nextInput()), 3));
    RunRecord claimed = claim("w1", Map.of(BETA, 1)).get(0);
    store.finish(Finish.retry(retried.id(), 1, "w1", "later", Usage.ZERO,
        Duration.ofSeconds(60))).orElseThrow();
    Snapshot before = snapshot();

    for (RunRecord run : List.of(fresh, claimed)) {
      for (Finish finish : everyFinish(run.id(), 1, "w1")) {
        assertThat(store.finish(finish)).as("%s of a QUEUED run", finish).isEmpty();
      }
    }
    assertThat(snapshot()).isEqualTo(before);
  }

  @Test
  @DisplayName("I4: terminal runs never change: no finish, cancel, claim, release or recovery applies")
  public void terminalRunsNeverChange() {
    List<RunRecord> lastClaims = new ArrayList<>();
    for (RunStatus status : List.of(RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED,
        RunStatus.TIMED_OUT)) {
      insert(ALPHA);
      RunRecord c = claimOne("w1");
      Finish finish = status == RunStatus.SUCCEEDED
          ? success(c, "done")
          : Finish.unsuccessful(c.id(), c.attempt(), c.owner(), status, "why", Usage.ZERO);
      assertThat(store.finish(finish)).isPresent();
      lastClaims.add(c);
    }
    RunRecord cancelledWhileQueued = insert(ALPHA);
    store.cancel(cancelledWhileQueued.id()).orElseThrow();
    lastClaims.add(new RunRecord(cancelledWhileQueued.id(), ALPHA, RunStatus.RUNNING,
        cancelledWhileQueued.input(), null, null, null, null, 0, 1, 1,
        cancelledWhileQueued.createdAt(), cancelledWhileQueued.notBefore(), clock.instant(),
        null, "w1", clock.instant().plus(LEASE), false, Usage.ZERO));
    insert(ALPHA);
    RunRecord lost = claimOne("w1");
    clock.advance(LEASE.plusSeconds(1));
    assertThat(store.recoverExpiredLeases()).hasSize(1);
    assertThat(current(lost.id()).status()).isEqualTo(RunStatus.FAILED);
    lastClaims.add(lost);
    Snapshot before = snapshot();
    assertThat(before.runs()).allMatch(RunRecord::isTerminal);

    for (RunRecord c : lastClaims) {
      for (Finish finish : everyFinish(c.id(), 1, "w1")) {
        assertThat(store.finish(finish)).as("%s of terminal run %d", finish, c.id()).isEmpty();
      }
      assertThat(store.cancel(c.id())).as("cancel of a terminal run").contains(current(c.id()));
      assertThat(store.appendEvent(c.id(), 1, "progress", "late")).isEmpty();
      assertThat(store.release("w1", List.of(c))).isZero();
    }
    clock.advance(Duration.ofHours(1));
    assertThat(store.recoverExpiredLeases()).isEmpty();
    assertThat(claim("w1", 10)).isEmpty();
    assertThat(store.heartbeat("w1", Set.copyOf(idsOf(lastClaims)), LEASE).extended()).isZero();
    assertThat(snapshot()).isEqualTo(before);
  }

  @Test
  @DisplayName("I4: a second finish of the same attempt is a no-op")
  public void aSecondFinishIsANoOp() {
    RunRecord c = claimedRun(ALPHA, "w1");
    RunRecord done = store.finish(success(c, "first")).orElseThrow();
    Snapshot before = snapshot();

    assertThat(store.finish(success(c, "second"))).isEmpty();
    assertThat(store.finish(Finish.unsuccessful(c.id(), 1, "w1", RunStatus.FAILED, "x",
        Usage.of(1, 1, 1)))).isEmpty();
    assertThat(snapshot()).isEqualTo(before);
    assertThat(current(c.id())).isEqualTo(done);
  }

  @Test
  @DisplayName("I4: a Finish cannot name RUNNING, nor QUEUED without retryAfter")
  public void finishRecordRefusesIllegalTargets() {
    assertThatThrownBy(() -> new Finish(1, 1, "w1", RunStatus.RUNNING, null, null, Usage.ZERO,
        null)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> new Finish(1, 1, "w1", RunStatus.QUEUED, null, "x", Usage.ZERO,
        null)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> Finish.unsuccessful(1, 1, "w1", RunStatus.SUCCEEDED, "x",
        Usage.ZERO)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> Finish.succeeded(1, 0, "w1", "x", Usage.ZERO))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> Finish.retry(1, 1, "w1", "x", Usage.ZERO, Duration.ofSeconds(-1)))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("PT-1S");
    assertThatThrownBy(() -> Finish.retry(1, 1, "w1", "x", Usage.ZERO,
        Finish.MAX_RETRY_AFTER.plusSeconds(1)))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("retryAfter");
  }

  @Test
  @DisplayName("I4: a retry requeues due at now + retryAfter, keeps attempt and error, adds usage")
  public void retryRequeuesTheRunForLater() {
    RunRecord run = store.insert(new NewRun(RunRequest.of(ALPHA, nextInput()), 3));
    RunRecord first = claimOne("w1");
    clock.advance(Duration.ofSeconds(1));
    Instant retryAt = clock.instant().plusSeconds(10);
    Usage spent = Usage.of(100, 20, 300);

    RunRecord requeued = store.finish(
        Finish.retry(run.id(), 1, "w1", "rate limited", spent, Duration.ofSeconds(10)))
        .orElseThrow();

    assertThat(requeued.status()).isEqualTo(RunStatus.QUEUED);
    assertThat(requeued.notBefore()).isEqualTo(retryAt);
    assertThat(requeued.owner()).isNull();
    assertThat(requeued.leaseUntil()).isNull();
    assertThat(requeued.attempt()).isEqualTo(1);
    assertThat(requeued.error()).isEqualTo("rate limited");
    assertThat(requeued.usage()).isEqualTo(spent);
    assertThat(requeued.finishedAt()).isNull();
    assertThat(store.find(run.id())).contains(requeued);
    assertThat(last(store.events(run.id())).type()).isEqualTo("requeued");
    assertThat(store.finish(success(first, "late"))).isEmpty();

    assertThat(claim("w2", 10)).isEmpty();
    clock.advance(Duration.ofSeconds(9));
    assertThat(claim("w2", 10)).isEmpty();
    clock.advance(Duration.ofSeconds(2));
    RunRecord second = claimOne("w2");
    assertThat(second.attempt()).isEqualTo(2);
    assertThat(second.owner()).isEqualTo("w2");
    assertThat(second.startedAt()).isEqualTo(clock.instant());

    Usage more = Usage.of(1, 2, 3);
    RunRecord done = store.finish(
        Finish.succeeded(run.id(), 2, "w2", "fine", more)).orElseThrow();
    assertThat(done.usage()).isEqualTo(spent.plus(more));
    assertThat(store.stats().agent(ALPHA).usage()).isEqualTo(spent.plus(more));
    assertThat(eventTypes(run.id()))
        .containsExactly("queued", "started", "requeued", "started", "succeeded");
  }

  @Test
  @DisplayName("I4: a terminal finish sets status, output or error, usage and finishedAt")
  public void finishEndsTheRun() {
    RunRecord ok = claimedRun(ALPHA, "w1");
    clock.advance(Duration.ofSeconds(4));
    RunRecord succeeded = store.finish(success(ok, "result")).orElseThrow();
    assertThat(succeeded.status()).isEqualTo(RunStatus.SUCCEEDED);
    assertThat(succeeded.output()).isEqualTo("result");
    assertThat(succeeded.finishedAt()).isEqualTo(clock.instant());
    assertThat(succeeded.attempt()).isEqualTo(1);
    assertThat(succeeded.startedAt()).isEqualTo(ok.startedAt());
    assertThat(store.find(ok.id())).contains(succeeded);

    RunRecord bad = claimedRun(BETA, "w1");
    Usage usage = Usage.of(5, 6, 7);
    RunRecord timedOut = store.finish(Finish.unsuccessful(bad.id(), 1, "w1", RunStatus.TIMED_OUT,
        "took too long", usage)).orElseThrow();
    assertThat(timedOut.status()).isEqualTo(RunStatus.TIMED_OUT);
    assertThat(timedOut.error()).isEqualTo("took too long");
    assertThat(timedOut.usage()).isEqualTo(usage);
    assertThat(timedOut.finishedAt()).isEqualTo(clock.instant());
    assertThat(eventTypes(bad.id())).containsExactly("queued", "started", "timed_out");
  }

  // ---------------------------------------------------------------- insert and claim at once

  private static final String W = "submitter";

  private RunRecord insertAndClaim(RunRequest request, Map<String, Integer> quotas) {
    return store.insertAndClaim(NewRun.of(request),
        new ClaimRequest(W, quotas, 1, LEASE));
  }

  private RunRecord insertAndClaim(String agent) {
    return insertAndClaim(RunRequest.of(agent, nextInput()), Map.of(ALPHA, 1, BETA, 1));
  }

  /**
   * Checks a run returned by insertAndClaim: if RUNNING, claimed exactly as claim would have
   * left it; if QUEUED, stored exactly as insert would have. Returns whether it was claimed.
   */
  private boolean assertInsertedOrClaimed(RunRecord run, RunRequest request, Instant now) {
    assertThat(run.agent()).isEqualTo(request.agent());
    assertThat(run.input()).isEqualTo(request.input());
    assertThat(run.createdAt()).isEqualTo(now);
    assertThat(store.find(run.id())).contains(run);
    if (run.status() == RunStatus.QUEUED) {
      assertThat(run.attempt()).isZero();
      assertThat(run.owner()).isNull();
      assertThat(run.leaseUntil()).isNull();
      assertThat(eventTypes(run.id())).containsExactly("queued");
      return false;
    }
    assertThat(run.status()).as("status of run %d", run.id()).isEqualTo(RunStatus.RUNNING);
    assertThat(run.attempt()).isEqualTo(1);
    assertThat(run.owner()).isEqualTo(W);
    assertThat(run.startedAt()).isEqualTo(now);
    assertThat(run.leaseUntil()).isEqualTo(now.plus(LEASE));
    assertThat(run.cancelRequested()).isFalse();
    assertThat(eventTypes(run.id())).containsExactly("queued", "started");
    List<RunEvent> events = store.events(run.id());
    assertThat(events.get(0).attempt()).isZero();
    assertThat(events.get(1).attempt()).isEqualTo(1);
    assertThat(events.get(1).data()).isEqualTo(W);
    return true;
  }

  @Test
  @DisplayName("insertAndClaim of a run nothing precedes claims it (or stores it QUEUED) exactly")
  public void insertAndClaimClaimsARunThatNothingPrecedes() {
    clock.advance(Duration.ofSeconds(2));
    RunRequest request = RunRequest.of(ALPHA, "first").withPriority(3);
    RunRecord run = store.insertAndClaim(new NewRun(request, 2),
        new ClaimRequest(W, Map.of(ALPHA, 1), 1, LEASE));
    boolean claimed = assertInsertedOrClaimed(run, request, clock.instant());
    if (claimsAtInsert()) {
      assertThat(claimed).as("claimed at insert").isTrue();
    }
    assertThat(run.maxAttempts()).isEqualTo(2);
    assertThat(run.priority()).isEqualTo(3);
    assertThat(claim("other", 10)).as("a claim finds nothing more to take")
        .hasSize(claimed ? 0 : 1);
    RunStats stats = assertStatsMatchRows();
    assertThat(stats.agent(ALPHA).running()).isEqualTo(1);
  }

  @Test
  @DisplayName("a run claimed at insert is finished by its owner's attempt 1 and by nobody else")
  public void aRunClaimedAtInsertIsFencedLikeAnyClaim() {
    RunRecord run = insertAndClaim(ALPHA);
    if (run.status() == RunStatus.QUEUED) {
      run = claimOne(W);
    }
    assertThat(store.finish(Finish.succeeded(run.id(), 1, "zombie", "no", Usage.ZERO))).isEmpty();
    assertThat(store.finish(Finish.succeeded(run.id(), 2, W, "no", Usage.ZERO))).isEmpty();
    RunRecord done = store.finish(success(run, "yes")).orElseThrow();
    assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
    assertThat(eventTypes(run.id())).containsExactly("queued", "started", "succeeded");
    assertStatsMatchRows();
  }

  @Test
  @DisplayName("insertAndClaim never claims a run that an older claimable run of the quotas precedes")
  public void insertAndClaimDoesNotOvertakeAClaimableRun() {
    RunRecord waitingAlpha = insert(ALPHA);
    assertThat(insertAndClaim(ALPHA).status()).as("behind a QUEUED run of its agent")
        .isEqualTo(RunStatus.QUEUED);
    claim("drain", Map.of(ALPHA, 10));

    insert(BETA);
    assertThat(insertAndClaim(RunRequest.of(ALPHA, nextInput()), Map.of(ALPHA, 1, BETA, 1))
        .status()).as("behind a QUEUED run of another agent in the quotas")
        .isEqualTo(RunStatus.QUEUED);
    insert(RunRequest.of(BETA, nextInput()).withPriority(5));
    assertThat(insertAndClaim(RunRequest.of(ALPHA, nextInput()).withPriority(5),
        Map.of(ALPHA, 1, BETA, 1)).status()).as("behind an older run of the same priority")
        .isEqualTo(RunStatus.QUEUED);
    assertThat(waitingAlpha.status()).isEqualTo(RunStatus.QUEUED);
    assertStatsMatchRows();
  }

  @Test
  @DisplayName("insertAndClaim may pass runs that a claim would pass too")
  public void insertAndClaimMayPassRunsAClaimWouldPass() {
    RunRecord holder = insert(RunRequest.of(BETA, nextInput()).withSerialKey("held"));
    assertThat(idsOf(claim("w1", Map.of(BETA, 1)))).containsExactly(holder.id());
    insert(RunRequest.of(BETA, nextInput()).withSerialKey("held")); // waits for its key
    insert(GAMMA); // an agent outside the quotas
    insert(RunRequest.of(ALPHA, nextInput()).withPriority(-1)); // a lower priority
    insert(RunRequest.of(ALPHA, nextInput()).withNotBefore(clock.instant().plusSeconds(60)));

    RunRequest request = RunRequest.of(ALPHA, nextInput());
    RunRecord run = insertAndClaim(request, Map.of(ALPHA, 1, BETA, 1));
    boolean claimed = assertInsertedOrClaimed(run, request, clock.instant());
    if (claimsAtInsert()) {
      assertThat(claimed).as("claimed past runs no claim would take first").isTrue();
    }
    assertStatsMatchRows();
  }

  @Test
  @DisplayName("insertAndClaim leaves QUEUED a run not due, of an agent without quota, or of a busy key")
  public void insertAndClaimLeavesQueuedWhatAClaimWouldNotTake() {
    Instant later = clock.instant().plusSeconds(60);
    RunRecord notDue = insertAndClaim(RunRequest.of(ALPHA, nextInput()).withNotBefore(later),
        Map.of(ALPHA, 1));
    assertThat(notDue.status()).isEqualTo(RunStatus.QUEUED);
    assertThat(notDue.notBefore()).isEqualTo(later);
    assertThat(insertAndClaim(RunRequest.of(GAMMA, nextInput()), Map.of(ALPHA, 1)).status())
        .as("no quota for its agent").isEqualTo(RunStatus.QUEUED);

    RunRecord holder = insertAndClaim(RunRequest.of(BETA, nextInput()).withSerialKey("k"),
        Map.of(BETA, 1));
    if (holder.status() == RunStatus.QUEUED) {
      claim("w1", Map.of(BETA, 1));
    }
    assertThat(insertAndClaim(RunRequest.of(BETA, nextInput()).withSerialKey("k"),
        Map.of(BETA, 1)).status()).as("its serial key has a RUNNING run")
        .isEqualTo(RunStatus.QUEUED);
    insert(RunRequest.of(ALPHA, nextInput()).withSerialKey("q").withNotBefore(later));
    assertThat(insertAndClaim(RunRequest.of(BETA, nextInput()).withSerialKey("q"),
        Map.of(BETA, 1)).status()).as("its serial key has an older QUEUED run, not yet due")
        .isEqualTo(RunStatus.QUEUED);
    assertStatsMatchRows();
  }

  @Test
  @DisplayName("insertAndClaim with a taken idempotency key returns the stored run unchanged")
  public void insertAndClaimHonoursIdempotencyKeys() {
    RunRecord first = insert(RunRequest.of(ALPHA, "once").withIdempotencyKey("k"));
    Snapshot before = snapshot();
    assertThat(insertAndClaim(RunRequest.of(ALPHA, "once").withIdempotencyKey("k"),
        Map.of(ALPHA, 1))).isEqualTo(first);
    assertThatThrownBy(() -> insertAndClaim(RunRequest.of(ALPHA, "other").withIdempotencyKey("k"),
        Map.of(ALPHA, 1))).isInstanceOf(IdempotencyConflictException.class);
    assertThat(snapshot()).isEqualTo(before);
  }

  @Test
  @DisplayName("insertAndClaim with REJECT refuses a busy serial key and stores nothing")
  public void insertAndClaimHonoursReject() {
    RunRecord active = insert(RunRequest.of(ALPHA, nextInput()).withSerialKey("chat"));
    Snapshot before = snapshot();
    assertThatThrownBy(() -> insertAndClaim(RunRequest.of(ALPHA, nextInput())
        .withSerialKey("chat", SerialKeyPolicy.REJECT), Map.of(ALPHA, 1)))
        .isInstanceOfSatisfying(SerialKeyBusyException.class,
            e -> assertThat(e.activeRunId()).isEqualTo(active.id()));
    assertThat(snapshot()).isEqualTo(before);
  }

  @Test
  @DisplayName("I5: an insertAndClaim whose event writes fail leaves no row and no event")
  public void insertAndClaimIsAtomicWithItsEvents() throws Exception {
    insert(BETA);
    assertFailsWithoutTrace("insertAndClaim", () -> insertAndClaim(ALPHA));
    RunRecord kept = insertAndClaim(ALPHA);
    assertThat(store.find(kept.id())).contains(kept);
    assertStatsMatchRows();
  }

  @Test
  @DisplayName("I2: runs claimed at insert by 4 threads while 4 claimers run are each taken once")
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  public void runsClaimedAtInsertAreNeverClaimedAgain() throws Exception {
    int perInserter = 500;
    AtomicBoolean inserting = new AtomicBoolean(true);
    AtomicInteger insertersLeft = new AtomicInteger(4);
    List<Callable<List<RunRecord>>> tasks = new ArrayList<>();
    for (int t = 0; t < 4; t++) {
      int thread = t;
      tasks.add(() -> {
        List<RunRecord> mine = new ArrayList<>();
        try {
          for (int i = 0; i < perInserter; i++) {
            RunRecord r = store.insertAndClaim(NewRun.of(RunRequest.of(ALPHA,
                inputOf(thread, i))), new ClaimRequest("inserter-" + thread, Map.of(ALPHA, 1),
                1, LEASE));
            if (r.status() == RunStatus.RUNNING) {
              mine.add(r);
            }
          }
        } finally {
          if (insertersLeft.decrementAndGet() == 0) {
            inserting.set(false);
          }
        }
        return mine;
      });
    }
    for (int t = 0; t < 4; t++) {
      int claimer = t;
      tasks.add(() -> {
        List<RunRecord> mine = new ArrayList<>();
        boolean more = true;
        while (inserting.get() || more) {
          List<RunRecord> got = claim("claimer-" + claimer, 7);
          more = !got.isEmpty();
          mine.addAll(got);
        }
        return mine;
      });
    }
    List<List<RunRecord>> results = inParallel(tasks);
    Map<Long, RunRecord> taken = new HashMap<>();
    List<String> problems = new ArrayList<>();
    for (List<RunRecord> part : results) {
      for (RunRecord r : part) {
        RunRecord twice = taken.put(r.id(), r);
        if (twice != null) {
          problems.add("run " + r.id() + " taken by " + twice.owner() + " and " + r.owner());
        }
        if (r.attempt() != 1) {
          problems.add("run " + r.id() + " taken at attempt " + r.attempt());
        }
      }
    }
    assertThat(problems).as("problems (first 10)").isEmpty();
    assertThat(taken).as("every run taken once, at insert or by a claim")
        .hasSize(4 * perInserter);
    for (RunRecord r : taken.values()) {
      assertThat(current(r.id())).isEqualTo(r);
    }
    assertThat(store.stats().total().running()).isEqualTo(4 * perInserter);
  }

  // ---------------------------------------------------------------- atomic events (I5)

  @Test
  @DisplayName("I5: an insert whose event write fails leaves no row, no key and no event")
  public void insertIsAtomicWithItsEvent() throws Exception {
    insert(ALPHA);
    assertFailsWithoutTrace("insert",
        () -> insert(RunRequest.of(ALPHA, "lost").withIdempotencyKey("k1")));

    RunRecord stored = insert(RunRequest.of(ALPHA, "kept").withIdempotencyKey("k1"));
    assertThat(stored.input()).as("the key was not taken by the failed insert").isEqualTo("kept");
    assertThat(eventTypes(stored.id())).containsExactly("queued");
    assertStatsMatchRows();
  }

  @Test
  @DisplayName("I5: a claim whose event writes fail claims nothing, not even part of the batch")
  public void claimIsAtomicWithItsEvents() throws Exception {
    for (int i = 0; i < 3; i++) {
      insert(ALPHA);
    }
    assertFailsWithoutTrace("claim", () -> claim("w1", 3));

    List<RunRecord> claimed = claim("w1", 3);
    assertThat(claimed).hasSize(3).allMatch(r -> r.attempt() == 1);
    for (RunRecord r : claimed) {
      assertThat(eventTypes(r.id())).containsExactly("queued", "started");
    }
  }

  @Test
  @DisplayName("I5: a finish whose event write fails changes nothing, for every kind of finish")
  public void finishIsAtomicWithItsEvent() throws Exception {
    RunRecord c = claimedRun(ALPHA, "w1");
    Usage usage = Usage.of(3, 4, 5);
    assertFailsWithoutTrace("succeeded finish", () -> store.finish(success(c, "out")));
    assertFailsWithoutTrace("failed finish", () -> store.finish(
        Finish.unsuccessful(c.id(), 1, "w1", RunStatus.FAILED, "x", usage)));
    assertFailsWithoutTrace("timed-out finish", () -> store.finish(
        Finish.unsuccessful(c.id(), 1, "w1", RunStatus.TIMED_OUT, "x", usage)));
    assertFailsWithoutTrace("retry", () -> store.finish(
        Finish.retry(c.id(), 1, "w1", "x", usage, Duration.ofSeconds(1))));

    RunRecord done = store.finish(
        Finish.succeeded(c.id(), 1, "w1", "out", usage)).orElseThrow();
    assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
    assertThat(eventTypes(c.id())).containsExactly("queued", "started", "succeeded");
    assertThat(store.stats().agent(ALPHA).usage()).isEqualTo(usage);

    RunRecord r = store.insert(new NewRun(RunRequest.of(BETA, nextInput()), 2));
    RunRecord c2 = claim("w1", Map.of(BETA, 1)).get(0);
    assertThat(store.finish(Finish.retry(r.id(), c2.attempt(), "w1", "x", usage,
        Duration.ofSeconds(1)))).isPresent();
    assertThat(eventTypes(r.id())).containsExactly("queued", "started", "requeued");
  }

  @Test
  @DisplayName("I5: a cancel whose event write fails changes nothing, QUEUED or RUNNING")
  public void cancelIsAtomicWithItsEvent() throws Exception {
    RunRecord running = claimedRun(ALPHA, "w1");
    RunRecord queued = insert(ALPHA);
    assertFailsWithoutTrace("cancel of a QUEUED run", () -> store.cancel(queued.id()));
    assertFailsWithoutTrace("cancel of a RUNNING run", () -> store.cancel(running.id()));
    assertThat(store.heartbeat("w1", Set.of(running.id(), queued.id()), LEASE).cancelRequested())
        .isEmpty();

    assertThat(store.cancel(queued.id()).orElseThrow().status()).isEqualTo(RunStatus.CANCELLED);
    assertThat(store.cancel(running.id()).orElseThrow().cancelRequested()).isTrue();
    assertThat(eventTypes(queued.id())).containsExactly("queued", "cancelled");
    assertThat(eventTypes(running.id())).containsExactly("queued", "started", "cancel_requested");
  }

  @Test
  @DisplayName("I5: a lease recovery whose event writes fail recovers nothing")
  public void recoveryIsAtomicWithItsEvents() throws Exception {
    RunRecord once = store.insert(new NewRun(RunRequest.of(ALPHA, nextInput()), 1));
    RunRecord twice = store.insert(new NewRun(RunRequest.of(ALPHA, nextInput()), 2));
    claim("w1", 2);
    clock.advance(LEASE.plusSeconds(1));
    assertFailsWithoutTrace("recoverExpiredLeases", () -> store.recoverExpiredLeases());

    assertThat(store.recoverExpiredLeases()).hasSize(2);
    assertThat(eventTypes(once.id())).containsExactly("queued", "started", "failed");
    assertThat(eventTypes(twice.id())).containsExactly("queued", "started", "recovered");
  }

  @Test
  @DisplayName("I5: a release whose event writes fail releases nothing")
  public void releaseIsAtomicWithItsEvents() throws Exception {
    insert(ALPHA);
    insert(ALPHA);
    List<RunRecord> claimed = claim("w1", 2);
    assertFailsWithoutTrace("release", () -> store.release("w1", claimed));

    assertThat(store.release("w1", claimed)).isEqualTo(2);
    for (RunRecord r : claimed) {
      assertThat(eventTypes(r.id())).containsExactly("queued", "started", "released");
    }
  }

  @Test
  @DisplayName("I5: an agent event that fails to write is not stored")
  public void appendEventIsAllOrNothing() throws Exception {
    RunRecord c = claimedRun(ALPHA, "w1");
    assertFailsWithoutTrace("appendEvent", () -> store.appendEvent(c.id(), 1, "tool", "x"));
    assertThat(store.appendEvent(c.id(), 1, "tool", "y")).isPresent();
    assertThat(eventTypes(c.id())).containsExactly("queued", "started", "tool");
  }

  @Test
  @DisplayName("I5: every status change writes its event, with the attempt it happened in")
  public void everyStatusChangeWritesItsEvent() {
    RunRecord retried = store.insert(new NewRun(RunRequest.of(ALPHA, nextInput()), 3));
    RunRecord c = claimOne("w1");
    store.finish(Finish.retry(c.id(), 1, "w1", "again", Usage.ZERO, Duration.ZERO))
        .orElseThrow();
    clock.advance(Duration.ofSeconds(1));
    store.finish(success(claimOne("w1"), "ok")).orElseThrow();
    assertThat(eventTypes(retried.id()))
        .containsExactly("queued", "started", "requeued", "started", "succeeded");
    assertThat(store.events(retried.id())).extracting(RunEvent::attempt)
        .containsExactly(0, 1, 1, 2, 2);

    RunRecord released = insert(ALPHA);
    store.release("w1", List.of(claimOne("w1")));
    store.finish(Finish.unsuccessful(released.id(), 1, "w1", RunStatus.FAILED, "bad",
        Usage.ZERO)).ifPresent(r -> {
          throw new AssertionError("a released run was finished: " + r);
        });
    RunRecord again = claimOne("w1");
    assertThat(again.attempt()).isEqualTo(1);
    store.finish(Finish.unsuccessful(released.id(), 1, "w1", RunStatus.FAILED, "bad",
        Usage.ZERO)).orElseThrow();
    assertThat(eventTypes(released.id()))
        .containsExactly("queued", "started", "released", "started", "failed");

    RunRecord cancelledQueued = insert(ALPHA);
    store.cancel(cancelledQueued.id()).orElseThrow();
    assertThat(eventTypes(cancelledQueued.id())).containsExactly("queued", "cancelled");

    RunRecord cancelledRunning = claimedRun(ALPHA, "w1");
    store.cancel(cancelledRunning.id()).orElseThrow();
    store.finish(Finish.unsuccessful(cancelledRunning.id(), 1, "w1", RunStatus.CANCELLED,
        "cancelled", Usage.ZERO)).orElseThrow();
    assertThat(eventTypes(cancelledRunning.id()))
        .containsExactly("queued", "started", "cancel_requested", "cancelled");

    RunRecord recovered = store.insert(new NewRun(RunRequest.of(ALPHA, nextInput()), 2));
    claimOne("w1");
    clock.advance(LEASE.plusSeconds(1));
    store.recoverExpiredLeases();
    RunRecord second = claimOne("w2");
    store.finish(Finish.unsuccessful(recovered.id(), second.attempt(), "w2",
        RunStatus.TIMED_OUT, "slow", Usage.ZERO)).orElseThrow();
    assertThat(eventTypes(recovered.id()))
        .containsExactly("queued", "started", "recovered", "started", "timed_out");
    assertThat(store.events(recovered.id())).extracting(RunEvent::attempt)
        .containsExactly(0, 1, 1, 2, 2);
  }

  // ---------------------------------------------------------------- serial keys (I6)

  @Test
  @DisplayName("I6: one RUNNING run per serial key, FIFO within the key even against priority")
  public void serialKeyRunsOneAtATimeInIdOrder() {
    RunRecord a1 = insert(RunRequest.of(ALPHA, nextInput()).withSerialKey("k1"));
    RunRecord a2 = insert(RunRequest.of(ALPHA, nextInput()).withSerialKey("k1").withPriority(10));
    RunRecord a3 = insert(RunRequest.of(BETA, nextInput()).withSerialKey("k1").withPriority(5));
    RunRecord b1 = insert(RunRequest.of(ALPHA, nextInput()).withSerialKey("k2"));
    RunRecord c1 = insert(ALPHA);
    RunRecord c2 = insert(BETA);

    assertThat(idsOf(claim("w1", 10)))
        .as("other keys and keyless runs are not blocked")
        .containsExactlyInAnyOrder(a1.id(), b1.id(), c1.id(), c2.id());
    assertThat(claim("w2", 10)).as("k1 and k2 are busy").isEmpty();

    store.finish(success(current(a1.id()), "1")).orElseThrow();
    assertThat(idsOf(claim("w2", 10))).containsExactly(a2.id());
    assertThat(claim("w2", 10)).isEmpty();
    store.finish(success(current(a2.id()), "2")).orElseThrow();
    assertThat(idsOf(claim("w2", 10))).containsExactly(a3.id());
  }

  @Test
  @DisplayName("I6: a batch claim takes at most one run of a key, the oldest")
  public void aBatchClaimTakesAtMostOneRunPerKey() {
    List<Long> ids = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      ids.add(insert(RunRequest.of(ALPHA, nextInput()).withSerialKey("k")
          .withPriority(i)).id());
    }
    assertThat(idsOf(claim("w1", 5))).containsExactly(ids.get(0));
    assertThat(store.stats().total().running()).isEqualTo(1);
  }

  @Test
  @DisplayName("I6: a retried or recovered run keeps its place ahead of later runs of its key")
  public void aRequeuedRunKeepsItsPlaceInItsKey() {
    RunRecord first = store.insert(
        new NewRun(RunRequest.of(ALPHA, nextInput()).withSerialKey("k"), 3));
    RunRecord second = insert(RunRequest.of(ALPHA, nextInput()).withSerialKey("k"));
    RunRecord c = claimOne("w1");
    assertThat(c.id()).isEqualTo(first.id());
    store.finish(Finish.retry(first.id(), 1, "w1", "later", Usage.ZERO,
        Duration.ofSeconds(10))).orElseThrow();

    assertThat(claim("w1", 10)).as("the older run of the key waits for its retry time").isEmpty();
    clock.advance(Duration.ofSeconds(11));
    assertThat(idsOf(claim("w1", 10))).containsExactly(first.id());

    clock.advance(LEASE.plusSeconds(1));
    assertThat(idsOf(store.recoverExpiredLeases())).containsExactly(first.id());
    assertThat(idsOf(claim("w1", 10))).containsExactly(first.id());
    store.finish(success(current(first.id()), "done")).orElseThrow();
    assertThat(idsOf(claim("w1", 10))).containsExactly(second.id());
  }

  @Test
  @DisplayName("I6: concurrent claimers never run two runs of one key, and take each key in id order")
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  public void concurrentClaimersKeepSerialKeysExclusiveAndFifo() throws Exception {
    int keys = 4;
    int perKey = 50;
    int keyless = 100;
    int total = keys * perKey + keyless;
    java.util.Random random = new java.util.Random(42);
    int[] priorities = random.ints(total, -3, 4).toArray();
    // Sequential inserts, so that id order within a key is the order written here.
    Map<String, List<Long>> idsByKey = new TreeMap<>();
    int keyed = 0;
    for (int i = 0; i < total; i++) {
      RunRequest request = RunRequest.of(ALPHA, nextInput()).withPriority(priorities[i]);
      // Every third run is keyless; the others go round the keys.
      String key = i % 3 == 2 ? null : "key-" + (keyed++ % keys);
      RunRecord r = insert(key == null ? request : request.withSerialKey(key));
      if (key != null) {
        idsByKey.computeIfAbsent(key, k -> new ArrayList<>()).add(r.id());
      }
    }
    assertThat(idsByKey.values()).allMatch(ids -> ids.size() == perKey);
    Map<String, Long> holder = new ConcurrentHashMap<>();
    Map<String, List<Long>> claimOrder = new ConcurrentHashMap<>();
    Queue<String> problems = new ConcurrentLinkedQueue<>();
    AtomicInteger finished = new AtomicInteger();

    inParallel(4, t -> {
      String owner = "worker-" + t;
      int limit = 1 + t * 2;
      while (finished.get() < total && problems.isEmpty()) {
        List<RunRecord> got = store.claim(
            new ClaimRequest(owner, Map.of(ALPHA, limit), limit, LEASE));
        for (RunRecord r : got) {
          if (r.serialKey() != null) {
            Long other = holder.putIfAbsent(r.serialKey(), r.id());
            if (other != null) {
              problems.add("runs " + other + " and " + r.id() + " of " + r.serialKey()
                  + " were RUNNING at once");
            }
            claimOrder.computeIfAbsent(r.serialKey(), k -> Collections.synchronizedList(
                new ArrayList<>())).add(r.id());
          }
        }
        for (RunRecord r : got) {
          // Give the key up before the finish commits: a claim of the next run of the key
          // can only succeed after that commit, so any overlap seen above is real.
          if (r.serialKey() != null) {
            holder.remove(r.serialKey(), r.id());
          }
          if (store.finish(success(r, "ok")).isEmpty()) {
            problems.add("finish of " + r + " was refused");
          }
          finished.incrementAndGet();
        }
        if (got.isEmpty()) {
          Thread.onSpinWait();
        }
      }
      return null;
    });

    assertThat(problems).as("problems").isEmpty();
    assertThat(claimOrder).as("claim order by key").isEqualTo(idsByKey);
    assertThat(store.stats().total().succeeded()).isEqualTo(total);
  }

  @Test
  @DisplayName("I6: REJECT refuses a run whose key is QUEUED or RUNNING, naming the oldest such run")
  void rejectPolicyRefusesABusyKeyAndStoresNothing() throws Exception {
    RunRecord first = insert(RunRequest.of(ALPHA, nextInput()).withSerialKey("conv"));
    RunRecord second = insert(RunRequest.of(ALPHA, nextInput()).withSerialKey("conv"));
    RunRequest rejected =
        RunRequest.of(ALPHA, nextInput()).withSerialKey("conv", SerialKeyPolicy.REJECT);
    Snapshot before = snapshot();
    assertThatThrownBy(() -> store.insert(NewRun.of(rejected)))
        .isInstanceOfSatisfying(SerialKeyBusyException.class, e -> {
          assertThat(e.serialKey()).isEqualTo("conv");
          assertThat(e.activeRunId()).isEqualTo(first.id());
        });
    assertThat(snapshot()).isEqualTo(before);

    RunRecord running = claimOne("w");
    assertThat(running.id()).isEqualTo(first.id());
    assertThatThrownBy(() -> store.insert(NewRun.of(rejected)))
        .isInstanceOfSatisfying(SerialKeyBusyException.class,
            e -> assertThat(e.activeRunId()).isEqualTo(first.id()));
    store.finish(success(running, "ok")).orElseThrow();
    assertThatThrownBy(() -> store.insert(NewRun.of(rejected)))
        .isInstanceOfSatisfying(SerialKeyBusyException.class,
            e -> assertThat(e.activeRunId()).isEqualTo(second.id()));
    assertThat(store.cancel(second.id()).orElseThrow().status()).isEqualTo(RunStatus.CANCELLED);

    RunRecord accepted = store.insert(NewRun.of(rejected));
    assertThat(accepted.status()).isEqualTo(RunStatus.QUEUED);
    assertThat(accepted.serialKey()).isEqualTo("conv");
    assertThat(insert(RunRequest.of(ALPHA, nextInput()).withSerialKey("other",
        SerialKeyPolicy.REJECT)).status()).as("other keys are not blocked")
        .isEqualTo(RunStatus.QUEUED);
  }

  @Test
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  @DisplayName("I6: 8 threads racing REJECT inserts on an idle key store exactly one run")
  void racingRejectInsertsStoreExactlyOneRun() throws Exception {
    for (int round = 0; round < 20; round++) {
      String key = "race-" + round;
      List<Long> outcomes = inParallel(8, t -> {
        try {
          return store.insert(NewRun.of(RunRequest.of(ALPHA, "t" + t)
              .withSerialKey(key, SerialKeyPolicy.REJECT))).id();
        } catch (SerialKeyBusyException e) {
          return -e.activeRunId();
        }
      });
      List<Long> stored = outcomes.stream().filter(id -> id > 0).toList();
      assertThat(stored).as("runs stored for %s", key).hasSize(1);
      assertThat(outcomes.stream().filter(id -> id < 0).map(id -> -id))
          .as("every refusal names the stored run").containsOnly(stored.get(0));
      assertThat(store.count(RunQuery.all().serialKey(key))).isEqualTo(1);
    }
  }

  @Test
  @DisplayName("query and count filter by serial key; count ignores cursor and limit")
  void queryAndCountFilterBySerialKey() {
    for (int i = 0; i < 5; i++) {
      insert(RunRequest.of(i % 2 == 0 ? ALPHA : BETA, nextInput()).withSerialKey("conv"));
      insert(RunRequest.of(ALPHA, nextInput()).withSerialKey("elsewhere"));
      insert(ALPHA);
    }
    RunRecord claimed = claimOne("w"); // the oldest run, of "conv", becomes RUNNING
    RunQuery conv = RunQuery.all().serialKey("conv");
    List<RunRecord> all = scan(conv.limit(2));
    assertThat(all).hasSize(5).allSatisfy(r -> assertThat(r.serialKey()).isEqualTo("conv"));
    assertThat(idsOf(all)).isSortedAccordingTo(Comparator.reverseOrder());
    assertThat(store.count(conv)).isEqualTo(5);
    assertThat(store.count(conv.limit(1))).isEqualTo(5);
    assertThat(store.count(RunQuery.agent(BETA).serialKey("conv"))).isEqualTo(2);
    assertThat(store.count(conv.status(RunStatus.QUEUED)))
        .isEqualTo(all.stream().filter(r -> r.status() == RunStatus.QUEUED).count());
    assertThat(store.count(RunQuery.all())).isEqualTo(15);
    assertThat(store.count(RunQuery.all().status(RunStatus.RUNNING))).isEqualTo(1);
    assertThat(scan(RunQuery.agent(ALPHA).serialKey("conv")))
        .extracting(RunRecord::agent).containsOnly(ALPHA).hasSize(3);

    // Ended runs are found by their key, agent and status just the same.
    assertThat(claimed.serialKey()).isEqualTo("conv");
    store.finish(Finish.succeeded(claimed.id(), claimed.attempt(), "w", "done", Usage.ZERO))
        .orElseThrow();
    long cancelled = scan(conv.status(RunStatus.QUEUED)).get(0).id();
    store.cancel(cancelled).orElseThrow();
    assertThat(scan(conv.status(RunStatus.SUCCEEDED, RunStatus.CANCELLED)))
        .extracting(RunRecord::id).containsExactly(cancelled, claimed.id());
    assertThat(store.count(conv)).isEqualTo(5);
    assertThat(store.count(RunQuery.agent(ALPHA).serialKey("conv").status(RunStatus.SUCCEEDED)))
        .isEqualTo(1);
    assertThat(store.count(RunQuery.all().serialKey("elsewhere").status(RunStatus.SUCCEEDED)))
        .isZero();
  }

  // ---------------------------------------------------------------- leases (I8)

  @Test
  @DisplayName("I8: heartbeat extends only the listed runs RUNNING under the owner and returns their count")
  public void heartbeatExtendsOnlyTheOwnersRunningLeases() {
    for (int i = 0; i < 4; i++) {
      insert(ALPHA);
    }
    List<RunRecord> mine = claim("w1", 2);
    RunRecord theirs = claimOne("w2");
    RunRecord queued = scan(RunQuery.all().status(RunStatus.QUEUED)).get(0);
    clock.advance(Duration.ofSeconds(10));
    long unknown = queued.id() + 1_000;

    Heartbeat beat = store.heartbeat("w1",
        Set.of(mine.get(0).id(), mine.get(1).id(), theirs.id(), queued.id(), unknown),
        Duration.ofSeconds(60));

    assertThat(beat.extended()).isEqualTo(2);
    assertThat(beat.cancelRequested()).isEmpty();
    for (RunRecord r : mine) {
      RunRecord now = current(r.id());
      assertThat(now.leaseUntil()).isEqualTo(clock.instant().plusSeconds(60));
      assertThat(now.status()).isEqualTo(RunStatus.RUNNING);
      assertThat(now.attempt()).isEqualTo(1);
    }
    assertThat(current(theirs.id())).isEqualTo(theirs);
    assertThat(current(queued.id())).isEqualTo(queued);

    RunRecord done = store.finish(success(mine.get(0), "ok")).orElseThrow();
    Set<Long> both = Set.copyOf(idsOf(mine));
    assertThat(store.heartbeat("w1", both, LEASE).extended()).isEqualTo(1);
    assertThat(current(done.id())).isEqualTo(done);
    assertThat(store.heartbeat("nobody", both, LEASE).extended()).isZero();
    assertThat(store.heartbeat("w1", Set.of(), LEASE).extended()).isZero();
  }

  @Test
  @DisplayName("I8: a run its owner does not list (a claim whose reply was lost) is not kept"
      + " alive by the owner's heartbeats: it expires and is recovered")
  public void aRunTheOwnerDoesNotKnowExpiresDespiteItsHeartbeats() {
    insert(ALPHA);
    insert(ALPHA);
    List<RunRecord> claimed = claim("w1", 2);
    RunRecord known = claimed.get(0);
    RunRecord lost = claimed.get(1); // the owner never saw this one
    clock.advance(Duration.ofSeconds(20));
    assertThat(store.heartbeat("w1", Set.of(known.id()), LEASE).extended()).isEqualTo(1);
    assertThat(store.recoverExpiredLeases()).isEmpty();
    clock.advance(Duration.ofSeconds(20)); // past the claim's lease, within the renewed one
    assertThat(store.heartbeat("w1", Set.of(known.id()), LEASE).extended()).isEqualTo(1);
    assertThat(idsOf(store.recoverExpiredLeases())).containsExactly(lost.id());
    clock.advance(Duration.ofSeconds(20));
    assertThat(store.heartbeat("w1", Set.of(known.id()), LEASE).extended()).isEqualTo(1);
    assertThat(store.recoverExpiredLeases()).isEmpty();
    assertThat(current(known.id()).status()).isEqualTo(RunStatus.RUNNING);
    // Its one attempt was lost: recovered as FAILED, as any run whose lease ran out.
    assertThat(current(lost.id()).status()).isEqualTo(RunStatus.FAILED);
    assertThat(current(lost.id()).error()).contains("lost");
  }

  @Test
  @DisplayName("I8: expired leases go back to QUEUED, or FAILED with a 'lost' error on the last attempt")
  public void expiredLeasesAreRecovered() {
    RunRecord once = store.insert(new NewRun(RunRequest.of(ALPHA, nextInput()), 1));
    RunRecord twice = store.insert(new NewRun(RunRequest.of(ALPHA, nextInput()), 2));
    claim("w1", 2);
    clock.advance(Duration.ofSeconds(10));
    RunRecord longLease = store.insert(new NewRun(RunRequest.of(BETA, nextInput()), 1));
    RunRecord safe = store.claim(
        new ClaimRequest("w2", Map.of(BETA, 1), 1, Duration.ofSeconds(60))).get(0);
    assertThat(store.recoverExpiredLeases()).as("nothing has expired yet").isEmpty();

    clock.advance(Duration.ofSeconds(21));
    List<RunRecord> recovered = store.recoverExpiredLeases();

    assertThat(idsOf(recovered)).containsExactlyInAnyOrder(once.id(), twice.id());
    for (RunRecord r : recovered) {
      assertThat(store.find(r.id())).contains(r);
    }
    RunRecord failed = current(once.id());
    assertThat(failed.status()).isEqualTo(RunStatus.FAILED);
    assertThat(failed.error()).contains("lost");
    assertThat(failed.finishedAt()).isEqualTo(clock.instant());
    assertThat(failed.attempt()).isEqualTo(1);
    RunRecord requeued = current(twice.id());
    assertThat(requeued.status()).isEqualTo(RunStatus.QUEUED);
    assertThat(requeued.attempt()).isEqualTo(1);
    assertThat(requeued.owner()).isNull();
    assertThat(requeued.leaseUntil()).isNull();
    assertThat(requeued.finishedAt()).isNull();
    assertThat(current(longLease.id())).isEqualTo(safe);
    assertThat(store.recoverExpiredLeases()).isEmpty();

    RunRecord second = claim("w3", Map.of(ALPHA, 1)).get(0);
    assertThat(second.id()).isEqualTo(twice.id());
    assertThat(second.attempt()).isEqualTo(2);
    clock.advance(LEASE.plusSeconds(1));
    assertThat(idsOf(store.recoverExpiredLeases())).containsExactlyInAnyOrder(twice.id());
    assertThat(current(twice.id()).status()).isEqualTo(RunStatus.FAILED);
    assertThat(current(twice.id()).error()).contains("lost");
    assertThat(current(longLease.id())).isEqualTo(safe);
    assertThat(eventTypes(twice.id()))
        .containsExactly("queued", "started", "recovered", "started", "failed");
    assertStatsMatchRows();
  }

  @Test
  @DisplayName("I8: a heartbeat keeps a lease from being recovered")
  public void aHeartbeatKeepsTheLeaseAlive() {
    RunRecord c = claimedRun(ALPHA, "w1");
    clock.advance(Duration.ofSeconds(20));
    assertThat(store.heartbeat("w1", Set.of(c.id()), LEASE).extended()).isEqualTo(1);
    clock.advance(Duration.ofSeconds(20));
    assertThat(store.recoverExpiredLeases()).isEmpty();
    assertThat(current(c.id()).status()).isEqualTo(RunStatus.RUNNING);
    clock.advance(Duration.ofSeconds(11));
    assertThat(idsOf(store.recoverExpiredLeases())).containsExactly(c.id());
  }

  @Test
  @DisplayName("I8: release returns unstarted claims to the queue with the attempt taken back")
  public void releaseReturnsUnstartedClaimsToTheQueue() {
    for (int i = 0; i < 3; i++) {
      insert(ALPHA);
    }
    List<RunRecord> claimed = claim("w1", 3);
    assertThat(claimed).hasSize(3);

    assertThat(store.release("w1", claimed.subList(0, 2))).isEqualTo(2);

    for (RunRecord r : claimed.subList(0, 2)) {
      RunRecord back = current(r.id());
      assertThat(back.status()).isEqualTo(RunStatus.QUEUED);
      assertThat(back.attempt()).isZero();
      assertThat(back.owner()).isNull();
      assertThat(back.leaseUntil()).isNull();
      assertThat(last(store.events(r.id())).type()).isEqualTo("released");
    }
    RunRecord kept = claimed.get(2);
    assertThat(current(kept.id())).isEqualTo(kept);
    assertThat(store.release("w2", List.of(kept))).as("another owner's claim").isZero();
    assertThat(store.release("w1", claimed.subList(0, 1))).as("already released").isZero();
    assertThat(current(kept.id())).isEqualTo(kept);

    List<RunRecord> again = claim("w2", 3);
    assertThat(idsOf(again)).containsExactlyInAnyOrderElementsOf(idsOf(claimed.subList(0, 2)));
    assertThat(again).allMatch(r -> r.attempt() == 1);
    assertStatsMatchRows();
  }

  @Test
  @DisplayName("I8: release counts each run once, however often it is listed, and checks its attempt")
  public void releaseCountsEachListedRunOnce() {
    for (int i = 0; i < 3; i++) {
      insert(ALPHA);
    }
    List<RunRecord> claimed = claim("w1", 3);
    RunRecord a = claimed.get(0);
    RunRecord b = claimed.get(1);
    RunRecord staleCopy = withAttempt(claimed.get(2), 2);

    // A stale copy listed first must not hide the live claim listed after it.
    assertThat(store.release("w1", List.of(withAttempt(a, 2), a, b, a, b, staleCopy)))
        .isEqualTo(2);

    assertThat(current(a.id()).status()).isEqualTo(RunStatus.QUEUED);
    assertThat(current(b.id()).status()).isEqualTo(RunStatus.QUEUED);
    assertThat(current(claimed.get(2).id())).isEqualTo(claimed.get(2));
    assertThat(eventTypes(a.id())).containsExactly("queued", "started", "released");
    assertThat(store.stats().agent(ALPHA).queued()).isEqualTo(2);
    assertThat(store.stats().agent(ALPHA).running()).isEqualTo(1);
    assertStatsMatchRows();
  }

  // ---------------------------------------------------------------- cancel

  @Test
  @DisplayName("cancel of a QUEUED run ends it CANCELLED at once")
  public void cancelOfAQueuedRunEndsItAtOnce() {
    RunRecord run = insert(ALPHA);
    clock.advance(Duration.ofSeconds(2));

    RunRecord cancelled = store.cancel(run.id()).orElseThrow();

    assertThat(cancelled.status()).isEqualTo(RunStatus.CANCELLED);
    assertThat(cancelled.finishedAt()).isEqualTo(clock.instant());
    assertThat(store.find(run.id())).contains(cancelled);
    assertThat(eventTypes(run.id())).containsExactly("queued", "cancelled");
    assertThat(claim("w1", 10)).isEmpty();
    assertThat(store.cancel(run.id())).contains(cancelled);
    assertThat(eventTypes(run.id())).containsExactly("queued", "cancelled");
  }

  @Test
  @DisplayName("cancel of a RUNNING run requests it, and the owner's heartbeat reports the id")
  public void cancelOfARunningRunIsRequested() {
    RunRecord run = claimedRun(ALPHA, "w1");
    RunRecord other = claimedRun(BETA, "w1");

    RunRecord requested = store.cancel(run.id()).orElseThrow();

    assertThat(requested.status()).isEqualTo(RunStatus.RUNNING);
    assertThat(requested.cancelRequested()).isTrue();
    assertThat(requested.attempt()).isEqualTo(1);
    assertThat(requested.owner()).isEqualTo("w1");
    assertThat(store.find(run.id())).contains(requested);
    assertThat(last(store.events(run.id())).type()).isEqualTo("cancel_requested");
    Set<Long> both = Set.of(run.id(), other.id());
    Heartbeat beat = store.heartbeat("w1", both, LEASE);
    assertThat(beat.extended()).isEqualTo(2);
    assertThat(beat.cancelRequested()).containsExactly(run.id());
    assertThat(store.heartbeat("w2", both, LEASE).cancelRequested()).isEmpty();
    assertThat(current(other.id()).cancelRequested()).isFalse();

    RunRecord again = store.cancel(run.id()).orElseThrow();
    assertThat(again.status()).isEqualTo(RunStatus.RUNNING);
    assertThat(again.cancelRequested()).isTrue();

    RunRecord done = store.finish(Finish.unsuccessful(run.id(), 1, "w1", RunStatus.CANCELLED,
        "cancelled", Usage.ZERO)).orElseThrow();
    assertThat(done.status()).isEqualTo(RunStatus.CANCELLED);
    assertThat(store.heartbeat("w1", Set.of(run.id(), other.id()), LEASE).cancelRequested())
        .isEmpty();
  }

  @Test
  @DisplayName("cancel of an unknown id is empty")
  public void cancelOfAnUnknownRunIsEmpty() {
    RunRecord run = insert(ALPHA);
    assertThat(store.cancel(run.id() + 1_000_000)).isEmpty();
    assertThat(store.find(run.id() + 1_000_000)).isEmpty();
  }

  @Test
  @DisplayName("cancel racing claim: each run is either cancelled while QUEUED or claimed, never both")
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  public void cancelRacingClaimNeverLetsBothWin() throws Exception {
    int runs = 500;
    List<RunRecord> all = insertMany(runs, i -> RunRequest.of(ALPHA, "run-" + i));
    Set<Long> claimed = ConcurrentHashMap.newKeySet();
    Map<Long, RunRecord> cancelAnswers = new ConcurrentHashMap<>();

    inParallel(List.<Callable<Object>>of(
        () -> {
          List<RunRecord> got;
          while (!(got = claim("w1", 7)).isEmpty()) {
            got.forEach(r -> claimed.add(r.id()));
          }
          return null;
        },
        () -> {
          // From the newest down, so the two threads meet in the middle.
          for (RunRecord r : all.reversed()) {
            cancelAnswers.put(r.id(), store.cancel(r.id()).orElseThrow());
          }
          return null;
        }));

    Set<Long> cancelledQueued = new HashSet<>();
    Set<Long> requested = new HashSet<>();
    cancelAnswers.forEach((id, answer) -> {
      if (answer.status() == RunStatus.CANCELLED) {
        cancelledQueued.add(id);
      } else {
        assertThat(answer.status()).isEqualTo(RunStatus.RUNNING);
        assertThat(answer.cancelRequested()).isTrue();
        requested.add(id);
      }
    });
    assertThat(intersection(claimed, cancelledQueued)).isEmpty();
    assertThat(claimed).isEqualTo(requested);
    assertThat(claimed.size() + cancelledQueued.size()).isEqualTo(runs);
    assertThat(store.heartbeat("w1", claimed, LEASE).cancelRequested()).isEqualTo(requested);
    assertStatsMatchRows();
  }

  @Test
  @DisplayName("a pending cancel is never lost: release, retry and lease recovery end the run CANCELLED")
  void aPendingCancelSurvivesReleaseRetryAndRecovery() {
    RunRecord released = claimedRun(ALPHA, "w");
    RunRecord retried = claimedRun(ALPHA, "w");
    RunRecord recovered = store.insert(new NewRun(RunRequest.of(ALPHA, nextInput()), 3));
    RunRecord recoveredClaim = claimOne("w");
    assertThat(recoveredClaim.id()).isEqualTo(recovered.id());
    for (RunRecord r : List.of(released, retried, recoveredClaim)) {
      assertThat(store.cancel(r.id()).orElseThrow().cancelRequested()).isTrue();
    }

    assertThat(store.release("w", List.of(released))).isEqualTo(1);
    assertThat(store.finish(Finish.retry(retried.id(), retried.attempt(), "w", "flaky",
        Usage.ZERO, Duration.ofSeconds(1)))).hasValueSatisfying(
            r -> assertThat(r.status()).isEqualTo(RunStatus.CANCELLED));
    clock().advance(LEASE.plusSeconds(1));
    assertThat(store.recoverExpiredLeases()).extracting(RunRecord::id, RunRecord::status)
        .containsExactly(org.assertj.core.groups.Tuple.tuple(recovered.id(), RunStatus.CANCELLED));

    for (RunRecord r : List.of(released, retried, recoveredClaim)) {
      RunRecord now = current(r.id());
      assertThat(now.status()).as("run %d", r.id()).isEqualTo(RunStatus.CANCELLED);
      assertThat(now.finishedAt()).isNotNull();
      assertThat(eventTypes(r.id())).last().isEqualTo("cancelled");
    }
    assertThat(claimAll("w2")).as("nothing went back to the queue").isEmpty();
    assertStatsMatchRows();
  }

  // ---------------------------------------------------------------- events

  @Test
  @DisplayName("appendEvent applies only while the run is RUNNING under the given attempt")
  public void appendEventIsFencedByAttempt() {
    RunRecord run = store.insert(new NewRun(RunRequest.of(ALPHA, nextInput()), 2));
    assertThat(store.appendEvent(run.id(), 1, "tool", "queued")).isEmpty();
    claimOne("w1");
    assertThat(store.appendEvent(run.id(), 2, "tool", "future")).isEmpty();
    RunEvent first = store.appendEvent(run.id(), 1, "tool", "one").orElseThrow();
    assertThat(first.runId()).isEqualTo(run.id());
    assertThat(first.attempt()).isEqualTo(1);
    assertThat(first.type()).isEqualTo("tool");
    assertThat(first.data()).isEqualTo("one");
    assertThat(first.at()).isEqualTo(clock.instant());

    clock.advance(LEASE.plusSeconds(1));
    store.recoverExpiredLeases();
    assertThat(store.appendEvent(run.id(), 1, "tool", "recovered")).isEmpty();
    RunRecord second = claimOne("w1");
    assertThat(store.appendEvent(run.id(), 1, "tool", "zombie")).isEmpty();
    RunEvent two = store.appendEvent(run.id(), 2, "tool", "two").orElseThrow();
    store.finish(success(second, "ok")).orElseThrow();
    assertThat(store.appendEvent(run.id(), 2, "tool", "finished")).isEmpty();
    assertThat(store.appendEvent(run.id() + 1_000_000, 1, "tool", "unknown")).isEmpty();

    List<RunEvent> tools = store.events(run.id()).stream()
        .filter(e -> e.type().equals("tool")).toList();
    assertThat(tools).containsExactly(first, two);
  }

  @Test
  @DisplayName("events(runId) come in write order, with increasing seq, only for that run")
  public void eventsComeInWriteOrder() {
    RunRecord run = insert(ALPHA);
    RunRecord c = claimOne("w1");
    RunRecord other = insert(BETA);
    store.appendEvent(run.id(), 1, "tool", "a").orElseThrow();
    store.appendEvent(run.id(), 1, "progress", "b").orElseThrow();
    store.cancel(other.id()).orElseThrow();
    store.appendEvent(run.id(), 1, "tool", "c").orElseThrow();
    store.finish(success(c, "ok")).orElseThrow();

    List<RunEvent> events = store.events(run.id());
    assertThat(events).extracting(RunEvent::type)
        .containsExactly("queued", "started", "tool", "progress", "tool", "succeeded");
    assertThat(events).extracting(RunEvent::data).containsSubsequence("a", "b", "c");
    assertThat(events).allMatch(e -> e.runId() == run.id());
    for (int i = 1; i < events.size(); i++) {
      assertThat(events.get(i).seq()).isGreaterThan(events.get(i - 1).seq());
    }
    assertThat(store.events(run.id() + 1_000_000)).isEmpty();
  }

  // ---------------------------------------------------------------- query

  @Test
  @DisplayName("query pages newest first with keyset cursors and respects the limit")
  public void queryPagesNewestFirst() {
    List<RunRecord> runs = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      runs.add(insert(ALPHA));
    }
    List<Long> newestFirst = idsOf(runs).reversed();

    Page<RunRecord> first = store.query(RunQuery.all().limit(3));
    assertThat(idsOf(first.items())).isEqualTo(newestFirst.subList(0, 3));
    assertThat(first.nextCursor()).contains(RunQuery.cursorAfter(newestFirst.get(2)));
    assertThat(first.items().get(0)).isEqualTo(runs.get(9));

    Page<RunRecord> second = store.query(RunQuery.all().limit(3).after(first.nextCursor().get()));
    assertThat(idsOf(second.items())).isEqualTo(newestFirst.subList(3, 6));
    assertThat(idsOf(scan(RunQuery.all().limit(3)))).isEqualTo(newestFirst);
    assertThat(idsOf(scan(RunQuery.all().limit(5)))).isEqualTo(newestFirst);

    Page<RunRecord> whole = store.query(RunQuery.all().limit(20));
    assertThat(idsOf(whole.items())).isEqualTo(newestFirst);
    assertThat(whole.nextCursor()).as("a short page is the last").isEmpty();
    Page<RunRecord> tail = store.query(RunQuery.all().limit(20)
        .after(RunQuery.cursorAfter(newestFirst.get(7))));
    assertThat(idsOf(tail.items())).isEqualTo(newestFirst.subList(8, 10));
  }

  @Test
  @DisplayName("query filters by agent and by status")
  public void queryFiltersByAgentAndStatus() {
    List<Long> alphas = new ArrayList<>();
    List<Long> betas = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      alphas.add(insert(ALPHA).id());
      if (i < 3) {
        betas.add(insert(BETA).id());
      }
    }
    store.cancel(alphas.get(1)).orElseThrow();
    store.cancel(betas.get(0)).orElseThrow();
    RunRecord running = claim("w1", Map.of(ALPHA, 1)).get(0);

    assertThat(idsOf(scan(RunQuery.agent(ALPHA).limit(2)))).isEqualTo(alphas.reversed());
    assertThat(idsOf(scan(RunQuery.agent(BETA)))).isEqualTo(betas.reversed());
    assertThat(idsOf(scan(RunQuery.all().status(RunStatus.CANCELLED).limit(1))))
        .containsExactly(alphas.get(1), betas.get(0));
    assertThat(idsOf(scan(RunQuery.agent(ALPHA).status(RunStatus.CANCELLED))))
        .containsExactly(alphas.get(1));
    assertThat(idsOf(scan(RunQuery.agent(ALPHA).status(RunStatus.RUNNING))))
        .containsExactly(running.id());
    assertThat(idsOf(scan(RunQuery.agent(ALPHA).status(RunStatus.QUEUED, RunStatus.RUNNING))))
        .containsExactly(alphas.get(3), alphas.get(2), alphas.get(0));
    Page<RunRecord> none = store.query(RunQuery.agent(GAMMA));
    assertThat(none.items()).isEmpty();
    assertThat(none.nextCursor()).isEmpty();
  }

  @Test
  @DisplayName("paging sees every pre-existing matching run exactly once while others insert")
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  public void pagingSeesEveryRunOnceWhileOthersInsert() throws Exception {
    List<RunRecord> existing = insertMany(1_000, i -> RunRequest.of(i % 2 == 0 ? ALPHA : BETA,
        "run-" + i));
    Set<Long> existingAlphas = existing.stream().filter(r -> r.agent().equals(ALPHA))
        .map(RunRecord::id).collect(Collectors.toSet());
    Set<Long> existingAll = Set.copyOf(idsOf(existing));
    AtomicBoolean pagingDone = new AtomicBoolean();
    AtomicLong inserted = new AtomicLong();
    CountDownLatch insertersLeft = new CountDownLatch(2);
    List<List<RunRecord>> seen = new ArrayList<>();

    Callable<Object> inserter = () -> {
      try {
        // Bounded, so a pager that never finishes cannot grow the store forever.
        for (int i = 0; i < 5_000 && !pagingDone.get(); i++) {
          store.insert(NewRun.of(RunRequest.of(i % 2 == 0 ? ALPHA : BETA, "new-" + i)));
          inserted.incrementAndGet();
        }
      } finally {
        insertersLeft.countDown();
      }
      return null;
    };
    Callable<Object> pager = () -> {
      try {
        for (RunQuery query : List.of(RunQuery.agent(ALPHA).limit(37), RunQuery.all().limit(50))) {
          List<RunRecord> items = new ArrayList<>();
          RunQuery q = query;
          while (true) {
            awaitAnotherInsert(inserted, insertersLeft);
            Page<RunRecord> page = store.query(q);
            assertThat(page.items().size()).isLessThanOrEqualTo(q.limit());
            items.addAll(page.items());
            if (page.nextCursor().isEmpty()) {
              break;
            }
            assertThat(page.nextCursor())
                .contains(RunQuery.cursorAfter(last(page.items()).id()));
            q = q.after(page.nextCursor().get());
          }
          seen.add(items);
        }
      } finally {
        pagingDone.set(true);
      }
      return null;
    };
    inParallel(List.of(inserter, inserter, pager));

    List<Long> alphaIds = idsOf(seen.get(0));
    List<Long> allIds = idsOf(seen.get(1));
    assertThat(alphaIds).as("ids newest first, no repeats")
        .isSortedAccordingTo(Comparator.reverseOrder()).doesNotHaveDuplicates();
    assertThat(allIds).isSortedAccordingTo(Comparator.reverseOrder()).doesNotHaveDuplicates();
    assertThat(seen.get(0)).allMatch(r -> r.agent().equals(ALPHA));
    assertThat(alphaIds).containsAll(existingAlphas);
    assertThat(allIds).containsAll(existingAll);
  }

  /**
   * Spins until another insert completed, so that pages interleave with inserts; returns at once
   * when the inserters have stopped.
   */
  private static void awaitAnotherInsert(AtomicLong inserted, CountDownLatch insertersLeft) {
    long seen = inserted.get();
    while (inserted.get() == seen && insertersLeft.getCount() > 0) {
      Thread.onSpinWait();
    }
  }

  // ---------------------------------------------------------------- stats (I7 at store level)

  @Test
  @DisplayName("stats count by agent and status and sum usage exactly as the rows do")
  public void statsMatchTheRows() {
    assertThat(store.stats().total()).isEqualTo(AgentStats.empty("*"));
    Usage expected = Usage.ZERO;
    for (int i = 0; i < 30; i++) {
      insert(i % 3 == 0 ? ALPHA : i % 3 == 1 ? BETA : GAMMA);
    }
    List<RunRecord> claimed = claim("w1", 20);
    for (int i = 0; i < claimed.size(); i++) {
      RunRecord c = claimed.get(i);
      Usage usage = Usage.of(i, 2L * i, 1_000L * i);
      expected = expected.plus(usage);
      switch (i % 5) {
        case 0 -> store.finish(Finish.succeeded(c.id(), 1, "w1", "ok", usage)).orElseThrow();
        case 1 -> store.finish(Finish.unsuccessful(c.id(), 1, "w1", RunStatus.FAILED, "x",
            usage)).orElseThrow();
        case 2 -> store.finish(Finish.unsuccessful(c.id(), 1, "w1", RunStatus.TIMED_OUT, "x",
            usage)).orElseThrow();
        case 3 -> store.finish(Finish.retry(c.id(), 1, "w1", "x", usage,
            Duration.ofSeconds(60))).orElseThrow();
        default -> {
          store.cancel(c.id()).orElseThrow();
          store.finish(Finish.unsuccessful(c.id(), 1, "w1", RunStatus.CANCELLED, "x", usage))
              .orElseThrow();
        }
      }
    }
    store.cancel(scan(RunQuery.all().status(RunStatus.QUEUED)).get(0).id()).orElseThrow();

    RunStats stats = assertStatsMatchRows();
    assertThat(stats.total().total()).isEqualTo(30);
    assertThat(stats.total().usage()).isEqualTo(expected);
    assertThat(stats.total().succeeded()).isEqualTo(4);
    assertThat(stats.total().cancelled()).isEqualTo(5);
  }

  @Test
  @DisplayName("I7: a stats snapshot is never torn while runs are inserted, claimed and finished")
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  public void statsSnapshotsAreNeverTorn() throws Exception {
    int preloaded = 300;
    int extra = 1_200;
    insertMany(preloaded, i -> RunRequest.of(i % 2 == 0 ? ALPHA : BETA, "run-" + i));
    AtomicLong started = new AtomicLong(preloaded);
    AtomicLong completed = new AtomicLong(preloaded);
    AtomicBoolean insertsDone = new AtomicBoolean();
    CountDownLatch writersLeft = new CountDownLatch(3);
    Queue<String> problems = new ConcurrentLinkedQueue<>();
    AtomicInteger observations = new AtomicInteger();
    Usage perRun = Usage.of(1, 2, 3);

    Callable<Object> inserter = () -> {
      try {
        for (int i = 0; i < extra; i++) {
          started.incrementAndGet();
          store.insert(NewRun.of(RunRequest.of(i % 2 == 0 ? ALPHA : BETA, "new-" + i)));
          completed.incrementAndGet();
        }
      } finally {
        insertsDone.set(true);
        writersLeft.countDown();
      }
      return null;
    };
    Callable<Object> worker = () -> {
      try {
        while (true) {
          boolean last = insertsDone.get();
          List<RunRecord> got = store.claim(
              new ClaimRequest("w-" + Thread.currentThread().threadId(),
                  Map.of(ALPHA, 5, BETA, 5), 5, LEASE));
          if (got.isEmpty() && last) {
            return null;
          }
          for (RunRecord r : got) {
            store.finish(success(r, perRun)).orElseThrow();
          }
        }
      } finally {
        writersLeft.countDown();
      }
    };
    Callable<Object> observer = () -> {
      long lastTotal = 0;
      long lastSucceeded = 0;
      do {
        long low = completed.get();
        RunStats stats = store.stats();
        long high = started.get();
        AgentStats total = stats.total();
        if (total.total() < low || total.total() > high) {
          problems.add("total " + total.total() + " outside [" + low + ", " + high + "]");
        }
        if (total.total() < lastTotal || total.succeeded() < lastSucceeded) {
          problems.add("went back: " + total + " after total " + lastTotal + ", succeeded "
              + lastSucceeded);
        }
        for (AgentStats a : stats.agents().values()) {
          // Usage and status change commit together, so they always agree.
          if (!a.usage().equals(new Usage(a.succeeded() * perRun.inputTokens(),
              a.succeeded() * perRun.outputTokens(), a.succeeded() * perRun.costMicros()))) {
            problems.add("torn: " + a);
          }
        }
        lastTotal = total.total();
        lastSucceeded = total.succeeded();
        observations.incrementAndGet();
      } while (writersLeft.getCount() > 0 && problems.isEmpty());
      return null;
    };
    inParallel(List.of(inserter, worker, worker, observer));

    assertThat(problems).as("problems").isEmpty();
    assertThat(observations.get()).isPositive();
    RunStats end = assertStatsMatchRows();
    assertThat(end.total().total()).isEqualTo(preloaded + extra);
    assertThat(end.total().succeeded()).isEqualTo(preloaded + extra);
  }

  // ---------------------------------------------------------------- purge

  @Test
  @DisplayName("purge deletes only terminal runs finished before the instant, with their events")
  public void purgeDeletesOnlyOldTerminalRuns() {
    Instant start = clock.instant();
    RunRecord succeeded = claimedRun(ALPHA, "w1");
    clock.advance(Duration.ofSeconds(10));
    store.finish(success(succeeded, "ok")).orElseThrow();
    RunRecord failed = claimedRun(BETA, "w1");
    clock.advance(Duration.ofSeconds(10));
    store.finish(Finish.unsuccessful(failed.id(), 1, "w1", RunStatus.FAILED, "x",
        Usage.of(1, 1, 1))).orElseThrow();
    RunRecord cancelled = insert(ALPHA);
    clock.advance(Duration.ofSeconds(10));
    store.cancel(cancelled.id()).orElseThrow();
    RunRecord running = claimedRun(ALPHA, "w1");
    RunRecord queued = insert(ALPHA);
    clock.advance(Duration.ofSeconds(10));

    assertThat(store.purge(start)).isZero();
    assertThat(store.purge(start.plusSeconds(25))).isEqualTo(2);

    assertThat(store.find(succeeded.id())).isEmpty();
    assertThat(store.find(failed.id())).isEmpty();
    assertThat(store.events(succeeded.id())).isEmpty();
    assertThat(store.events(failed.id())).isEmpty();
    assertThat(store.find(cancelled.id())).isPresent();
    assertThat(store.events(cancelled.id())).isNotEmpty();
    RunStats stats = assertStatsMatchRows();
    assertThat(stats.agent(BETA).total()).isZero();
    assertThat(stats.agent(BETA).usage()).isEqualTo(Usage.ZERO);

    assertThat(store.purge(start.plus(Duration.ofDays(1)))).isEqualTo(1);
    assertThat(idsOf(scan(RunQuery.all()))).containsExactly(queued.id(), running.id());
    assertThat(eventTypes(running.id())).containsExactly("queued", "started");
    assertStatsMatchRows();
  }

  // ---------------------------------------------------------------- schedules (I10)

  @Test
  @DisplayName("I10: a schedule round-trips every field, and versions count its changes")
  void schedulesRoundTripAndCountVersions() {
    ScheduleSpec rate = ScheduleSpec.fixedRate("rate", ALPHA, "{\"a\":1}", Duration.ofSeconds(90))
        .missedFires(MissedFirePolicy.SKIP);
    ScheduleSpec cron = ScheduleSpec.cron("cron", BETA, "", "0 7 * * MON-FRI",
        java.time.ZoneId.of("Europe/Paris"));
    ScheduleSpec delay = ScheduleSpec.fixedDelay("delay", ALPHA, "x", Duration.ofMillis(1500));
    Instant next = clock().instant().plusSeconds(90);
    Schedule storedRate = store.putSchedule(new Schedule(rate, false, next, null, 0, 0))
        .orElseThrow();
    assertThat(storedRate).isEqualTo(new Schedule(rate, false, next, null, 0, 1));
    Schedule storedCron = store.putSchedule(new Schedule(cron, true, null,
        clock().instant(), 42, 0)).orElseThrow();
    assertThat(storedCron.version()).isEqualTo(1);
    store.putSchedule(new Schedule(delay, false, null, null, 0, 0)).orElseThrow();

    assertThat(store.findSchedule("cron")).contains(storedCron);
    assertThat(store.findSchedule("nope")).isEmpty();
    assertThat(store.schedules()).extracting(Schedule::name)
        .containsExactly("cron", "delay", "rate");

    Schedule advanced = store.putSchedule(storedRate.with(rate, true, next.plusSeconds(90), next,
        7)).orElseThrow();
    assertThat(advanced).isEqualTo(new Schedule(rate, true, next.plusSeconds(90), next, 7, 2));
    assertThat(store.findSchedule("rate")).contains(advanced);
  }

  @Test
  @DisplayName("I10: a put with a stale version, or a new schedule whose name exists, changes nothing")
  void staleSchedulePutsChangeNothing() {
    ScheduleSpec spec = ScheduleSpec.fixedRate("s", ALPHA, "x", Duration.ofMinutes(1));
    Schedule v1 = store.putSchedule(new Schedule(spec, false, clock().instant(), null, 0, 0))
        .orElseThrow();
    assertThat(store.putSchedule(new Schedule(spec.withInput("y"), false, null, null, 0, 0)))
        .as("a second create").isEmpty();
    Schedule v2 = store.putSchedule(v1.with(spec.withInput("v2"), false, null, null, 0))
        .orElseThrow();
    assertThat(store.putSchedule(v1.with(spec.withInput("stale"), true, null, null, 0)))
        .as("a put based on version 1").isEmpty();
    assertThat(store.findSchedule("s")).contains(v2);
    assertThat(store.deleteSchedule("s")).isTrue();
    assertThat(store.deleteSchedule("s")).isFalse();
    assertThat(store.putSchedule(v2)).as("a put of a deleted schedule").isEmpty();
    assertThat(store.schedules()).isEmpty();
  }

  @Test
  @DisplayName("I10: a schedule created again after a delete goes on counting versions, so a put"
      + " prepared against the deleted one never applies to it")
  void aRecreatedScheduleRefusesPutsPreparedAgainstTheDeletedOne() {
    ScheduleSpec spec = ScheduleSpec.fixedRate("again", ALPHA, "old", Duration.ofMinutes(1));
    Instant fireAt = clock().instant();
    Schedule old = store.putSchedule(new Schedule(spec, false, fireAt, null, 0, 0)).orElseThrow();
    old = store.putSchedule(old.with(spec, true, fireAt, null, 0)).orElseThrow();
    // A node reads the schedule, then stalls before writing back its fire.
    Schedule readBeforeDelete = store.findSchedule("again").orElseThrow();
    assertThat(store.deleteSchedule("again")).isTrue();
    ScheduleSpec newSpec = ScheduleSpec.fixedRate("again", BETA, "new", Duration.ofHours(1));
    Schedule current = store.putSchedule(new Schedule(newSpec, false, fireAt.plusSeconds(3600),
        null, 0, 0)).orElseThrow();
    assertThat(current.version()).as("the new schedule's version")
        .isGreaterThan(readBeforeDelete.version());
    // Whatever version the new schedule has reached, the stalled node's write matches nothing.
    for (int change = 0; change < 3; change++) {
      assertThat(store.putSchedule(readBeforeDelete.with(spec, false, fireAt.plusSeconds(60),
              fireAt, 42)))
          .as("the stalled node's fire, written back after the delete and %d changes", change)
          .isEmpty();
      assertThat(store.findSchedule("again")).contains(current);
      current = store.putSchedule(current.with(newSpec, change % 2 == 0,
          current.nextFireAt(), null, 0)).orElseThrow();
    }
    // Deleted again: the count goes on from the last version.
    assertThat(store.deleteSchedule("again")).isTrue();
    Schedule third = store.putSchedule(new Schedule(spec, false, fireAt, null, 0, 0))
        .orElseThrow();
    assertThat(third.version()).isEqualTo(current.version() + 1);
    assertThat(store.schedules()).containsExactly(third);
  }

  @Test
  @Timeout(value = CONCURRENT_TIMEOUT_SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  @DisplayName("I10: of 8 racing puts on one version, exactly one applies")
  void racingSchedulePutsLetExactlyOneApply() throws Exception {
    ScheduleSpec spec = ScheduleSpec.fixedRate("race", ALPHA, "x", Duration.ofMinutes(1));
    Schedule base = store.putSchedule(new Schedule(spec, false, clock().instant(), null, 0, 0))
        .orElseThrow();
    for (int round = 0; round < 20; round++) {
      Schedule from = store.findSchedule("race").orElseThrow();
      List<Boolean> applied = inParallel(8, t -> store.putSchedule(
          from.with(spec.withInput("t" + t), false, from.nextFireAt(), null, t)).isPresent());
      assertThat(applied).filteredOn(Boolean::booleanValue).hasSize(1);
      Schedule now = store.findSchedule("race").orElseThrow();
      assertThat(now.version()).isEqualTo(from.version() + 1);
      assertThat(now.spec().input()).isEqualTo("t" + now.lastRunId());
    }
    assertThat(store.findSchedule("race").orElseThrow().version())
        .isEqualTo(base.version() + 20);
  }

  // ---------------------------------------------------------------- close

  @Test
  @DisplayName("after close every call throws StoreException")
  public void everyCallAfterCloseThrows() {
    RunRecord run = claimedRun(ALPHA, "w1");
    store.close();
    closedByTest = true;

    Map<String, ThrowingCallable> calls = new java.util.LinkedHashMap<>();
    calls.put("insert", () -> insert(ALPHA));
    calls.put("claim", () -> claim("w1", 1));
    calls.put("heartbeat", () -> store.heartbeat("w1", Set.of(run.id()), LEASE));
    calls.put("finish", () -> store.finish(success(run, "ok")));
    calls.put("release", () -> store.release("w1", List.of(run)));
    calls.put("cancel", () -> store.cancel(run.id()));
    calls.put("recoverExpiredLeases", () -> store.recoverExpiredLeases());
    calls.put("appendEvent", () -> store.appendEvent(run.id(), 1, "tool", "x"));
    calls.put("find", () -> store.find(run.id()));
    calls.put("query", () -> store.query(RunQuery.all()));
    calls.put("events", () -> store.events(run.id()));
    calls.put("stats", () -> store.stats());
    calls.put("purge", () -> store.purge(clock.instant()));
    calls.forEach((name, call) ->
        assertThatThrownBy(call).as("%s after close", name).isInstanceOf(StoreException.class));
  }

  // ---------------------------------------------------------------- helpers

  private String nextInput() {
    return "{\"n\":" + (++inputs) + "}";
  }

  private RunRecord insert(String agent) {
    return insert(RunRequest.of(agent, nextInput()));
  }

  private RunRecord insert(RunRequest request) {
    return store.insert(NewRun.of(request));
  }

  /** Inserts {@code count} runs from 4 threads (fast set-up for group-committing stores). */
  private List<RunRecord> insertMany(int count, IntFunction<RunRequest> request)
      throws InterruptedException {
    int threads = 4;
    List<List<RunRecord>> parts = inParallel(threads, t -> {
      List<RunRecord> mine = new ArrayList<>();
      for (int i = t; i < count; i += threads) {
        mine.add(store.insert(NewRun.of(request.apply(i))));
      }
      return mine;
    });
    return parts.stream().flatMap(List::stream)
        .sorted(Comparator.comparingLong(RunRecord::id)).toList();
  }

  private static ClaimRequest claimRequest(String owner, int limit) {
    return new ClaimRequest(owner, Map.of(ALPHA, limit, BETA, limit, GAMMA, limit), limit,
        LEASE);
  }

  private List<RunRecord> claim(String owner, int limit) {
    return store.claim(claimRequest(owner, limit));
  }

  private List<RunRecord> claim(String owner, Map<String, Integer> quotas) {
    int limit = quotas.values().stream().mapToInt(Integer::intValue).sum();
    return store.claim(new ClaimRequest(owner, quotas, limit, LEASE));
  }

  private RunRecord claimOne(String owner) {
    List<RunRecord> got = claim(owner, 1);
    assertThat(got).as("claim of one run by %s", owner).hasSize(1);
    return got.get(0);
  }

  /** Every QUEUED run, claimed by {@code owner} in batches. */
  private List<RunRecord> claimAll(String owner) {
    List<RunRecord> all = new ArrayList<>();
    List<RunRecord> got;
    while (!(got = claim(owner, 100)).isEmpty()) {
      all.addAll(got);
    }
    return all;
  }

  /** Inserts a run of {@code agent} and claims exactly it for {@code owner}. */
  private RunRecord claimedRun(String agent, String owner) {
    RunRecord run = insert(agent);
    List<RunRecord> got = claim(owner, Map.of(agent, 1));
    assertThat(idsOf(got)).as("claim of run %d", run.id()).containsExactly(run.id());
    return got.get(0);
  }

  private RunRecord current(long id) {
    return store.find(id).orElseThrow(() -> new AssertionError("run " + id + " is missing"));
  }

  private List<String> eventTypes(long id) {
    return store.events(id).stream().map(RunEvent::type).toList();
  }

  private static Finish success(RunRecord claimed, String output) {
    return Finish.succeeded(claimed.id(), claimed.attempt(), claimed.owner(), output, Usage.ZERO);
  }

  private static Finish success(RunRecord claimed, Usage usage) {
    return Finish.succeeded(claimed.id(), claimed.attempt(), claimed.owner(), "ok", usage);
  }

  /** One finish of each kind for the given fence. */
  private List<Finish> everyFinish(long id, int attempt, String owner) {
    List<Finish> all = new ArrayList<>();
    all.add(Finish.succeeded(id, attempt, owner, "late", Usage.of(1, 1, 1)));
    for (RunStatus s : EnumSet.of(RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT)) {
      all.add(Finish.unsuccessful(id, attempt, owner, s, "late", Usage.of(1, 1, 1)));
    }
    all.add(Finish.retry(id, attempt, owner, "late", Usage.of(1, 1, 1),
        Duration.ofSeconds(1)));
    return all;
  }

  private static RunRecord withAttempt(RunRecord r, int attempt) {
    return new RunRecord(r.id(), r.agent(), r.status(), r.input(), r.output(), r.error(),
        r.serialKey(), r.idempotencyKey(), r.priority(), attempt, r.maxAttempts(), r.createdAt(),
        r.notBefore(), r.startedAt(), r.finishedAt(), r.owner(), r.leaseUntil(),
        r.cancelRequested(), r.usage());
  }

  private static List<Long> idsOf(List<RunRecord> runs) {
    return runs.stream().map(RunRecord::id).toList();
  }

  private static List<String> agentsOf(List<RunRecord> runs) {
    return runs.stream().map(RunRecord::agent).toList();
  }

  private static <T> T last(List<T> list) {
    assertThat(list).isNotEmpty();
    return list.get(list.size() - 1);
  }

  private static Set<Long> intersection(Set<Long> a, Set<Long> b) {
    Set<Long> both = new TreeSet<>(a);
    both.retainAll(b);
    return both;
  }

  /** Every run matching {@code query}, page by page, checking the paging contract on the way. */
  private List<RunRecord> scan(RunQuery query) {
    List<RunRecord> all = new ArrayList<>();
    RunQuery q = query;
    long previous = Long.MAX_VALUE;
    while (true) {
      Page<RunRecord> page = store.query(q);
      assertThat(page.items().size()).as("page size").isLessThanOrEqualTo(q.limit());
      for (RunRecord r : page.items()) {
        assertThat(r.id()).as("ids decrease from page to page").isLessThan(previous);
        assertThat(q.matches(r)).as("%s matches %s", r, q).isTrue();
        previous = r.id();
        all.add(r);
      }
      if (page.nextCursor().isEmpty()) {
        return all;
      }
      assertThat(page.items()).as("a page with a next cursor").isNotEmpty();
      assertThat(page.nextCursor()).contains(RunQuery.cursorAfter(previous));
      q = q.after(page.nextCursor().get());
    }
  }

  /** Asserts the stats equal counts and usage sums over a full scan of the rows; returns them. */
  private RunStats assertStatsMatchRows() {
    RunStats stats = store.stats();
    Map<String, AgentStats> expected = new HashMap<>();
    AgentStats total = AgentStats.empty("*");
    for (RunRecord r : scan(RunQuery.all().limit(RunQuery.MAX_LIMIT))) {
      expected.put(r.agent(),
          expected.getOrDefault(r.agent(), AgentStats.empty(r.agent())).plus(r.status(),
              r.usage()));
      total = total.plus(r.status(), r.usage());
    }
    // A store may list an agent whose runs were all purged, with zero counts.
    Set<String> agents = new TreeSet<>(expected.keySet());
    agents.addAll(stats.agents().keySet());
    for (String agent : agents) {
      assertThat(stats.agent(agent)).as("stats of %s", agent)
          .isEqualTo(expected.getOrDefault(agent, AgentStats.empty(agent)));
    }
    assertThat(stats.total()).isEqualTo(total);
    return stats;
  }

  private record Snapshot(List<RunRecord> runs, Map<Long, List<RunEvent>> events,
      RunStats stats) {}

  private Snapshot snapshot() {
    List<RunRecord> runs = scan(RunQuery.all().limit(RunQuery.MAX_LIMIT));
    Map<Long, List<RunEvent>> events = new TreeMap<>();
    for (RunRecord r : runs) {
      events.put(r.id(), store.events(r.id()));
    }
    return new Snapshot(runs, events, store.stats());
  }

  /**
   * Runs {@code operation} while event writes fail, and asserts that it threw a StoreException
   * and that the store (rows, events, stats) is exactly as before.
   */
  private void assertFailsWithoutTrace(String operation, ThrowingCallable call) throws Exception {
    Snapshot before = snapshot();
    AutoCloseable fault = failEventWrites(store);
    try {
      assertThatThrownBy(call).as("%s while event writes fail", operation)
          .isInstanceOf(StoreException.class);
    } finally {
      fault.close();
    }
    assertThat(snapshot()).as("the store after a failed %s", operation).isEqualTo(before);
  }

  @FunctionalInterface
  private interface Task<T> {
    T run(int index) throws Exception;
  }

  private static <T> List<T> inParallel(int threads, Task<T> task) throws InterruptedException {
    List<Callable<T>> calls = new ArrayList<>();
    for (int i = 0; i < threads; i++) {
      int index = i;
      calls.add(() -> task.run(index));
    }
    return inParallel(calls);
  }

  /**
   * Runs the tasks on their own threads, released together so they really overlap, and returns
   * their results in order. A task's failure fails the test.
   */
  private static <T> List<T> inParallel(List<Callable<T>> tasks) throws InterruptedException {
    AtomicInteger n = new AtomicInteger();
    ExecutorService pool = Executors.newFixedThreadPool(tasks.size(), r -> {
      Thread t = new Thread(r, "tck-" + n.incrementAndGet());
      t.setDaemon(true); // a task stuck in a broken store must not keep the JVM alive
      return t;
    });
    CountDownLatch ready = new CountDownLatch(tasks.size());
    CountDownLatch go = new CountDownLatch(1);
    try {
      List<Future<T>> futures = new ArrayList<>();
      for (Callable<T> task : tasks) {
        futures.add(pool.submit(() -> {
          ready.countDown();
          go.await();
          return task.call();
        }));
      }
      ready.await();
      go.countDown();
      List<T> results = new ArrayList<>();
      for (Future<T> f : futures) {
        try {
          results.add(f.get());
        } catch (ExecutionException e) {
          if (e.getCause() instanceof AssertionError failure) {
            throw failure;
          }
          throw new AssertionError("a concurrent task failed: " + e.getCause(), e.getCause());
        }
      }
      return results;
    } finally {
      pool.shutdownNow();
    }
  }
}
