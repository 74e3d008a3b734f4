package dev.agentrunner.sqlite;

/**
 * Every SQL statement the store runs after the schema exists, one constant per shape. None is
 * built from a caller's string: values always travel as bind parameters, and lists (the ids a
 * heartbeat renews) travel as one bound JSON array of numbers read with {@code json_each}.
 *
 * <p>Status literals in the WHERE clauses are written out (not bound) on purpose: the partial
 * indexes ({@code WHERE status = 'QUEUED'} and so on) are only usable when the planner can see
 * the literal.
 *
 * <p>{@code SchemaTest} checks with EXPLAIN QUERY PLAN that the hot paths use their indexes.
 */
final class Sql {
  private Sql() {}

  /** The columns of {@code runs}, in the order {@link Rows#run} reads them. */
  static final String RUN_COLUMNS =
      "id, agent, status, input, output, error, serial_key, idempotency_key, priority, attempt,"
          + " max_attempts, created_at, not_before, started_at, finished_at, owner, lease_until,"
          + " cancel_requested, input_tokens, output_tokens, cost_micros";

  /** The columns of {@code events}, in the order {@link Rows#event} reads them. */
  static final String EVENT_COLUMNS = "seq, run_id, attempt, type, data, at";

  /** The columns of {@code schedules}, in the order {@link Rows#schedule} reads them. */
  static final String SCHEDULE_COLUMNS =
      "name, agent, input, kind, interval_nanos, cron, zone, missed_fires, paused, next_fire_at,"
          + " last_fire_at, last_run_id, version";

  // ---- writes (run only on the writer connection, inside BEGIN IMMEDIATE) ----

  /**
   * The id comes from this statement's own RETURNING, never from a later read. A duplicate
   * idempotency key returns no row; the caller then reads the stored run in the same
   * transaction.
   */
  static final String INSERT_RUN =
      "INSERT INTO runs (agent, status, input, serial_key, idempotency_key, priority, attempt,"
          + " max_attempts, created_at, not_before)"
          + " VALUES (?, 'QUEUED', ?, ?, ?, ?, 0, ?, ?, ?)"
          + " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
          + " RETURNING " + RUN_COLUMNS;

  /**
   * A run inserted already claimed (attempt 1, the owner, a lease), for a submit whose run
   * comes first in claim order; never with an idempotency key, so there is no conflict to handle.
   */
  static final String INSERT_RUNNING_RUN =
      "INSERT INTO runs (agent, status, input, serial_key, priority, attempt, max_attempts,"
          + " created_at, not_before, started_at, owner, lease_until)"
          + " VALUES (?, 'RUNNING', ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)"
          + " RETURNING " + RUN_COLUMNS;

  /** The two events of a run inserted already claimed, in one statement. */
  static final String INSERT_QUEUED_AND_STARTED_EVENTS =
      "INSERT INTO events (run_id, attempt, type, data, at)"
          + " VALUES (?1, 0, 'queued', '', ?2), (?1, 1, 'started', ?3, ?2)";

  /**
   * Whether one agent has a claimable run of at least the given priority: the question a
   * submit asks before it inserts its run already claimed. The same conditions as
   * {@link #CLAIM_CANDIDATES}, on the same index.
   */
  static final String CLAIMABLE_AT_OR_ABOVE =
      "SELECT 1 FROM runs r INDEXED BY runs_queue"
          + " WHERE r.status = 'QUEUED' AND r.agent = ? AND r.priority >= ? AND r.not_before <= ?"
          + " AND (r.serial_key IS NULL OR ("
          + "   NOT EXISTS (SELECT 1 FROM runs b"
          + "     WHERE b.serial_key = r.serial_key AND b.status = 'RUNNING')"
          + "   AND NOT EXISTS (SELECT 1 FROM runs o"
          + "     WHERE o.serial_key = r.serial_key AND o.status = 'QUEUED' AND o.id < r.id)))"
          + " LIMIT 1";

  /**
   * The oldest QUEUED or RUNNING run of a serial key (NULL if none): the one a REJECT names, and
   * what keeps a submit from claiming its run at insert. One probe per status, each on its
   * partial index; a single {@code status IN (...)} would match neither index and scan the
   * table.
   */
  static final String OLDEST_ACTIVE_OF_SERIAL_KEY =
      "SELECT min(id) FROM ("
          + "SELECT id FROM runs WHERE serial_key = ?1 AND status = 'RUNNING'"
          + " UNION ALL SELECT min(id) FROM runs WHERE serial_key = ?1 AND status = 'QUEUED')";

  static final String RUN_BY_IDEMPOTENCY_KEY =
      "SELECT " + RUN_COLUMNS + " FROM runs WHERE idempotency_key = ?";

  static final String INSERT_EVENT =
      "INSERT INTO events (run_id, attempt, type, data, at) VALUES (?, ?, ?, ?, ?)";

