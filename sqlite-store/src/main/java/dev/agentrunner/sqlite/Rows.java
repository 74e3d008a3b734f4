package dev.agentrunner.sqlite;

import dev.agentrunner.RunEvent;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Types;
import java.time.Instant;
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

  static void setNullableString(PreparedStatement ps, int index, String value)
      throws SQLException {
    if (value == null) {
      ps.setNull(index, Types.VARCHAR);
    } else {
      ps.setString(index, value);
    }
  }

  private static Instant nullableInstant(ResultSet rs, int column) throws SQLException {
    long value = rs.getLong(column);
    return rs.wasNull() ? null : instant(value);
  }
}
