package dev.agentrunner;

/**
 * What a submit does when its serial key is busy, that is when a run with the same key is
 * QUEUED or RUNNING.
 *
 * <p>Thread-safety: an immutable enum.
 */
public enum SerialKeyPolicy {
  /** Wait in line: runs of one key execute one at a time, in submission order (the default). */
  ENQUEUE,
  /**
   * Refuse the run with a {@link SerialKeyBusyException} naming the active run; checked by the
   * store in the same transaction as the insert, so two racing submits cannot both get in.
   */
  REJECT,
  /**
   * Cancel the key's active runs (queued ones at once, a running one through its context and an
   * interrupt), then enqueue this run: it starts as soon as the cancelled run has ended.
   */
  INTERRUPT
}
