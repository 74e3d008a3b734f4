package dev.agentrunner.bench;

import dev.agentrunner.sqlite.SqliteRunStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import org.HdrHistogram.Histogram;
import org.sqlite.SQLiteConfig;

/**
 * The baselines of figures 2 and 3: the statements the SQLite store runs for one run's life
 * (insert + queued event, claim query, claim update + started event, finish update + finished
 * event), issued straight through JDBC on one connection, with no engine and no group-commit
 * writer. The schema is the store's own (the file is created by opening a
 * {@link SqliteRunStore}), so indexes and triggers cost the same on both sides.
 *
 * <p>Thread-safety: not thread-safe; one instance per thread.
 */
final class RawSqlite implements AutoCloseable {

  /** The run columns the store's statements return; read back here too, at the same cost. */
  private static final String RUN_COLUMNS =
      "id, agent, status, input, output, error, serial_key, idempotency_key, priority, attempt,"
          + " max_attempts, created_at, not_before, started_at, finished_at, owner, lease_until,"
          + " cancel_requested, input_tokens, output_tokens, cost_micros";

  private static final String INSERT_RUN =
      "INSERT INTO runs (agent, status, input, serial_key, idempotency_key, priority, attempt,"
          + " max_attempts, created_at, not_before) VALUES (?, 'QUEUED', ?, NULL, NULL, 0, 0, 1,"
          + " ?, ?) ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
          + " RETURNING " + RUN_COLUMNS;
  private static final String INSERT_EVENT =
      "INSERT INTO events (run_id, attempt, type, data, at) VALUES (?, ?, ?, ?, ?)";
  private static final String CLAIM_CANDIDATES =
      "SELECT r.id, r.priority FROM runs r INDEXED BY runs_queue"
          + " WHERE r.status = 'QUEUED' AND r.agent = ? AND r.not_before <= ?"
          + " AND (r.serial_key IS NULL OR ("
          + "   NOT EXISTS (SELECT 1 FROM runs b"
          + "     WHERE b.serial_key = r.serial_key AND b.status = 'RUNNING')"
          + "   AND NOT EXISTS (SELECT 1 FROM runs o"
          + "     WHERE o.serial_key = r.serial_key AND o.status = 'QUEUED' AND o.id < r.id)))"
          + " ORDER BY r.priority DESC, r.id LIMIT ?";
  private static final String CLAIM_RUN =
      "UPDATE runs SET status = 'RUNNING', attempt = attempt + 1, owner = ?, started_at = ?,"
          + " lease_until = ?, cancel_requested = 0 WHERE id = ? AND status = 'QUEUED'"
          + " RETURNING " + RUN_COLUMNS;
  private static final String FINISH =
      "UPDATE runs SET status = 'SUCCEEDED', output = ?, error = NULL, finished_at = ?,"
          + " lease_until = NULL, cancel_requested = 0, input_tokens = input_tokens + 0,"
          + " output_tokens = output_tokens + 0, cost_micros = cost_micros + 0"
          + " WHERE id = ? AND status = 'RUNNING' AND attempt = ? AND owner = ?"
          + " RETURNING " + RUN_COLUMNS;

  private static final String OWNER = "raw-worker";
  private static final String AGENT = "noop";

  private final Connection c;
  private final Statement plain;
  private final PreparedStatement insertRun;
  private final PreparedStatement insertEvent;
  private final PreparedStatement candidates;
  private final PreparedStatement claimRun;
  private final PreparedStatement finish;
  private final PreparedStatement savepoint;
  private final PreparedStatement release;

