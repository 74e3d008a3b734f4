package dev.agentrunner;

/**
 * A run was refused under {@link SerialKeyPolicy#REJECT} because its serial key already has a
 * QUEUED or RUNNING run. Nothing was stored.
 *
 * <p>Thread-safety: see {@link AgentRunnerException}.
 */
public class SerialKeyBusyException extends RunRejectedException {
  private static final long serialVersionUID = 1L;

  private final String serialKey;
  private final long activeRunId;

  /** An exception naming the key and the run that holds it. */
  public SerialKeyBusyException(String serialKey, long activeRunId) {
    super("serial key \"" + serialKey + "\" is busy with run " + activeRunId
        + "; the run was rejected (policy REJECT) and not stored");
    this.serialKey = serialKey;
    this.activeRunId = activeRunId;
  }

  /** The busy key. */
  public String serialKey() {
    return serialKey;
  }

  /** The id of a QUEUED or RUNNING run holding the key (the oldest one). */
  public long activeRunId() {
    return activeRunId;
  }
}
