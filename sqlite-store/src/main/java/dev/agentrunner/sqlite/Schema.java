package dev.agentrunner.sqlite;

import dev.agentrunner.StoreException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;

/**
 * The database schema as numbered migrations, and the code that brings a file up to date.
 *
 * <p>Each migration runs once, in order, inside the same IMMEDIATE transaction that reads and
 * records the version, so processes opening one file at the same moment never apply a migration
 * twice. A file whose version is above {@link #LATEST} was written by a newer library; it is
 * refused rather than used with assumptions that may no longer hold.
 *
 * <p>Migrations are append-only: never edit one that has shipped, add the next number.
 */
final class Schema {
  private Schema() {}

  /** One schema step. */
  record Migration(int version, String description, List<String> statements) {}

  static final String VERSION_TABLE =
      "CREATE TABLE IF NOT EXISTS schema_version ("
          + " version INTEGER PRIMARY KEY,"
          + " description TEXT NOT NULL,"
          + " applied_at INTEGER NOT NULL) STRICT";

  static final List<Migration> MIGRATIONS = List.of(
      new Migration(1, "runs, events and per-agent stats", List.of(
          // AUTOINCREMENT: ids must keep increasing even after the newest runs are purged.
          // STRICT: an integer overflow in a usage sum is an error, not a silent REAL.
          "CREATE TABLE runs ("
              + " id INTEGER PRIMARY KEY AUTOINCREMENT,"
              + " agent TEXT NOT NULL,"
              + " status TEXT NOT NULL CHECK (status IN"
              + "   ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT')),"
              + " input TEXT NOT NULL,"
              + " output TEXT,"
              + " error TEXT,"
              + " serial_key TEXT,"
              + " idempotency_key TEXT,"
              + " priority INTEGER NOT NULL,"
              + " attempt INTEGER NOT NULL CHECK (attempt >= 0),"
              + " max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),"
              + " created_at INTEGER NOT NULL,"
              + " not_before INTEGER NOT NULL,"
              + " started_at INTEGER,"
              + " finished_at INTEGER,"
              + " owner TEXT,"
              + " lease_until INTEGER,"
              + " cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),"
              + " input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),"
              + " output_tokens INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),"
              + " cost_micros INTEGER NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),"
              // the state machine's shape, checked by the database as a last line of defence
              + " CHECK (status <> 'RUNNING' OR (owner IS NOT NULL AND lease_until IS NOT NULL)),"
              + " CHECK ((finished_at IS NOT NULL) = (status NOT IN ('QUEUED', 'RUNNING')))"
              + ") STRICT",
          // I1: at most one run per idempotency key.
          "CREATE UNIQUE INDEX runs_idempotency_key ON runs (idempotency_key)"
              + " WHERE idempotency_key IS NOT NULL",
          // I6: at most one RUNNING run per serial key, enforced by the database itself.
          "CREATE UNIQUE INDEX runs_serial_key_running ON runs (serial_key)"
              + " WHERE status = 'RUNNING' AND serial_key IS NOT NULL",
          // The claim walks only QUEUED rows, in claim order, one agent at a time.
          "CREATE INDEX runs_queue ON runs (agent, priority DESC, id) WHERE status = 'QUEUED'",
          // FIFO within a serial key: "is there an older QUEUED run of this key?"
          "CREATE INDEX runs_serial_key_queued ON runs (serial_key, id)"
              + " WHERE status = 'QUEUED' AND serial_key IS NOT NULL",
          // Heartbeats (by owner) and lease recovery (by deadline) touch only RUNNING rows.
          "CREATE INDEX runs_running_owner ON runs (owner) WHERE status = 'RUNNING'",
          "CREATE INDEX runs_running_lease ON runs (lease_until) WHERE status = 'RUNNING'",
          "CREATE INDEX runs_agent ON runs (agent, id)",
          "CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL",
          "CREATE TABLE events ("
              + " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
              + " run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
              + " attempt INTEGER NOT NULL,"
              + " type TEXT NOT NULL,"
              + " data TEXT NOT NULL,"
              + " at INTEGER NOT NULL"
              + ") STRICT",
          "CREATE INDEX events_run ON events (run_id, seq)",
          // Counts and usage per (agent, status), kept by triggers in the same transaction as
          // every change, so stats() is one small read instead of a scan of all history.
          "CREATE TABLE agent_stats ("
              + " agent TEXT NOT NULL,"
              + " status TEXT NOT NULL,"
              + " runs INTEGER NOT NULL,"
              + " input_tokens INTEGER NOT NULL,"
              + " output_tokens INTEGER NOT NULL,"
              + " cost_micros INTEGER NOT NULL,"
              + " PRIMARY KEY (agent, status)"
              + ") STRICT, WITHOUT ROWID",
          "CREATE TRIGGER runs_stats_insert AFTER INSERT ON runs BEGIN "
              + statsAdd("NEW") + " END",
          "CREATE TRIGGER runs_stats_update"
              + " AFTER UPDATE OF status, input_tokens, output_tokens, cost_micros ON runs BEGIN "
              + statsSubtract("OLD") + " " + statsAdd("NEW") + " END",
          "CREATE TRIGGER runs_stats_delete AFTER DELETE ON runs BEGIN "
              + statsSubtract("OLD") + " END")),
      new Migration(2, "named schedules", List.of(
          // One row per schedule, changed only by compare-and-set on version (see
          // Sql.UPDATE_SCHEDULE). Keyed by name without a rowid: lookups are by name only.
          // Instants and the interval are integer nanoseconds, like every instant in runs.
          "CREATE TABLE schedules ("
              + " name TEXT NOT NULL PRIMARY KEY,"
              + " agent TEXT NOT NULL,"
              + " input TEXT NOT NULL,"
              + " kind TEXT NOT NULL CHECK (kind IN ('FIXED_RATE', 'FIXED_DELAY', 'CRON')),"
              + " interval_nanos INTEGER CHECK (interval_nanos > 0),"
              + " cron TEXT,"
              + " zone TEXT,"
              + " missed_fires TEXT NOT NULL CHECK (missed_fires IN ('RUN_ONCE', 'SKIP')),"
              + " paused INTEGER NOT NULL CHECK (paused IN (0, 1)),"
              + " next_fire_at INTEGER,"
              + " last_fire_at INTEGER,"
              + " last_run_id INTEGER NOT NULL CHECK (last_run_id >= 0),"
              + " version INTEGER NOT NULL CHECK (version >= 1),"
              // the shape ScheduleSpec enforces, checked again as a last line of defence
              + " CHECK ((kind = 'CRON') = (cron IS NOT NULL AND zone IS NOT NULL)),"
              + " CHECK ((kind = 'CRON') = (interval_nanos IS NULL))"
              + ") STRICT, WITHOUT ROWID")),
      new Migration(3, "deleted schedules keep their version", List.of(
          // A deleted schedule's row stays, marked, so that one created again under its name
          // goes on from its version: a compare-and-set prepared against the deleted schedule
          // can then never match the new one (see Sql.INSERT_SCHEDULE).
          "ALTER TABLE schedules ADD COLUMN"
              + " deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))")));