  /**
   * Creates the store's schema in {@code file} and opens one raw connection like the store's.
   *
   * @param generatedKeys sqlite-jdbc's {@code getGeneratedKeys} option, on by default as in the
   *     store; when on, the driver runs {@code SELECT last_insert_rowid()} after every INSERT
   */
  RawSqlite(Path file, SqliteRunStore.Durability durability, boolean generatedKeys)
      throws SQLException {
    SqliteRunStore.builder(file).durability(durability).build().close();
    SQLiteConfig config = new SQLiteConfig();
    config.setGetGeneratedKeys(generatedKeys);
    c = config.createConnection("jdbc:sqlite:" + file.toUri());
    plain = c.createStatement();
    plain.execute("PRAGMA busy_timeout = 5000");
    plain.execute("PRAGMA journal_mode = WAL");
    plain.execute("PRAGMA synchronous = " + durability.name());
    plain.execute("PRAGMA foreign_keys = ON");
    insertRun = c.prepareStatement(INSERT_RUN);
    insertEvent = c.prepareStatement(INSERT_EVENT);
    candidates = c.prepareStatement(CLAIM_CANDIDATES);
    claimRun = c.prepareStatement(CLAIM_RUN);
    finish = c.prepareStatement(FINISH);
    savepoint = c.prepareStatement("SAVEPOINT op");
    release = c.prepareStatement("RELEASE op");
  }

  /**
   * The naive rate: every statement of a run's life in its own autocommit transaction (six
   * commits per run), for {@code window}.
   *
   * @return the round; its latency is each run's insert-to-finish time
   */
  Load.Round naive(Duration window) throws SQLException {
    Histogram latency = new Histogram(3);
    long start = System.nanoTime();
    long end = start + window.toNanos();
    long runs = 0;
    long t0;
    while ((t0 = System.nanoTime()) - end < 0) {
      long id = insert(t0);
      event(id, 0, "queued", "");
      long[] claimed = candidates(1);
      int attempt = claim(claimed[0]);
      event(id, attempt, "started", OWNER);
      finish(id, attempt);
      event(id, attempt, "succeeded", "");
      latency.recordValue(System.nanoTime() - t0);
      runs++;
    }
    return new Load.Round(runs, System.nanoTime() - start, latency);
  }

  /**
   * The raw JDBC ceiling: the same statements, {@code runsPerTx} runs' worth of them in one
   * IMMEDIATE transaction (insert all, one claim query, claim all, finish all, commit), for
   * {@code window}. With {@code savepoints}, each operation the store's writer would run (an
   * insert with its event, the claim, a finish with its event) is wrapped in SAVEPOINT/RELEASE
   * as the writer does, to price that isolation on its own.
   *
   * @return the round; its latency is each transaction's time (every run in it shares it)
   */
  Load.Round ceiling(Duration window, int runsPerTx, boolean savepoints) throws SQLException {
    Histogram latency = new Histogram(3);
    long[] ids = new long[runsPerTx];
    int[] attempts = new int[runsPerTx];
    long start = System.nanoTime();
    long end = start + window.toNanos();
    long runs = 0;
    long t0;
    while ((t0 = System.nanoTime()) - end < 0) {
      plain.execute("BEGIN IMMEDIATE");
      for (int i = 0; i < runsPerTx; i++) {
        savepoint(savepoints);
        ids[i] = insert(t0);
        event(ids[i], 0, "queued", "");
        release(savepoints);
      }
      savepoint(savepoints);
      long[] claimed = candidates(runsPerTx);
      for (int i = 0; i < claimed.length; i++) {
        attempts[i] = claim(claimed[i]);
        event(claimed[i], attempts[i], "started", OWNER);
      }
      release(savepoints);
      for (int i = 0; i < claimed.length; i++) {
        savepoint(savepoints);
        finish(claimed[i], attempts[i]);
        event(claimed[i], attempts[i], "succeeded", "");
        release(savepoints);
      }
      plain.execute("COMMIT");
      long took = System.nanoTime() - t0;
      for (int i = 0; i < runsPerTx; i++) {
        latency.recordValue(took);
      }
      runs += runsPerTx;
    }
    return new Load.Round(runs, System.nanoTime() - start, latency);
  }

  private void savepoint(boolean on) throws SQLException {
    if (on) {
      savepoint.execute();
    }
  }

