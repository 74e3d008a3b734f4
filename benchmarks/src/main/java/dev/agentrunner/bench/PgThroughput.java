package dev.agentrunner.bench;

import dev.agentrunner.postgres.RawPostgres;
import java.sql.Connection;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.locks.LockSupport;

/**
 * Figure 5a: how fast four worker JVMs, each an {@code AgentRunner} on a
 * {@code PostgresRunStore} with a no-op agent, drain a queue of runs, against the raw rate of the
 * store's own statements for the same work: its {@code SKIP LOCKED} claim with a batch limit and
 * its fenced finish statement, issued through JDBC by four raw workers, each claim's runs
 * finished in one statement and transaction. Both sides run in the same four child JVMs (a raw
 * worker is one thread with its own connection in each, so JVM start-up, JIT and the process
 * count are the same for both), alternately, each round on an identical freshly filled queue;
 * the figure is the median of the per-round ratios.
 *
 * <p>Each round drains a queue filled beforehand (set-up, untimed) and is timed from the moment
 * the harness tells the four workers to go to the last run's finish (the workers report the
 * {@link System#nanoTime()} of each finish; on Linux one clock for the whole machine).
 * Afterwards the schema must show every run SUCCEEDED on its first attempt with exactly one
 * started and one succeeded event, else the figure is void.
 *
 * <p>Also measured, to say where the time goes: how many runs each claim and finish statement
 * carried (counted in the database), and the CPU time per run of the worker JVMs and of the
 * server backends ({@link CpuUse}). And, as information, the raw workers finishing each run in
 * its own transaction: what batching the finishes buys.
 *
 * <p>Thread-safety: not thread-safe; one instance per figure, on the harness's main thread.
 */
final class PgThroughput {
  /** The raw workers' claim limit: the runner's default concurrency, hence its largest claim. */
  static final int BATCH = 256;
  /** At most this many runs per round for the raw workers finishing one run per transaction. */
  private static final int SINGLE_RUNS = 5_000;
  private static final Duration ROUND_TIMEOUT = Duration.ofMinutes(3);

  private final String url;
  private final List<PgChild> workers;
  /** The harness's own connection: fills, checks, CPU readings. */
  private final Connection admin;
  /**
   * One schema for every engine round and one for every raw round, emptied and filled again
   * before each: the workers keep their store and connections from round to round, as a
   * long-running worker would.
   */
  private final String engineSchema;
  private final String rawSchema;

  private PgThroughput(String url, List<PgChild> workers, Connection admin, String engineSchema,
      String rawSchema) {
    this.url = url;
    this.workers = workers;
    this.engineSchema = engineSchema;
    this.rawSchema = rawSchema;
    this.admin = admin;
  }

  /**
   * A measured round: runs drained per second, whether every run ended as it should, how many
   * runs one claim statement and one finish statement carried on average, and the CPU used.
   */
  record Round(double perSecond, boolean checked, String outcome, double runsPerClaim,
      double runsPerFinish, CpuUse.Used cpu) {
    double jvmMicrosPerRun(int runs) {
      return cpu.jvmNanos() / 1e3 / runs;
    }

    double jitMicrosPerRun(int runs) {
      return cpu.jitNanos() / 1e3 / runs;
    }

    double serverMicrosPerRun(int runs) {
      return cpu.serverNanos() / 1e3 / runs;
    }
  }

  static void run(Mode mode, Report report, String url, List<PgChild> workers)
      throws Exception {
    try (Connection admin = RawPostgres.open(url, "bench-admin")) {
      String engineSchema = PostgresFigure.freshSchema(url);
      String rawSchema = PostgresFigure.freshSchema(url);
      try {
        new PgThroughput(url, workers, admin, engineSchema, rawSchema).measure(mode, report);
      } finally {
        PostgresFigure.dropSchema(url, engineSchema);
        PostgresFigure.dropSchema(url, rawSchema);
      }
    }
  }

