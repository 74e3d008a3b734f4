package dev.agentrunner.postgres;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStatus;
import dev.agentrunner.StoreException;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.Finish;
import java.sql.SQLException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * How {@link FinishBatcher} combines concurrent finishes, without a database: the batch
 * statement is a fake that applies each finish whose run is "running" under that attempt, once,
 * and records the batches it was given. The first batch is held open until the other callers
 * have queued, so that they meet in the second batch whatever the scheduler does.
 *
 * <p>Thread-safety: JUnit runs each test on one thread; the callers are joined.
 */
@Timeout(30)
class FinishBatcherTest {
  private static final String OWNER = "w";

  /** The fake statement: runs 1..n are RUNNING under attempt 1 until finished. */
  private static final class FakeStatement implements FinishBatcher.Executor {
    final Set<Long> running = ConcurrentHashMap.newKeySet();
    final List<List<Long>> batches = Collections.synchronizedList(new ArrayList<>());
    final CountDownLatch firstBatchMayEnd = new CountDownLatch(1);
    final CountDownLatch firstBatchStarted = new CountDownLatch(1);
    volatile long refused = -1; // a run whose presence fails the whole statement
    volatile boolean connectionLost;

    FakeStatement(int runs) {
      for (long id = 1; id <= runs; id++) {
        running.add(id);
      }
    }

    @Override
    public Rows.Changed execute(List<FinishBatcher.Request> batch) {
      List<Long> ids = batch.stream().map(r -> r.finish.runId()).toList();
      batches.add(ids);
      if (batches.size() == 1) {
        firstBatchStarted.countDown();
        await(firstBatchMayEnd);
      }
      if (connectionLost) {
        throw new StoreException("lost", new SQLException("connection reset", "08006"));
      }
      if (ids.contains(refused)) {
        throw new StoreException("refused", new SQLException("out of range", "22003"));
      }
      List<RunRecord> changed = new ArrayList<>();
      for (FinishBatcher.Request r : batch) {
        if (r.finish.attempt() == 1 && running.remove(r.finish.runId())) {
          changed.add(record(r.finish.runId(), r.finish.status(), r.output));
        }
      }
      return new Rows.Changed(changed, false);
    }
  }

  @Test
  void callersThatArriveWhileABatchRunsShareTheNextAndEachGetsItsOwnRun() throws Exception {
    FakeStatement statement = new FakeStatement(50);
    FinishBatcher batcher = new FinishBatcher(statement, () -> { }, () -> 0);
    ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor();
    Future<Optional<RunRecord>> first = pool.submit(() -> batcher.finish(succeeded(1), "out-1",
        null));
    statement.firstBatchStarted.await();
    List<Future<Optional<RunRecord>>> others = new ArrayList<>();
    for (long id = 2; id <= 50; id++) {
      long run = id;
      others.add(pool.submit(() -> batcher.finish(succeeded(run), "out-" + run, null)));
    }
    awaitQueued(batcher, statement, 49);
    statement.firstBatchMayEnd.countDown();

    assertThat(first.get().orElseThrow().output()).isEqualTo("out-1");
    for (int i = 0; i < others.size(); i++) {
      RunRecord run = others.get(i).get().orElseThrow();
      assertThat(run.id()).isEqualTo(i + 2);
      assertThat(run.output()).isEqualTo("out-" + (i + 2));
    }
    assertThat(statement.batches).hasSize(2);
    assertThat(statement.batches.get(1)).hasSize(49);
    assertThat(statement.running).isEmpty();
    pool.shutdown();
  }

  @Test
  void aFinishWhoseFenceDoesNotMatchGetsNothingAndTheOthersTheirRuns() throws Exception {
    FakeStatement statement = new FakeStatement(3);
    FinishBatcher batcher = new FinishBatcher(statement, () -> { }, () -> 0);
    statement.firstBatchMayEnd.countDown();
    Finish zombie = Finish.succeeded(2, 7, OWNER, "late", Usage.ZERO); // an older attempt
    assertThat(batcher.finish(zombie, "late", null)).isEmpty();
    assertThat(batcher.finish(succeeded(2), "ok", null)).isPresent();
  }

  @Test
  void whenTheBatchIsRefusedEachFinishRunsAloneAndOnlyTheCulpritFails() throws Exception {
    FakeStatement statement = new FakeStatement(10);
    statement.refused = 7;
    FinishBatcher batcher = new FinishBatcher(statement, () -> { }, () -> 0);
    ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor();
    Future<Optional<RunRecord>> first = pool.submit(() -> batcher.finish(succeeded(1), "", null));
    statement.firstBatchStarted.await();
    Map<Long, Future<Optional<RunRecord>>> others = new java.util.TreeMap<>();
    for (long id = 2; id <= 10; id++) {
      long run = id;
      others.put(run, pool.submit(() -> batcher.finish(succeeded(run), "", null)));
    }
    awaitQueued(batcher, statement, 9);
    statement.firstBatchMayEnd.countDown();

    assertThat(first.get()).isPresent();
    for (Map.Entry<Long, Future<Optional<RunRecord>>> e : others.entrySet()) {
      if (e.getKey() == 7) {
        assertThatThrownBy(() -> e.getValue().get()).hasCauseInstanceOf(StoreException.class)
            .hasMessageContaining("refused");
      } else {
        assertThat(e.getValue().get()).as("run %d", e.getKey()).isPresent();
      }
    }
    assertThat(statement.running).containsExactly(7L);
    pool.shutdown();
  }