  /**
   * The claimable runs of one agent, best first. A run with a serial key qualifies only when no
   * run of its key is RUNNING and no older run of its key is QUEUED (due or not), which also
   * means at most one run per key qualifies. Walks {@code runs_queue} (named, so that a plan
   * change cannot silently fall back to a scan), so terminal history is never read.
   */
  static final String CLAIM_CANDIDATES =
      "SELECT r.id, r.priority FROM runs r INDEXED BY runs_queue"
          + " WHERE r.status = 'QUEUED' AND r.agent = ? AND r.not_before <= ?"
          + " AND (r.serial_key IS NULL OR ("
          + "   NOT EXISTS (SELECT 1 FROM runs b"
          + "     WHERE b.serial_key = r.serial_key AND b.status = 'RUNNING')"
          + "   AND NOT EXISTS (SELECT 1 FROM runs o"
          + "     WHERE o.serial_key = r.serial_key AND o.status = 'QUEUED' AND o.id < r.id)))"
          + " ORDER BY r.priority DESC, r.id LIMIT ?";

  /**
   * Moves one chosen run to RUNNING and returns it. One primary-key lookup per run, rather than
   * one statement over a list of ids: the planner may pick a scan for a list, never for this.
   */
  static final String CLAIM_RUN =
      "UPDATE runs SET status = 'RUNNING', attempt = attempt + 1, owner = ?, started_at = ?,"
          + " lease_until = ?, cancel_requested = 0"
          + " WHERE id = ? AND status = 'QUEUED'"
          + " RETURNING " + RUN_COLUMNS;

  static final String HEARTBEAT =
      "UPDATE runs SET lease_until = ?"
          + " WHERE id IN (SELECT value FROM json_each(?)) AND status = 'RUNNING' AND owner = ?"
          + " RETURNING id, cancel_requested";

  /** A terminal finish, fenced by attempt and owner. */
  static final String FINISH_TERMINAL =
      "UPDATE runs SET status = ?, output = ?, error = ?, finished_at = ?, lease_until = NULL,"
          + " cancel_requested = 0, input_tokens = input_tokens + ?,"
          + " output_tokens = output_tokens + ?, cost_micros = cost_micros + ?"
          + " WHERE id = ? AND status = 'RUNNING' AND attempt = ? AND owner = ?"
          + " RETURNING " + RUN_COLUMNS;

  /** A retry: back to QUEUED, due {@code retryAfter} from now, fenced by attempt and owner. */
  static final String FINISH_RETRY =
      "UPDATE runs SET status = 'QUEUED', output = NULL, error = ?, not_before = ?, owner = NULL,"
          + " lease_until = NULL, started_at = NULL, cancel_requested = 0,"
          + " input_tokens = input_tokens + ?, output_tokens = output_tokens + ?,"
          + " cost_micros = cost_micros + ?"
          + " WHERE id = ? AND status = 'RUNNING' AND attempt = ? AND owner = ?"
          + " AND cancel_requested = 0"
          + " RETURNING " + RUN_COLUMNS;

  /** Back to the queue, unless a cancel was requested: that run ends CANCELLED instead. */
  static final String RELEASE =
      "UPDATE runs SET status = 'QUEUED', attempt = attempt - 1, owner = NULL,"
          + " lease_until = NULL, started_at = NULL, cancel_requested = 0"
          + " WHERE id = ? AND status = 'RUNNING' AND attempt = ? AND owner = ?"
          + " AND cancel_requested = 0"
          + " RETURNING " + RUN_COLUMNS;

  static final String CANCEL_QUEUED =
      "UPDATE runs SET status = 'CANCELLED', output = NULL,"
          + " error = 'cancelled before it started', finished_at = ?, owner = NULL,"
          + " lease_until = NULL, started_at = NULL"
          + " WHERE id = ? AND status = 'QUEUED'"
          + " RETURNING " + RUN_COLUMNS;

  static final String REQUEST_CANCEL =
      "UPDATE runs SET cancel_requested = 1"
          + " WHERE id = ? AND status = 'RUNNING' AND cancel_requested = 0"
          + " RETURNING " + RUN_COLUMNS;

  /** INDEXED BY: the planner would rather scan the table in id order than sort a few rows. */
  static final String EXPIRED_LEASES =
      "SELECT " + RUN_COLUMNS + " FROM runs INDEXED BY runs_running_lease"
          + " WHERE status = 'RUNNING' AND lease_until < ? ORDER BY id";

  static final String RECOVER_TO_QUEUED =
      "UPDATE runs SET status = 'QUEUED', output = NULL, error = ?, not_before = ?, owner = NULL,"
          + " lease_until = NULL, started_at = NULL, cancel_requested = 0"
          + " WHERE id = ? AND status = 'RUNNING' AND attempt = ?"
          + " RETURNING " + RUN_COLUMNS;

  /** The end of a run whose worker was lost: FAILED, or CANCELLED when a cancel was pending. */
  static final String RECOVER_TO_TERMINAL =
      "UPDATE runs SET status = ?, output = NULL, error = ?, finished_at = ?,"
          + " lease_until = NULL, cancel_requested = 0"
          + " WHERE id = ? AND status = 'RUNNING' AND attempt = ?"
          + " RETURNING " + RUN_COLUMNS;

