package dev.agentrunner.bench;

import dev.agentrunner.bench.jmh.EngineBenchmark;
import java.util.Collection;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;
import org.openjdk.jmh.util.Statistics;

/**
 * Figure 1b: {@link EngineBenchmark} run through JMH's API from the harness (one fork, so the
 * engine and raw benchmarks share a JVM launch and a machine state), its scores turned into
 * ratios.
 */
final class JmhFigure {
  private JmhFigure() {}

  static void run(Mode mode, Report report) throws Exception {
    System.err.println("[1b] JMH: " + EngineBenchmark.class.getSimpleName() + ", "
        + mode.jmhIterations() + " x 1 s per benchmark");
    Options options = new OptionsBuilder()
        .include(EngineBenchmark.class.getName() + "\\.")
        .forks(1)
        .warmupIterations(2)
        .warmupTime(TimeValue.seconds(1))
        .measurementIterations(mode.jmhIterations())
        .measurementTime(TimeValue.seconds(1))
        .verbosity(VerboseMode.SILENT)
        // JMH 1.37 reads fields through sun.misc.Unsafe; JDK 23+ warns about it unless allowed,
        // and JDK 21/22 do not know the flag.
        .jvmArgsAppend(Runtime.version().feature() >= 23
            ? new String[] {"--sun-misc-unsafe-memory-access=allow"} : new String[0])
        .build();
    Collection<RunResult> results = new Runner(options).run();
    Map<String, Statistics> byName = new HashMap<>();
    for (RunResult r : results) {
      String name = r.getParams().getBenchmark();
      byName.put(name.substring(name.lastIndexOf('.') + 1),
          r.getPrimaryResult().getStatistics());
    }
    Statistics engine = byName.get("engineBatch");
    Statistics raw = byName.get("rawBatch");
    double ratio = engine.getMean() / raw.getMean();
    report.row("1b", "JMH: in-memory engine, batch of " + EngineBenchmark.BATCH
            + " no-op runs from 1 thread, runs/s (mean ± 99.9% CI)",
        String.format(Locale.ROOT, "%,.0f ± %,.0f", engine.getMean(),
            engine.getMeanErrorAt(0.999)),
        String.format(Locale.ROOT, "raw VT executor %,.0f ± %,.0f", raw.getMean(),
            raw.getMeanErrorAt(0.999)),
        Fmt.ratio(ratio), "≥ 0.50", Report.atLeast(ratio, 0.5));
    Statistics history = byName.get("historyBatch");
    double ceiling = history.getMean() / raw.getMean();
    report.row("1bh", "info: JMH, the ceiling of an engine keeping this history: the raw batch"
            + " with each run stored claimed before its task starts and finished by it",
        String.format(Locale.ROOT, "raw + history %,.0f ± %,.0f", history.getMean(),
            history.getMeanErrorAt(0.999)),
        String.format(Locale.ROOT, "raw VT executor %,.0f ± %,.0f", raw.getMean(),
            raw.getMeanErrorAt(0.999)),
        Fmt.ratio(ceiling), "–", Report.Verdict.INFO);
    report.note(String.format(Locale.ROOT, "1b: against its ceiling (1bh) the engine reaches"
        + " %.2f", engine.getMean() / history.getMean()));
    // SampleTime scores are in µs; the report wants nanoseconds.
    for (String name : new String[] {"engineSingle", "rawSingle"}) {
      Statistics s = byName.get(name);
      report.latency("1b", "JMH " + name + ": submit → awaited result, 1 run at a time",
          s.getN(), s.getPercentile(50) * 1e3, s.getPercentile(99) * 1e3,
          s.getPercentile(99.9) * 1e3, s.getMax() * 1e3);
    }
  }
}
