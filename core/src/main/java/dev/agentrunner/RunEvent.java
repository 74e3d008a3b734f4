package dev.agentrunner;

import java.time.Instant;
import java.util.Objects;

/**
 * One entry in a run's history: a status change written by the store in the same transaction
 * as the change itself, or an event the agent emitted.
 *
 * <p>Status change events have the types {@code queued}, {@code started}, {@code succeeded},
 * {@code failed}, {@code cancelled}, {@code timed_out}, {@code cancel_requested}, {@code requeued},
 * {@code released} and {@code recovered}; agents choose their own types.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param seq the event's id, increasing in the order the store wrote events
 * @param runId the run it belongs to
 * @param attempt the attempt during which it happened (0 before the first claim)
 * @param type the kind of event
 * @param data its payload (may be empty)
 * @param at when the store wrote it
 */
public record RunEvent(long seq, long runId, int attempt, String type, String data, Instant at) {

  /** @throws NullPointerException if {@code type}, {@code data} or {@code at} is null */
  public RunEvent {
    Objects.requireNonNull(type, "type");
    Objects.requireNonNull(data, "data");
    Objects.requireNonNull(at, "at");
  }
}
