package dev.agentrunner;

import java.time.Instant;
import java.util.Objects;
import java.util.Optional;

/**
 * One run as the store holds it. Never mutated: every change is a new record read from the
 * store, so a record in hand is a consistent snapshot of one moment.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param id the id the store assigned at insert; unique and increasing within a store
 * @param agent the agent's name
 * @param status the status at the moment this record was read
 * @param input the input the run was submitted with
 * @param output the agent's output, or null until it succeeded
 * @param error why the run failed, timed out or was cancelled, or null
 * @param serialKey the serial key (at most one RUNNING run per key), or null
 * @param idempotencyKey the idempotency key (at most one run per key), or null
 * @param priority higher runs are claimed first; FIFO by id within one priority
 * @param attempt how many times the run has been claimed; 0 while never claimed. It is the
 *     fencing token: only the holder of the current attempt can finish the run
 * @param maxAttempts how many attempts the run may use before it fails for good
 * @param createdAt when the store accepted the run
 * @param notBefore the run is not claimed before this instant
 * @param startedAt when the current attempt was claimed, or null
 * @param finishedAt when the run reached a terminal status, or null
 * @param owner the worker holding the current claim, or null
 * @param leaseUntil the claim's lease: past it, any node may recover the run; null when unclaimed
 * @param cancelRequested whether a cancel was requested while the run was RUNNING
 * @param usage tokens and cost reported by the agent
 */
public record RunRecord(
    long id,
    String agent,
    RunStatus status,
    String input,
    String output,
    String error,
    String serialKey,
    String idempotencyKey,
    int priority,
    int attempt,
    int maxAttempts,
    Instant createdAt,
    Instant notBefore,
    Instant startedAt,
    Instant finishedAt,
    String owner,
    Instant leaseUntil,
    boolean cancelRequested,
    Usage usage) {

  /**
   * @throws NullPointerException if a required component (agent, status, input, createdAt,
   *     notBefore, usage) is null
   */
  public RunRecord {
    Objects.requireNonNull(agent, "agent");
    Objects.requireNonNull(status, "status");
    Objects.requireNonNull(input, "input");
    Objects.requireNonNull(createdAt, "createdAt");
    Objects.requireNonNull(notBefore, "notBefore");
    Objects.requireNonNull(usage, "usage");
  }

  /** Whether the run has reached a final status. */
  public boolean isTerminal() {
    return status.isTerminal();
  }

  /** The output, if the run succeeded with one. */
  public Optional<String> outputIfAny() {
    return Optional.ofNullable(output);
  }

  /** The error message, if the run failed, timed out or was cancelled with a reason. */
  public Optional<String> errorIfAny() {
    return Optional.ofNullable(error);
  }
}
