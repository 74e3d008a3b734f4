package dev.agentrunner.bench;

import dev.agentrunner.postgres.RawPostgres;
import java.sql.Connection;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.locks.LockSupport;

/**
 * Figure 5a: how fast four worker JVMs, each an {@code AgentRunner} on a
 * {@code PostgresRunStore} with a no-op agent, drain a queue of runs, against the raw rate of the
 * store's own statements for the same work: its {@code SKIP LOCKED} claim with a batch limit and
 * its fenced finish, issued through JDBC by four raw workers, each claim's runs finished in one
 * transaction. Both sides run in the same four child JVMs (a raw worker is one thread with its
 * own connection in each), alternately, on an identical freshly filled schema, rounds
 * interleaved; the figure is the median of the per-round ratios.
 *
 * <p>Each round drains a queue filled beforehand (set-up, untimed) and is timed from the moment
 * the harness tells the four workers to go to the last run's finish (the workers report the
 * {@link System#nanoTime()} of each finish; it is one clock for the whole machine). Afterwards
 * the schema must show every run SUCCEEDED on its first attempt with exactly one started and one
 * succeeded event, else the round does not count as measured.
 *
 * <p>Also, as information, the raw workers finishing each run in its own transaction (as the
 * store's autocommit finish does): what batching the finishes buys.
 */
final class PgThroughput {
  /** The claim limit of the raw workers: the runner's default concurrency, hence its largest claim. */
  static final int BATCH = 256;
  private static final Duration ROUND_TIMEOUT = Duration.ofMinutes(3);

  private PgThroughput() {}

  /** A measured round: runs drained per second, and whether every run ended as it should. */
  record Round(double perSecond, boolean checked, String outcome) {}

  static void run(Mode mode, Report report, String url, List<PgChild> workers)
      throws Exception {
    int runs = mode.pgRuns();
    int singleRuns = runs / 4; // one commit per run is slow: a quarter of the queue suffices
    int rounds = mode.pgRounds();
    System.err.printf("[5a] %d worker JVMs draining %,d queued runs: engine vs raw claim+finish"
        + " (batches of %d), %d interleaved rounds after a warm-up%n", workers.size(), runs,
        BATCH, rounds);
    // Warm-up: JIT, server-side plans, connection set-up, in every worker JVM.
    engineRound(url, workers, runs / 4);
    rawRound(url, workers, runs / 4, true);
    rawRound(url, workers, singleRuns / 4, false);
    double[] engine = new double[rounds];
    double[] batched = new double[rounds];
    double[] single = new double[rounds];
    boolean allChecked = true;
    StringBuilder failures = new StringBuilder();
    for (int r = 0; r < rounds; r++) {
      Round e = engineRound(url, workers, runs);
      Round b = rawRound(url, workers, runs, true);
      Round s = rawRound(url, workers, singleRuns, false);
      engine[r] = e.perSecond();
      batched[r] = b.perSecond();
      single[r] = s.perSecond();
      for (Round x : List.of(e, b, s)) {
        if (!x.checked()) {
          allChecked = false;
          failures.append(' ').append(x.outcome());
        }
      }
      System.err.printf(Locale.ROOT, "[5a] round %d: engine %s, raw batched %s, raw one commit"
              + " per finish %s (ratio %.2f)%n", r + 1, Fmt.rate(engine[r]),
          Fmt.rate(batched[r]), Fmt.rate(single[r]), engine[r] / batched[r]);
    }
    double ratio = Fmt.pairedRatio(engine, batched);
    report.row("5a", String.format(Locale.ROOT, "PostgreSQL: %d worker JVMs (AgentRunner +"
            + " PostgresRunStore, no-op agent) draining %,d queued runs, runs/s (median of %d"
            + " interleaved rounds) vs raw: the store's SKIP LOCKED claim (limit %d) and finish"
            + " statements over JDBC, each claim's finishes in one transaction, one thread and"
            + " connection in each of the same %d JVMs", workers.size(), runs, rounds, BATCH,
            workers.size()),
        Fmt.rateWithSpread(engine), "raw batched " + Fmt.rateWithSpread(batched),
        Fmt.ratio(ratio), "≥ 0.70",
        allChecked ? Report.atLeast(ratio, 0.70) : Report.Verdict.MISSED);
    report.row("5c", String.format(Locale.ROOT, "info: raw, one transaction per finish (as the"
            + " store's autocommit finish), %,d runs per round, vs raw batched: what batching"
            + " the finishes buys", singleRuns),
        "raw one commit per finish " + Fmt.rateWithSpread(single),
        "raw batched " + Fmt.rateWithSpread(batched),
        Fmt.ratio(Fmt.pairedRatio(single, batched)), "–", Report.Verdict.INFO);
    report.note(allChecked
        ? "5a: after every round (engine and raw) each run was SUCCEEDED on attempt 1 with"
            + " exactly one started and one succeeded event"
        : "5a: a round did not end with every run SUCCEEDED exactly once, so the figure is"
            + " void:" + failures);
  }

