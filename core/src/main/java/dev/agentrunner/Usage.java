package dev.agentrunner;

import dev.agentrunner.internal.Checks;

/**
 * What one run consumed: tokens in and out, and cost in micro-units of the host's currency
 * (1,000,000 micro-units = 1 unit), kept as integers so sums are exact.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param inputTokens tokens sent to the model, never negative
 * @param outputTokens tokens produced by the model, never negative
 * @param costMicros cost in micro-units, never negative
 */
public record Usage(long inputTokens, long outputTokens, long costMicros) {

  /** No usage. */
  public static final Usage ZERO = new Usage(0, 0, 0);

  /**
   * @throws IllegalArgumentException if any value is negative
   */
  public Usage {
    Checks.notNegative(inputTokens, "inputTokens");
    Checks.notNegative(outputTokens, "outputTokens");
    Checks.notNegative(costMicros, "costMicros");
  }

  /** Usage with the given token counts and cost in micro-units. */
  public static Usage of(long inputTokens, long outputTokens, long costMicros) {
    return new Usage(inputTokens, outputTokens, costMicros);
  }

  /**
   * The sum of this and {@code other}.
   *
   * @throws ArithmeticException if a sum overflows
   */
  public Usage plus(Usage other) {
    java.util.Objects.requireNonNull(other, "other");
    if (other.isZero()) {
      return this;
    }
    if (isZero()) {
      return other;
    }
    return new Usage(
        Math.addExact(inputTokens, other.inputTokens),
        Math.addExact(outputTokens, other.outputTokens),
        Math.addExact(costMicros, other.costMicros));
  }

  private boolean isZero() {
    return inputTokens == 0 && outputTokens == 0 && costMicros == 0;
  }

  /** The total number of tokens, in and out. */
  public long totalTokens() {
    return inputTokens + outputTokens;
  }
}