  /** An agent's event, written only while the run is RUNNING under the given attempt. */
  static final String APPEND_EVENT =
      "INSERT INTO events (run_id, attempt, type, data, at)"
          + " SELECT id, attempt, ?, ?, ? FROM runs"
          + " WHERE id = ? AND status = 'RUNNING' AND attempt = ?"
          + " RETURNING " + EVENT_COLUMNS;

  /** Events go with their runs through {@code ON DELETE CASCADE}. */
  static final String PURGE =
      "DELETE FROM runs WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT')"
          + " AND finished_at < ?";

  /**
   * Creates a schedule, at version 1 or, where a schedule of that name was deleted, at the
   * deleted one's version plus one (its row stays, marked deleted, so that versions never
   * repeat: see {@code RunStore#putSchedule}). When a live schedule of that name exists no row
   * comes back and nothing changes (a put based on version 0 lost to another creator).
   */
  static final String INSERT_SCHEDULE =
      "INSERT INTO schedules (name, agent, input, kind, interval_nanos, cron, zone, missed_fires,"
          + " paused, next_fire_at, last_fire_at, last_run_id, version)"
          + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
          + " ON CONFLICT (name) DO UPDATE SET agent = excluded.agent, input = excluded.input,"
          + " kind = excluded.kind, interval_nanos = excluded.interval_nanos,"
          + " cron = excluded.cron, zone = excluded.zone, missed_fires = excluded.missed_fires,"
          + " paused = excluded.paused, next_fire_at = excluded.next_fire_at,"
          + " last_fire_at = excluded.last_fire_at, last_run_id = excluded.last_run_id,"
          + " version = version + 1, deleted = 0"
          + " WHERE deleted = 1"
          + " RETURNING " + SCHEDULE_COLUMNS;

  /**
   * The compare-and-set: replaces the schedule only if its version is still the one the caller
   * read, and bumps it. No row back means another node changed or deleted it first.
   */
  static final String UPDATE_SCHEDULE =
      "UPDATE schedules SET agent = ?, input = ?, kind = ?, interval_nanos = ?, cron = ?,"
          + " zone = ?, missed_fires = ?, paused = ?, next_fire_at = ?, last_fire_at = ?,"
          + " last_run_id = ?, version = version + 1"
          + " WHERE name = ? AND version = ? AND deleted = 0"
          + " RETURNING " + SCHEDULE_COLUMNS;

  /** Marks the schedule deleted, keeping its name and version (its input is dropped). */
  static final String DELETE_SCHEDULE =
      "UPDATE schedules SET deleted = 1, input = '' WHERE name = ? AND deleted = 0";

  // ---- reads (pooled read-only connections) ----

  static final String SCHEDULE_BY_NAME =
      "SELECT " + SCHEDULE_COLUMNS + " FROM schedules WHERE name = ? AND deleted = 0";

  static final String SCHEDULES =
      "SELECT " + SCHEDULE_COLUMNS + " FROM schedules WHERE deleted = 0 ORDER BY name";

  static final String RUN_BY_ID = "SELECT " + RUN_COLUMNS + " FROM runs WHERE id = ?";

  /** Six status slots; unused ones are bound to NULL, which matches nothing. */
  static final String QUERY_ALL =
      "SELECT " + RUN_COLUMNS + " FROM runs"
          + " WHERE id < ? AND status IN (?, ?, ?, ?, ?, ?)"
          + " ORDER BY id DESC LIMIT ?";

  static final String QUERY_AGENT =
      "SELECT " + RUN_COLUMNS + " FROM runs"
          + " WHERE agent = ? AND id < ? AND status IN (?, ?, ?, ?, ?, ?)"
          + " ORDER BY id DESC LIMIT ?";

  /** Runs of one serial key (a conversation): few, so the agent filter may be optional. */
  static final String QUERY_SERIAL_KEY =
      "SELECT " + RUN_COLUMNS + " FROM runs"
          + " WHERE serial_key = ? AND (? IS NULL OR agent = ?) AND id < ?"
          + " AND status IN (?, ?, ?, ?, ?, ?)"
          + " ORDER BY id DESC LIMIT ?";

  /** The count behind {@code count(RunQuery)}: every filter optional, one snapshot. */
  static final String COUNT_RUNS =
      "SELECT COUNT(*) FROM runs"
          + " WHERE (? IS NULL OR serial_key = ?) AND (? IS NULL OR agent = ?)"
          + " AND status IN (?, ?, ?, ?, ?, ?)";

  static final String EVENTS_OF_RUN =
      "SELECT " + EVENT_COLUMNS + " FROM events WHERE run_id = ? ORDER BY seq";

  /** One statement, so one snapshot: the triggers keep this table in step with {@code runs}. */
  static final String STATS =
      "SELECT agent, status, runs, input_tokens, output_tokens, cost_micros FROM agent_stats"
          + " ORDER BY agent";
}
