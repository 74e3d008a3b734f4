package dev.agentrunner.sqlite;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.NewRun;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bugs this project exists to prevent, replayed on a real SQLite file: a run id read back with
 * {@code MAX(id)} after the insert (so concurrent submitters got each other's ids), and workers
 * racing to execute the same queued run.
 */
@Timeout(120)
class SeedScenarioTest {
  @TempDir Path dir;

  @Test
  void thousandConcurrentInsertsEachGetTheIdOfTheirOwnRow() throws Exception {
    int threads = 50;
    int total = 1000;
    try (SqliteRunStore store = SqliteRunStore.open(dir.resolve("seed.db"))) {
      ExecutorService pool = Executors.newFixedThreadPool(threads);
      CountDownLatch start = new CountDownLatch(1);
      List<Future<RunRecord>> futures = new ArrayList<>();
      for (int i = 0; i < total; i++) {
        String input = "{\"caller\":" + i + "}";
        futures.add(pool.submit(() -> {
          start.await();
          return store.insert(NewRun.of(RunRequest.of("agent-" + (input.hashCode() % 3),
              input)));
        }));
      }
      start.countDown();
      Set<Long> ids = new HashSet<>();
      for (int i = 0; i < total; i++) {
        RunRecord mine = futures.get(i).get(60, TimeUnit.SECONDS);
        String expected = "{\"caller\":" + i + "}";
        assertThat(mine.input()).isEqualTo(expected);
        assertThat(ids.add(mine.id())).as("id %s given twice", mine.id()).isTrue();
        // the row behind the id holds this caller's input, not a neighbour's
        assertThat(store.find(mine.id()).orElseThrow().input()).isEqualTo(expected);
      }
      pool.shutdown();
      assertThat(ids).hasSize(total);
      assertThat(store.stats().total().queued()).isEqualTo(total);
    }
  }

  /**
   * Two store instances on one file have two writers, as two processes would: the database's
   * own locking, not this JVM, keeps ids unique and claims exclusive.
   */
  @Test
  void twoWritersOnOneFileNeverShareAnIdOrAClaim() throws Exception {
    Path file = dir.resolve("shared.db");
    int perStore = 1500;
    try (SqliteRunStore a = SqliteRunStore.open(file);
        SqliteRunStore b = SqliteRunStore.open(file)) {
      List<SqliteRunStore> stores = List.of(a, b);
      ExecutorService pool = Executors.newFixedThreadPool(16);
      Map<Long, String> claimedBy = new ConcurrentHashMap<>();
      ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
      ConcurrentLinkedQueue<RunRecord> inserted = new ConcurrentLinkedQueue<>();
      AtomicInteger insertersLeft = new AtomicInteger(8);
      List<Future<?>> work = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        SqliteRunStore s = stores.get(t % 2);
        int thread = t;
        work.add(pool.submit(() -> {
          for (int i = 0; i < perStore * 2 / 8; i++) {
            inserted.add(s.insert(NewRun.of(RunRequest.of("job", thread + ":" + i))));
          }
          insertersLeft.decrementAndGet();
          return null;
        }));
      }
      for (int t = 0; t < 8; t++) {
        SqliteRunStore s = stores.get(t % 2);
        String owner = "worker-" + t;
        work.add(pool.submit(() -> {
          while (true) {
            boolean producing = insertersLeft.get() > 0;
            List<RunRecord> got = s.claim(
                new ClaimRequest(owner, Map.of("job", 7), 7, Duration.ofMinutes(1)));
            for (RunRecord r : got) {
              String previous = claimedBy.putIfAbsent(r.id(), owner);
              if (previous != null) {
                problems.add("run " + r.id() + " claimed by " + previous + " and " + owner);
              }
              if (s.finish(Finish.succeeded(r.id(), r.attempt(), owner, "done by " + owner,
                  Usage.ZERO)).isEmpty()) {
                problems.add("finish of " + r.id() + " by its owner " + owner + " refused");
              }
            }
            if (got.isEmpty() && !producing) {
              return null;
            }
          }
        }));
      }
      for (Future<?> f : work) {
        f.get(100, TimeUnit.SECONDS);
      }
      pool.shutdown();

      assertThat(problems).isEmpty();
      Set<Long> ids = new HashSet<>();
      for (RunRecord r : inserted) {
        assertThat(ids.add(r.id())).as("id %s twice", r.id()).isTrue();
      }
      assertThat(ids).hasSize(perStore * 2);
      assertThat(claimedBy.keySet()).isEqualTo(ids);
      for (SqliteRunStore s : stores) {
        assertThat(s.stats().agent("job").succeeded()).isEqualTo(perStore * 2);
      }
      for (RunRecord r : a.query(RunQuery.all().limit(1000)).items()) {
        assertThat(r.status()).isEqualTo(RunStatus.SUCCEEDED);
        assertThat(r.output()).isEqualTo("done by " + claimedBy.get(r.id()));
      }
    }
  }
}
