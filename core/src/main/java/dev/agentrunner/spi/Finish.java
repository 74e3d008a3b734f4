package dev.agentrunner.spi;

import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import java.time.Duration;
import java.util.Objects;

/**
 * The end of one attempt, for {@link RunStore#finish(Finish)}. It applies only while the run is
 * RUNNING under exactly this {@code attempt} and {@code owner}: that pair is the fencing token,
 * so a worker that lost its lease (a zombie) cannot overwrite the run's newer state.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param runId the run
 * @param attempt the attempt being finished (the fencing token)
 * @param owner the worker that holds the claim
 * @param status a terminal status, or QUEUED to retry the run later
 * @param output the output (for SUCCEEDED), else null
 * @param error the reason (for FAILED, CANCELLED, TIMED_OUT, or a retry), else null
 * @param usage the usage this attempt consumed; added to the run's usage
 * @param retryAfter for a retry (status QUEUED): how long after the attempt ended, by the
 *     store's clock, the run may be claimed again ({@link Duration#ZERO}: at once); else null. A
 *     delay rather than an instant, so that a worker whose clock is off does not move the retry:
 *     on PostgreSQL the database's clock decides, as it does for leases
 */
public record Finish(
    long runId,
    int attempt,
    String owner,
    RunStatus status,
    String output,
    String error,
    Usage usage,
    Duration retryAfter) {

  /** The longest {@code retryAfter}: {@link dev.agentrunner.RetryPolicy#MAX_DELAY}. */
  public static final Duration MAX_RETRY_AFTER = dev.agentrunner.RetryPolicy.MAX_DELAY;

  /**
   * @throws IllegalArgumentException if the status is RUNNING, or QUEUED without
   *     {@code retryAfter}, or {@code retryAfter} is negative or above {@link #MAX_RETRY_AFTER},
   *     or the attempt is below 1
   */
  public Finish {
    Objects.requireNonNull(owner, "owner");
    Objects.requireNonNull(status, "status");
    Objects.requireNonNull(usage, "usage");
    if (attempt < 1) {
      throw new IllegalArgumentException("attempt must be at least 1, was " + attempt);
    }
    if (status == RunStatus.RUNNING) {
      throw new IllegalArgumentException("a finish must leave RUNNING, status was RUNNING");
    }
    if (status == RunStatus.QUEUED && retryAfter == null) {
      throw new IllegalArgumentException("a retry (status QUEUED) needs retryAfter");
    }
    if (status != RunStatus.QUEUED && retryAfter != null) {
      throw new IllegalArgumentException(
          "retryAfter is only for status QUEUED, status was " + status);
    }
    if (retryAfter != null
        && (retryAfter.isNegative() || retryAfter.compareTo(MAX_RETRY_AFTER) > 0)) {
      throw new IllegalArgumentException("retryAfter must be between 0 and " + MAX_RETRY_AFTER
          + ", was " + retryAfter);
    }
  }

  /** A successful end with {@code output}. */
  public static Finish succeeded(long runId, int attempt, String owner, String output, Usage usage) {
    return new Finish(runId, attempt, owner, RunStatus.SUCCEEDED,
        Objects.requireNonNull(output, "output"), null, usage, null);
  }

  /** An end in FAILED, CANCELLED or TIMED_OUT with the reason {@code error}. */
  public static Finish unsuccessful(
      long runId, int attempt, String owner, RunStatus status, String error, Usage usage) {
    if (status == RunStatus.SUCCEEDED || !status.isTerminal()) {
      throw new IllegalArgumentException(
          "status must be FAILED, CANCELLED or TIMED_OUT, was " + status);
    }
    return new Finish(runId, attempt, owner, status, null, error, usage, null);
  }

  /** A failed attempt to be retried {@code retryAfter} after it ended, by the store's clock. */
  public static Finish retry(
      long runId, int attempt, String owner, String error, Usage usage, Duration retryAfter) {
    return new Finish(runId, attempt, owner, RunStatus.QUEUED, null, error, usage,
        Objects.requireNonNull(retryAfter, "retryAfter"));
  }
}
