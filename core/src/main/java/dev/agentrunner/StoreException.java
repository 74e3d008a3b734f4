package dev.agentrunner;

/**
 * The run store failed: it could not be reached, refused a write, or found its data in a state
 * it cannot use. The message names the store and the problem. The operation that failed had no
 * effect (stores commit each operation atomically).
 *
 * <p>Thread-safety: see {@link AgentRunnerException}.
 */
public class StoreException extends AgentRunnerException {
  private static final long serialVersionUID = 1L;

  /** An exception with a message. */
  public StoreException(String message) {
    super(message);
  }

  /** An exception with a message and the underlying cause. */
  public StoreException(String message, Throwable cause) {
    super(message, cause);
  }
}
