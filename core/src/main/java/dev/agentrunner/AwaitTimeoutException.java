package dev.agentrunner;

/**
 * {@link RunHandle#await(java.time.Duration)} gave up before the run finished. The run itself
 * is unaffected and goes on.
 *
 * <p>Thread-safety: see {@link AgentRunnerException}.
 */
public class AwaitTimeoutException extends AgentRunnerException {
  private static final long serialVersionUID = 1L;

  private final transient RunRecord lastSeen;

  /** An exception carrying the last state of the run that the waiter saw. */
  public AwaitTimeoutException(String message, RunRecord lastSeen) {
    super(message);
    this.lastSeen = lastSeen;
  }

  /** The run as last read before giving up. */
  public RunRecord lastSeen() {
    return lastSeen;
  }
}
