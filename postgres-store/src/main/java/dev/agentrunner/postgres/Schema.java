package dev.agentrunner.postgres;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The tables as numbered migrations, and the code that brings a schema up to date.
 *
 * <p>Nodes may start at the same moment: each takes a transaction-scoped advisory lock named
 * after the schema before it looks at anything, so one node creates the schema and applies the
 * migrations while the others wait, then find the work done. Every migration and its version
 * row commit in that one transaction (PostgreSQL's DDL is transactional), so a crash mid-way
 * leaves the previous version intact. A schema whose version is above {@link #LATEST} was
 * written by a newer library and is refused rather than used with assumptions that may no longer
 * hold.
 *
 * <p>Migrations are append-only: never edit one that has shipped, add the next number.
 *
 * <p>Thread-safety: stateless; concurrent migrations (in any process) serialise on the lock.
 */
final class Schema {
  private Schema() {}

  /** What a schema name may look like: it is written into SQL, so nothing else is accepted. */
  static final Pattern IDENTIFIER = Pattern.compile("[a-z_][a-z0-9_]{0,62}");

  /** One schema step; {@code {s}} in a statement stands for the quoted schema name. */
  record Migration(int version, String description, List<String> statements) {}

  private static final String STATUSES =
      "('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT')";

  static final List<Migration> MIGRATIONS = List.of(
      new Migration(1, "runs, events, per-agent stats and schedules", List.of(
          "CREATE TABLE {s}.runs ("
              + " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
              + " agent text NOT NULL,"
              + " status text NOT NULL CHECK (status IN " + STATUSES + "),"
              + " input text NOT NULL,"
              + " output text,"
              + " error text,"
              + " serial_key text,"
              + " idempotency_key text,"
              + " priority integer NOT NULL,"
              + " attempt integer NOT NULL CHECK (attempt >= 0),"
              + " max_attempts integer NOT NULL CHECK (max_attempts >= 1),"
              + " created_at timestamptz NOT NULL,"
              + " not_before timestamptz NOT NULL,"
              + " started_at timestamptz,"
              + " finished_at timestamptz,"
              + " owner text,"
              + " lease_until timestamptz,"
              + " cancel_requested boolean NOT NULL DEFAULT false,"
              + " input_tokens bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),"
              + " output_tokens bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),"
              + " cost_micros bigint NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),"
              // the state machine's shape, checked by the database as a last line of defence
              + " CHECK (status <> 'RUNNING' OR (owner IS NOT NULL AND lease_until IS NOT NULL)),"
              + " CHECK ((finished_at IS NOT NULL) = (status NOT IN ('QUEUED', 'RUNNING')))"
              // room on each page for the new versions of status changes
              + ") WITH (fillfactor = 90)",
          // I1: at most one run per idempotency key.
          "CREATE UNIQUE INDEX runs_idempotency_key ON {s}.runs (idempotency_key)"
              + " WHERE idempotency_key IS NOT NULL",
          // I6: at most one RUNNING run per serial key, enforced by the database itself.
          "CREATE UNIQUE INDEX runs_serial_key_running ON {s}.runs (serial_key)"
              + " WHERE status = 'RUNNING' AND serial_key IS NOT NULL",
          // The claim walks only QUEUED rows, per agent, in claim order: however much terminal
          // history the table holds, this index holds only the queue (QueryPlanTest).
          "CREATE INDEX runs_queue ON {s}.runs (agent, priority DESC, id) WHERE status = 'QUEUED'",
          // FIFO within a serial key: "is there an older QUEUED run of this key?"
          "CREATE INDEX runs_serial_key_queued ON {s}.runs (serial_key, id)"
              + " WHERE status = 'QUEUED' AND serial_key IS NOT NULL",
          // A conversation's runs (query by serial key), and the run a REJECT names.
          "CREATE INDEX runs_serial_key ON {s}.runs (serial_key, id) WHERE serial_key IS NOT NULL",
          // Heartbeats (by owner) and lease recovery (by deadline) touch only RUNNING rows.
          "CREATE INDEX runs_running_owner ON {s}.runs (owner, id) WHERE status = 'RUNNING'",
          "CREATE INDEX runs_running_lease ON {s}.runs (lease_until) WHERE status = 'RUNNING'",
          "CREATE INDEX runs_agent ON {s}.runs (agent, id)",
          "CREATE INDEX runs_finished ON {s}.runs (finished_at) WHERE finished_at IS NOT NULL",
          "CREATE TABLE {s}.events ("
              + " seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
              + " run_id bigint NOT NULL REFERENCES {s}.runs (id) ON DELETE CASCADE,"
              + " attempt integer NOT NULL,"
              + " type text NOT NULL,"
              + " data text NOT NULL,"
              + " at timestamptz NOT NULL)",
          "CREATE INDEX events_run ON {s}.events (run_id, seq)",
          // Counts and usage per (agent, status). Every change to runs appends its net effect to
          // run_stats_delta in its own transaction (statement triggers below); appending never
          // waits on a lock, where one counter row per (agent, status) would make every insert,
          // claim and finish of an agent queue behind each other. stats() sums both tables in
          // one statement, one snapshot; a compaction folds deltas into run_stats atomically.
          "CREATE TABLE {s}.run_stats ("
              + " agent text NOT NULL,"
              + " status text NOT NULL,"
              + " runs bigint NOT NULL,"
              + " input_tokens bigint NOT NULL,"
              + " output_tokens bigint NOT NULL,"
              + " cost_micros bigint NOT NULL,"
              + " PRIMARY KEY (agent, status))",
          "CREATE TABLE {s}.run_stats_delta ("
              + " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
              + " agent text NOT NULL,"
              + " status text NOT NULL,"
              + " runs bigint NOT NULL,"
              + " input_tokens bigint NOT NULL,"
              + " output_tokens bigint NOT NULL,"
              + " cost_micros bigint NOT NULL)",
          "CREATE FUNCTION {s}.runs_stats_insert() RETURNS trigger LANGUAGE plpgsql AS $$"
              + " BEGIN"
              + "  INSERT INTO {s}.run_stats_delta"
              + "   (agent, status, runs, input_tokens, output_tokens, cost_micros)"
              + "  SELECT agent, status, count(*), sum(input_tokens), sum(output_tokens),"
              + "   sum(cost_micros) FROM new_rows GROUP BY agent, status;"
              + "  RETURN NULL;"
              + " END $$",
          "CREATE FUNCTION {s}.runs_stats_update() RETURNS trigger LANGUAGE plpgsql AS $$"
              + " BEGIN"
              + "  INSERT INTO {s}.run_stats_delta"
              + "   (agent, status, runs, input_tokens, output_tokens, cost_micros)"
              + "  SELECT agent, status, sum(n), sum(i), sum(o), sum(c) FROM ("
              + "    SELECT agent, status, 1 AS n, input_tokens AS i, output_tokens AS o,"
              + "     cost_micros AS c FROM new_rows"
              + "    UNION ALL"
              + "    SELECT agent, status, -1, -input_tokens, -output_tokens, -cost_micros"
              + "     FROM old_rows) d"
              + "  GROUP BY agent, status"
              // a heartbeat changes no count: nothing is appended for it
              + "  HAVING sum(n) <> 0 OR sum(i) <> 0 OR sum(o) <> 0 OR sum(c) <> 0;"
              + "  RETURN NULL;"
              + " END $$",
          "CREATE FUNCTION {s}.runs_stats_delete() RETURNS trigger LANGUAGE plpgsql AS $$"
              + " BEGIN"
              + "  INSERT INTO {s}.run_stats_delta"
              + "   (agent, status, runs, input_tokens, output_tokens, cost_micros)"
              + "  SELECT agent, status, -count(*), -sum(input_tokens), -sum(output_tokens),"
              + "   -sum(cost_micros) FROM old_rows GROUP BY agent, status;"
              + "  RETURN NULL;"
              + " END $$",
          // Schedules: one row per name, changed only by compare-and-set on version. Instants
          // are epoch nanoseconds, so that a fire time round-trips exactly (a run's
          // idempotency key is derived from it, and every node must derive the same key).
          "CREATE TABLE {s}.schedules ("
              + " name text PRIMARY KEY,"
              + " agent text NOT NULL,"
              + " input text NOT NULL,"
              + " kind text NOT NULL CHECK (kind IN ('FIXED_RATE', 'FIXED_DELAY', 'CRON')),"
              + " interval_seconds bigint,"
              + " interval_nanos integer,"
              + " cron text,"
              + " zone text,"
              + " missed_fires text NOT NULL,"
              + " paused boolean NOT NULL,"
              + " next_fire_at bigint,"
              + " last_fire_at bigint,"
              + " last_run_id bigint NOT NULL,"
              + " version bigint NOT NULL CHECK (version >= 1))",
          "CREATE TRIGGER runs_stats_insert AFTER INSERT ON {s}.runs"
              + " REFERENCING NEW TABLE AS new_rows"
              + " FOR EACH STATEMENT EXECUTE FUNCTION {s}.runs_stats_insert()",
          "CREATE TRIGGER runs_stats_update AFTER UPDATE ON {s}.runs"
              + " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
              + " FOR EACH STATEMENT EXECUTE FUNCTION {s}.runs_stats_update()",
          "CREATE TRIGGER runs_stats_delete AFTER DELETE ON {s}.runs"
              + " REFERENCING OLD TABLE AS old_rows"
              + " FOR EACH STATEMENT EXECUTE FUNCTION {s}.runs_stats_delete()")),
      new Migration(2, "deleted schedules keep their version", List.of(
          // A deleted schedule's row stays, marked, so that one created again under its name
          // goes on from its version (see Sql.createSchedule).
          "ALTER TABLE {s}.schedules ADD COLUMN deleted boolean NOT NULL DEFAULT false")));

  /** The newest schema version this library knows. */
  static final int LATEST = MIGRATIONS.get(MIGRATIONS.size() - 1).version();

  /** The advisory lock key both migrations and tests use for a schema. */
  static String migrationLockName(String schema) {
    return "agentrunner:migrate:" + schema;
  }

  /**
   * Brings {@code schema} up to {@link #LATEST}, creating it if needed, in one transaction.
   *
   * @return the version the schema had before (0 for a new schema)
   * @throws dev.agentrunner.StoreException if the schema has a newer version
   */
  static int migrate(Connection c, String schema, Failures failures) throws SQLException {
    String quoted = '"' + schema + '"';
    boolean autoCommit = c.getAutoCommit();
    c.setAutoCommit(false);
    boolean committed = false;
    try {
      try (PreparedStatement lock =
          c.prepareStatement("SELECT pg_advisory_xact_lock(hashtext(?))")) {
        lock.setString(1, migrationLockName(schema));
        lock.executeQuery().close();
      }
      // Created only when missing, so that a role without CREATE on the database can use a
      // schema an administrator made for it.
      if (!exists(c, "SELECT 1 FROM pg_namespace WHERE nspname = ?", schema)) {
        execute(c, "CREATE SCHEMA " + quoted);
      }
      if (!exists(c, "SELECT 1 FROM pg_tables WHERE schemaname = ? AND tablename = 'schema_version'",
          schema)) {
        execute(c, "CREATE TABLE " + quoted + ".schema_version ("
            + " version integer PRIMARY KEY,"
            + " description text NOT NULL,"
            + " applied_at timestamptz NOT NULL DEFAULT now())");
      }
      int current;
      try (Statement s = c.createStatement();
          ResultSet rs = s.executeQuery(
              "SELECT coalesce(max(version), 0) FROM " + quoted + ".schema_version")) {
        rs.next();
        current = rs.getInt(1);
      }
      if (current > LATEST) {
        throw failures.problem("schema \"" + schema + "\" has schema version " + current
            + ", written by a newer agentrunner; this version reads schema versions up to "
            + LATEST + ". Use a newer agentrunner-postgres, or another schema.");
      }
      for (Migration m : MIGRATIONS) {
        if (m.version() <= current) {
          continue;
        }
        for (String sql : m.statements()) {
          execute(c, sql.replace("{s}", quoted));
        }
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + quoted
            + ".schema_version (version, description) VALUES (?, ?)")) {
          ps.setInt(1, m.version());
          ps.setString(2, m.description());
          ps.executeUpdate();
        }
      }
      c.commit();
      committed = true;
      return current;
    } finally {
      if (!committed) {
        try {
          c.rollback();
        } catch (SQLException ignored) {
          // the connection may be gone; the original failure is what matters
        }
      }
      try {
        c.setAutoCommit(autoCommit);
      } catch (SQLException ignored) {
        // as above: a broken connection is discarded by its pool
      }
    }
  }

  private static boolean exists(Connection c, String sql, String value) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(sql)) {
      ps.setString(1, value);
      try (ResultSet rs = ps.executeQuery()) {
        return rs.next();
      }
    }
  }

  private static void execute(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement()) {
      s.execute(sql);
    }
  }
}