  private void measure(Mode mode, Report report) throws Exception {
    int runs = mode.pgRuns();
    int singleRuns = Math.min(runs / 8, SINGLE_RUNS); // one commit per run is slow
    int rounds = mode.pgRounds();
    System.err.printf("[5a] %d worker JVMs draining %,d queued runs: engine vs raw claim+finish"
        + " (batches of %d), %d interleaved rounds after a warm-up%n", workers.size(), runs,
        BATCH, rounds);
    long started = System.nanoTime();
    // Warm-up: JIT, server-side plans, connection set-up, in every worker JVM; first the engine
    // alone, then whole cycles of the measured rounds. The
    // engine and the raw workers share the driver's code in each JVM, so the first switches
    // between them make the compilers redo what the other side compiled; until that settles the
    // engine's rounds paid for the JIT (up to half their CPU), which the steady state does not.
    int warmRuns = mode.pgWarmupRuns();
    Round warmEngine = engineRound(warmRuns);
    System.err.printf(Locale.ROOT, "[5a] warm-up: engine %s (JVMs %.0f µs CPU per run, JIT"
        + " %.0f)%n", Fmt.rate(warmEngine.perSecond()),
        warmEngine.jvmMicrosPerRun(warmRuns), warmEngine.jitMicrosPerRun(warmRuns));
    for (int c = 0; c < mode.pgWarmupCycles(); c++) {
      Round e = engineRound(runs);
      Round b = rawRound(runs, true, BATCH);
      rawRound(singleRuns, false, BATCH);
      rawRound(runs, true, (int) Math.max(1, Math.round(e.runsPerClaim())));
      System.err.printf(Locale.ROOT, "[5a] warm-up cycle %d: engine %s (JIT %.0f µs CPU per"
          + " run), raw batched %s (JIT %.0f µs), not counted%n", c + 1, Fmt.rate(e.perSecond()),
          e.jitMicrosPerRun(runs), Fmt.rate(b.perSecond()), b.jitMicrosPerRun(runs));
    }
    double[] engine = new double[rounds];
    double[] batched = new double[rounds];
    double[] single = new double[rounds];
    double[] engineClaim = new double[rounds];
    double[] engineFinish = new double[rounds];
    double[] rawClaim = new double[rounds];
    double[] engineJvm = new double[rounds];
    double[] engineJit = new double[rounds];
    double[] engineServer = new double[rounds];
    double[] rawJvm = new double[rounds];
    double[] rawServer = new double[rounds];
    double[] sameSize = new double[rounds];
    boolean cpuKnown = true;
    boolean allChecked = true;
    StringBuilder failures = new StringBuilder();
    for (int r = 0; r < rounds; r++) {
      Round e = engineRound(runs);
      Round b = rawRound(runs, true, BATCH);
      Round s = rawRound(singleRuns, false, BATCH);
      // The raw workers again, claiming no more at a time than the engine's claims carried in
      // this round: how the engine compares at its own statement size.
      int engineSize = (int) Math.max(1, Math.round(e.runsPerClaim()));
      Round m = rawRound(runs, true, engineSize);
      sameSize[r] = m.perSecond();
      engine[r] = e.perSecond();
      batched[r] = b.perSecond();
      single[r] = s.perSecond();
      engineClaim[r] = e.runsPerClaim();
      engineFinish[r] = e.runsPerFinish();
      rawClaim[r] = b.runsPerClaim();
      cpuKnown &= e.cpu().known() && b.cpu().known() && e.cpu().jitNanos() >= 0;
      engineJvm[r] = e.jvmMicrosPerRun(runs);
      engineJit[r] = e.jitMicrosPerRun(runs);
      engineServer[r] = e.serverMicrosPerRun(runs);
      rawJvm[r] = b.jvmMicrosPerRun(runs);
      rawServer[r] = b.serverMicrosPerRun(runs);
      for (Round x : List.of(e, b, s, m)) {
        if (!x.checked()) {
          allChecked = false;
          failures.append(' ').append(x.outcome());
        }
      }
      System.err.printf(Locale.ROOT, "[5a] round %d: engine %s (%.1f runs per claim, %.1f per"
              + " finish statement; CPU per run %.0f µs JVMs (JIT %.0f) + %.0f µs server), raw"
              + " batched %s"
              + " (%.1f runs per claim; %.0f µs + %.0f µs), raw one commit per finish %s, raw"
              + " at the engine's claim size %s (ratio %.2f)%n", r + 1, Fmt.rate(engine[r]),
          engineClaim[r], engineFinish[r], engineJvm[r], engineJit[r], engineServer[r],
          Fmt.rate(batched[r]),
          rawClaim[r], rawJvm[r], rawServer[r], Fmt.rate(single[r]), Fmt.rate(sameSize[r]),
          engine[r] / batched[r]);
    }
    System.err.printf(Locale.ROOT, "[5a] took %.1f s%n", (System.nanoTime() - started) / 1e9);
    double ratio = Fmt.pairedRatio(engine, batched);
    report.row("5a", String.format(Locale.ROOT, "PostgreSQL: %d worker JVMs (AgentRunner +"
            + " PostgresRunStore, no-op agent) draining %,d queued runs, runs/s (median of %d"
            + " interleaved rounds) vs raw: the store's SKIP LOCKED claim (limit %d) and finish"
            + " statements over JDBC, each claim's runs finished in one statement, one thread"
            + " and connection in each of the same %d JVMs", workers.size(), runs, rounds, BATCH,
            workers.size()),
        Fmt.rateWithSpread(engine), "raw batched " + Fmt.rateWithSpread(batched),
        Fmt.ratio(ratio), "≥ 0.70",
        allChecked ? Report.atLeast(ratio, 0.70) : Report.Verdict.MISSED);
    report.row("5c", String.format(Locale.ROOT, "info: raw, each finish its own statement and"
            + " transaction (what the store did before it combined finishes), %,d runs per"
            + " round, vs raw batched: what batching the finishes buys", singleRuns),
        "raw one commit per finish " + Fmt.rateWithSpread(single),
        "raw batched " + Fmt.rateWithSpread(batched),
        Fmt.ratio(Fmt.pairedRatio(single, batched)), "–", Report.Verdict.INFO);
    report.row("5d", String.format(Locale.ROOT, "info: the engine of 5a vs the raw workers"
            + " claiming at most as many runs at a time as the engine's claims carried in the"
            + " same round (median %.0f), each claim's runs finished in one statement",
            Fmt.median(engineClaim)),
        Fmt.rateWithSpread(engine), "raw at the engine's claim size "
            + Fmt.rateWithSpread(sameSize),
        Fmt.ratio(Fmt.pairedRatio(engine, sameSize)), "–", Report.Verdict.INFO);
    report.note(String.format(Locale.ROOT, "5a: runs per statement (median of rounds, counted"
            + " in the database afterwards): the engine's claims carried %.1f runs and its"
            + " finish statements %.1f; the raw workers' claims %.1f (and each claim's runs one"
            + " finish statement)", Fmt.median(engineClaim), Fmt.median(engineFinish),
        Fmt.median(rawClaim)));
    report.note(cpuKnown
        ? String.format(Locale.ROOT, "5a: CPU time per run (median of rounds; the worker JVMs +"
            + " the server backends of their connections, from /proc): engine %.0f µs (of which"
            + " its JIT compiler threads %.0f µs) + %.0f µs, raw batched %.0f µs + %.0f µs; the"
            + " machine has %d cores for both",
            Fmt.median(engineJvm), Fmt.median(engineJit), Fmt.median(engineServer),
            Fmt.median(rawJvm), Fmt.median(rawServer), Runtime.getRuntime().availableProcessors())
        : "5a: CPU time per run: not readable on this system");
    report.note(allChecked
        ? "5a: after every round (engine and raw) each run was SUCCEEDED on attempt 1 with"
            + " exactly one started and one succeeded event"
        : "5a: a round did not end with every run SUCCEEDED exactly once, so the figure is"
            + " void:" + failures);
  }

