package dev.agentrunner;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * A run that was stored by {@link AgentRunner#submit(RunRequest)}: its id, and ways to wait for
 * its end. The run may execute in this process or in another one sharing the store.
 *
 * <p>Thread-safety: thread-safe.
 */
public interface RunHandle {

  /** The id of the row the submit wrote (or, for a repeated idempotency key, found). */
  long id();

  /** The run as the store holds it now. */
  RunRecord current();

  /**
   * Waits until the run is terminal and returns its final record.
   *
   * @throws AwaitTimeoutException if it is not terminal within {@code timeout}
   * @throws AgentRunnerException if the waiting thread is interrupted (its interrupt flag is set
   *     again)
   * @throws IllegalArgumentException if {@code timeout} is negative
   */
  RunRecord await(Duration timeout);

  /**
   * A future completed with the final record once the run is terminal. Completing or cancelling
   * the returned future does not affect the run.
   */
  CompletableFuture<RunRecord> completion();
}
