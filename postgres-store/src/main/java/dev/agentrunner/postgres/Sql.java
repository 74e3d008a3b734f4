package dev.agentrunner.postgres;

/**
 * Every SQL statement the store runs after the schema exists, for one schema. Values always
 * travel as bind parameters; lists travel as bound arrays read with {@code unnest}. The only
 * text put into the SQL is the schema name, which {@link PostgresRunStore.Builder#schema} has
 * checked to be a plain lower-case identifier, and which is quoted on top of that.
 *
 * <p>Time: each write statement starts with {@link #NOW}, whose one parameter is NULL in
 * production, so that {@code now()} (the database's clock, the same for every node) is used;
 * tests bind the instant of their own clock instead. Either way the statement reads "now" once,
 * so a run and its event carry the same instant.
 *
 * <p>Status literals in the WHERE clauses are written out (not bound) on purpose: the partial
 * indexes ({@code WHERE status = 'QUEUED'} and so on) are only usable when the planner sees the
 * literal. {@code QueryPlanTest} checks with EXPLAIN that the hot paths use their indexes.
 *
 * <p>Each status change writes its event in the same statement (a data-modifying CTE), so the
 * two commit together without a round trip for BEGIN and COMMIT.
 *
 * <p>Statements that may make runs claimable by other nodes return a {@code wake} column after
 * the run's columns: true when the store should tell the other nodes ({@link Notifier}).
 *
 * <p>Thread-safety: immutable.
 */
final class Sql {

  /** The columns of {@code runs}, in the order {@link Rows#run} reads them. */
  static String runColumns(String alias) {
    String[] names = {"id", "agent", "status", "input", "output", "error", "serial_key",
        "idempotency_key", "priority", "attempt", "max_attempts", "created_at", "not_before",
        "started_at", "finished_at", "owner", "lease_until", "cancel_requested", "input_tokens",
        "output_tokens", "cost_micros"};
    StringBuilder sb = new StringBuilder();
    for (String n : names) {
      if (!sb.isEmpty()) {
        sb.append(", ");
      }
      sb.append(alias).append(n);
    }
    return sb.toString();
  }

  static final String COLS = runColumns("");
  static final String R_COLS = runColumns("r.");

  /** The columns of {@code events}, in the order {@link Rows#event} reads them. */
  static final String EVENT_COLUMNS = "seq, run_id, attempt, type, data, at";

  /** "Now": parameter 1 of every write, NULL for the database clock. */
  static final String NOW = "WITH t AS (SELECT coalesce(?::timestamptz, now()) AS now)";

  private static final String LEASE = "t.now + ?::bigint * interval '1 microsecond'";

  final String schema;
  final String quotedSchema;

  /**
   * Parameters: now, agent, input, serial key, idempotency key, priority, max attempts,
   * notBefore. A duplicate idempotency key returns no row; the caller then reads the stored run
   * in a new statement (a new snapshot, which sees the row that won the conflict).
   */
  final String insertRun;

  /** Parameters: the idempotency key. */
  final String runByIdempotencyKey;

  /**
   * Parameters: now, agents[], quotas[], limit, owner, lease µs.
   *
   * <p>Per agent in the quota list, the best due QUEUED runs (at most its quota) are locked
   * with {@code FOR UPDATE SKIP LOCKED}: concurrent claimers never wait for each other, each
   * walks past the rows another is taking. The best {@code limit} of those become RUNNING, with
   * their started events, in this one statement. Taking each agent's first {@code quota} and
   * then the first {@code limit} overall picks exactly what one walk down the queue in claim
   * order would pick.
   *
   * <p>A run with a serial key qualifies only when no run of its key is RUNNING and no older
   * run of its key is QUEUED (due or not), so at most one run per key qualifies. If two
   * claimers still race past that (a key's older run committed between their snapshots), the
   * unique index {@code runs_serial_key_running} refuses the second and it is retried.
   */
  final String claim;

  /**
   * Parameters: now, the run ids, owner, lease µs. Only the listed runs still RUNNING under the
   * owner; locks in id order, so two writers cannot deadlock.
   */
  final String heartbeat;

