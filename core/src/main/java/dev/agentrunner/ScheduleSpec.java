package dev.agentrunner;

import dev.agentrunner.internal.Checks;
import dev.agentrunner.internal.CronTriggers;
import java.time.Duration;
import java.time.ZoneId;
import java.util.Objects;

/**
 * A named, recurring run: which agent to run with which input, and when. Save it with
 * {@link Schedules#upsert(ScheduleSpec)}.
 *
 * <pre>{@code
 * ScheduleSpec.fixedRate("nightly-scan", "scanner", "{}", Duration.ofHours(24))
 * ScheduleSpec.cron("reports", "reporter", "{}", "0 7 * * MON-FRI", ZoneId.of("Europe/Paris"))
 *     .missedFires(MissedFirePolicy.SKIP)
 * }</pre>
 *
 * <p>Every fire time enqueues exactly one run across all runners sharing the store: the run's
 * idempotency key is {@code schedule:<name>@<fire time in epoch ms>}, unique in the store.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param name the schedule's name: 1 to 64 characters, not blank, no control characters
 * @param agent the agent to run
 * @param input the input of every run
 * @param kind how fire times follow each other
 * @param interval for {@code FIXED_RATE} the time between fire times, for {@code FIXED_DELAY}
 *     the time between the end of a run and the next fire time; null for {@code CRON}
 * @param cron for {@code CRON}, a Unix cron expression (5 fields); else null
 * @param zone for {@code CRON}, the time zone the expression is read in; else null
 * @param missedFires what to do about fire times missed during downtime
 */
public record ScheduleSpec(
    String name,
    String agent,
    String input,
    Kind kind,
    Duration interval,
    String cron,
    ZoneId zone,
    MissedFirePolicy missedFires) {

  /** The longest schedule name, so that the derived idempotency key fits its limit. */
  public static final int MAX_NAME_LENGTH = 64;

  /** How fire times follow each other. */
  public enum Kind {
    /** Every {@code interval}, whatever the runs take. */
    FIXED_RATE,
    /** {@code interval} after the previous run ended; never two runs of it at once. */
    FIXED_DELAY,
    /** At the times a cron expression names, in a time zone. */
    CRON
  }

  /**
   * @throws IllegalArgumentException if a name is invalid, the interval is not positive, or the
   *     cron expression does not parse (the message says why)
   */
  public ScheduleSpec {
    Checks.name(name, "name");
    if (name.length() > MAX_NAME_LENGTH) {
      throw new IllegalArgumentException("name must be at most " + MAX_NAME_LENGTH
          + " characters, was " + name.length());
    }
    Checks.name(agent, "agent");
    Objects.requireNonNull(input, "input");
    Objects.requireNonNull(kind, "kind");
    Objects.requireNonNull(missedFires, "missedFires");
    if (kind == Kind.CRON) {
      Objects.requireNonNull(cron, "cron");
      Objects.requireNonNull(zone, "zone");
      if (interval != null) {
        throw new IllegalArgumentException("a CRON schedule has no interval, was " + interval);
      }
      CronTriggers.validate(cron);
    } else {
      Checks.positive(interval, "interval");
      if (cron != null || zone != null) {
        throw new IllegalArgumentException("only a CRON schedule has a cron expression and zone");
      }
    }
  }

  /** Runs {@code agent} every {@code every}, the first time {@code every} from now. */
  public static ScheduleSpec fixedRate(String name, String agent, String input, Duration every) {
    return new ScheduleSpec(name, agent, input, Kind.FIXED_RATE, every, null, null,
        MissedFirePolicy.RUN_ONCE);
  }

  /** Runs {@code agent} {@code delay} after the previous run ended (the first: from now). */
  public static ScheduleSpec fixedDelay(String name, String agent, String input, Duration delay) {
    return new ScheduleSpec(name, agent, input, Kind.FIXED_DELAY, delay, null, null,
        MissedFirePolicy.RUN_ONCE);
  }

  /**
   * Runs {@code agent} at the times of a Unix cron expression ("minute hour day-of-month month
   * day-of-week") read in {@code zone}. Needs {@code com.cronutils:cron-utils} on the class path.
   */
  public static ScheduleSpec cron(
      String name, String agent, String input, String expression, ZoneId zone) {
    return new ScheduleSpec(name, agent, input, Kind.CRON, null, expression, zone,
        MissedFirePolicy.RUN_ONCE);
  }

  /** This spec with another policy for missed fire times (default {@code RUN_ONCE}). */
  public ScheduleSpec missedFires(MissedFirePolicy policy) {
    return new ScheduleSpec(name, agent, input, kind, interval, cron, zone,
        Objects.requireNonNull(policy, "policy"));
  }

  /** This spec with another input. */
  public ScheduleSpec withInput(String input) {
    return new ScheduleSpec(name, agent, Objects.requireNonNull(input, "input"), kind, interval,
        cron, zone, missedFires);
  }

  /** Whether {@code other} fires at the same times (kind, interval, expression and zone). */
  public boolean sameTimingAs(ScheduleSpec other) {
    return kind == other.kind && Objects.equals(interval, other.interval)
        && Objects.equals(cron, other.cron) && Objects.equals(zone, other.zone);
  }
}
