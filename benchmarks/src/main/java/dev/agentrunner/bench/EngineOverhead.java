package dev.agentrunner.bench;

import dev.agentrunner.Agent;
import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.AgentRunnerBuilder;
import dev.agentrunner.RunListener;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.Usage;
import dev.agentrunner.memory.InMemoryRunStore;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import org.HdrHistogram.Histogram;

/**
 * Figure 1: runs/s of an {@link AgentRunner} on the in-memory store (submit until the run has
 * finished) against a raw virtual-thread executor running the same no-op agent, both driven by
 * the same submitting threads with at most {@link Load#IN_FLIGHT} runs in flight, rounds
 * interleaved. The runner's limit is set to that same bound, so both sides may run every run
 * in flight at once; a second engine side (1q) keeps the default limit of 256, so that runs
 * wait in the store's queue for the dispatcher. Two more sides split the gap: the engine on a
 * store that keeps nothing ({@link KeepNothingStore}: the engine's own work alone), and the
 * in-memory store called directly (the store's own work alone, on one thread). A last side
 * (1h) is the ceiling of any engine that keeps this history: the raw executor with the store's
 * two calls per run around each task and nothing else of the engine, and one more (1m) the same
 * with the least history a store could keep ({@link RecordsOnlyStore}: each run's latest record
 * in a slot of an array indexed by id), which prices the rest of the in-memory store's contract.
 */
final class EngineOverhead {
  static final int SUBMITTERS = 8;
  private static final Agent NOOP = Load::noop;

  private EngineOverhead() {}

