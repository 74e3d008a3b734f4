package dev.agentrunner;

/**
 * The runner is closing or closed and accepts no more runs. A submit that throws this stored
 * nothing.
 *
 * <p>Thread-safety: see {@link AgentRunnerException}.
 */
public class RunnerClosedException extends AgentRunnerException {
  private static final long serialVersionUID = 1L;

  /** An exception with a message. */
  public RunnerClosedException(String message) {
    super(message);
  }
}