  /**
   * Ends any number of runs in one statement, each in a terminal status of its own. Parameters:
   * now, then one array per column, one element per finish, run ids distinct: ids[],
   * attempts[], owners[], statuses[], outputs[], errors[], input tokens[], output tokens[],
   * costs[], sorted by id. Each is fenced by its own attempt and owner and writes its own
   * event; a finish whose fence does not match changes nothing and returns no row. The rows are
   * locked in id order before they change, as heartbeats and releases lock theirs, so that none
   * of them can deadlock with another ({@code NO KEY UPDATE}, the lock the update itself takes:
   * it does not block the foreign-key checks of event inserts). A serial-keyed run's end wakes
   * other nodes, since the next run of its key may now be claimed. ({@link FinishBatcher} fills
   * it with concurrent finishes.)
   */
  final String finishTerminal;

  /** Parameters: now, error if cancelled, error, retry delay µs, usage × 3, id, attempt, owner. */
  final String finishRetry;

  /** Parameters: now, ids[], attempts[], owner, owner (event data). */
  final String release;

  /** Parameters: now, id. */
  final String cancelQueued;

  /** Parameters: now, id. */
  final String requestCancel;

  /** Parameters: now. Runs locked by another recovery are left to it (SKIP LOCKED). */
  final String expiredLeases;

  /** Parameters: now, ids[], attempts[], errors[], end statuses[] (NULL: requeue). */
  final String recover;

  /** Parameters: now, id, attempt, type, data. {@code FOR SHARE} waits for a finish in flight. */
  final String appendEvent;

  /** Parameters: finishedBefore. Events go with their runs through ON DELETE CASCADE. */
  final String purge;

  final String runById;

  /**
   * By which filters apply (bit 0: agent, bit 1: serial key). Parameters: [serial key],
   * [agent], beforeId, statuses[], limit.
   */
  private final String[] query = new String[4];

  /** As {@link #query}, without cursor and limit. Parameters: [serial key], [agent], statuses[]. */
  private final String[] count = new String[4];

  /** Parameters: serial key. The run a REJECT names. */
  final String oldestActiveOfKey;
  final String eventsOfRun;

  /** One statement, so one snapshot: the base counts plus the deltas not yet folded in. */
  final String stats;

  /** Folds up to 10,000 deltas into {@code run_stats}; run under the compaction lock. */
  final String compactStats;

  /** The columns of {@code schedules}, in the order {@link Rows#schedule} reads them. */
  static final String SCHEDULE_COLUMNS = "name, agent, input, kind, interval_seconds,"
      + " interval_nanos, cron, zone, missed_fires, paused, next_fire_at, last_fire_at,"
      + " last_run_id, version";

  /**
   * Parameters: the 13 columns before version. A live schedule of that name returns no row: a
   * create applies only where none is stored. Where one was deleted (its row stays, marked),
   * the create takes its row at its version plus one, so that a name's versions never repeat
   * and a compare-and-set prepared against the deleted schedule cannot match the new one. The
   * conflict's update locks the row and tests {@code deleted} on its newest version, so racing
   * creates and deletes serialise on it.
   */
  final String createSchedule;

  /**
   * Parameters: the 12 columns after name, then name and the expected version. Applies only
   * while the stored version is the expected one: of racing puts on one version, the first
   * to lock the row applies, and the others re-check the version after it commits and match
   * nothing.
   */
  final String updateSchedule;

  final String scheduleByName;
  final String allSchedules;
  final String deleteSchedule;

  String query(boolean agent, boolean serialKey) {
    return query[(agent ? 1 : 0) | (serialKey ? 2 : 0)];
  }

  String count(boolean agent, boolean serialKey) {
    return count[(agent ? 1 : 0) | (serialKey ? 2 : 0)];
  }

