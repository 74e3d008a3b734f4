package dev.agentrunner;

/**
 * What a schedule does about fire times that passed while no runner was running it (downtime,
 * a pause is not counted: resuming starts from the next fire time after the resume).
 *
 * <p>Thread-safety: an immutable enum.
 */
public enum MissedFirePolicy {
  /** Fire once for all the missed fire times, as soon as a runner sees them, then go on. */
  RUN_ONCE,
  /**
   * Fire nothing for missed fire times; go on with the next one. A fire time counts as missed
   * when it is older than the runner's poll interval (at least one second) when first seen.
   */
  SKIP
}
