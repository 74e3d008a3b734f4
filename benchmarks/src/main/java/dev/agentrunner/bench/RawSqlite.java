package dev.agentrunner.bench;

import static dev.agentrunner.sqlite.StoreInternals.CLAIMABLE_AT_OR_ABOVE;
import static dev.agentrunner.sqlite.StoreInternals.CLAIM_CANDIDATES;
import static dev.agentrunner.sqlite.StoreInternals.CLAIM_RUN;
import static dev.agentrunner.sqlite.StoreInternals.FINISH_TERMINAL;
import static dev.agentrunner.sqlite.StoreInternals.INSERT_EVENT;
import static dev.agentrunner.sqlite.StoreInternals.INSERT_QUEUED_AND_STARTED_EVENTS;
import static dev.agentrunner.sqlite.StoreInternals.INSERT_RUN;
import static dev.agentrunner.sqlite.StoreInternals.INSERT_RUNNING_RUN;

import dev.agentrunner.sqlite.SqliteRunStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.time.Duration;
import org.HdrHistogram.Histogram;
import org.sqlite.SQLiteConfig;

/**
 * The baselines of figures 2 and 3: the SQLite store's own statements (taken from the store
 * itself through {@link dev.agentrunner.sqlite.StoreInternals}, so they cannot drift apart),
 * issued straight through JDBC on one connection configured like the store's writer, with no
 * engine and no group-commit writer. The schema is the store's own (the file is created by
 * opening a {@link SqliteRunStore}), so indexes and triggers cost the same on both sides.
 *
 * <p>Two lives of a run are measured. The queue path, what a straightforward queue does:
 * insert QUEUED + event, find the next run, claim it + event, finish it + event (six writes).
 * The engine's own path for a submit with a free permit: check that nothing comes first,
 * insert already claimed + both events, finish it + event (three writes).
 *
 * <p>Thread-safety: not thread-safe; one instance per thread.
 */
final class RawSqlite implements AutoCloseable {

  private static final String OWNER = "raw-worker";
  private static final String AGENT = "noop";
  private static final long LEASE_NANOS = 30_000_000_000L;

  private final Connection c;
  private final Statement plain;
  private final PreparedStatement insertRun;
  private final PreparedStatement insertEvent;
  private final PreparedStatement candidates;
  private final PreparedStatement claimRun;
  private final PreparedStatement finish;
  private final PreparedStatement claimableAhead;
  private final PreparedStatement insertRunning;
  private final PreparedStatement insertTwoEvents;
  private final PreparedStatement savepoint;
  private final PreparedStatement release;

  /** Creates the store's schema in {@code file} and opens one raw connection like its writer. */
  RawSqlite(Path file, SqliteRunStore.Durability durability) throws SQLException {
    SqliteRunStore.builder(file).durability(durability).build().close();
    SQLiteConfig config = new SQLiteConfig();
    config.setGetGeneratedKeys(false); // as the store's writer: ids come from RETURNING
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
    finish = c.prepareStatement(FINISH_TERMINAL);
    claimableAhead = c.prepareStatement(CLAIMABLE_AT_OR_ABOVE);
    insertRunning = c.prepareStatement(INSERT_RUNNING_RUN);
    insertTwoEvents = c.prepareStatement(INSERT_QUEUED_AND_STARTED_EVENTS);
    savepoint = c.prepareStatement("SAVEPOINT op");
    release = c.prepareStatement("RELEASE op");
  }

  /**
   * The naive rate: the queue path, every statement its own autocommit transaction (six
   * commits per run), for {@code window}.
   *
   * @return the round; its latency is each run's insert-to-finish time
   */
  Load.Round naive(Duration window) throws SQLException {
    return oneRunAtATime(window, t0 -> {
      long id = insertQueued(t0);
      event(id, 0, "queued", "");
      long[] claimed = candidates(1);
      int attempt = claim(claimed[0]);
      event(id, attempt, "started", OWNER);
      finish(id, attempt);
      event(id, attempt, "succeeded", "");
    });
  }

  /** One run's life, started at {@code t0}. */
  @FunctionalInterface
  private interface Life {
    void run(long t0) throws SQLException;
  }

  /** Runs {@code life} one run after another for {@code window}; latency: each run's time. */
  private static Load.Round oneRunAtATime(Duration window, Life life) throws SQLException {
    Histogram latency = new Histogram(3);
    long start = System.nanoTime();
    long end = start + window.toNanos();
    long runs = 0;
    long t0;
    while ((t0 = System.nanoTime()) - end < 0) {
      life.run(t0);
      latency.recordValue(System.nanoTime() - t0);
      runs++;
    }
    return new Load.Round(runs, System.nanoTime() - start, latency);
  }