  static void run(Mode mode, Report report) throws Exception {
    System.err.println("[1] engine overhead, in-memory store: warm-up");
    engineRound(mode, Load.IN_FLIGHT, null);
    engineRound(mode, DEFAULT_LIMIT, null);
    engineRound(mode, Load.IN_FLIGHT, new KeepNothingStore());
    rawRound(mode);
    historyRound(mode, InMemoryRunStore::create);
    historyRound(mode, RecordsOnlyStore::new);
    storeAloneRound(mode);
    int rounds = mode.engineRounds();
    double[] engine = new double[rounds];
    double[] queueing = new double[rounds];
    double[] raw = new double[rounds];
    double[] storeAlone = new double[rounds];
    double[] engineOnly = new double[rounds];
    double[] history = new double[rounds];
    double[] recordsOnly = new double[rounds];
    double[][] engineSpent = new double[3][rounds];
    double[][] rawSpent = new double[3][rounds];
    Histogram engineLatency = new Histogram(3);
    Histogram rawLatency = new Histogram(3);
    for (int r = 0; r < rounds; r++) {
      // Every other round runs the sides in reverse order, so that a machine slowing down (or
      // speeding up) within a round favours no side.
      Load.Round e = null;
      Load.Round x = null;
      for (int i = 0; i < 7; i++) {
        switch (r % 2 == 0 ? i : 6 - i) {
          case 0 -> e = engineRound(mode, Load.IN_FLIGHT, null);
          case 1 -> x = rawRound(mode);
          case 2 -> queueing[r] = engineRound(mode, DEFAULT_LIMIT, null).perSecond();
          case 3 -> engineOnly[r] =
              engineRound(mode, Load.IN_FLIGHT, new KeepNothingStore()).perSecond();
          case 4 -> history[r] = historyRound(mode, InMemoryRunStore::create).perSecond();
          case 5 -> recordsOnly[r] = historyRound(mode, RecordsOnlyStore::new).perSecond();
          default -> storeAlone[r] = storeAloneRound(mode).perSecond();
        }
      }
      engine[r] = e.perSecond();
      raw[r] = x.perSecond();
      spent(engineSpent, r, e);
      spent(rawSpent, r, x);
      engineLatency.add(e.latency());
      rawLatency.add(x.latency());
      System.err.printf("[1] round %d: engine %s, raw %s, engine at the default limit %s, engine"
          + " on a store keeping nothing %s, raw executor keeping the history %s, keeping only"
          + " records %s, store alone %s%n",
          r + 1, Fmt.rate(engine[r]), Fmt.rate(raw[r]), Fmt.rate(queueing[r]),
          Fmt.rate(engineOnly[r]), Fmt.rate(history[r]), Fmt.rate(recordsOnly[r]),
          Fmt.rate(storeAlone[r]));
    }
    double ratio = Fmt.pairedRatio(engine, raw);
    report.row("1", "engine overhead: in-memory store, no-op agent, " + SUBMITTERS
            + " submitters, " + Load.IN_FLIGHT + " runs in flight and maxConcurrency "
            + Load.IN_FLIGHT + ", runs/s (median of " + rounds + " interleaved rounds)",
        Fmt.rateWithSpread(engine), "raw virtual-thread executor " + Fmt.rateWithSpread(raw),
        Fmt.ratio(ratio), "≥ 0.50", Report.atLeast(ratio, 0.5));
    double queueRatio = Fmt.pairedRatio(queueing, raw);
    report.row("1q", "info: the same engine with the default maxConcurrency " + DEFAULT_LIMIT
            + ": runs beyond it wait in the store's queue and the dispatcher claims them",
        Fmt.rateWithSpread(queueing), "raw virtual-thread executor " + Fmt.rateWithSpread(raw),
        Fmt.ratio(queueRatio), "–", Report.Verdict.INFO);
    report.row("1k", "info: the engine of 1 on a store that keeps nothing (every insert comes"
            + " back claimed, every finish applied; no history, no lock): the engine's own work",
        Fmt.rateWithSpread(engineOnly), "raw virtual-thread executor " + Fmt.rateWithSpread(raw),
        Fmt.ratio(Fmt.pairedRatio(engineOnly, raw)), "–", Report.Verdict.INFO);
    report.row("1h", "info: the ceiling of an engine keeping this history: the raw executor of 1"
            + " with the in-memory store's 2 calls per run around each task (insertAndClaim"
            + " before it starts, finish when it ends) and nothing else of the engine",
        "raw + history " + Fmt.rateWithSpread(history),
        "raw virtual-thread executor " + Fmt.rateWithSpread(raw),
        Fmt.ratio(Fmt.pairedRatio(history, raw)), "–", Report.Verdict.INFO);
    report.row("1m", "info: the raw executor of 1 keeping the least history there is: each"
            + " run's latest record in a slot of an array indexed by id (set at submit, replaced"
            + " by a fenced compare-and-set at its finish); no events, counts, lease list, queue"
            + " or consistent reads",
        "raw + records only " + Fmt.rateWithSpread(recordsOnly),
        "raw virtual-thread executor " + Fmt.rateWithSpread(raw),
        Fmt.ratio(Fmt.pairedRatio(recordsOnly, raw)), "–", Report.Verdict.INFO);
    report.row("1c", "info: the in-memory store alone, the engine's 2 calls per run started by"
            + " its submit (insertAndClaim, finish), 1 thread, no engine, no threads started",
        "store alone " + Fmt.rateWithSpread(storeAlone),
        "raw virtual-thread executor " + Fmt.rateWithSpread(raw),
        Fmt.ratio(Fmt.pairedRatio(storeAlone, raw)), "–", Report.Verdict.INFO);
    report.note(String.format(java.util.Locale.ROOT, "1: the gap, split: the engine's own work"
            + " takes the raw rate to %.2f (1k); keeping the history in the in-memory store, shared"
            + " by every thread, takes that to %.2f (1 / 1k = %.2f), though the store alone on one"
            + " thread does its part of a run at %.2f of the raw rate (1c)",
        Fmt.pairedRatio(engineOnly, raw), Fmt.pairedRatio(engine, raw),
        Fmt.pairedRatio(engine, engineOnly), Fmt.pairedRatio(storeAlone, raw)));
    report.note(String.format(java.util.Locale.ROOT, "1: against its ceiling (1h: the raw"
            + " executor doing only the store's part of the engine's work) the engine reaches %.2f;"
            + " the ceiling itself is %.2f of the raw rate",
        Fmt.pairedRatio(engine, history), Fmt.pairedRatio(history, raw)));
    report.note(String.format(java.util.Locale.ROOT, "1: keeping only each run's latest record"
            + " (1m) takes the raw rate to %.2f; the in-memory store's history (1h) to %.2f, and"
            + " the difference is the rest of its contract: three events per run in one"
            + " store-wide order, counts per agent and status, the list of leases, reads"
            + " consistent across runs",
        Fmt.pairedRatio(recordsOnly, raw), Fmt.pairedRatio(history, raw)));
    report.note(String.format(java.util.Locale.ROOT, "1: what a run costs the process (median"
            + " of rounds): engine %.2f µs of CPU, %.0f bytes allocated, collector pauses %.0f%%"
            + " of the round; raw executor %.2f µs, %.0f bytes, %.0f%%",
        Fmt.median(engineSpent[0]), Fmt.median(engineSpent[1]), Fmt.median(engineSpent[2]) * 100,
        Fmt.median(rawSpent[0]), Fmt.median(rawSpent[1]), Fmt.median(rawSpent[2]) * 100));
    report.latency("1", "engine: submit → finished (closed-loop burst)", engineLatency);
    report.latency("1", "raw executor: submit → finished (closed-loop burst)", rawLatency);
  }