  /** The newest schema version this library knows. */
  static final int LATEST = MIGRATIONS.get(MIGRATIONS.size() - 1).version();

  private static String statsAdd(String row) {
    return "INSERT INTO agent_stats (agent, status, runs, input_tokens, output_tokens, cost_micros)"
        + " VALUES (" + row + ".agent, " + row + ".status, 1, " + row + ".input_tokens, "
        + row + ".output_tokens, " + row + ".cost_micros)"
        + " ON CONFLICT (agent, status) DO UPDATE SET runs = runs + 1,"
        + " input_tokens = input_tokens + excluded.input_tokens,"
        + " output_tokens = output_tokens + excluded.output_tokens,"
        + " cost_micros = cost_micros + excluded.cost_micros;";
  }

  private static String statsSubtract(String row) {
    return "UPDATE agent_stats SET runs = runs - 1,"
        + " input_tokens = input_tokens - " + row + ".input_tokens,"
        + " output_tokens = output_tokens - " + row + ".output_tokens,"
        + " cost_micros = cost_micros - " + row + ".cost_micros"
        + " WHERE agent = " + row + ".agent AND status = " + row + ".status;";
  }

  /**
   * Brings the database up to {@link #LATEST}. Must be called outside a transaction on a
   * connection in autocommit mode.
   *
   * @return the version the file had before (0 for a new file)
   * @throws StoreException if the file has a newer schema
   */
  static int migrate(Connection c, Failures failures, long nowNanos) throws SQLException {
    return migrate(c, failures, nowNanos, LATEST);
  }

  /**
   * Brings the database up to {@code target} (at most {@link #LATEST}); tests use it to write a
   * file of an older version with the very migrations that shipped.
   */
  static int migrate(Connection c, Failures failures, long nowNanos, int target)
      throws SQLException {
    try (Statement s = c.createStatement()) {
      s.execute("BEGIN IMMEDIATE");
      boolean committed = false;
      try {
        s.execute(VERSION_TABLE);
        int current;
        try (ResultSet rs = s.executeQuery("SELECT coalesce(max(version), 0) FROM schema_version")) {
          rs.next();
          current = rs.getInt(1);
        }
        if (current > LATEST) {
          throw failures.problem("the database has schema version " + current
              + ", written by a newer agentrunner; this version reads schema versions up to "
              + LATEST + ". Open it with a newer agentrunner-sqlite, or use another file.");
        }
        for (Migration m : MIGRATIONS) {
          if (m.version() <= current || m.version() > target) {
            continue;
          }
          for (String sql : m.statements()) {
            s.execute(sql);
          }
          try (PreparedStatement ps = c.prepareStatement(
              "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)")) {
            ps.setInt(1, m.version());
            ps.setString(2, m.description());
            ps.setLong(3, nowNanos);
            ps.executeUpdate();
          }
        }
        s.execute("COMMIT");
        committed = true;
        return current;
      } finally {
        if (!committed) {
          try {
            s.execute("ROLLBACK");
          } catch (SQLException ignored) {
            // SQLite may have rolled back already; the original failure is what matters
          }
        }
      }
    }
  }
}
