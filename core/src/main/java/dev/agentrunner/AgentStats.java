package dev.agentrunner;

import java.util.Objects;

/**
 * Counts of one agent's runs by status, and the usage they reported. Every instance is one
 * consistent snapshot: the counts always add up to {@link #total()}, and never mix two moments.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param agent the agent's name
 * @param queued runs waiting
 * @param running runs executing
 * @param succeeded runs that succeeded
 * @param failed runs that failed
 * @param cancelled runs cancelled
 * @param timedOut runs that timed out
 * @param usage the sum of the usage of these runs
 */
public record AgentStats(
    String agent,
    long queued,
    long running,
    long succeeded,
    long failed,
    long cancelled,
    long timedOut,
    Usage usage) {

  /** @throws IllegalArgumentException if a count is negative */
  public AgentStats {
    Objects.requireNonNull(agent, "agent");
    Objects.requireNonNull(usage, "usage");
    for (long count : new long[] {queued, running, succeeded, failed, cancelled, timedOut}) {
      if (count < 0) {
        throw new IllegalArgumentException("counts must not be negative: " + count);
      }
    }
  }

  /** Stats of an agent with no runs. */
  public static AgentStats empty(String agent) {
    return new AgentStats(agent, 0, 0, 0, 0, 0, 0, Usage.ZERO);
  }

  /** The count for one status. */
  public long count(RunStatus status) {
    return switch (Objects.requireNonNull(status, "status")) {
      case QUEUED -> queued;
      case RUNNING -> running;
      case SUCCEEDED -> succeeded;
      case FAILED -> failed;
      case CANCELLED -> cancelled;
      case TIMED_OUT -> timedOut;
    };
  }

  /** Runs in a terminal status. */
  public long finished() {
    return succeeded + failed + cancelled + timedOut;
  }

  /** All runs counted. */
  public long total() {
    return queued + running + finished();
  }

  /**
   * These stats with one more run counted in {@code status} (and its usage added); for stores
   * and the engine building snapshots.
   */
  public AgentStats plus(RunStatus status, Usage runUsage) {
    return new AgentStats(agent,
        queued + (status == RunStatus.QUEUED ? 1 : 0),
        running + (status == RunStatus.RUNNING ? 1 : 0),
        succeeded + (status == RunStatus.SUCCEEDED ? 1 : 0),
        failed + (status == RunStatus.FAILED ? 1 : 0),
        cancelled + (status == RunStatus.CANCELLED ? 1 : 0),
        timedOut + (status == RunStatus.TIMED_OUT ? 1 : 0),
        usage.plus(runUsage));
  }
}
