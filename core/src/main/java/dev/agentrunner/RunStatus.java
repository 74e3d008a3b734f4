package dev.agentrunner;

/**
 * The life cycle of a run.
 *
 * <pre>
 *   QUEUED ──claim──▶ RUNNING ──▶ SUCCEEDED | FAILED | CANCELLED | TIMED_OUT
 *     │                  │
 *     └──▶ CANCELLED     └──▶ QUEUED   (retry, released claim, or recovered lease)
 * </pre>
 *
 * <p>Terminal states never change. Every store enforces {@link #canTransitionTo(RunStatus)}.
 *
 * <p>Thread-safety: an immutable enum.
 */
public enum RunStatus {
  /** Waiting to be claimed by a worker. */
  QUEUED,
  /** Claimed by a worker that holds a lease on it. */
  RUNNING,
  /** The agent returned a result. */
  SUCCEEDED,
  /** The agent threw, or its worker was lost on the last attempt. */
  FAILED,
  /** Cancelled before or while running. */
  CANCELLED,
  /** The agent exceeded its timeout. */
  TIMED_OUT;

  /** Whether this status is final: a run in it never changes again. */
  public boolean isTerminal() {
    return this != QUEUED && this != RUNNING;
  }

  /**
   * Whether the state machine allows a run to move from this status to {@code next}.
   *
   * @throws NullPointerException if {@code next} is null
   */
  public boolean canTransitionTo(RunStatus next) {
    java.util.Objects.requireNonNull(next, "next");
    return switch (this) {
      case QUEUED -> next == RUNNING || next == CANCELLED;
      case RUNNING -> next != RUNNING;
      default -> false;
    };
  }
}
