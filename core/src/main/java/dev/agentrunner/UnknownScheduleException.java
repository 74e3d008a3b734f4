package dev.agentrunner;

/**
 * No schedule of the given name exists in the store.
 *
 * <p>Thread-safety: see {@link AgentRunnerException}.
 */
public class UnknownScheduleException extends AgentRunnerException {
  private static final long serialVersionUID = 1L;

  /** An exception naming the missing schedule. */
  public UnknownScheduleException(String name) {
    super("no schedule named \"" + name + "\"");
  }
}