  /** One engine round: {@code runs} queued, then the workers' runners drain them. */
  static Round engineRound(String url, List<PgChild> workers, int runs) throws Exception {
    String schema = filled(url, runs);
    try {
      for (int i = 0; i < workers.size(); i++) {
        workers.get(i).send("engine " + schema + " engine-" + i);
      }
      for (PgChild w : workers) {
        w.expect("ready", Duration.ofSeconds(30));
        w.resetProgress();
      }
      long go = System.nanoTime();
      for (PgChild w : workers) {
        w.send("go");
      }
      long deadline = go + ROUND_TIMEOUT.toNanos();
      while (finished(workers) < runs) {
        if (System.nanoTime() - deadline > 0) {
          throw new IllegalStateException("engine round: " + finished(workers) + " of " + runs
              + " runs finished within " + ROUND_TIMEOUT);
        }
        LockSupport.parkNanos(1_000_000L);
      }
      long end = Long.MIN_VALUE;
      for (PgChild w : workers) {
        end = Math.max(end, w.lastFinishNanos());
      }
      for (PgChild w : workers) {
        w.send("stop");
      }
      for (PgChild w : workers) {
        w.expect("stopped", Duration.ofSeconds(60));
      }
      return checked(url, schema, runs, runs * 1e9 / (end - go));
    } finally {
      PostgresFigure.dropSchema(url, schema);
    }
  }

  /** One raw round: the workers claim and finish with the store's statements until empty. */
  static Round rawRound(String url, List<PgChild> workers, int runs, boolean batched)
      throws Exception {
    String schema = filled(url, runs);
    try {
      for (int i = 0; i < workers.size(); i++) {
        workers.get(i).send("raw " + schema + " raw-" + i + " " + BATCH + " "
            + (batched ? "batched" : "single"));
      }
      for (PgChild w : workers) {
        w.expect("ready", Duration.ofSeconds(30));
      }
      long go = System.nanoTime();
      for (PgChild w : workers) {
        w.send("go");
      }
      long end = Long.MIN_VALUE;
      for (PgChild w : workers) {
        String[] done = w.expect("done", ROUND_TIMEOUT).split(" ");
        end = Math.max(end, Long.parseLong(done[1]));
      }
      return checked(url, schema, runs, runs * 1e9 / (end - go));
    } finally {
      PostgresFigure.dropSchema(url, schema);
    }
  }

  private static long finished(List<PgChild> workers) {
    long n = 0;
    for (PgChild w : workers) {
      n += w.finished();
    }
    return n;
  }

  private static String filled(String url, int runs) throws Exception {
    String schema = PostgresFigure.freshSchema(url);
    try (Connection c = RawPostgres.open(url, "bench-fill")) {
      RawPostgres.fill(c, schema, runs);
    }
    return schema;
  }

  private static Round checked(String url, String schema, int runs, double perSecond)
      throws Exception {
    RawPostgres.Outcome outcome;
    try (Connection c = RawPostgres.open(url, "bench-check")) {
      outcome = RawPostgres.outcome(c, schema);
    }
    return new Round(perSecond, outcome.everyRunSucceededOnce(runs), outcome.toString());
  }
}
