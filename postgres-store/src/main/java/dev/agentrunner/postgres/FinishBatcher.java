package dev.agentrunner.postgres;

import dev.agentrunner.RunRecord;
import dev.agentrunner.StoreException;
import dev.agentrunner.spi.Finish;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntSupplier;

/**
 * Combines terminal finishes that arrive at the same time into one statement and one commit.
 *
 * <p>Why: a runner ends each run from the run's own thread, so a busy runner sends many
 * finishes at once, and as separate transactions each waits for its own WAL flush. Measured
 * with four worker JVMs draining a queue (benchmark figure 5a), one commit per finish made the
 * runners' connections spend most of their time waiting on the WAL (wait event
 * {@code LWLock:WALWrite}).
 *
 * <p>How: a caller queues its finish and, if no other caller is executing a batch, leads: it
 * executes the queued finishes itself as one batch ({@link Sql#finishTerminal}, one autocommit
 * statement), then wakes the callers it served; otherwise it parks until a batch containing its
 * finish has run, or until it may lead the next batch. Before a batch, while other runs this
 * store claimed are still running, the leader waits for their finishes as long as they keep
 * arriving, at most {@link #MAX_GATHER_NANOS} ({@link #gather}). A finish with no claimed run
 * still running (a lone run, the last of a claim) runs at once, on its caller's thread.
 *
 * <p>The contract is unchanged: each finish in the statement is fenced by its own attempt and
 * owner and writes its own event; a finish whose fence does not match changes nothing and gets
 * an empty result. Two finishes of one run never share a batch (the second goes in the next,
 * where it finds the fence closed). If the batch statement fails for a reason other than a lost
 * connection, the server rolled it back, so each finish is run again alone and gets its own
 * result or error; a lost connection fails every finish of the batch, since the commit may have
 * happened (the runner retries a failed finish, and the fence makes that safe).
 *
 * <p>Thread-safety: thread-safe. At most one batch per store runs at a time.
 */
final class FinishBatcher {
  /** The most finishes one statement carries. */
  static final int MAX_BATCH = 512;
  /** A gathering leader stops once no finish arrived for this long. */
  static final long QUIET_NANOS = 100_000;
  /** ... and in any case after this long. */
  static final long MAX_GATHER_NANOS = 2_000_000;

  /** Executes one batch: the runs it changed by id, and whether any should wake other nodes. */
  @FunctionalInterface
  interface Executor {
    Rows.Changed execute(List<Request> batch);
  }

  /** One caller's finish and, once its batch ran, its outcome. */
  static final class Request {
    final Finish finish;
    final String output;
    final String error;
    private final Thread waiter = Thread.currentThread();
    private RunRecord result;
    private RuntimeException failure;
    private volatile boolean done;

    Request(Finish finish, String output, String error) {
      this.finish = finish;
      this.output = output;
      this.error = error;
    }

    private void complete(RunRecord run, RuntimeException problem) {
      result = run;
      failure = problem;
      done = true; // publishes result and failure
      LockSupport.unpark(waiter);
    }
  }

  private final ConcurrentLinkedQueue<Request> queue = new ConcurrentLinkedQueue<>();
  /** How many finishes are in {@link #queue}. */
  private final AtomicInteger waiting = new AtomicInteger();
  private final AtomicBoolean leading = new AtomicBoolean();
  private final Executor executor;
  private final Runnable wake;
  private final IntSupplier stillRunning;

  /**
   * @param executor runs one batch as one statement
   * @param wake called after a batch that ended a serial-keyed run (other nodes may claim the
   *     next run of its key)
   * @param stillRunning how many runs this store claimed whose finish has not been asked for
   *     yet: the finishes that may still join a batch
   */
  FinishBatcher(Executor executor, Runnable wake, IntSupplier stillRunning) {
    this.executor = executor;
    this.wake = wake;
    this.stillRunning = stillRunning;
  }

  /** How many finishes are queued for the next batch; for tests. */
  int waiting() {
    return waiting.get();
  }

