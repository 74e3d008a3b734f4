package dev.agentrunner;

/**
 * A submit reused an idempotency key that is stored for a different request (another agent or
 * another input). Nothing was stored; the stored run is untouched. Reusing a key for the same
 * request is no conflict: it returns the stored run.
 *
 * <p>Thread-safety: see {@link AgentRunnerException}.
 */
public class IdempotencyConflictException extends RunRejectedException {
  private static final long serialVersionUID = 1L;

  private final String idempotencyKey;
  private final long storedRunId;

  /** An exception naming the key and the run that holds it. */
  public IdempotencyConflictException(String idempotencyKey, long storedRunId, String why) {
    super("idempotency key \"" + idempotencyKey + "\" belongs to run " + storedRunId
        + ", submitted with " + why + "; the run was rejected and not stored");
    this.idempotencyKey = idempotencyKey;
    this.storedRunId = storedRunId;
  }

  /** The reused key. */
  public String idempotencyKey() {
    return idempotencyKey;
  }

  /** The id of the run stored under the key. */
  public long storedRunId() {
    return storedRunId;
  }
}