  Sql(String schema) {
    this.schema = schema;
    this.quotedSchema = '"' + schema + '"';
    String s = quotedSchema;

    insertRun = NOW + ","
        + " ins AS (INSERT INTO " + s + ".runs (agent, status, input, serial_key, idempotency_key,"
        + "   priority, attempt, max_attempts, created_at, not_before)"
        + "  SELECT ?, 'QUEUED', ?, ?, ?, ?, 0, ?, t.now, coalesce(?::timestamptz, t.now) FROM t"
        + "  ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
        + "  RETURNING " + COLS + "),"
        + " ev AS (INSERT INTO " + s + ".events (run_id, attempt, type, data, at)"
        + "  SELECT id, 0, 'queued', '', created_at FROM ins)"
        + " SELECT " + COLS + ","
        + "  not_before <= created_at AS wake FROM ins";

    runByIdempotencyKey = "SELECT " + COLS + " FROM " + s + ".runs WHERE idempotency_key = ?";

    claim = NOW + ","
        + " quota AS (SELECT q.agent, q.n FROM unnest(?::text[], ?::int[]) AS q(agent, n)),"
        + " candidates AS (SELECT c.id, c.priority FROM quota q CROSS JOIN t"
        + "  CROSS JOIN LATERAL (SELECT r.id, r.priority FROM " + s + ".runs r"
        + "   WHERE r.status = 'QUEUED' AND r.agent = q.agent AND r.not_before <= t.now"
        + "   AND (r.serial_key IS NULL OR ("
        + "    NOT EXISTS (SELECT 1 FROM " + s + ".runs b"
        + "     WHERE b.serial_key = r.serial_key AND b.status = 'RUNNING')"
        + "    AND NOT EXISTS (SELECT 1 FROM " + s + ".runs o"
        + "     WHERE o.serial_key = r.serial_key AND o.status = 'QUEUED' AND o.id < r.id)))"
        + "   ORDER BY r.priority DESC, r.id LIMIT q.n"
        + "   FOR UPDATE OF r SKIP LOCKED) c),"
        + " picked AS (SELECT id FROM candidates ORDER BY priority DESC, id LIMIT ?),"
        + " claimed AS (UPDATE " + s + ".runs r SET status = 'RUNNING', attempt = r.attempt + 1,"
        + "   owner = ?, started_at = t.now, lease_until = " + LEASE + ","
        + "   cancel_requested = false"
        // by primary key, whatever the statistics say (a join may pick a scan of the table)
        + "  FROM t WHERE r.id = ANY (ARRAY(SELECT id FROM picked)) AND r.status = 'QUEUED'"
        + "  RETURNING " + R_COLS + "),"
        + " started AS (INSERT INTO " + s + ".events (run_id, attempt, type, data, at)"
        + "  SELECT id, attempt, 'started', owner, started_at FROM claimed"
        + "  ORDER BY priority DESC, id)"
        + " SELECT " + COLS + " FROM claimed ORDER BY priority DESC, id";

    heartbeat = NOW + ","
        + " mine AS (SELECT id FROM " + s + ".runs WHERE id = ANY (?::bigint[])"
        + "  AND status = 'RUNNING' AND owner = ? ORDER BY id FOR UPDATE)"
        + " UPDATE " + s + ".runs r SET lease_until = " + LEASE
        + " FROM t, mine WHERE r.id = mine.id AND r.status = 'RUNNING'"
        + " RETURNING r.id, r.cancel_requested";

    finishTerminal = NOW + ","
        + " f AS (SELECT * FROM unnest(?::bigint[], ?::int[], ?::text[], ?::text[], ?::text[],"
        + "   ?::text[], ?::bigint[], ?::bigint[], ?::bigint[])"
        + "  AS f(id, attempt, owner, status, output, error, input_tokens, output_tokens,"
        + "   cost_micros)),"
        // Each run is looked up by primary key only (no other condition the planner could
        // match with a partial index and turn into a scan per element) and locked, in array
        // order, which the caller sorts by id; then the fence is checked on the locked row.
        + " locked AS (SELECT f.*, l.status AS run_status, l.attempt AS run_attempt,"
        + "   l.owner AS run_owner"
        + "  FROM f CROSS JOIN LATERAL (SELECT r.status, r.attempt, r.owner FROM " + s + ".runs r"
        + "   WHERE r.id = f.id FOR NO KEY UPDATE OF r) l),"
        + " mine AS (SELECT * FROM locked"
        + "  WHERE run_status = 'RUNNING' AND run_attempt = attempt AND run_owner = owner),"
        + " done AS (UPDATE " + s + ".runs r SET status = m.status, output = m.output,"
        + "   error = m.error, finished_at = t.now, lease_until = NULL, cancel_requested = false,"
        + "   input_tokens = r.input_tokens + m.input_tokens,"
        + "   output_tokens = r.output_tokens + m.output_tokens,"
        + "   cost_micros = r.cost_micros + m.cost_micros"
        + "  FROM t, mine m WHERE r.id = m.id"
        + "  RETURNING " + R_COLS + ", t.now AS event_at),"
        + " ev AS (INSERT INTO " + s + ".events (run_id, attempt, type, data, at)"
        + "  SELECT id, attempt, lower(status), coalesce(error, ''), event_at FROM done"
        + "  ORDER BY id)"
        + " SELECT " + COLS + ","
        + "  serial_key IS NOT NULL AS wake FROM done ORDER BY id";

    finishRetry = NOW + ","
        // a retry of a run with a pending cancel ends it CANCELLED instead
        + " done AS (UPDATE " + s + ".runs r SET"
        + "   status = CASE WHEN r.cancel_requested THEN 'CANCELLED' ELSE 'QUEUED' END,"
        + "   output = NULL,"
        + "   error = CASE WHEN r.cancel_requested THEN ? ELSE ? END,"
        // due by the database's clock, like a lease: a worker's skewed clock moves nothing
        + "   not_before = CASE WHEN r.cancel_requested THEN r.not_before"
        + "    ELSE t.now + ?::bigint * interval '1 microsecond' END,"
        + "   owner = CASE WHEN r.cancel_requested THEN r.owner END,"
        + "   started_at = CASE WHEN r.cancel_requested THEN r.started_at END,"
        + "   finished_at = CASE WHEN r.cancel_requested THEN t.now END,"
        + "   lease_until = NULL, cancel_requested = false,"
        + "   input_tokens = r.input_tokens + ?, output_tokens = r.output_tokens + ?,"
        + "   cost_micros = r.cost_micros + ?"
        + "  FROM t WHERE r.id = ? AND r.status = 'RUNNING' AND r.attempt = ? AND r.owner = ?"
        + "  RETURNING " + R_COLS + ", t.now AS event_at),"
        + " ev AS (INSERT INTO " + s + ".events (run_id, attempt, type, data, at)"
        + "  SELECT id, attempt,"
        + "   CASE WHEN status = 'CANCELLED' THEN 'cancelled' ELSE 'requeued' END,"
        + "   coalesce(error, ''), event_at FROM done)"
        + " SELECT " + COLS + ","
        + "  status = 'QUEUED' AND not_before <= event_at AS wake"
        + " FROM done";

    release = NOW + ","
        + " listed AS (SELECT x.id, x.attempt FROM unnest(?::bigint[], ?::int[]) AS x(id, attempt)),"
        + " mine AS (SELECT r.id FROM " + s + ".runs r"
        + "  WHERE r.status = 'RUNNING' AND r.owner = ?"
        + "  AND (r.id, r.attempt) IN (SELECT id, attempt FROM listed)"
        + "  ORDER BY r.id FOR UPDATE OF r),"
        // back to the queue with the attempt taken back, or CANCELLED if a cancel is pending
        + " back AS (UPDATE " + s + ".runs r SET"
        + "   status = CASE WHEN r.cancel_requested THEN 'CANCELLED' ELSE 'QUEUED' END,"
        + "   attempt = CASE WHEN r.cancel_requested THEN r.attempt ELSE r.attempt - 1 END,"
        + "   owner = CASE WHEN r.cancel_requested THEN r.owner END,"
        + "   started_at = CASE WHEN r.cancel_requested THEN r.started_at END,"
        + "   finished_at = CASE WHEN r.cancel_requested THEN t.now END,"
        + "   output = CASE WHEN r.cancel_requested THEN NULL ELSE r.output END,"
        + "   error = CASE WHEN r.cancel_requested THEN 'cancelled before it started'"
        + "    ELSE r.error END,"
        + "   lease_until = NULL, cancel_requested = false"
        + "  FROM t, mine WHERE r.id = mine.id RETURNING r.id, r.attempt, r.status),"
        + " ev AS (INSERT INTO " + s + ".events (run_id, attempt, type, data, at)"
        + "  SELECT back.id, back.attempt,"
        + "   CASE WHEN back.status = 'CANCELLED' THEN 'cancelled' ELSE 'released' END, ?, t.now"
        + "  FROM back, t ORDER BY back.id)"
        + " SELECT count(*), count(*) FILTER (WHERE status = 'QUEUED') > 0 FROM back";

    cancelQueued = NOW + ","
        + " c AS (UPDATE " + s + ".runs r SET status = 'CANCELLED', output = NULL,"
        + "   error = 'cancelled before it started', finished_at = t.now, owner = NULL,"
        + "   lease_until = NULL, started_at = NULL"
        + "  FROM t WHERE r.id = ? AND r.status = 'QUEUED'"
        + "  RETURNING " + R_COLS + ", t.now AS event_at),"
        + " ev AS (INSERT INTO " + s + ".events (run_id, attempt, type, data, at)"
        + "  SELECT id, attempt, 'cancelled', '', event_at FROM c)"
        + " SELECT " + COLS + ","
        + "  serial_key IS NOT NULL AS wake FROM c";

    requestCancel = NOW + ","
        + " c AS (UPDATE " + s + ".runs r SET cancel_requested = true"
        + "  FROM t WHERE r.id = ? AND r.status = 'RUNNING' AND NOT r.cancel_requested"
        + "  RETURNING " + R_COLS + ", t.now AS event_at),"
        + " ev AS (INSERT INTO " + s + ".events (run_id, attempt, type, data, at)"
        + "  SELECT id, attempt, 'cancel_requested', '', event_at FROM c)"
        + " SELECT " + COLS + " FROM c";

    expiredLeases = NOW
        + " SELECT " + R_COLS + " FROM " + s + ".runs r, t"
        + " WHERE r.status = 'RUNNING' AND r.lease_until < t.now"
        + " ORDER BY r.id FOR UPDATE OF r SKIP LOCKED";

    recover = NOW + ","
        + " x AS (SELECT * FROM unnest(?::bigint[], ?::int[], ?::text[], ?::text[])"
        + "  AS x(id, attempt, why, end_status)),"
        // end_status NULL: back to the queue; else FAILED (attempts used up) or CANCELLED
        + " upd AS (UPDATE " + s + ".runs r SET"
        + "   status = coalesce(x.end_status, 'QUEUED'),"
        + "   output = NULL, error = x.why,"
        + "   finished_at = CASE WHEN x.end_status IS NOT NULL THEN t.now END,"
        + "   not_before = CASE WHEN x.end_status IS NOT NULL THEN r.not_before ELSE t.now END,"
        + "   owner = CASE WHEN x.end_status IS NOT NULL THEN r.owner END,"
        + "   started_at = CASE WHEN x.end_status IS NOT NULL THEN r.started_at END,"
        + "   lease_until = NULL, cancel_requested = false"
        + "  FROM t, x WHERE r.id = x.id AND r.status = 'RUNNING' AND r.attempt = x.attempt"
        + "  RETURNING " + R_COLS + ", t.now AS event_at),"
        + " ev AS (INSERT INTO " + s + ".events (run_id, attempt, type, data, at)"
        + "  SELECT id, attempt, CASE status WHEN 'FAILED' THEN 'failed'"
        + "   WHEN 'CANCELLED' THEN 'cancelled' ELSE 'recovered' END,"
        + "   error, event_at FROM upd ORDER BY id)"
        + " SELECT " + COLS + ","
        + "  status = 'QUEUED' AS wake FROM upd ORDER BY id";

    appendEvent = NOW + ","
        + " r AS (SELECT id, attempt FROM " + s + ".runs"
        + "  WHERE id = ? AND status = 'RUNNING' AND attempt = ? FOR SHARE)"
        + " INSERT INTO " + s + ".events (run_id, attempt, type, data, at)"
        + " SELECT r.id, r.attempt, ?, ?, t.now FROM r, t"
        + " RETURNING " + EVENT_COLUMNS;

    purge = "DELETE FROM " + s + ".runs"
        + " WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT')"
        + " AND finished_at < ?::timestamptz";

    runById = "SELECT " + COLS + " FROM " + s + ".runs WHERE id = ?";

    for (int v = 0; v < 4; v++) {
      boolean agent = (v & 1) != 0;
      boolean key = (v & 2) != 0;
      // Built from constant fragments only: which filters apply, never their values.
      String where = (key ? " serial_key = ? AND" : "") + (agent ? " agent = ? AND" : "");
      query[v] = "SELECT " + COLS + " FROM " + s + ".runs WHERE" + where
          + " id < ? AND status = ANY (?::text[]) ORDER BY id DESC LIMIT ?";
      count[v] = "SELECT count(*) FROM " + s + ".runs WHERE" + where
          + " status = ANY (?::text[])";
    }

    createSchedule = "INSERT INTO " + s + ".schedules (" + SCHEDULE_COLUMNS + ")"
        + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
        + " ON CONFLICT (name) DO UPDATE SET agent = EXCLUDED.agent, input = EXCLUDED.input,"
        + " kind = EXCLUDED.kind, interval_seconds = EXCLUDED.interval_seconds,"
        + " interval_nanos = EXCLUDED.interval_nanos, cron = EXCLUDED.cron,"
        + " zone = EXCLUDED.zone, missed_fires = EXCLUDED.missed_fires,"
        + " paused = EXCLUDED.paused, next_fire_at = EXCLUDED.next_fire_at,"
        + " last_fire_at = EXCLUDED.last_fire_at, last_run_id = EXCLUDED.last_run_id,"
        + " version = " + s + ".schedules.version + 1, deleted = false"
        + " WHERE " + s + ".schedules.deleted"
        + " RETURNING " + SCHEDULE_COLUMNS;
    updateSchedule = "UPDATE " + s + ".schedules SET agent = ?, input = ?, kind = ?,"
        + " interval_seconds = ?, interval_nanos = ?, cron = ?, zone = ?, missed_fires = ?,"
        + " paused = ?, next_fire_at = ?, last_fire_at = ?, last_run_id = ?,"
        + " version = version + 1"
        + " WHERE name = ? AND version = ? AND NOT deleted RETURNING " + SCHEDULE_COLUMNS;
    scheduleByName = "SELECT " + SCHEDULE_COLUMNS + " FROM " + s + ".schedules"
        + " WHERE name = ? AND NOT deleted";
    allSchedules = "SELECT " + SCHEDULE_COLUMNS + " FROM " + s + ".schedules WHERE NOT deleted";
    deleteSchedule = "UPDATE " + s + ".schedules SET deleted = true, input = ''"
        + " WHERE name = ? AND NOT deleted";

    // One branch per partial index, so that neither reads the key's history: with the two
    // statuses in one IN list the planner walked every run the key ever had (QueryPlanTest).
    oldestActiveOfKey = "SELECT min(id) FROM ("
        + "SELECT id FROM " + s + ".runs WHERE serial_key = ? AND status = 'RUNNING'"
        + " UNION ALL (SELECT id FROM " + s + ".runs WHERE serial_key = ? AND status = 'QUEUED'"
        + " ORDER BY id LIMIT 1)) active";

    eventsOfRun = "SELECT " + EVENT_COLUMNS + " FROM " + s + ".events WHERE run_id = ?"
        + " ORDER BY seq";

    stats = "SELECT agent, status, sum(runs)::bigint, sum(input_tokens)::bigint,"
        + " sum(output_tokens)::bigint, sum(cost_micros)::bigint FROM ("
        + "  SELECT agent, status, runs, input_tokens, output_tokens, cost_micros"
        + "  FROM " + s + ".run_stats"
        + "  UNION ALL"
        + "  SELECT agent, status, runs, input_tokens, output_tokens, cost_micros"
        + "  FROM " + s + ".run_stats_delta) d"
        + " GROUP BY agent, status ORDER BY agent, status";

    compactStats = "WITH moved AS (DELETE FROM " + s + ".run_stats_delta WHERE id IN"
        + "  (SELECT id FROM " + s + ".run_stats_delta ORDER BY id LIMIT 10000)"
        + "  RETURNING agent, status, runs, input_tokens, output_tokens, cost_micros)"
        + " INSERT INTO " + s + ".run_stats AS b"
        + "  (agent, status, runs, input_tokens, output_tokens, cost_micros)"
        + " SELECT agent, status, sum(runs), sum(input_tokens), sum(output_tokens),"
        + "  sum(cost_micros) FROM moved GROUP BY agent, status ORDER BY agent, status"
        + " ON CONFLICT (agent, status) DO UPDATE SET runs = b.runs + excluded.runs,"
        + "  input_tokens = b.input_tokens + excluded.input_tokens,"
        + "  output_tokens = b.output_tokens + excluded.output_tokens,"
        + "  cost_micros = b.cost_micros + excluded.cost_micros";
  }
}