  /** One engine round: {@code runs} queued, then the workers' runners drain them. */
  private Round engineRound(int runs) throws Exception {
    String schema = refilled(engineSchema, runs);
    for (int i = 0; i < workers.size(); i++) {
      workers.get(i).send("engine " + schema + " engine-" + i);
    }
    for (PgChild w : workers) {
      w.expect("ready", Duration.ofSeconds(30));
      w.resetProgress();
    }
    CpuUse cpu = CpuUse.start(admin, workers,
        List.of("agentrunner:" + schema, "agentrunner-listen:" + schema));
    long go = System.nanoTime();
    for (PgChild w : workers) {
      w.send("go");
    }
    long deadline = go + ROUND_TIMEOUT.toNanos();
    while (finished() < runs) {
      if (System.nanoTime() - deadline > 0) {
        throw new IllegalStateException("engine round: " + finished() + " of " + runs
            + " runs finished within " + ROUND_TIMEOUT);
      }
      LockSupport.parkNanos(1_000_000L);
    }
    long end = Long.MIN_VALUE;
    for (PgChild w : workers) {
      end = Math.max(end, w.lastFinishNanos());
    }
    CpuUse.Used used = cpu.stop(admin);
    askAll("stop", "stopped", Duration.ofSeconds(60));
    return checked(schema, runs, runs * 1e9 / (end - go), used);
  }

