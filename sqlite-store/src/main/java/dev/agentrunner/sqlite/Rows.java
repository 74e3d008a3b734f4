package dev.agentrunner.sqlite;

import dev.agentrunner.MissedFirePolicy;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Schedule;
import dev.agentrunner.ScheduleSpec;
import dev.agentrunner.Usage;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Types;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.List;

/**
 * Maps rows to records and instants to columns.
 *
 * <p>Instants are stored as integer nanoseconds since the epoch, so every instant a clock can
 * produce between the years 1677 and 2262 round-trips exactly (a record read back equals the
 * record returned by the write). Instants outside that range saturate to the nearest end, which
 * keeps their order: a {@code notBefore} in the year 3000 still means "not yet".
 */
final class Rows {
  private static final long NANOS_PER_SECOND = 1_000_000_000L;

  private Rows() {}

  static long nanos(Instant instant) {
    try {
      return Math.addExact(
          Math.multiplyExact(instant.getEpochSecond(), NANOS_PER_SECOND), instant.getNano());
    } catch (ArithmeticException outOfRange) {
      return instant.getEpochSecond() < 0 ? Long.MIN_VALUE : Long.MAX_VALUE;
    }
  }

  static Instant instant(long nanos) {
    return Instant.ofEpochSecond(
        Math.floorDiv(nanos, NANOS_PER_SECOND), Math.floorMod(nanos, NANOS_PER_SECOND));
  }

  /** Reads the current row, whose columns are {@link Sql#RUN_COLUMNS}. */
  static RunRecord run(ResultSet rs) throws SQLException {
    return new RunRecord(
        rs.getLong(1),
        rs.getString(2),
        RunStatus.valueOf(rs.getString(3)),
        rs.getString(4),
        rs.getString(5),
        rs.getString(6),
        rs.getString(7),
        rs.getString(8),
        rs.getInt(9),
        rs.getInt(10),
        rs.getInt(11),
        instant(rs.getLong(12)),
        instant(rs.getLong(13)),
        nullableInstant(rs, 14),
        nullableInstant(rs, 15),
        rs.getString(16),
        nullableInstant(rs, 17),
        rs.getInt(18) != 0,
        new Usage(rs.getLong(19), rs.getLong(20), rs.getLong(21)));
  }

  /** Reads the current row, whose columns are {@link Sql#EVENT_COLUMNS}. */
  static RunEvent event(ResultSet rs) throws SQLException {
    return new RunEvent(rs.getLong(1), rs.getLong(2), rs.getInt(3), rs.getString(4),
        rs.getString(5), instant(rs.getLong(6)));
  }

  /** Executes a statement returning run rows and reads them all. */
  static List<RunRecord> runs(PreparedStatement ps) throws SQLException {
    List<RunRecord> out = new ArrayList<>();
    try (ResultSet rs = ps.executeQuery()) {
      while (rs.next()) {
        out.add(run(rs));
      }
    }
    return out;
  }

  /** Executes a statement returning at most one run row; null when it returns none. */
  static RunRecord runOrNull(PreparedStatement ps) throws SQLException {
    // Read to the end even after the first row: a RETURNING statement completes only then.
    List<RunRecord> rows = runs(ps);
    return rows.isEmpty() ? null : rows.get(0);
  }

  /** Reads the current row, whose columns are {@link Sql#SCHEDULE_COLUMNS}. */
  static Schedule schedule(ResultSet rs) throws SQLException {
    long intervalNanos = rs.getLong(5);
    Duration interval = rs.wasNull() ? null : Duration.ofNanos(intervalNanos);
    String zone = rs.getString(7);
    ScheduleSpec spec = new ScheduleSpec(
        rs.getString(1),
        rs.getString(2),
        rs.getString(3),
        ScheduleSpec.Kind.valueOf(rs.getString(4)),
        interval,
        rs.getString(6),
        zone == null ? null : ZoneId.of(zone),
        MissedFirePolicy.valueOf(rs.getString(8)));
    return new Schedule(spec, rs.getInt(9) != 0, nullableInstant(rs, 10),
        nullableInstant(rs, 11), rs.getLong(12), rs.getLong(13));
  }

  /** Executes a statement returning schedule rows and reads them all. */
  static List<Schedule> schedules(PreparedStatement ps) throws SQLException {
    List<Schedule> out = new ArrayList<>();
    try (ResultSet rs = ps.executeQuery()) {
      while (rs.next()) {
        out.add(schedule(rs));
      }
    }
    return out;
  }

  /** Executes a statement returning at most one schedule row; null when it returns none. */
  static Schedule scheduleOrNull(PreparedStatement ps) throws SQLException {
    List<Schedule> rows = schedules(ps); // to the end, as for runs: RETURNING completes then
    return rows.isEmpty() ? null : rows.get(0);
  }

  /**
   * Binds everything of a schedule but its name and version, in the order of
   * {@link Sql#UPDATE_SCHEDULE}'s SET list, from parameter {@code first}; returns the next one.
   * The interval must have been checked with {@link #checkStorable} already.
   */
  static int bindScheduleState(PreparedStatement ps, int first, Schedule schedule)
      throws SQLException {
    ScheduleSpec spec = schedule.spec();
    int i = first;
    ps.setString(i++, spec.agent());
    ps.setString(i++, spec.input());
    ps.setString(i++, spec.kind().name());
    if (spec.interval() == null) {
      ps.setNull(i++, Types.BIGINT);
    } else {
      ps.setLong(i++, spec.interval().toNanos());
    }
    setNullableString(ps, i++, spec.cron());
    setNullableString(ps, i++, spec.zone() == null ? null : spec.zone().getId());
    ps.setString(i++, spec.missedFires().name());
    ps.setInt(i++, schedule.paused() ? 1 : 0);
    setNullableInstant(ps, i++, schedule.nextFireAt());
    setNullableInstant(ps, i++, schedule.lastFireAt());
    ps.setLong(i++, schedule.lastRunId());
    return i;
  }

  /**
   * Checks that a schedule's interval fits the nanosecond column (about 292 years).
   *
   * @throws IllegalArgumentException naming the interval if it does not
   */
  static void checkStorable(ScheduleSpec spec) {
    if (spec.interval() == null) {
      return;
    }
    try {
      spec.interval().toNanos();
    } catch (ArithmeticException tooLong) {
      throw new IllegalArgumentException("schedule \"" + spec.name() + "\": interval "
          + spec.interval() + " is too long to store (at most " + Duration.ofNanos(Long.MAX_VALUE)
          + ")", tooLong);
    }
  }

  /** {@code ids} as a JSON array of numbers, bound as one parameter and read with json_each. */
  static String jsonNumbers(java.util.Collection<Long> ids) {
    StringBuilder json = new StringBuilder(ids.size() * 8 + 2).append('[');
    for (long id : ids) {
      if (json.length() > 1) {
        json.append(',');
      }
      json.append(id);
    }
    return json.append(']').toString();
  }

  static void setNullableString(PreparedStatement ps, int index, String value)
      throws SQLException {
    if (value == null) {
      ps.setNull(index, Types.VARCHAR);
    } else {
      ps.setString(index, value);
    }
  }

  private static void setNullableInstant(PreparedStatement ps, int index, Instant value)
      throws SQLException {
    if (value == null) {
      ps.setNull(index, Types.BIGINT);
    } else {
      ps.setLong(index, nanos(value));
    }
  }

  private static Instant nullableInstant(ResultSet rs, int column) throws SQLException {
    long value = rs.getLong(column);
    return rs.wasNull() ? null : instant(value);
  }
}
