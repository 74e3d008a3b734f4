package dev.agentrunner.bench;

import java.util.Arrays;
import java.util.Locale;
import org.HdrHistogram.Histogram;

/** Number formatting and the small statistics the harness needs (medians of rounds). */
final class Fmt {
  private Fmt() {}

  /** The median of the rounds: robust against one round hit by a neighbour's build. */
  static double median(double[] values) {
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    int n = sorted.length;
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  }

  /**
   * The median over rounds of each round's ratio {@code a[i] / b[i]}. The two sides of a round
   * run seconds apart, so their ratio cancels the slow swings of a shared machine that a ratio
   * of two medians (taken from different rounds) would keep.
   */
  static double pairedRatio(double[] a, double[] b) {
    double[] ratios = new double[a.length];
    for (int i = 0; i < a.length; i++) {
      ratios[i] = a[i] / b[i];
    }
    return median(ratios);
  }

  static String rate(double perSecond) {
    return String.format(Locale.ROOT, "%,.0f runs/s", perSecond);
  }

  /** A rate with the spread of its rounds, so noise is visible next to the figure. */
  static String rateWithSpread(double[] rounds) {
    double[] sorted = rounds.clone();
    Arrays.sort(sorted);
    return String.format(Locale.ROOT, "%,.0f runs/s (%,.0f–%,.0f)", median(rounds), sorted[0],
        sorted[sorted.length - 1]);
  }

  static String ms(double nanos) {
    double ms = nanos / 1e6;
    return ms < 10
        ? String.format(Locale.ROOT, "%.2f ms", ms)
        : String.format(Locale.ROOT, "%.0f ms", ms);
  }

  /** Three decimals below 1, so that a ratio just under a target never prints as the target. */
  static String ratio(double r) {
    return String.format(Locale.ROOT, Math.abs(r) < 1 ? "%.3f" : "%.2f", r);
  }

  static String mib(long bytes) {
    return String.format(Locale.ROOT, "%,d MiB", bytes >> 20);
  }

  static String seconds(double nanos) {
    return String.format(Locale.ROOT, "%.1f s", nanos / 1e9);
  }

  /** "p50 / p99 / p99.9" of a histogram in nanoseconds. */
  static String percentiles(Histogram h) {
    return ms(h.getValueAtPercentile(50)) + " / " + ms(h.getValueAtPercentile(99)) + " / "
        + ms(h.getValueAtPercentile(99.9));
  }
}