  /**
   * One raw round: the workers claim (at most {@code limit} runs a claim) and finish with the
   * store's statements until a claim comes back empty.
   */
  private Round rawRound(int runs, boolean batched, int limit) throws Exception {
    String schema = refilled(rawSchema, runs);
    for (int i = 0; i < workers.size(); i++) {
      workers.get(i).send("raw " + schema + " raw-" + i + " " + limit + " "
          + (batched ? "batched" : "single"));
    }
    for (PgChild w : workers) {
      w.expect("ready", Duration.ofSeconds(30));
    }
    CpuUse cpu = CpuUse.start(admin, workers, List.of("bench-raw-%"));
    long go = System.nanoTime();
    for (PgChild w : workers) {
      w.send("go");
    }
    long end = Long.MIN_VALUE;
    for (PgChild w : workers) {
      String[] done = w.expect("done", ROUND_TIMEOUT).split(" ");
      end = Math.max(end, Long.parseLong(done[1]));
    }
    CpuUse.Used used = cpu.stop(admin);
    askAll("close", "closed", Duration.ofSeconds(30));
    return checked(schema, runs, runs * 1e9 / (end - go), used);
  }

  /** Sends {@code command} to every worker, then waits for each one's {@code answer}. */
  private void askAll(String command, String answer, Duration within) throws Exception {
    for (PgChild w : workers) {
      w.send(command);
    }
    for (PgChild w : workers) {
      w.expect(answer, within);
    }
  }

  private long finished() {
    long n = 0;
    for (PgChild w : workers) {
      n += w.finished();
    }
    return n;
  }

  /** Empties {@code schema}'s tables and queues {@code runs} runs in it. */
  private String refilled(String schema, int runs) throws Exception {
    try (Statement st = admin.createStatement()) {
      String s = '"' + schema + '"';
      st.execute("TRUNCATE " + s + ".events, " + s + ".runs, " + s + ".run_stats, " + s
          + ".run_stats_delta RESTART IDENTITY");
    }
    RawPostgres.fill(admin, schema, runs);
    return schema;
  }

  private Round checked(String schema, int runs, double perSecond, CpuUse.Used cpu)
      throws Exception {
    RawPostgres.Outcome outcome = RawPostgres.outcome(admin, schema);
    return new Round(perSecond, outcome.everyRunSucceededOnce(runs), outcome.toString(),
        (double) runs / outcome.claimStatements(), (double) runs / outcome.finishStatements(),
        cpu);
  }
}