  /**
   * The engine's own path, every write its own autocommit transaction (three commits per run):
   * what the statements cost without group commit.
   */
  Load.Round naiveOwnPath(Duration window) throws SQLException {
    return oneRunAtATime(window, t0 -> {
      long id = insertClaimed(t0);
      finish(id, 1);
      event(id, 1, "succeeded", "");
    });
  }

  /**
   * The raw JDBC ceiling: the engine's own path, {@code runsPerTx} runs of it in one IMMEDIATE
   * transaction (insert each already claimed, then finish each), for {@code window}. With
   * {@code savepoints}, each insert and each finish is wrapped in SAVEPOINT/RELEASE, as the
   * store's writer did for every operation before it ran batches straight through.
   *
   * @return the round; its latency is each transaction's time (every run in it shares it)
   */
  Load.Round ceiling(Duration window, int runsPerTx, boolean savepoints) throws SQLException {
    Histogram latency = new Histogram(3);
    long[] ids = new long[runsPerTx];
    long start = System.nanoTime();
    long end = start + window.toNanos();
    long runs = 0;
    long t0;
    while ((t0 = System.nanoTime()) - end < 0) {
      plain.execute("BEGIN IMMEDIATE");
      for (int i = 0; i < runsPerTx; i++) {
        savepoint(savepoints);
        ids[i] = insertClaimed(t0);
        release(savepoints);
      }
      for (int i = 0; i < runsPerTx; i++) {
        savepoint(savepoints);
        finish(ids[i], 1);
        event(ids[i], 1, "succeeded", "");
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
   * The floor under submit → agent start on a durable store: a run cannot start before the
   * commit that stores it claimed. Measured closed loop, one run at a time, for
   * {@code window}; each run is then finished (untimed) so the table stays as the engine's.
   */
  Histogram oneCommitFloor(Duration window) throws SQLException {
    Histogram latency = new Histogram(3);
    long end = System.nanoTime() + window.toNanos();
    long t0;
    while ((t0 = System.nanoTime()) - end < 0) {
      plain.execute("BEGIN IMMEDIATE");
      long id = insertClaimed(t0);
      plain.execute("COMMIT");
      latency.recordValue(System.nanoTime() - t0);
      plain.execute("BEGIN IMMEDIATE");
      finish(id, 1);
      event(id, 1, "succeeded", "");
      plain.execute("COMMIT");
    }
    return latency;
  }

  private static long nowNanos() {
    return System.currentTimeMillis() * 1_000_000L;
  }

  private long insertQueued(long t0) throws SQLException {
    long now = nowNanos();
    insertRun.setString(1, AGENT);
    insertRun.setString(2, Long.toString(t0));
    insertRun.setNull(3, Types.VARCHAR);
    insertRun.setNull(4, Types.VARCHAR);
    insertRun.setInt(5, 0);
    insertRun.setInt(6, 1);
    insertRun.setLong(7, now);
    insertRun.setLong(8, now);
    return readRun(insertRun)[0];
  }

  /** The engine's insert of a run that comes first: the check, the insert, both events. */
  private long insertClaimed(long t0) throws SQLException {
    long now = nowNanos();
    claimableAhead.setString(1, AGENT);
    claimableAhead.setInt(2, 0);
    claimableAhead.setLong(3, now);
    try (ResultSet rs = claimableAhead.executeQuery()) {
      if (rs.next()) {
        throw new IllegalStateException("a claimable run is waiting; the baseline queues none");
      }
    }
    insertRunning.setString(1, AGENT);
    insertRunning.setString(2, Long.toString(t0));
    insertRunning.setNull(3, Types.VARCHAR);
    insertRunning.setInt(4, 0);
    insertRunning.setInt(5, 1);
    insertRunning.setLong(6, now);
    insertRunning.setLong(7, now);
    insertRunning.setLong(8, now);
    insertRunning.setString(9, OWNER);
    insertRunning.setLong(10, now + LEASE_NANOS);
    long id = readRun(insertRunning)[0];
    insertTwoEvents.setLong(1, id);
    insertTwoEvents.setLong(2, now);
    insertTwoEvents.setString(3, OWNER);
    insertTwoEvents.executeUpdate();
    return id;
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
    claimRun.setLong(3, now + LEASE_NANOS);
    claimRun.setLong(4, id);
    return (int) readRun(claimRun)[1];
  }

  /** The store's terminal finish: SUCCEEDED with an empty output and no usage. */
  private void finish(long id, int attempt) throws SQLException {
    finish.setString(1, "SUCCEEDED");
    finish.setString(2, "");
    finish.setNull(3, Types.VARCHAR);
    finish.setLong(4, nowNanos());
    finish.setLong(5, 0);
    finish.setLong(6, 0);
    finish.setLong(7, 0);
    finish.setLong(8, id);
    finish.setInt(9, attempt);
    finish.setString(10, OWNER);
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
      int columns = rs.getMetaData().getColumnCount();
      for (int col = 1; col <= columns; col++) {
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
