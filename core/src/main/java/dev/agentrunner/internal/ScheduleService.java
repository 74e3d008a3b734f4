package dev.agentrunner.internal;

import dev.agentrunner.IdempotencyConflictException;
import dev.agentrunner.MissedFirePolicy;
import dev.agentrunner.RunHandle;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.Schedule;
import dev.agentrunner.ScheduleSpec;
import dev.agentrunner.Schedules;
import dev.agentrunner.UnknownAgentException;
import dev.agentrunner.UnknownScheduleException;
import dev.agentrunner.spi.RunStore;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.function.UnaryOperator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Schedules on top of the store's versioned schedule rows. No lock anywhere: every change reads
 * the stored schedule, computes the new one and writes it back with a compare-and-set on its
 * version, retrying on conflict. Firing inserts the run under the idempotency key of its fire
 * time ({@link Schedule#runKey}) before it advances the schedule, so a fire time enqueues exactly
 * one run however many runners race for it, and a runner that dies in between leaves the next
 * one to find the run already there (invariant I10).
 *
 * <p>Thread-safety: thread-safe.
 */
public final class ScheduleService implements Schedules {
  private static final Logger log = LoggerFactory.getLogger(ScheduleService.class);

  private final Engine engine;
  private final RunStore store;

  ScheduleService(Engine engine) {
    this.engine = engine;
    this.store = engine.store();
  }

  @Override
  public Schedule upsert(ScheduleSpec spec) {
    Objects.requireNonNull(spec, "spec");
    if (!engine.config().agents().containsKey(spec.agent())) {
      throw new UnknownAgentException(spec.agent(), engine.config().agents().keySet());
    }
    while (true) {
      Instant now = engine.clock().instant();
      Optional<Schedule> current = store.findSchedule(spec.name());
      Schedule next = current
          .map(c -> c.with(spec, c.paused(),
              spec.sameTimingAs(c.spec()) ? c.nextFireAt() : firstFire(spec, now),
              c.lastFireAt(), c.lastRunId()))
          .orElseGet(() -> new Schedule(spec, false, firstFire(spec, now), null, 0, 0));
      Optional<Schedule> stored = store.putSchedule(next);
      if (stored.isPresent()) {
        return stored.get();
      }
    }
  }

  @Override
  public RunHandle trigger(String name) {
    Schedule schedule = require(name);
    return engine.submit(RunRequest.of(schedule.spec().agent(), schedule.spec().input()));
  }

  @Override
  public Schedule pause(String name) {
    return change(name, s -> s.with(s.spec(), true, s.nextFireAt(), s.lastFireAt(),
        s.lastRunId()));
  }

  @Override
  public Schedule resume(String name) {
    return change(name, s -> s.paused()
        ? s.with(s.spec(), false, resumeFire(s, engine.clock().instant()), s.lastFireAt(),
            s.lastRunId())
        : s);
  }

  @Override
  public boolean delete(String name) {
    return store.deleteSchedule(Objects.requireNonNull(name, "name"));
  }

  @Override
  public Optional<Schedule> get(String name) {
    return store.findSchedule(Objects.requireNonNull(name, "name"));
  }

  @Override
  public List<Schedule> list() {
    return store.schedules();
  }

  /**
   * Enqueues one run for every schedule whose fire time has come, and advances it.
   *
   * @return the earliest fire time still ahead, or null if none
   */
  Instant fireDue(Instant now) {
    Instant earliest = null;
    for (Schedule schedule : store.schedules()) {
      if (schedule.paused()) {
        continue;
      }
      Schedule s = schedule.nextFireAt() == null ? afterDelayEnded(schedule, now) : schedule;
      if (s == null || s.nextFireAt() == null) {
        continue;
      }
      if (s.nextFireAt().isAfter(now)) {
        earliest = earliest == null || s.nextFireAt().isBefore(earliest) ? s.nextFireAt()
            : earliest;
        continue;
      }
      Instant next = fire(s, now);
      if (next != null && (earliest == null || next.isBefore(earliest))) {
        earliest = next;
      }
    }
    return earliest;
  }

  /** Fires {@code s} for its due fire time (unless SKIP says it was missed); returns the next. */
  private Instant fire(Schedule s, Instant now) {
    Instant fireAt = s.nextFireAt();
    Duration missedAfter = engine.config().pollInterval().compareTo(Duration.ofSeconds(1)) > 0
        ? engine.config().pollInterval() : Duration.ofSeconds(1);
    boolean missed = fireAt.plus(missedAfter).isBefore(now);
    ScheduleSpec spec = s.spec();
    long runId = s.lastRunId();
    Instant lastFire = s.lastFireAt();
    if (missed && spec.missedFires() == MissedFirePolicy.SKIP) {
      log.info("schedule {}: skipping fire time {} missed while no runner was up", s.name(),
          fireAt);
    } else {
      RunRequest request = RunRequest.of(spec.agent(), spec.input())
          .withIdempotencyKey(Schedule.runKey(s.name(), fireAt));
      try {
        runId = engine.enqueue(request).id();
      } catch (IdempotencyConflictException alreadyFired) {
        // This fire time has its run, enqueued before an update changed the input and won the
        // compare-and-set: the fire time is done, whatever the input now says.
        runId = alreadyFired.storedRunId();
      }
      lastFire = fireAt;
    }
    // On time (or a little late): the very next fire time, even if it is due already, so no
    // fire time is lost to a slow poll. Missed: the first one after now (RUN_ONCE or SKIP).
    Instant next = spec.kind() == ScheduleSpec.Kind.FIXED_DELAY ? null
        : nextAfter(spec, fireAt, missed ? now : fireAt);
    // A conflict means another runner advanced or changed it first; its state wins.
    store.putSchedule(s.with(spec, false, next, lastFire, runId));
    return next;
  }

  /**
   * For a FIXED_DELAY schedule waiting on its last run: once that run has ended, sets the next
   * fire time to its end plus the delay. Returns the schedule to go on with, or null to wait.
   */
  private Schedule afterDelayEnded(Schedule s, Instant now) {
    if (s.spec().kind() != ScheduleSpec.Kind.FIXED_DELAY) {
      return null;
    }
    Optional<RunRecord> last = store.find(s.lastRunId());
    if (last.isPresent() && !last.get().isTerminal()) {
      return null;
    }
    Instant ended = last.map(RunRecord::finishedAt).orElse(now);
    Schedule waiting = s.with(s.spec(), false, ended.plus(s.spec().interval()), s.lastFireAt(),
        s.lastRunId());
    return store.putSchedule(waiting).orElse(null);
  }

  private Schedule change(String name, UnaryOperator<Schedule> update) {
    while (true) {
      Schedule current = require(name);
      Schedule next = update.apply(current);
      if (next == current) {
        return current;
      }
      Optional<Schedule> stored = store.putSchedule(next);
      if (stored.isPresent()) {
        return stored.get();
      }
    }
  }

  private Schedule require(String name) {
    return store.findSchedule(Objects.requireNonNull(name, "name"))
        .orElseThrow(() -> new UnknownScheduleException(name));
  }

  private static Instant firstFire(ScheduleSpec spec, Instant now) {
    return spec.kind() == ScheduleSpec.Kind.CRON
        ? CronTriggers.next(spec.cron(), spec.zone(), now).orElse(null)
        : now.plus(spec.interval());
  }

  /** After a pause: the first fire time after now, as if the paused ones were skipped. */
  private static Instant resumeFire(Schedule s, Instant now) {
    ScheduleSpec spec = s.spec();
    if (spec.kind() == ScheduleSpec.Kind.FIXED_DELAY) {
      return s.nextFireAt() == null ? null : now.plus(spec.interval());
    }
    return s.nextFireAt() == null ? firstFire(spec, now) : nextAfter(spec, s.nextFireAt(), now);
  }

  /** The first fire time after {@code now} on the schedule's grid that runs through fireAt. */
  static Instant nextAfter(ScheduleSpec spec, Instant fireAt, Instant now) {
    if (spec.kind() == ScheduleSpec.Kind.CRON) {
      Instant from = fireAt.isAfter(now) ? fireAt : now;
      return CronTriggers.next(spec.cron(), spec.zone(), from).orElse(null);
    }
    long interval = spec.interval().toNanos();
    long behind = Duration.between(fireAt, now).toNanos();
    long steps = behind < 0 ? 1 : behind / interval + 1;
    return fireAt.plusNanos(Math.multiplyExact(steps, interval));
  }
}
