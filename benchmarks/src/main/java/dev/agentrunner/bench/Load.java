package dev.agentrunner.bench;

import dev.agentrunner.AgentContext;
import dev.agentrunner.AgentResult;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * The closed-loop load both sides of a throughput figure share: N submitting platform threads
 * that submit as fast as they can for a fixed window, with at most {@link #IN_FLIGHT} runs
 * submitted but not yet finished (a submitter waits for a finish beyond that), then a wait until
 * every submitted run has finished. The bound makes a round measure the sustained rate rather
 * than how fast an ever-growing backlog drains, and keeps latencies meaningful (Little's law).
 * Each run's input is the {@link System#nanoTime()} of its submit, so whoever sees the run
 * finish can record its submit-to-finish latency without a map.
 */
final class Load {
  /** Runs in flight at most: four times the runner's default concurrency, so it never idles. */
  static final int IN_FLIGHT = 1024;

  private Load() {}

  /** Submits one run whose input is {@code submitNanos}. */
  @FunctionalInterface
  interface Submitter {
    void submit(long submitNanos) throws Exception;
  }

  /**
   * One measured round: how many runs finished, over how long, and their latencies; for
   * closed-loop rounds also what the whole process spent on it (else null).
   */
  record Round(long runs, long nanos, Histogram latency, Spent spent) {
    Round(long runs, long nanos, Histogram latency) {
      this(runs, nanos, latency, null);
    }

    double perSecond() {
      return runs * 1e9 / nanos;
    }

    /** CPU time of the whole process per run, in microseconds. */
    double cpuMicrosPerRun() {
      return spent.cpuNanos() / 1e3 / runs;
    }

    /** Bytes allocated by all threads per run. */
    double bytesPerRun() {
      return (double) spent.allocatedBytes() / runs;
    }

    /** The share of the round's wall time the collector's pauses took. */
    double gcShare() {
      return spent.gcMillis() * 1e6 / nanos;
    }
  }

  /**
   * What the process spent over a round: CPU time of all its threads (the machine's other
   * load does not count), bytes allocated, and collector pause time. Robust where rates are
   * not: on a shared machine a neighbour slows a round down but hardly changes what a run
   * costs the process.
   */
  record Spent(long cpuNanos, long allocatedBytes, long gcMillis) {
    static Spent now() {
      long gc = 0;
      for (GarbageCollectorMXBean bean : ManagementFactory.getGarbageCollectorMXBeans()) {
        gc += Math.max(0, bean.getCollectionTime());
      }
      return new Spent(
          ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
              .getProcessCpuTime(),
          ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean())
              .getTotalThreadAllocatedBytes(),
          gc);
    }

    Spent minus(Spent before) {
      return new Spent(cpuNanos - before.cpuNanos, allocatedBytes - before.allocatedBytes,
          gcMillis - before.gcMillis);
    }
  }

  /** Counts finished runs and records their latency; shared by the finisher and the waiter. */
  static final class Finishes {
    private final LongAdder finished = new LongAdder();
    private final Recorder latency = new Recorder(3);
    private final Semaphore inFlight = new Semaphore(IN_FLIGHT);

    /** Called once per finished run with the run's input (its submit time). */
    void finished(String input) {
      latency.recordValue(Math.max(0, System.nanoTime() - Long.parseLong(input)));
      finished.increment();
      inFlight.release();
    }

    long count() {
      return finished.sum();
    }

    /**
     * Waits until {@code expected} runs finished. Polls every 200 µs: a round lasts seconds, so
     * the poll adds at most 0.01% to it, and nothing in the measured path has to signal.
     */
    void await(long expected, Duration timeout) {
      long deadline = System.nanoTime() + timeout.toNanos();
      while (finished.sum() < expected) {
        if (System.nanoTime() - deadline > 0) {
          throw new IllegalStateException("only " + finished.sum() + " of " + expected
              + " runs finished within " + timeout);
        }
        LockSupport.parkNanos(200_000);
      }
    }

    Histogram histogram() {
      return latency.getIntervalHistogram();
    }
  }

  /**
   * Runs {@code threads} submitters for {@code window}, then waits for every run to finish.
   *
   * @return the round, timed from the first submit to the last finish
   */
  static Round closedLoop(int threads, Duration window, Finishes finishes, Submitter submitter)
      throws InterruptedException {
    AtomicLong submitted = new AtomicLong();
    CountDownLatch go = new CountDownLatch(1);
    long[] start = new long[1];
    List<Thread> workers = new ArrayList<>();
    Throwable[] failure = new Throwable[1];
    long windowNanos = window.toNanos();
    for (int t = 0; t < threads; t++) {
      workers.add(Thread.ofPlatform().name("submitter-" + t).start(() -> {
        try {
          go.await();
          long end = start[0] + windowNanos;
          long mine = 0;
          long now;
          while ((now = System.nanoTime()) - end < 0) {
            finishes.inFlight.acquire();
            submitter.submit(System.nanoTime());
            mine++;
          }
          submitted.addAndGet(mine);
        } catch (Throwable e) {
          failure[0] = e;
        }
      }));
    }
    Spent before = Spent.now();
    start[0] = System.nanoTime();
    go.countDown();
    for (Thread w : workers) {
      w.join();
    }
    if (failure[0] != null) {
      throw new IllegalStateException("a submitter failed", failure[0]);
    }
    finishes.await(submitted.get(), Duration.ofMinutes(5));
    long nanos = System.nanoTime() - start[0];
    return new Round(submitted.get(), nanos, finishes.histogram(), Spent.now().minus(before));
  }


  /** What an open-loop pacer offered: how many scheduled times, and how many it reached late. */
  record Paced(long offered, long late) {}

  /**
   * The open loop of the latency figures: calls {@code atDue} with each scheduled time,
   * {@code rate} per second from {@code begin} until {@code end} ({@link System#nanoTime}),
   * waiting for each time on the caller's thread whatever the earlier calls are doing
   * ({@code atDue} should hand its work to another thread). A call more than 1 ms after its time
   * counts as late: the pacer itself was behind (CPU contention); the figures count latency from
   * the scheduled time regardless.
   */
  static Paced pace(int rate, long begin, long end, java.util.function.LongConsumer atDue) {
    long interval = 1_000_000_000L / rate;
    long i = 0;
    long late = 0;
    for (long due = begin; due - end < 0; due = begin + (++i) * interval) {
      long wait;
      while ((wait = due - System.nanoTime()) > 0) {
        LockSupport.parkNanos(wait);
      }
      if (System.nanoTime() - due > 1_000_000L) {
        late++;
      }
      atDue.accept(due);
    }
    return new Paced(i, late);
  }

  /** The no-op agent every throughput figure runs: all the cost is the runner's. */
  static AgentResult noop(AgentContext ctx) {
    return AgentResult.of("");
  }
}