  private void release(boolean on) throws SQLException {
    if (on) {
      release.execute();
    }
  }

  /**
   * The floor under submit → agent start on a durable store: a run cannot start before two
   * commits, its insert's and its claim's. Measured closed loop, one run at a time, for
   * {@code window}; each run is then finished (untimed) so the queue stays as short as the
   * engine's.
   */
  Histogram twoCommitFloor(Duration window) throws SQLException {
    Histogram latency = new Histogram(3);
    long end = System.nanoTime() + window.toNanos();
    long t0;
    while ((t0 = System.nanoTime()) - end < 0) {
      plain.execute("BEGIN IMMEDIATE");
      long id = insert(t0);
      event(id, 0, "queued", "");
      plain.execute("COMMIT");
      plain.execute("BEGIN IMMEDIATE");
      long[] claimed = candidates(1);
      int attempt = claim(claimed[0]);
      event(id, attempt, "started", OWNER);
      plain.execute("COMMIT");
      latency.recordValue(System.nanoTime() - t0);
      plain.execute("BEGIN IMMEDIATE");
      finish(id, attempt);
      event(id, attempt, "succeeded", "");
      plain.execute("COMMIT");
    }
    return latency;
  }

  private static long nowNanos() {
    return System.currentTimeMillis() * 1_000_000L;
  }

  private long insert(long t0) throws SQLException {
    long now = nowNanos();
    insertRun.setString(1, AGENT);
    insertRun.setString(2, Long.toString(t0));
    insertRun.setLong(3, now);
    insertRun.setLong(4, now);
    return readRun(insertRun)[0];
  }

  private void event(long runId, int attempt, String type, String data) throws SQLException {
    insertEvent.setLong(1, runId);
    insertEvent.setInt(2, attempt);
    insertEvent.setString(3, type);
    insertEvent.setString(4, data);
    insertEvent.setLong(5, nowNanos());
    insertEvent.executeUpdate();
  }

  private long[] candidates(int limit) throws SQLException {
    candidates.setString(1, AGENT);
    candidates.setLong(2, nowNanos());
    candidates.setInt(3, limit);
    long[] ids = new long[limit];
    int n = 0;
    try (ResultSet rs = candidates.executeQuery()) {
      while (rs.next()) {
        ids[n++] = rs.getLong(1);
      }
    }
    if (n != limit) {
      throw new IllegalStateException("expected " + limit + " queued runs, found " + n);
    }
    return ids;
  }

  private int claim(long id) throws SQLException {
    long now = nowNanos();
    claimRun.setString(1, OWNER);
    claimRun.setLong(2, now);
    claimRun.setLong(3, now + 30_000_000_000L);
    claimRun.setLong(4, id);
    return (int) readRun(claimRun)[1];
  }

  private void finish(long id, int attempt) throws SQLException {
    finish.setString(1, "");
    finish.setLong(2, nowNanos());
    finish.setLong(3, id);
    finish.setInt(4, attempt);
    finish.setString(5, OWNER);
    readRun(finish);
  }

  /**
   * Executes a statement returning one run row and reads every column, as the store does when
   * it builds a record; returns {id, attempt}.
   */
  private static long[] readRun(PreparedStatement ps) throws SQLException {
    try (ResultSet rs = ps.executeQuery()) {
      if (!rs.next()) {
        throw new IllegalStateException("the statement returned no run");
      }
      for (int col = 1; col <= 21; col++) {
        rs.getObject(col);
      }
      return new long[] {rs.getLong(1), rs.getLong(10)};
    }
  }

  @Override
  public void close() throws SQLException {
    c.close();
  }

  /** Deletes a database file and its WAL and shared-memory files. */
  static void delete(Path file) throws java.io.IOException {
    for (String suffix : new String[] {"", "-wal", "-shm", "-journal"}) {
      Files.deleteIfExists(file.resolveSibling(file.getFileName() + suffix));
    }
  }
}