  private static void spent(double[][] into, int round, Load.Round r) {
    into[0][round] = r.cpuMicrosPerRun();
    into[1][round] = r.bytesPerRun();
    into[2][round] = r.gcShare();
  }

  /** The runner's default global limit. */
  static final int DEFAULT_LIMIT = 256;

  /** A round of the engine; {@code store} null means the runner's own in-memory store. */
  static Load.Round engineRound(Mode mode, int maxConcurrency, RunStore store)
      throws Exception {
    Load.Finishes finishes = new Load.Finishes();
    RunListener listener = new RunListener() {
      @Override
      public void onFinished(RunRecord run) {
        finishes.finished(run.input());
      }
    };
    // The runner's defaults (in-memory store it owns and closes) but for the limit.
    AgentRunnerBuilder builder = AgentRunner.builder().maxConcurrency(maxConcurrency)
        .agent("noop", NOOP).listener(listener);
    if (store != null) {
      builder.store(store);
    }
    try (AgentRunner runner = builder.build()) {
      return Load.closedLoop(SUBMITTERS, mode.engineRound(), finishes,
          t0 -> runner.submit(RunRequest.of("noop", Long.toString(t0))));
    }
  }

  /**
   * The store's share of the engine's work, without the engine: the same two calls per run as
   * a run started by its submit (insert claimed, finish), on one thread.
   */
  static Load.Round storeAloneRound(Mode mode) {
    ClaimRequest claim = new ClaimRequest("store-alone", Map.of("noop", 1), 1,
        Duration.ofSeconds(30));
    NewRun run = NewRun.of(RunRequest.of("noop", "x"));
    try (InMemoryRunStore store = InMemoryRunStore.create()) {
      long start = System.nanoTime();
      long end = start + mode.engineRound().toNanos();
      long runs = 0;
      while (System.nanoTime() - end < 0) {
        for (int i = 0; i < 256; i++) {
          RunRecord r = store.insertAndClaim(run, claim);
          store.finish(Finish.succeeded(r.id(), r.attempt(), r.owner(), "", Usage.ZERO));
        }
        runs += 256;
      }
      return new Load.Round(runs, System.nanoTime() - start, new Histogram(3));
    }
  }

  /**
   * The raw executor of {@link #rawRound} keeping the engine's history: each submit stores its
   * run already claimed, and each task stores its finish before it reports back, exactly the two
   * store calls of a run the engine starts at its submit. No permits, listeners, stats or timers.
   */
  static Load.Round historyRound(Mode mode, java.util.function.Supplier<RunStore> stores)
      throws Exception {
    Load.Finishes finishes = new Load.Finishes();
    ClaimRequest claim = new ClaimRequest("raw-history", Map.of("noop", 1), 1,
        Duration.ofSeconds(30));
    try (RunStore store = stores.get();
        ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor()) {
      return Load.closedLoop(SUBMITTERS, mode.engineRound(), finishes, t0 -> {
        RunRecord run = store.insertAndClaim(NewRun.of(RunRequest.of("noop", Long.toString(t0))),
            claim);
        executor.execute(() -> {
          AgentResult result = callAgent(new BareContext(run.id(), run.agent(), run.input()));
          RunRecord done = store.finish(Finish.succeeded(run.id(), run.attempt(), run.owner(),
              result.output(), result.usage())).orElseThrow();
          finishes.finished(done.input());
        });
      });
    }
  }

  /** The raw sides' call of the agent, through its interface as the engine calls it. */
  private static AgentResult callAgent(BareContext context) {
    try {
      return NOOP.execute(context);
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  static Load.Round rawRound(Mode mode) throws Exception {
    Load.Finishes finishes = new Load.Finishes();
    AtomicLong ids = new AtomicLong();
    try (ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor()) {
      return Load.closedLoop(SUBMITTERS, mode.engineRound(), finishes, t0 -> {
        String input = Long.toString(t0);
        long id = ids.incrementAndGet();
        executor.execute(() -> {
          callAgent(new BareContext(id, "noop", input));
          finishes.finished(input);
        });
      });
    }
  }
}