  /** Finishes one run, in a batch with whatever finishes arrive meanwhile. */
  Optional<RunRecord> finish(Finish finish, String output, String error) {
    // The interrupt status belongs to the caller's run, not to the batch: a socket read on an
    // interrupted thread would break the connection for every finish in it, and park would
    // not park. Set aside here, restored on the way out.
    boolean interrupted = Thread.interrupted();
    Request mine = new Request(finish, output, error);
    queue.add(mine);
    waiting.incrementAndGet();
    try {
      while (!mine.done) {
        if (leading.compareAndSet(false, true)) {
          try {
            lead(mine);
          } finally {
            leading.set(false);
          }
          // A finish queued after our last look but before we let go found us leading and
          // parked: hand the lead to its caller.
          Request next = queue.peek();
          if (next != null) {
            LockSupport.unpark(next.waiter);
          }
        } else {
          LockSupport.park(this);
          interrupted |= Thread.interrupted();
        }
      }
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
    if (mine.failure != null) {
      throw mine.failure;
    }
    return Optional.ofNullable(mine.result);
  }

  /** Runs batches until our own finish is done; at most {@link #MAX_BATCH} finishes each. */
  private void lead(Request mine) {
    Request awaited = mine;
    List<Request> later = new ArrayList<>();
    gather();
    while (!awaited.done) {
      List<Request> batch = new ArrayList<>();
      Set<Long> runs = new HashSet<>();
      for (Request r : later) {
        if (runs.add(r.finish.runId())) {
          batch.add(r);
        }
      }
      later.removeAll(batch);
      Request r;
      while (batch.size() < MAX_BATCH && (r = queue.poll()) != null) {
        waiting.decrementAndGet();
        if (runs.add(r.finish.runId())) {
          batch.add(r);
        } else {
          later.add(r); // a second finish of the same run: in the next batch
        }
      }
      if (batch.isEmpty()) {
        return; // cannot happen while the awaited finish is not done; defensive
      }
      run(batch);
      if (awaited.done && !later.isEmpty()) {
        awaited = later.get(0); // lead on until the deferred ones ran too
      }
    }
  }

  /**
   * Before a batch, while runs this store claimed are still running: waits for their finishes
   * for as long as they keep arriving (none for {@link #QUIET_NANOS} ends it, and so does
   * {@link #MAX_GATHER_NANOS}, a full batch, or no run left). The runs of one claim tend to end
   * together (the agents of a claim start together), and one statement for all of them, rather
   * than for whichever were queued when the first came, also lets their permits come back
   * together, so that the runner's next claim is one large claim instead of several small ones.
   * A lone run, or the last of its claim, does not wait.
   */
  private void gather() {
    if (stillRunning.getAsInt() <= 0) {
      return;
    }
    long start = System.nanoTime();
    long lastArrival = start;
    int seen = waiting.get();
    while (seen < MAX_BATCH && stillRunning.getAsInt() > 0) {
      Thread.yield(); // to the threads about to finish, if any are ready to run
      int now = waiting.get();
      long t = System.nanoTime();
      if (now > seen) {
        seen = now;
        lastArrival = t;
      } else if (t - lastArrival > QUIET_NANOS || t - start > MAX_GATHER_NANOS) {
        return;
      } else {
        LockSupport.parkNanos(20_000);
      }
    }
  }

  private void run(List<Request> batch) {
    try {
      Rows.Changed changed = executor.execute(batch);
      complete(batch, changed);
    } catch (StoreException e) {
      if (batch.size() == 1 || lostConnection(e)) {
        for (Request r : batch) {
          r.complete(null, e);
        }
        return;
      }
      // Rolled back as a whole: find out which finish the server refused, and give every
      // other one its own result.
      for (Request r : batch) {
        try {
          complete(List.of(r), executor.execute(List.of(r)));
        } catch (RuntimeException alone) {
          r.complete(null, alone);
        }
      }
    } catch (RuntimeException e) {
      for (Request r : batch) {
        r.complete(null, e);
      }
    }
  }

  private void complete(List<Request> batch, Rows.Changed changed) {
    Map<Long, RunRecord> byId = new java.util.HashMap<>();
    for (RunRecord run : changed.runs()) {
      byId.put(run.id(), run);
    }
    if (changed.wake()) {
      wake.run();
    }
    for (Request r : batch) {
      r.complete(byId.get(r.finish.runId()), null);
    }
  }

  private static boolean lostConnection(StoreException e) {
    return e.getCause() instanceof SQLException s && Failures.isConnectionLoss(s);
  }
}
