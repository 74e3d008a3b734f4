package dev.agentrunner.bench;

import dev.agentrunner.RunRequest;
import dev.agentrunner.postgres.PostgresRunStore;
import dev.agentrunner.postgres.RawPostgres;
import dev.agentrunner.spi.NewRun;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * Figure 5b: cross-JVM submit → agent start on PostgreSQL, woken by LISTEN/NOTIFY. A worker JVM
 * runs a runner whose poll interval is {@link #POLL} (so only a notification can explain a start
 * within milliseconds); this JVM submits through its own {@code PostgresRunStore} at a steady
 * offered rate, open loop (each submit on its own virtual thread at its scheduled time, whether
 * or not earlier ones returned). Each run's input is its scheduled time in
 * {@link System#nanoTime()}, which on Linux is {@code CLOCK_MONOTONIC}, shared by every process
 * of the machine; the worker's agent records start minus scheduled time in an HdrHistogram and
 * sends it back encoded.
 *
 * <p>The baseline, in the same run, is the raw floor of that path at the same offered rate: a
 * raw insert (the store's statement, committed) and a {@code pg_notify} from this JVM, a raw
 * {@code LISTEN} connection in the same worker JVM that receives it and then commits the store's
 * claim statement; latency from the scheduled time to that claim's commit. The two sides take
 * turns ({@link #STRETCHES} each), every stretch on a fresh schema with its own warm-up.
 */
final class PgStartLatency {
  static final String AGENT = "probe";
  static final String FLOOR_AGENT = "floor";
  /** Offered submits per second: well within what this 2-core machine sustains. */
  static final int RATE = 200;
  /** The worker runner's poll interval: long, so that polling cannot explain a low latency. */
  static final Duration POLL = Duration.ofSeconds(5);
  /** Connections the floor's submitters share: enough for the offered rate, like a pool. */
  private static final int FLOOR_CONNECTIONS = 4;
  /**
   * Engine and floor take turns, this many stretches each, so that a neighbour's burst of work
   * lands on both sides rather than on one.
   */
  private static final int STRETCHES = 2;

  private PgStartLatency() {}

  /** Submits one run whose input is {@code input}. */
  @FunctionalInterface
  private interface Submit {
    void submit(String input) throws Exception;
  }

  /** What one stretch of offered load gave on the submitting side. */
  private record Offered(Histogram submits, long offered, long late) {}

  static void run(Mode mode, Report report, String url, PgChild worker) throws Exception {
    Duration warm = mode.latencyWarmup().dividedBy(STRETCHES);
    Duration measure = mode.pgLatencyMeasure().dividedBy(STRETCHES);
    System.err.printf("[5b] cross-JVM submit → start at %d runs/s, worker poll %s: engine and"
        + " floor alternately, %d stretches each of %s warm-up + %s%n", RATE, POLL, STRETCHES,
        warm, measure);
    Histogram engine = new Histogram(3);
    Histogram submits = new Histogram(3);
    Histogram floor = new Histogram(3);
    long offered = 0;
    long late = 0;
    for (int i = 0; i < STRETCHES; i++) {
      Offered e = engineStretch(url, worker, warm, measure, engine);
      submits.add(e.submits());
      offered += e.offered();
      late += e.late();
      floorStretch(url, worker, warm, measure, floor);
    }
    double p50 = engine.getValueAtPercentile(50) / (double) floor.getValueAtPercentile(50);
    double p99 = engine.getValueAtPercentile(99) / (double) floor.getValueAtPercentile(99);
    report.row("5b", String.format(Locale.ROOT, "PostgreSQL cross-JVM submit → agent start"
            + " (LISTEN/NOTIFY; worker poll interval %d s), %d runs/s offered, open loop, %,d"
            + " runs: p50 / p99 / p99.9", POLL.toSeconds(), RATE, engine.getTotalCount()),
        Fmt.percentiles(engine), "raw floor (insert commit + pg_notify → LISTEN in the worker"
            + " JVM → claim commit) " + Fmt.percentiles(floor),
        String.format(Locale.ROOT, "p50 %.2f× / p99 %.2f× floor", p50, p99), "– (none given)",
        Report.Verdict.INFO);
    report.latency("5b", "engine: scheduled submit → agent start in the worker JVM, "
        + RATE + "/s offered", engine);
    report.latency("5b", "engine: scheduled submit → store.insert() returned in this JVM",
        submits);
    report.latency("5b", "raw floor: scheduled submit → claim committed in the worker JVM",
        floor);
    if (late > 0) {
      report.note("5b: the pacer was more than 1 ms late for " + late + " of " + offered
          + " submits to the engine (CPU contention); the latency counts from the scheduled"
          + " time regardless");
    }
  }

  /**
   * The engine's side for one stretch: a fresh schema, the worker's runner on it, submits
   * through this JVM's store; adds the worker's start latencies to {@code starts}.
   */
  private static Offered engineStretch(String url, PgChild worker, Duration warm,
      Duration measure, Histogram starts) throws Exception {
    String schema = PostgresFigure.freshSchema(url);
    try {
      worker.send("latency " + schema + " latency-worker " + POLL.toMillis());
      worker.expect("ready", Duration.ofSeconds(30));
      Offered offered;
      try (PostgresRunStore store = PostgresRunStore.builder(url).schema(schema).build()) {
        offered = offer(warm, measure,
            input -> store.insert(NewRun.of(RunRequest.of(AGENT, input))));
        awaitQueueEmpty(url, schema);
      }
      worker.send("report");
      starts.add(PgWorker.decode(worker.expect("histogram", Duration.ofSeconds(60))));
      return offered;
    } finally {
      PostgresFigure.dropSchema(url, schema);
    }
  }

  /**
   * The floor's side for one stretch: a fresh schema, the worker's raw LISTEN connection on
   * it, raw inserts and notifications from this JVM; adds the claim latencies to
   * {@code claims}.
   */
  private static void floorStretch(String url, PgChild worker, Duration warm, Duration measure,
      Histogram claims) throws Exception {
    String schema = PostgresFigure.freshSchema(url);
    BlockingQueue<RawPostgres> connections = new ArrayBlockingQueue<>(FLOOR_CONNECTIONS);
    try {
      worker.send("rawlisten " + schema + " floor-worker");
      worker.expect("ready", Duration.ofSeconds(30));
      for (int i = 0; i < FLOOR_CONNECTIONS; i++) {
        connections.add(new RawPostgres(url, schema, "bench-floor-submit"));
      }
      offer(warm, measure, input -> {
        RawPostgres raw = connections.take();
        try {
          raw.insert(FLOOR_AGENT, input);
          raw.notifyChannel("bench-floor");
        } finally {
          connections.add(raw);
        }
      });
      awaitQueueEmpty(url, schema);
      worker.send("report");
      claims.add(PgWorker.decode(worker.expect("histogram", Duration.ofSeconds(60))));
    } finally {
      for (RawPostgres raw : connections) {
        raw.close();
      }
      PostgresFigure.dropSchema(url, schema);
    }
  }

  /**
   * Offers {@link #RATE} submits per second for {@code warm + measure}, each on its own virtual
   * thread at its scheduled time; the inputs of the warm-up carry a mark so the worker skips
   * them.
   */
  private static Offered offer(Duration warm, Duration measure, Submit submit)
      throws InterruptedException {
    Recorder submits = new Recorder(3);
    LongAdder returned = new LongAdder();
    AtomicReference<Throwable> failure = new AtomicReference<>();
    long begin = System.nanoTime() + 10_000_000L;
    long recordFrom = begin + warm.toNanos();
    Load.Paced paced = Load.pace(RATE, begin, recordFrom + measure.toNanos(), due -> {
      boolean measured = due - recordFrom >= 0;
      String input = measured ? Long.toString(due) : due + " w";
      Thread.startVirtualThread(() -> {
        try {
          submit.submit(input);
          if (measured) {
            submits.recordValue(Math.max(0, System.nanoTime() - due));
          }
        } catch (Throwable e) {
          failure.compareAndSet(null, e);
        } finally {
          returned.increment();
        }
      });
    });
    long deadline = System.nanoTime() + 30_000_000_000L;
    while (returned.sum() < paced.offered() && System.nanoTime() - deadline < 0) {
      LockSupport.parkNanos(1_000_000L);
    }
    if (failure.get() != null) {
      throw new IllegalStateException("a submit failed", failure.get());
    }
    return new Offered(submits.getIntervalHistogram(), paced.offered(), paced.late());
  }

  /** Waits until the worker has claimed every submitted run (none left QUEUED). */
  private static void awaitQueueEmpty(String url, String schema) throws Exception {
    try (Connection c = RawPostgres.open(url, "bench-check");
        PreparedStatement ps = c.prepareStatement(
            "SELECT count(*) FROM \"" + schema + "\".runs WHERE status = 'QUEUED'")) {
      long deadline = System.nanoTime() + 30_000_000_000L;
      while (true) {
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          if (rs.getLong(1) == 0) {
            return;
          }
        }
        if (System.nanoTime() - deadline > 0) {
          throw new IllegalStateException("runs still queued in " + schema + " after 30 s");
        }
        Thread.sleep(20);
      }
    }
  }
}
