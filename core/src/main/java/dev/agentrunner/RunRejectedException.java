package dev.agentrunner;

/**
 * The runner refused a run it understood, for example because its serial key is busy under the
 * {@code REJECT} policy. Nothing was stored.
 *
 * <p>Thread-safety: see {@link AgentRunnerException}.
 */
public class RunRejectedException extends AgentRunnerException {
  private static final long serialVersionUID = 1L;

  /** An exception explaining why the run was refused. */
  public RunRejectedException(String message) {
    super(message);
  }
}
