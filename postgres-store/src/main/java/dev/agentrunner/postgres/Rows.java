package dev.agentrunner.postgres;

import dev.agentrunner.MissedFirePolicy;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Schedule;
import dev.agentrunner.ScheduleSpec;
import dev.agentrunner.StoreException;
import dev.agentrunner.Usage;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Types;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;

/**
 * Maps rows to records and values to bind parameters.
 *
 * <p>Instants are {@code timestamptz}, which keeps microseconds: every instant read back equals
 * the one the write returned, because both come from the row itself ({@code RETURNING}). An
 * instant a caller passes in (a {@code notBefore}, a purge bound) outside the years 1 to 9999 is
 * saturated to the nearest end, which keeps its order: a {@code notBefore} in the year 100000
 * still means "not yet".
 *
 * <p>Thread-safety: stateless.
 */
final class Rows {
  static final Instant MIN = Instant.parse("0001-01-01T00:00:00Z");
  static final Instant MAX = Instant.parse("9999-12-31T23:59:59.999999Z");

  /** Longer leases are cut to this, so that {@code now + lease} stays a valid timestamp. */
  private static final Duration MAX_LEASE = Duration.ofDays(365L * 100);

  private Rows() {}

  /** Binds an instant, or SQL NULL for null (which the statements read as "the database's now"). */
  static void setInstant(PreparedStatement ps, int index, Instant instant) throws SQLException {
    if (instant == null) {
      ps.setNull(index, Types.TIMESTAMP_WITH_TIMEZONE);
      return;
    }
    Instant clamped = instant.isBefore(MIN) ? MIN : instant.isAfter(MAX) ? MAX : instant;
    ps.setObject(index, OffsetDateTime.ofInstant(clamped, ZoneOffset.UTC));
  }

  /** A delay in whole microseconds, the resolution of {@code timestamptz}, rounded down. */
  static long micros(Duration delay) {
    return delay.getSeconds() * 1_000_000L + delay.getNano() / 1_000;
  }

  /** A lease as whole microseconds, at least 1 and at most {@code MAX_LEASE}. */
  static long leaseMicros(Duration lease) {
    return Math.max(1, micros(lease.compareTo(MAX_LEASE) > 0 ? MAX_LEASE : lease));
  }

  static void setNullableString(PreparedStatement ps, int index, String value)
      throws SQLException {
    if (value == null) {
      ps.setNull(index, Types.VARCHAR);
    } else {
      ps.setString(index, value);
    }
  }

  /**
   * {@code value}, checked for the NUL character: PostgreSQL's text type cannot hold it, and
   * the server's own error ("invalid byte sequence") would not say which value was at fault.
   */
  static String text(String field, String value) {
    if (value != null && value.indexOf('\u0000') >= 0) {
      throw new StoreException("PostgreSQL run store: " + field + " contains the NUL character"
          + " (U+0000), which PostgreSQL cannot store in a text column; nothing was written");
    }
    return value;
  }

