package dev.agentrunner.spi;

import dev.agentrunner.IdempotencyConflictException;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import java.time.Instant;
import java.util.Objects;

/**
 * A run to insert. The store assigns the id, {@code createdAt} and (when {@code notBefore} is
 * null) {@code notBefore = createdAt}, and stores it QUEUED with attempt 0.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param request the validated request
 * @param maxAttempts how many attempts the run may use, at least 1
 */
public record NewRun(RunRequest request, int maxAttempts) {

  /** @throws IllegalArgumentException if {@code maxAttempts} is below 1 */
  public NewRun {
    Objects.requireNonNull(request, "request");
    if (maxAttempts < 1) {
      throw new IllegalArgumentException("maxAttempts must be at least 1, was " + maxAttempts);
    }
  }

  /** A run with one attempt. */
  public static NewRun of(RunRequest request) {
    return new NewRun(request, 1);
  }

  /**
   * For stores: returns {@code stored}, the run an insert of this request wrote or found under
   * its idempotency key, after checking that a found run was submitted for the same agent and
   * input.
   *
   * @throws IdempotencyConflictException if the key holds a run of another request
   */
  public RunRecord requireSameRequest(RunRecord stored) {
    if (!stored.agent().equals(request.agent())) {
      throw new IdempotencyConflictException(request.idempotencyKey(), stored.id(),
          "agent \"" + stored.agent() + "\", not \"" + request.agent() + "\"");
    }
    if (!stored.input().equals(request.input())) {
      throw new IdempotencyConflictException(request.idempotencyKey(), stored.id(),
          "another input");
    }
    return stored;
  }

  /** Shorthand for {@code request().agent()}. */
  public String agent() {
    return request.agent();
  }

  /** Shorthand for {@code request().input()}. */
  public String input() {
    return request.input();
  }

  /** Shorthand for {@code request().notBefore()}; null means "as soon as inserted". */
  public Instant notBefore() {
    return request.notBefore();
  }
}