  @Test
  void aLostConnectionFailsTheWholeBatchWithoutRunningItAgain() throws Exception {
    FakeStatement statement = new FakeStatement(5);
    FinishBatcher batcher = new FinishBatcher(statement, () -> { }, () -> 0);
    ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor();
    Future<Optional<RunRecord>> first = pool.submit(() -> batcher.finish(succeeded(1), "", null));
    statement.firstBatchStarted.await();
    List<Future<Optional<RunRecord>>> others = new ArrayList<>();
    for (long id = 2; id <= 5; id++) {
      long run = id;
      others.add(pool.submit(() -> batcher.finish(succeeded(run), "", null)));
    }
    awaitQueued(batcher, statement, 4);
    statement.connectionLost = true; // the first batch too: it is still running
    statement.firstBatchMayEnd.countDown();

    assertThatThrownBy(first::get).hasCauseInstanceOf(StoreException.class);
    for (Future<Optional<RunRecord>> f : others) {
      assertThatThrownBy(f::get).hasCauseInstanceOf(StoreException.class);
    }
    assertThat(statement.batches).as("the statement may have committed: not run again")
        .hasSize(2);
    pool.shutdown();
  }

  @Test
  void twoFinishesOfOneRunNeverShareABatch() throws Exception {
    FakeStatement statement = new FakeStatement(3);
    FinishBatcher batcher = new FinishBatcher(statement, () -> { }, () -> 0);
    ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor();
    Future<Optional<RunRecord>> first = pool.submit(() -> batcher.finish(succeeded(1), "", null));
    statement.firstBatchStarted.await();
    Future<Optional<RunRecord>> a = pool.submit(() -> batcher.finish(succeeded(2), "a", null));
    Future<Optional<RunRecord>> b = pool.submit(() -> batcher.finish(
        Finish.unsuccessful(2, 1, OWNER, RunStatus.FAILED, "b", Usage.ZERO), null, "b"));
    Future<Optional<RunRecord>> c = pool.submit(() -> batcher.finish(succeeded(3), "c", null));
    awaitQueued(batcher, statement, 3);
    statement.firstBatchMayEnd.countDown();

    first.get();
    int applied = (a.get().isPresent() ? 1 : 0) + (b.get().isPresent() ? 1 : 0);
    assertThat(applied).as("exactly one finish of run 2 applies").isEqualTo(1);
    assertThat(c.get()).isPresent();
    for (List<Long> batch : statement.batches) {
      assertThat(batch).doesNotHaveDuplicates();
    }
    pool.shutdown();
  }

  @Test
  void anInterruptedCallerStillFinishesAndKeepsItsInterruptStatus() {
    FakeStatement statement = new FakeStatement(1);
    statement.firstBatchMayEnd.countDown();
    FinishBatcher batcher = new FinishBatcher(statement, () -> { }, () -> 0);
    Thread.currentThread().interrupt();
    try {
      assertThat(batcher.finish(succeeded(1), "", null)).isPresent();
      assertThat(Thread.currentThread().isInterrupted()).isTrue();
    } finally {
      Thread.interrupted();
    }
  }

  @Test
  void aLeaderWaitsForTheRunsStillRunningButNotForever() throws Exception {
    FakeStatement statement = new FakeStatement(2);
    statement.firstBatchMayEnd.countDown();
    AtomicInteger stillRunning = new AtomicInteger(1); // a run that never finishes
    FinishBatcher batcher = new FinishBatcher(statement, () -> { }, stillRunning::get);
    assertThat(batcher.finish(succeeded(1), "", null)).isPresent(); // returns: no deadlock
    assertThat(statement.batches).containsExactly(List.of(1L));
  }

  /** Waits until {@code n} callers queued behind the held first batch. */
  private static void awaitQueued(FinishBatcher batcher, FakeStatement statement, int n)
      throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (batcher.waiting() < n) {
      assertThat(System.nanoTime()).as("callers queued").isLessThan(deadline);
      Thread.sleep(1);
    }
    assertThat(statement.batches).hasSize(1);
  }

  private static Finish succeeded(long id) {
    return Finish.succeeded(id, 1, OWNER, "out-" + id, Usage.ZERO);
  }

  private static RunRecord record(long id, RunStatus status, String output) {
    Instant t = Instant.EPOCH;
    return new RunRecord(id, "agent", status, "in", output, null, null, null, 0, 1, 1, t, t, t,
        t, OWNER, null, false, Usage.ZERO);
  }

  private static void await(CountDownLatch latch) {
    try {
      latch.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