  /** Reads the current row, whose first columns are {@link Sql#runColumns(String)}. */
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
        instant(rs, 12),
        instant(rs, 13),
        instant(rs, 14),
        instant(rs, 15),
        rs.getString(16),
        instant(rs, 17),
        rs.getBoolean(18),
        new Usage(rs.getLong(19), rs.getLong(20), rs.getLong(21)));
  }

  /** Reads the current row, whose columns are {@link Sql#EVENT_COLUMNS}. */
  static RunEvent event(ResultSet rs) throws SQLException {
    return new RunEvent(rs.getLong(1), rs.getLong(2), rs.getInt(3), rs.getString(4),
        rs.getString(5), instant(rs, 6));
  }

  /** Runs a write returned, and whether any of them should wake other nodes. */
  record Changed(List<RunRecord> runs, boolean wake) {
    RunRecord single() {
      return runs.isEmpty() ? null : runs.get(0);
    }
  }

  /** Executes a write whose rows are the run's columns and then a boolean {@code wake}. */
  static Changed changed(PreparedStatement ps) throws SQLException {
    List<RunRecord> out = new ArrayList<>();
    boolean wake = false;
    try (ResultSet rs = ps.executeQuery()) {
      while (rs.next()) {
        out.add(run(rs));
        wake |= rs.getBoolean(22);
      }
    }
    return new Changed(List.copyOf(out), wake);
  }

  /** Reads the current row, whose columns are {@link Sql#SCHEDULE_COLUMNS}. */
  static Schedule schedule(ResultSet rs) throws SQLException {
    long seconds = rs.getLong(5);
    Duration interval = rs.wasNull() ? null : Duration.ofSeconds(seconds, rs.getInt(6));
    String zone = rs.getString(8);
    ScheduleSpec spec = new ScheduleSpec(rs.getString(1), rs.getString(2), rs.getString(3),
        ScheduleSpec.Kind.valueOf(rs.getString(4)), interval, rs.getString(7),
        zone == null ? null : ZoneId.of(zone), MissedFirePolicy.valueOf(rs.getString(9)));
    return new Schedule(spec, rs.getBoolean(10), nanosInstant(rs, 11), nanosInstant(rs, 12),
        rs.getLong(13), rs.getLong(14));
  }

  /**
   * Binds a schedule's columns after its name, from {@code index}: agent, input, kind,
   * interval, cron, zone, missed fires, paused, next fire, last fire, last run id.
   *
   * @return the next parameter index
   */
  static int setSchedule(PreparedStatement ps, int index, Schedule schedule) throws SQLException {
    ScheduleSpec spec = schedule.spec();
    int i = index;
    ps.setString(i++, spec.agent());
    ps.setString(i++, text("the schedule's input", spec.input()));
    ps.setString(i++, spec.kind().name());
    if (spec.interval() == null) {
      ps.setNull(i++, Types.BIGINT);
      ps.setNull(i++, Types.INTEGER);
    } else {
      ps.setLong(i++, spec.interval().getSeconds());
      ps.setInt(i++, spec.interval().getNano());
    }
    setNullableString(ps, i++, spec.cron());
    setNullableString(ps, i++, spec.zone() == null ? null : spec.zone().getId());
    ps.setString(i++, spec.missedFires().name());
    ps.setBoolean(i++, schedule.paused());
    setNanos(ps, i++, schedule.nextFireAt());
    setNanos(ps, i++, schedule.lastFireAt());
    ps.setLong(i++, schedule.lastRunId());
    return i;
  }

  /**
   * Epoch nanoseconds: exact for every instant between the years 1677 and 2262; instants
   * outside saturate to the nearest end, which keeps their order.
   */
  private static void setNanos(PreparedStatement ps, int index, Instant instant)
      throws SQLException {
    if (instant == null) {
      ps.setNull(index, Types.BIGINT);
      return;
    }
    long nanos;
    try {
      nanos = Math.addExact(Math.multiplyExact(instant.getEpochSecond(), 1_000_000_000L),
          instant.getNano());
    } catch (ArithmeticException outOfRange) {
      nanos = instant.getEpochSecond() < 0 ? Long.MIN_VALUE : Long.MAX_VALUE;
    }
    ps.setLong(index, nanos);
  }

  private static Instant nanosInstant(ResultSet rs, int column) throws SQLException {
    long nanos = rs.getLong(column);
    return rs.wasNull() ? null : Instant.ofEpochSecond(
        Math.floorDiv(nanos, 1_000_000_000L), Math.floorMod(nanos, 1_000_000_000L));
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
    List<RunRecord> rows = runs(ps);
    return rows.isEmpty() ? null : rows.get(0);
  }

  static Instant instant(ResultSet rs, int column) throws SQLException {
    OffsetDateTime value = rs.getObject(column, OffsetDateTime.class);
    return value == null ? null : value.toInstant();
  }
}
