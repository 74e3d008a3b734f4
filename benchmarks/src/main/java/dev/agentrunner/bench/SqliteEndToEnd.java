package dev.agentrunner.bench;

import dev.agentrunner.Agent;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.RunListener;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.sqlite.SqliteRunStore;
import java.io.IOException;
import java.nio.file.Path;
import java.sql.SQLException;
import java.util.Locale;
import org.HdrHistogram.Histogram;

/**
 * Figure 2: durable SQLite end to end (submit, claim, execute, finish; no-op agent; 8
 * submitting threads) against (a) the naive rate, the queue path with every statement its own
 * transaction, and (b) the raw JDBC ceiling, the engine's own statements hand-batched in
 * transactions as large as the engine's own were in the same round. Once with
 * {@code synchronous=FULL}, once with NORMAL. See {@link RawSqlite} for both paths.
 */
final class SqliteEndToEnd {
  static final int SUBMITTERS = 8;
  /** The store's default maxBatchSize: the largest transaction its writer commits. */
  static final int BIG_BATCH = 256;
  private static final Agent NOOP = Load::noop;

  private SqliteEndToEnd() {}

  /** One engine round and what its writer did. */
  record EngineRound(Load.Round round, WriterStats.Snapshot writer) {
    /** Runs per commit: the transaction size the ceiling copies. */
    double runsPerCommit() {
      return writer.commits() > 0 ? (double) round.runs() / writer.commits() : Double.NaN;
    }
  }

  static void run(Mode mode, Report report, Path dir, SqliteRunStore.Durability durability)
      throws Exception {
    String tag = "2" + (durability == SqliteRunStore.Durability.FULL ? "" : "n");
    System.err.printf("[%s] SQLite end to end, synchronous=%s: warm-up%n", tag, durability);
    EngineRound warm = engineRound(mode, dir, durability);
    int warmBatch = batchOf(warm);
    try (Db db = new Db(dir, durability)) {
      db.raw.naive(mode.sqliteRound().dividedBy(3));
    }
    try (Db db = new Db(dir, durability)) {
      db.raw.ceiling(mode.sqliteRound().dividedBy(3), warmBatch, false);
    }
    int rounds = mode.rounds();
    double[] engine = new double[rounds];
    double[] naive = new double[rounds];
    double[] ceiling = new double[rounds];
    double[] batch = new double[rounds];
    double[] opsPerCommit = new double[rounds];
    double[] bigCeiling = new double[rounds];
    double[] savepointCeiling = new double[rounds];
    double[] naiveOwn = new double[rounds];
    double[] opsPerRun = new double[rounds];
    // The savepoint diagnostic (2nd) prices CPU work, not fsyncs: measured once, with NORMAL,
    // where a neighbour's fsyncs disturb it least. The naive rate of the engine's own path
    // (2d) is about commits: measured with FULL.
    boolean diagnostics = durability == SqliteRunStore.Durability.NORMAL;
    boolean full = durability == SqliteRunStore.Durability.FULL;
    Histogram engineLatency = new Histogram(3);
    Histogram naiveLatency = new Histogram(3);
    Histogram ceilingLatency = new Histogram(3);
    for (int r = 0; r < rounds; r++) {
      EngineRound e = engineRound(mode, dir, durability);
      engine[r] = e.round().perSecond();
      engineLatency.add(e.round().latency());
      int k = batchOf(e);
      batch[r] = e.runsPerCommit();
      opsPerCommit[r] = (double) e.writer().ops() / e.writer().commits();
      opsPerRun[r] = (double) e.writer().ops() / e.round().runs();
      Load.Round n;
      try (Db db = new Db(dir, durability)) {
        n = db.raw.naive(mode.sqliteRound());
      }
      naive[r] = n.perSecond();
      naiveLatency.add(n.latency());
      Load.Round c;
      try (Db db = new Db(dir, durability)) {
        c = db.raw.ceiling(mode.sqliteRound(), k, false);
      }
      ceiling[r] = c.perSecond();
      ceilingLatency.add(c.latency());
      // Diagnostics, half a window each: the same transactions with the writer's per-operation
      // savepoints, and the ceiling at the writer's largest batch (what "x naive" can reach).
      if (diagnostics) {
        try (Db db = new Db(dir, durability)) {
          savepointCeiling[r] = db.raw.ceiling(mode.sqliteRound().dividedBy(2), k, true)
              .perSecond();
        }
      }
      if (full) {
        try (Db db = new Db(dir, durability)) {
          naiveOwn[r] = db.raw.naiveOwnPath(mode.sqliteRound().dividedBy(2)).perSecond();
        }
      }
      try (Db db = new Db(dir, durability)) {
        bigCeiling[r] = db.raw.ceiling(mode.sqliteRound().dividedBy(2), BIG_BATCH, false)
            .perSecond();
      }
      System.err.printf(Locale.ROOT,
          "[%s] round %d: engine %s (%.1f runs and %.1f writer ops per commit), naive %s,"
              + " ceiling at %d runs/tx %s%s, at %d runs/tx %s%n",
          tag, r + 1, Fmt.rate(engine[r]), batch[r], opsPerCommit[r], Fmt.rate(naive[r]), k,
          Fmt.rate(ceiling[r]), diagnostics
              ? " (with savepoints " + Fmt.rate(savepointCeiling[r]) + ")"
              : " (naive on the engine's path " + Fmt.rate(naiveOwn[r]) + ")",
          BIG_BATCH, Fmt.rate(bigCeiling[r]));
    }
    double vsNaive = Fmt.pairedRatio(engine, naive);
    double vsCeiling = Fmt.pairedRatio(engine, ceiling);
    String what = "SQLite synchronous=" + durability + ", end to end, no-op agent, " + SUBMITTERS
        + " submitters, runs/s (median of " + rounds + " interleaved rounds)";
    report.row(tag + "a", what + " vs naive (the queue path, one transaction per statement:"
            + " 6 commits per run)",
        Fmt.rateWithSpread(engine), "naive " + Fmt.rateWithSpread(naive), Fmt.ratio(vsNaive),
        "≥ 10", Report.atLeast(vsNaive, 10));
    report.row(tag + "b", what + " vs raw JDBC ceiling (the engine's statements, same runs per"
            + " transaction: " + String.format(Locale.ROOT, "%.1f", Fmt.median(batch)) + ")",
        Fmt.rateWithSpread(engine), "ceiling " + Fmt.rateWithSpread(ceiling),
        Fmt.ratio(vsCeiling), "≥ 0.50", Report.atLeast(vsCeiling, 0.5));
    report.row(tag + "c", "info: raw JDBC ceiling at " + BIG_BATCH + " runs per transaction"
            + " (the writer's largest batch) vs naive: about the most an engine running these"
            + " statements could reach",
        "ceiling " + Fmt.rateWithSpread(bigCeiling), "naive " + Fmt.rateWithSpread(naive),
        Fmt.ratio(Fmt.pairedRatio(bigCeiling, naive)), "–", Report.Verdict.INFO);
    if (diagnostics) {
      report.row(tag + "d", "info: raw JDBC ceiling at the engine's transaction size, with a"
              + " SAVEPOINT/RELEASE around each operation (the writer's old way) vs without",
          "with savepoints " + Fmt.rateWithSpread(savepointCeiling),
          "without " + Fmt.rateWithSpread(ceiling),
          Fmt.ratio(Fmt.pairedRatio(savepointCeiling, ceiling)), "–",
          Report.Verdict.INFO);
    }
    if (full) {
      report.row(tag + "d", "info: naive on the engine's own path (check, insert claimed +"
              + " events, finish + event; 3 commits per run) vs naive on the queue path",
          "naive, engine's path " + Fmt.rateWithSpread(naiveOwn),
          "naive, queue path " + Fmt.rateWithSpread(naive),
          Fmt.ratio(Fmt.pairedRatio(naiveOwn, naive)), "–", Report.Verdict.INFO);
      report.note(String.format(Locale.ROOT, "%sa: against the naive rate of its own path"
          + " (%sd) the engine reaches %.2f×", tag, tag, Fmt.pairedRatio(engine, naiveOwn)));
    }
    report.note(String.format(Locale.ROOT, "%s: the engine's writer committed %.1f runs and %.1f"
            + " operations per transaction (median), %.2f operations per run (2.00: each run"
            + " started by its submit, one insert-and-claim and one finish)", tag,
        Fmt.median(batch), Fmt.median(opsPerCommit), Fmt.median(opsPerRun)));
    report.latency(tag, "engine (" + durability + "): submit → finished (closed-loop burst)",
        engineLatency);
    report.latency(tag, "naive (" + durability + "): insert → finished, queue path, 6 commits",
        naiveLatency);
    report.latency(tag, "ceiling (" + durability + "): one transaction", ceilingLatency);
  }

