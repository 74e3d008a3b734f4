package dev.agentrunner;

/**
 * The root of every exception this library throws on purpose. Catch it to handle all of them;
 * catch a subclass to handle one kind. Invalid arguments are reported with the standard
 * {@link IllegalArgumentException} and {@link NullPointerException}, naming the parameter.
 *
 * <p>Thread-safety: exceptions are not meant to be shared between threads while being changed.
 */
public class AgentRunnerException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** An exception with a message. */
  public AgentRunnerException(String message) {
    super(message);
  }

  /** An exception with a message and a cause. */
  public AgentRunnerException(String message, Throwable cause) {
    super(message, cause);
  }
}
