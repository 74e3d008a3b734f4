package dev.agentrunner.bench;

import java.time.Duration;

/**
 * How long each part of the harness runs. Quick mode keeps the whole harness under five minutes
 * on a 2-core machine; full mode runs more and longer rounds for steadier medians.
 *
 * @param name "quick" or "full"
 * @param rounds how many times each subject/baseline pair of the SQLite figures is measured,
 *     interleaved
 * @param engineRounds how many times each side of figure 1 is measured, interleaved: more and
 *     shorter rounds than the SQLite figures, since this machine's speed changes from one second
 *     to the next and each pair of sides should meet the same machine
 * @param engineRound the submit window of one in-memory engine or raw executor round
 * @param sqliteRound the submit window of one SQLite engine round, and the length of a naive or
 *     ceiling round
 * @param latencyWarmup offered load before the latency histogram starts recording
 * @param latencyMeasure how long the recorded offered load lasts
 * @param scaleRuns how many concurrent sleeping runs the scale figure starts
 * @param jmhIterations measurement iterations per JMH benchmark (one fork, 1 s each)
 * @param pgRuns how many queued runs one PostgreSQL throughput round drains (figure 5a)
 * @param pgWarmupRuns how many runs the engine drains alone at the start of figure 5a's warm-up
 * @param pgWarmupCycles how many cycles of figure 5a's rounds (engine, raw) follow, uncounted,
 *     before the measured ones: the worker JVMs' JIT compilers stay busy until both sides have
 *     taken turns a few times
 * @param pgRounds interleaved engine/raw rounds of figure 5a
 * @param pgLatencyMeasure how long the recorded offered load of figure 5b lasts, per side
 */
record Mode(String name, int rounds, int engineRounds, Duration engineRound, Duration sqliteRound,
    Duration latencyWarmup, Duration latencyMeasure, int scaleRuns, int jmhIterations,
    int pgRuns, int pgWarmupRuns, int pgWarmupCycles, int pgRounds, Duration pgLatencyMeasure) {

  static Mode quick() {
    // Sized for the slower of the VMs measured here (the harness took 5.9 min at 5 × 1.5 s SQLite
    // rounds, 10 engine rounds, 20,000-run PostgreSQL rounds and 4 warm-up cycles).
    return new Mode("quick", 4, 8, Duration.ofMillis(500), Duration.ofSeconds(1),
        Duration.ofSeconds(2), Duration.ofSeconds(10), 100_000, 2,
        15_000, 15_000, 3, 3, Duration.ofSeconds(6));
  }

  static Mode full() {
    return new Mode("full", 9, 18, Duration.ofSeconds(2), Duration.ofSeconds(6),
        Duration.ofSeconds(10), Duration.ofSeconds(60), 100_000, 10,
        50_000, 100_000, 4, 7, Duration.ofSeconds(60));
  }
}