  private static int batchOf(EngineRound e) {
    double k = e.runsPerCommit();
    return Double.isNaN(k) ? 8 : (int) Math.max(1, Math.round(k));
  }

  static EngineRound engineRound(Mode mode, Path dir, SqliteRunStore.Durability durability)
      throws Exception {
    Path file = Db.fresh(dir);
    try {
      Load.Finishes finishes = new Load.Finishes();
      RunListener listener = new RunListener() {
        @Override
        public void onFinished(RunRecord run) {
          finishes.finished(run.input());
        }
      };
      try (SqliteRunStore store = SqliteRunStore.builder(file).durability(durability).build();
          AgentRunner runner = AgentRunner.builder().store(store).agent("noop", NOOP)
              .listener(listener).build()) {
        WriterStats.Snapshot before = WriterStats.of(store);
        Load.Round round = Load.closedLoop(SUBMITTERS, mode.sqliteRound(), finishes,
            t0 -> runner.submit(RunRequest.of("noop", Long.toString(t0))));
        return new EngineRound(round, WriterStats.of(store).minus(before));
      }
    } finally {
      RawSqlite.delete(file);
    }
  }

  /** A fresh database file with a raw connection on it, deleted on close. */
  static final class Db implements AutoCloseable {
    private static int seq;
    final Path file;
    final RawSqlite raw;

    Db(Path dir, SqliteRunStore.Durability durability) throws SQLException {
      file = fresh(dir);
      raw = new RawSqlite(file, durability);
    }

    static synchronized Path fresh(Path dir) {
      return dir.resolve("bench-" + (++seq) + ".db");
    }

    @Override
    public void close() throws SQLException, IOException {
      raw.close();
      RawSqlite.delete(file);
    }
  }
}
