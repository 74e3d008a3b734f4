package dev.agentrunner.sqlite;

import dev.agentrunner.RunRejectedException;
import dev.agentrunner.StoreException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The one thread and connection through which this process writes the database (group commit).
 *
 * <p>Callers hand it operations and wait. The thread takes every operation waiting (up to the
 * batch size) and runs them in one IMMEDIATE transaction, then commits once: one fsync for the
 * whole batch. Operations rarely fail, so a batch first runs straight through. If an operation
 * throws, the transaction is rolled back and the batch runs again isolated: one SAVEPOINT per
 * operation, so that the failing one is rolled back to its savepoint and fails alone while the
 * others commit (the savepoints would otherwise double the statements of every batch). A
 * refusal ({@link RunRejectedException}, thrown before the operation writes anything) fails
 * its operation alone without a rollback. If an operation's failure takes the whole transaction
 * with it (SQLite rolls back the transaction on some I/O errors) that operation fails, and the
 * others of the batch run again one per transaction; if the commit fails, all of them run again
 * one per transaction. So each caller still gets its own result or its own error. A result is
 * handed out only after its transaction committed.
 *
 * <p>While one batch commits, the next one gathers, so a lone write commits at once and a
 * crowd of writes shares fsyncs. A crowd whose members wait for their commits comes back only
 * in part while the writer is already taking the next batch, and the batches then carry about
 * half the crowd each, one fsync per half. So the transaction does not end with the operations
 * it began with: once they are applied, those queued meanwhile join it, and while it carries
 * fewer operations than the last one did (at least {@link #CROWD} of them), the writer waits up
 * to {@link #GATHER_NANOS} from its start for more. The wait overlaps the statements rather
 * than coming before them. Measured with eight submitting threads on {@code synchronous=FULL}
 * (benchmark figure 2): on one machine 4.5 runs per commit with no wait and 7.8 with a wait
 * before the begin; on a later, slower one, 6.7 to 7.0 with the wait before the begin and 7.7
 * to 7.8 joining the open transaction, figure 2a going from 9.1-9.3 to 10.7-11.6 times the
 * naive rate (three A/B pairs).
 *
 * <p>Thread-safety: {@link #submit} may be called from any thread; everything else belongs to
 * the writer thread.
 */
final class Writer implements AutoCloseable {

  /** The smallest last batch after which the writer gathers the next (see the class comment). */
  static final int CROWD = 4;

  /** The longest the writer waits to gather a batch: less than one fsync takes on a fast disk. */
  static final long GATHER_NANOS = 100_000;

  /**
   * A unit of work run inside the writer's transaction. It may run more than once (a batch
   * that met a failure runs again isolated), so it must only read and write the database and
   * compute its result from what it finds there. A refusal must be thrown as a
   * {@link RunRejectedException} before the operation writes anything.
   */
  @FunctionalInterface
  interface Op<T> {
    T apply(Tx tx) throws SQLException;
  }

  /** The writer's connection as an operation sees it: statements are prepared once and kept. */
  static final class Tx {
    private final Connection connection;
    private final Map<String, PreparedStatement> statements = new HashMap<>();

    Tx(Connection connection) {
      this.connection = connection;
    }

    PreparedStatement prepare(String sql) throws SQLException {
      PreparedStatement ps = statements.get(sql);
      if (ps == null) {
        ps = connection.prepareStatement(sql);
        statements.put(sql, ps);
      }
      return ps;
    }

    /**
     * Executes a statement without results (BEGIN, COMMIT, SAVEPOINT, ...). One that fails is
     * closed and forgotten: sqlite-jdbc leaves a statement whose {@code execute()} failed
     * unusable ("statement is not executing") and still in progress, which would then block
     * every later SAVEPOINT or ROLLBACK on the connection.
     */
    void execute(String sql) throws SQLException {
      PreparedStatement ps = prepare(sql);
      try {
        ps.execute();
      } catch (SQLException e) {
        statements.remove(sql);
        closeQuietly(ps);
        throw e;
      }
    }

    /**
     * Closes every prepared statement, to be prepared again on next use: after an operation
     * failed, none of them may be left in progress (that would block the rollback) or broken.
     */
    void reset() {
      close();
    }

    Connection connection() {
      return connection;
    }

    void close() {
      statements.values().forEach(Tx::closeQuietly);
      statements.clear();
    }

    private static void closeQuietly(PreparedStatement ps) {
      try {
        ps.close();
      } catch (SQLException ignored) {
        // closing anyway
      }
    }
  }

  private static final class Pending<T> {
    final String what;
    final Op<T> op;
    final CompletableFuture<T> done = new CompletableFuture<>();
    T result;

    Pending(String what, Op<T> op) {
      this.what = what;
      this.op = op;
    }

    void apply(Tx tx) throws SQLException {
      result = op.apply(tx);
    }

    void succeed() {
      done.complete(result);
    }

    void fail(Throwable t) {
      done.completeExceptionally(t);
    }
  }

  private final Connection connection;
  private final Tx tx;
  private final Failures failures;
  private final int maxBatchSize;
  private final int busyRetries;
  private final Thread thread;

  private final ReentrantLock lock = new ReentrantLock();
  private final Condition workArrived = lock.newCondition();
  // Guarded by lock.
  private final ArrayDeque<Pending<?>> queue = new ArrayDeque<>();
  private boolean closing;
  /** How many operations the last transaction carried; written by the writer thread only. */
  private int previousBatch;
  /** Until when the open transaction gathers operations; written by the writer thread only. */
  private long gatherUntil;

  // Counters for tests and diagnostics.
  private final AtomicLong commits = new AtomicLong();
  private final AtomicLong committedOps = new AtomicLong();
  private final AtomicLong largestBatch = new AtomicLong();

  Writer(Connection connection, Failures failures, int maxBatchSize, int busyRetries) {
    this.connection = connection;
    this.tx = new Tx(connection);
    this.failures = failures;
    this.maxBatchSize = maxBatchSize;
    this.busyRetries = busyRetries;
    this.thread = new Thread(this::loop, "agentrunner-sqlite-writer[" + failures.path() + "]");
    // A host that forgets close() must still be able to exit.
    thread.setDaemon(true);
    thread.start();
  }

  /**
   * Runs {@code op} in the writer's next transaction and returns its result once committed.
   * Waits without reacting to interrupts (the interrupt flag is kept): once handed over, the
   * operation may commit, so giving up early would report a failure that did not happen.
   *
   * @throws StoreException if the operation or its transaction failed; nothing of it committed
   */
  <T> T submit(String what, Op<T> op) {
    Pending<T> pending = new Pending<>(what, op);
    lock.lock();
    try {
      if (closing) {
        throw failures.closed();
      }
      queue.add(pending);
      workArrived.signal();
    } finally {
      lock.unlock();
    }
    try {
      return pending.done.join();
    } catch (CompletionException e) {
      throw onCallerThread(e.getCause());
    }
  }

  /** Rethrows a failure from the writer thread with the caller's stack trace on top. */
  private static RuntimeException onCallerThread(Throwable failure) {
    if (failure instanceof StoreException se) {
      return new StoreException(se.getMessage(), se.getCause() != null ? se.getCause() : se);
    }
    if (failure instanceof RuntimeException re) {
      return re;
    }
    if (failure instanceof Error err) {
      throw err;
    }
    return new StoreException(String.valueOf(failure), failure);
  }

  /** Stops taking operations, finishes the ones already handed over, and stops the thread. */
  @Override
  public void close() {
    lock.lock();
    try {
      closing = true;
      workArrived.signalAll();
    } finally {
      lock.unlock();
    }
    boolean interrupted = false;
    while (thread.isAlive()) {
      try {
        thread.join();
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
    tx.close();
  }

  long commits() {
    return commits.get();
  }

  long committedOps() {
    return committedOps.get();
  }

  long largestBatch() {
    return largestBatch.get();
  }

  /** How many operations are waiting for the writer; for tests. */
  int queued() {
    lock.lock();
    try {
      return queue.size();
    } finally {
      lock.unlock();
    }
  }

  // ---- the writer thread ----

  private void loop() {
    List<Pending<?>> batch = new ArrayList<>(maxBatchSize);
    while (takeBatch(batch)) {
      try {
        runBatch(batch, true);
        previousBatch = batch.size();
      } catch (Throwable t) {
        // Never leave a caller waiting forever, whatever went wrong.
        for (Pending<?> p : batch) {
          p.fail(failures.wrap(p.what, t));
        }
        rollbackQuietly();
      }
      batch.clear();
    }
  }

  /** Waits for work; false once closing and drained. */
  private boolean takeBatch(List<Pending<?>> batch) {
    lock.lock();
    try {
      while (queue.isEmpty()) {
        if (closing) {
          return false;
        }
        workArrived.awaitUninterruptibly();
      }
      moveQueued(batch);
      gatherUntil = System.nanoTime() + GATHER_NANOS;
      return true;
    } finally {
      lock.unlock();
    }
  }

  /**
   * Adds to the open transaction's batch the operations queued since it began, once the writer
   * has applied all it had. While the batch carries fewer than the last transaction did, waits
   * for more until {@link #gatherUntil}. False when nothing was added: the batch is complete.
   */
  private boolean topUp(List<Pending<?>> batch) {
    if (batch.size() >= maxBatchSize) {
      return false;
    }
    // A crowd: gather, for a moment, as many as the last transaction carried (see the class
    // comment). A lone writer, or a few, commit at once.
    int gatherUpTo = previousBatch >= CROWD ? previousBatch : 0; // at most maxBatchSize already
    lock.lock();
    try {
      while (queue.isEmpty() && batch.size() < gatherUpTo && !closing) {
        long left = gatherUntil - System.nanoTime();
        if (left <= 0) {
          break;
        }
        try {
          workArrived.awaitNanos(left);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
      }
      if (queue.isEmpty()) {
        return false;
      }
      moveQueued(batch);
      return true;
    } finally {
      lock.unlock();
    }
  }

  /** Moves the queued operations into {@code batch}, up to the batch size; with the lock held. */
  private void moveQueued(List<Pending<?>> batch) {
    while (!queue.isEmpty() && batch.size() < maxBatchSize) {
      batch.add(queue.poll());
    }
  }

  /**
   * Runs {@code batch} in one transaction. If {@code gather}, the operations queued while it
   * runs join it ({@link #topUp}), so {@code batch} must be mutable; on return it holds every
   * operation the transaction took.
   */
  private void runBatch(List<Pending<?>> batch, boolean gather) {
    if (!beginOrFail(batch)) {
      return;
    }
    List<Pending<?>> applied = new ArrayList<>(batch.size());
    for (int i = 0; i < batch.size() || (gather && topUp(batch)); i++) {
      Pending<?> p = batch.get(i);
      try {
        p.apply(tx);
        applied.add(p);
      } catch (RunRejectedException refused) {
        p.fail(refused); // wrote nothing: the others go on in the same transaction
      } catch (Throwable t) {
        // Roll back everything and run the operations again with a savepoint around each, so
        // that this one fails alone; refused ones already have their answer and stay out. A
        // lone operation needs no second run.
        rollbackQuietly();
        List<Pending<?>> again = new ArrayList<>(applied);
        again.addAll(batch.subList(i, batch.size()));
        if (again.size() == 1) {
          p.fail(failures.wrap(p.what, t));
        } else {
          runIsolated(again);
        }
        return;
      }
    }
    commit(batch, applied);
  }

  /** Runs a batch in one transaction with a savepoint per operation, so each can fail alone. */
  private void runIsolated(List<Pending<?>> batch) {
    if (!beginOrFail(batch)) {
      return;
    }
    List<Pending<?>> applied = new ArrayList<>(batch.size());
    for (int i = 0; i < batch.size(); i++) {
      Pending<?> p = batch.get(i);
      try {
        tx.execute("SAVEPOINT op");
        p.apply(tx);
        tx.execute("RELEASE op");
        applied.add(p);
      } catch (Throwable t) {
        tx.reset();
        if (rollbackToSavepoint()) {
          // Nothing of this operation remains in the transaction: it fails alone, now.
          p.fail(failures.wrap(p.what, t));
          continue;
        }
        // SQLite dropped the whole transaction (disk full, I/O error, ...): this operation
        // fails with what it met; what was applied before it is lost with the transaction, so
        // that and the rest of the batch run again, one per transaction.
        rollbackQuietly();
        p.fail(failures.wrap(p.what, t));
        List<Pending<?>> again = new ArrayList<>(applied);
        again.addAll(batch.subList(i + 1, batch.size()));
        runOneByOne(again);
        return;
      }
    }
    commit(batch, applied);
  }

  /** Commits the operations applied in the open transaction and hands out their results. */
  private void commit(List<Pending<?>> batch, List<Pending<?>> applied) {
    try {
      tx.execute("COMMIT");
    } catch (SQLException e) {
      rollbackQuietly();
      if (batch.size() == 1 || applied.size() <= 1) {
        for (Pending<?> p : applied) {
          p.fail(failures.wrap(p.what, e));
        }
      } else {
        runOneByOne(applied);
      }
      return;
    }
    commits.incrementAndGet();
    committedOps.addAndGet(applied.size());
    largestBatch.accumulateAndGet(applied.size(), Math::max);
    for (Pending<?> p : applied) {
      p.succeed();
    }
  }

  private void runOneByOne(List<Pending<?>> ops) {
    for (Pending<?> p : ops) {
      runBatch(List.of(p), false);
    }
  }

  /** Begins the batch's transaction; if that fails, fails every operation of it with the cause. */
  private boolean beginOrFail(List<Pending<?>> batch) {
    try {
      begin();
      return true;
    } catch (SQLException e) {
      for (Pending<?> p : batch) {
        p.fail(failures.wrap(p.what, e));
      }
      return false;
    }
  }

  /**
   * BEGIN IMMEDIATE takes the database's write lock now (waiting up to the busy timeout), so no
   * statement inside can fail later for want of it. Another process may hold the lock longer
   * than the busy timeout; try a few more times with a growing, jittered pause.
   */
  private void begin() throws SQLException {
    for (int attempt = 0; ; attempt++) {
      try {
        tx.execute("BEGIN IMMEDIATE");
        return;
      } catch (SQLException e) {
        if (!Failures.isBusy(e) || attempt >= busyRetries) {
          throw e;
        }
        pause(attempt);
      }
    }
  }

  static void pause(int attempt) {
    long base = 20L << Math.min(attempt, 6);
    long millis = base + ThreadLocalRandom.current().nextLong(base);
    try {
      Thread.sleep(Duration.ofMillis(millis));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private boolean rollbackToSavepoint() {
    try {
      tx.execute("ROLLBACK TO op");
      tx.execute("RELEASE op");
      return true;
    } catch (SQLException gone) {
      return false;
    }
  }

  /** Rolls back whatever transaction is open; first closes every statement still in progress. */
  private void rollbackQuietly() {
    tx.reset();
    try {
      if (!connection.isClosed()) {
        tx.execute("ROLLBACK");
      }
    } catch (SQLException ignored) {
      // no transaction left to roll back
    }
  }
}
