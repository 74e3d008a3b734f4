package dev.agentrunner;

import java.time.Instant;
import java.util.Objects;
import java.util.Optional;

/**
 * A schedule as the store holds it: its spec and where it stands. Never mutated; every change
 * is a new record with a higher {@code version}, which stores use for compare-and-set.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param spec what to run and when
 * @param paused whether firing is paused
 * @param nextFireAt the next fire time; null while a {@code FIXED_DELAY} schedule waits for its
 *     last run to end
 * @param lastFireAt the fire time of the last run it enqueued, or null
 * @param lastRunId the id of the last run it enqueued, or 0
 * @param version 0 for a schedule not yet stored; the store increments it on every change, and
 *     a schedule created again under a deleted one's name goes on from the deleted one's version
 *     (so that a change prepared against the deleted schedule never applies to the new one)
 */
public record Schedule(
    ScheduleSpec spec,
    boolean paused,
    Instant nextFireAt,
    Instant lastFireAt,
    long lastRunId,
    long version) {

  /** @throws NullPointerException if {@code spec} is null */
  public Schedule {
    Objects.requireNonNull(spec, "spec");
    if (version < 0) {
      throw new IllegalArgumentException("version must not be negative, was " + version);
    }
  }

  /** The schedule's name. */
  public String name() {
    return spec.name();
  }

  /** The next fire time, if one is set. */
  public Optional<Instant> nextFire() {
    return Optional.ofNullable(nextFireAt);
  }

  /** This schedule with another state, same version (for stores and the engine). */
  public Schedule with(ScheduleSpec spec, boolean paused, Instant nextFireAt, Instant lastFireAt,
      long lastRunId) {
    return new Schedule(spec, paused, nextFireAt, lastFireAt, lastRunId, version);
  }

  /** The idempotency key of the run for fire time {@code fireAt}: unique per schedule and time. */
  public static String runKey(String scheduleName, Instant fireAt) {
    return "schedule:" + scheduleName + "@" + fireAt.toEpochMilli();
  }
}
