package dev.agentrunner.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.HdrHistogram.Histogram;

/**
 * The harness's output: one row per figure (measured, baseline, ratio, target, verdict) and one
 * row per latency histogram, printed as Markdown so a run can be pasted into RESULTS.md as is.
 *
 * <p>Thread-safety: not thread-safe; filled by the harness's main thread.
 */
final class Report {

  /** Whether a figure met its target; INFO rows have no target; NOT_RUN says why not. */
  enum Verdict { MET, MISSED, INFO, NOT_RUN }

  /** One figure: what was measured, against what, and whether it met its target. */
  record Row(String id, String figure, String measured, String baseline, String ratio,
      String target, Verdict verdict) {}

  /** One latency distribution, in nanoseconds. */
  record Latency(String id, String what, long count, double p50, double p99, double p999,
      double max) {}

  private final List<Row> rows = new ArrayList<>();
  private final List<Latency> latencies = new ArrayList<>();
  private final List<String> notes = new ArrayList<>();

  void row(String id, String figure, String measured, String baseline, String ratio,
      String target, Verdict verdict) {
    rows.add(new Row(id, figure, measured, baseline, ratio, target, verdict));
    System.err.println("  -> " + id + " " + figure + ": " + measured + " vs " + baseline
        + ", ratio " + ratio + " (" + target + ") " + verdict);
  }

  void latency(String id, String what, Histogram h) {
    latencies.add(new Latency(id, what, h.getTotalCount(), h.getValueAtPercentile(50),
        h.getValueAtPercentile(99), h.getValueAtPercentile(99.9), h.getMaxValue()));
  }

  void latency(String id, String what, long count, double p50, double p99, double p999,
      double max) {
    latencies.add(new Latency(id, what, count, p50, p99, p999, max));
  }

  void note(String note) {
    notes.add(note);
    System.err.println("  note: " + note);
  }

  static Verdict atLeast(double value, double target) {
    return value >= target ? Verdict.MET : Verdict.MISSED;
  }

  static Verdict atMost(double value, double target) {
    return value <= target ? Verdict.MET : Verdict.MISSED;
  }

  String markdown() {
    StringBuilder out = new StringBuilder();
    out.append("| # | figure | measured | baseline | ratio | target | verdict |\n");
    out.append("|---|---|---|---|---|---|---|\n");
    for (Row r : rows) {
      out.append(String.format(Locale.ROOT, "| %s | %s | %s | %s | %s | %s | %s |%n", r.id(),
          r.figure(), r.measured(), r.baseline(), r.ratio(), r.target(), r.verdict()));
    }
    if (!latencies.isEmpty()) {
      out.append("\nLatencies (HdrHistogram, or JMH's sample histogram for 1b):\n\n");
      out.append("| # | what | samples | p50 | p99 | p99.9 | max |\n");
      out.append("|---|---|---|---|---|---|---|\n");
      for (Latency l : latencies) {
        out.append(String.format(Locale.ROOT, "| %s | %s | %,d | %s | %s | %s | %s |%n", l.id(),
            l.what(), l.count(), Fmt.ms(l.p50()), Fmt.ms(l.p99()), Fmt.ms(l.p999()),
            Fmt.ms(l.max())));
      }
    }
    if (!notes.isEmpty()) {
      out.append("\nNotes:\n\n");
      for (String n : notes) {
        out.append("- ").append(n).append('\n');
      }
    }
    return out.toString();
  }
}
