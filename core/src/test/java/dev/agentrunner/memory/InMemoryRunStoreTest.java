package dev.agentrunner.memory;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunEvent;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.NewRun;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * What the contract suite cannot see of the in-memory store's layout: runs and events live in
 * chunks of a few thousand, and purging whole chunks drops them (enough runs here to span many
 * chunks, purged from the oldest, with survivors in the middle); an ended run is kept as
 * primitive fields rather than its record, and must read back as the record it ended with.
 */
class InMemoryRunStoreTest {
  private static final ClaimRequest CLAIM =
      new ClaimRequest("w", Map.of("a", 1), 1, Duration.ofMinutes(1));

  private Instant now = Instant.parse("2026-01-01T00:00:00Z");
  private final InMemoryRunStore store = InMemoryRunStore.builder()
      .clock(new Clock() {
        @Override
        public ZoneOffset getZone() {
          return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(java.time.ZoneId zone) {
          return this;
        }

        @Override
        public Instant instant() {
          return now;
        }
      })
      .build();

  private RunRecord finishedRun(int i) {
    RunRecord r = store.insertAndClaim(NewRun.of(RunRequest.of("a", "run-" + i)), CLAIM);
    assertThat(r.status()).isEqualTo(RunStatus.RUNNING);
    return store.finish(Finish.succeeded(r.id(), 1, "w", "out-" + i, Usage.ZERO)).orElseThrow();
  }

  @Test
  void purgingManyChunksKeepsTheSurvivorsAndTheirEvents() {
    int runs = 30_000;
    List<RunRecord> survivors = new ArrayList<>();
    for (int i = 0; i < runs; i++) {
      if (i % 7_001 == 5) {
        // a survivor: still running when the purge comes
        survivors.add(store.insertAndClaim(NewRun.of(RunRequest.of("a", "keep-" + i)), CLAIM));
      } else {
        finishedRun(i);
      }
    }
    now = now.plusSeconds(60);
    int purged = store.purge(now);
    assertThat(purged).isEqualTo(runs - survivors.size());

    for (RunRecord s : survivors) {
      assertThat(store.find(s.id())).contains(s);
      assertThat(store.events(s.id()).stream().map(RunEvent::type))
          .containsExactly("queued", "started");
    }
    assertThat(store.find(1)).isEmpty();
    assertThat(store.events(1)).isEmpty();
    assertThat(store.query(RunQuery.all().limit(RunQuery.MAX_LIMIT)).items())
        .extracting(RunRecord::id)
        .containsExactlyElementsOf(survivors.reversed().stream().map(RunRecord::id).toList());
    assertThat(store.count(RunQuery.all())).isEqualTo(survivors.size());

    // New runs after the purge get the next ids and keep their events.
    RunRecord later = finishedRun(runs);
    assertThat(later.id()).isEqualTo(runs + 1);
    assertThat(store.events(later.id()).stream().map(RunEvent::type))
        .containsExactly("queued", "started", "succeeded");
    assertThat(store.events(later.id()).get(0).seq())
        .as("event numbers keep increasing").isGreaterThan(3L * (runs - survivors.size()));
    assertThat(store.stats().agent("a").running()).isEqualTo(survivors.size());
    assertThat(store.stats().agent("a").succeeded()).isEqualTo(1);

    // And the survivors can still finish and be purged.
    for (RunRecord s : survivors) {
      store.finish(Finish.succeeded(s.id(), 1, "w", "done", Usage.ZERO)).orElseThrow();
    }
    now = now.plusSeconds(60);
    assertThat(store.purge(now)).isEqualTo(survivors.size() + 1);
    assertThat(store.count(RunQuery.all())).isZero();
    assertThat(store.stats().total().total()).isZero();
  }

  /**
   * Runs live in stripes, and a run started at its insert and then finished takes only its
   * stripe's lock: threads doing that race threads that queue runs, claim them, finish them and
   * read the stats (which take every stripe's lock). Afterwards every run was claimed exactly
   * once, has exactly its three events in order, reads back as it ended, and every snapshot of
   * the stats taken meanwhile added up.
   */
  @Test
  void stripedRunsStartedAtInsertRaceQueuedOnesWithoutLoss() throws Exception {
    InMemoryRunStore shared = InMemoryRunStore.create();
    ClaimRequest claim = new ClaimRequest("w", Map.of("a", 100), 100, Duration.ofMinutes(1));
    int threads = 6;
    int perThread = 10_000;
    java.util.concurrent.ConcurrentLinkedQueue<String> problems =
        new java.util.concurrent.ConcurrentLinkedQueue<>();
    java.util.concurrent.ConcurrentHashMap<Long, String> claimedBy =
        new java.util.concurrent.ConcurrentHashMap<>();
    java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(threads);
    List<Thread> workers = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      int me = t;
      workers.add(Thread.ofPlatform().start(() -> {
        try {
          start.await();
          for (int i = 0; i < perThread; i++) {
            List<RunRecord> mine = new ArrayList<>();
            if (me % 3 == 2 && i % 4 == 0) {
              shared.insert(NewRun.of(RunRequest.of("a", "q-" + me + "-" + i)));
              mine.addAll(shared.claim(claim));
            } else {
              RunRecord r = shared.insertAndClaim(NewRun.of(RunRequest.of("a", "s-" + me + "-" + i)),
                  CLAIM);
              if (r.status() == RunStatus.RUNNING) {
                mine.add(r);
              }
            }
            for (RunRecord r : mine) {
              if (claimedBy.putIfAbsent(r.id(), "t" + me) != null) {
                problems.add("run " + r.id() + " claimed twice");
              }
              if (shared.finish(Finish.succeeded(r.id(), r.attempt(), r.owner(), "out", Usage.ZERO))
                  .isEmpty()) {
                problems.add("finish of run " + r.id() + " refused");
              }
            }
            if (i % 100 == 0) {
              dev.agentrunner.AgentStats s = shared.stats().agent("a");
              if (s.queued() < 0 || s.running() < 0) {
                problems.add("torn stats " + s);
              }
            }
          }
        } catch (Exception e) {
          problems.add(e.toString());
        }
      }));
    }
    for (Thread w : workers) {
      w.join();
    }
    // Runs still queued (a claim found none free or raced another) are claimed and finished now.
    for (List<RunRecord> left = shared.claim(claim); !left.isEmpty(); left = shared.claim(claim)) {
      for (RunRecord r : left) {
        if (claimedBy.putIfAbsent(r.id(), "end") != null) {
          problems.add("run " + r.id() + " claimed twice");
        }
        shared.finish(Finish.succeeded(r.id(), r.attempt(), r.owner(), "out", Usage.ZERO));
      }
    }
    assertThat(problems).as("problems").isEmpty();
    int runs = threads * perThread;
    assertThat(shared.stats().agent("a").succeeded()).isEqualTo(runs);
    assertThat(shared.stats().total().total()).isEqualTo(runs);
    List<RunRecord> all = new ArrayList<>();
    RunQuery page = RunQuery.all().limit(RunQuery.MAX_LIMIT);
    while (true) {
      dev.agentrunner.Page<RunRecord> p = shared.query(page);
      all.addAll(p.items());
      if (p.nextCursor().isEmpty()) {
        break;
      }
      page = page.after(p.nextCursor().get());
    }
    assertThat(all).hasSize(runs);
    assertThat(all).extracting(RunRecord::id).doesNotHaveDuplicates()
        .isSortedAccordingTo(java.util.Comparator.reverseOrder());
    for (RunRecord r : all) {
      assertThat(r.status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(claimedBy).containsKey(r.id());
      List<RunEvent> events = shared.events(r.id());
      assertThat(events).extracting(RunEvent::type)
          .containsExactly("queued", "started", "succeeded");
      assertThat(events).extracting(RunEvent::runId).containsOnly(r.id());
      assertThat(events).extracting(RunEvent::seq).isSorted().doesNotHaveDuplicates();
    }
  }

  /**
   * A finish reads the clock before it takes the lock, so an event written meanwhile (here a
   * cancel request, with the clock stepped back afterwards as a time adjustment would) may carry
   * a later time than the finish read: the run still never ends before its last event.
   */
  @Test
  void aFinishNeverEndsARunBeforeItsLastEvent() {
    RunRecord r = store.insertAndClaim(NewRun.of(RunRequest.of("a", "in")), CLAIM);
    Instant cancelledAt = now.plusSeconds(10);
    now = cancelledAt;
    store.cancel(r.id());
    now = cancelledAt.minusSeconds(5);
    RunRecord done = store.finish(Finish.unsuccessful(r.id(), 1, "w", RunStatus.CANCELLED,
        "stopped", Usage.ZERO)).orElseThrow();
    assertThat(done.finishedAt()).isEqualTo(cancelledAt);
    List<RunEvent> events = store.events(r.id());
    assertThat(events).extracting(RunEvent::type)
        .containsExactly("queued", "started", "cancel_requested", "cancelled");
    assertThat(events).extracting(RunEvent::at).isSorted();
    assertThat(events.getLast().at()).isEqualTo(cancelledAt);
  }

  @Test
  void everyWayARunEndsReadsBackAsTheRecordItEndedWith() {
    List<RunRecord> ended = new ArrayList<>();
    RunRecord a = store.insertAndClaim(NewRun.of(RunRequest.of("a", "in-a")), CLAIM);
    now = now.plusMillis(1_234);
    ended.add(store.finish(Finish.succeeded(a.id(), 1, "w", "out-a", new Usage(3, 4, 5)))
        .orElseThrow());
    RunRecord b = store.insertAndClaim(new NewRun(RunRequest.of("a", "in-b")
        .withSerialKey("k").withIdempotencyKey("idem-b").withPriority(7), 3), CLAIM);
    now = now.plusNanos(999_999_999);
    ended.add(store.finish(Finish.unsuccessful(b.id(), 1, "w", RunStatus.FAILED, "boom",
        Usage.ZERO)).orElseThrow());
    RunRecord c = store.insert(NewRun.of(RunRequest.of("a", "in-c")));
    ended.add(store.cancel(c.id()).orElseThrow()); // never started: no startedAt
    RunRecord d = store.insertAndClaim(NewRun.of(RunRequest.of("a", "in-d")), CLAIM);
    store.cancel(d.id());
    ended.add(store.finish(Finish.unsuccessful(d.id(), 1, "w", RunStatus.CANCELLED, "stopped",
        Usage.ZERO)).orElseThrow());
    RunRecord e = store.insertAndClaim(NewRun.of(RunRequest.of("a", "in-e")), CLAIM);
    now = now.plus(Duration.ofMinutes(2)); // past e's lease: attempt 1 of 1 ends FAILED
    ended.addAll(store.recoverExpiredLeases());
    assertThat(ended).extracting(RunRecord::id)
        .containsExactly(a.id(), b.id(), c.id(), d.id(), e.id());

    for (RunRecord run : ended) {
      assertThat(run.isTerminal()).isTrue();
      assertThat(store.find(run.id())).contains(run);
      assertThat(store.events(run.id()).getLast().type())
          .isEqualTo(run.status().name().toLowerCase(java.util.Locale.ROOT));
    }
    assertThat(store.query(RunQuery.all()).items()).containsExactlyElementsOf(ended.reversed());
    assertThat(store.cancel(a.id())).as("cancelling an ended run changes nothing")
        .contains(ended.get(0));
    assertThat(store.insert(new NewRun(RunRequest.of("a", "in-b").withSerialKey("k")
        .withIdempotencyKey("idem-b").withPriority(7), 3)))
        .as("its idempotency key still finds it").isEqualTo(ended.get(1));
  }
}
