package dev.agentrunner.postgres;

import dev.agentrunner.RunRecord;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.Properties;

/**
 * The baselines of figure 5: the PostgreSQL store's own claim, finish and insert statements
 * ({@link Sql}, read here directly rather than copied, so the two sides cannot drift apart),
 * issued straight through JDBC on one connection, with no engine, no pool and no
 * notifier thread. Rows are decoded with the store's own {@link Rows}, so decoding costs the
 * same on both sides.
 *
 * <p>This class lives in the benchmarks module but in the store's package: the benchmarks run on
 * the class path, where one package split over two jars is one runtime package, so the
 * package-private statements are visible here.
 *
 * <p>Also the set-up and checks both sides share: filling a schema with queued runs, counting
 * how the runs ended, and the channel a schema's store notifies on.
 *
 * <p>Thread-safety: not thread-safe; one instance per thread.
 */
public final class RawPostgres implements AutoCloseable {
  /** The agent every queued run of figure 5a belongs to. */
  public static final String AGENT = "noop";

  private final Connection c;
  private final Sql sql;
  private final PreparedStatement claim;
  private final PreparedStatement finish;
  private final PreparedStatement insert;
  private final PreparedStatement notify;

  /** Opens one connection to {@code url} for the store statements of {@code schema}. */
  public RawPostgres(String url, String schema, String applicationName) throws SQLException {
    this.c = connect(url, applicationName);
    this.sql = new Sql(schema);
    this.claim = c.prepareStatement(sql.claim);
    this.finish = c.prepareStatement(sql.finishTerminal);
    this.insert = c.prepareStatement(sql.insertRun);
    // What the store's notifier sends after a committed insert; Notifier keeps it inline.
    this.notify = c.prepareStatement("SELECT pg_notify(?, ?)");
  }

  static Connection connect(String url, String applicationName) throws SQLException {
    Properties p = new Properties();
    p.setProperty("ApplicationName", applicationName);
    p.setProperty("connectTimeout", "5");
    p.setProperty("tcpKeepAlive", "true");
    return DriverManager.getConnection(url, p);
  }

  /**
   * The store's claim statement, bound as {@code PostgresRunStore.claim} binds it: up to
   * {@code limit} due runs of {@code agent} for {@code owner}, one statement, autocommit.
   */
  public List<RunRecord> claim(String agent, int limit, String owner, long leaseMicros)
      throws SQLException {
    Rows.setInstant(claim, 1, null); // the database's clock, as in production
    claim.setArray(2, c.createArrayOf("text", new String[] {agent}));
    claim.setArray(3, c.createArrayOf("integer", new Integer[] {limit}));
    claim.setInt(4, limit);
    claim.setString(5, owner);
    claim.setLong(6, leaseMicros);
    return Rows.runs(claim);
  }

  /**
   * The store's terminal finish statement for a SUCCEEDED run with an empty output and no usage,
   * fenced by attempt and owner, bound as {@code PostgresRunStore.finish} binds it.
   *
   * @return whether the fence matched (the run was ours and RUNNING)
   */
  public boolean finishSucceeded(RunRecord run) throws SQLException {
    Rows.setInstant(finish, 1, null);
    finish.setString(2, "SUCCEEDED");
    finish.setString(3, "");
    Rows.setNullableString(finish, 4, null);
    finish.setLong(5, 0);
    finish.setLong(6, 0);
    finish.setLong(7, 0);
    finish.setLong(8, run.id());
    finish.setInt(9, run.attempt());
    finish.setString(10, run.owner());
    return Rows.changed(finish).single() != null;
  }

  /**
   * Finishes {@code runs} (SUCCEEDED): in one transaction when {@code oneTransaction}, else each
   * finish in its own (autocommit), as the store does.
   *
   * @return how many finishes matched their fence
   */
  public int finishAll(List<RunRecord> runs, boolean oneTransaction) throws SQLException {
    int done = 0;
    if (oneTransaction) {
      c.setAutoCommit(false);
    }
    try {
      for (RunRecord r : runs) {
        done += finishSucceeded(r) ? 1 : 0;
      }
      if (oneTransaction) {
        c.commit();
      }
    } catch (SQLException | RuntimeException e) {
      if (oneTransaction) {
        c.rollback();
      }
      throw e;
    } finally {
      if (oneTransaction) {
        c.setAutoCommit(true);
      }
    }
    return done;
  }

  /**
   * The store's insert statement for a due run of {@code agent} without keys, autocommit.
   *
   * @return the run's id
   */
  public long insert(String agent, String input) throws SQLException {
    Rows.setInstant(insert, 1, null);
    insert.setString(2, agent);
    insert.setString(3, input);
    Rows.setNullableString(insert, 4, null);
    Rows.setNullableString(insert, 5, null);
    insert.setInt(6, 0);
    insert.setInt(7, 1);
    Rows.setInstant(insert, 8, null);
    return Rows.changed(insert).single().id();
  }

  /** {@code pg_notify} on the schema's channel, autocommit: what follows a committed insert. */
  public void notifyChannel(String payload) throws SQLException {
    notify.setString(1, PostgresRunStore.channelFor(sql.schema));
    notify.setString(2, payload);
    try (ResultSet rs = notify.executeQuery()) {
      rs.next();
    }
  }

  /** The underlying connection, for a LISTEN. */
  public Connection connection() {
    return c;
  }

  @Override
  public void close() throws SQLException {
    c.close();
  }

  // ---- what both sides share ----

  /** The NOTIFY channel of {@code schema}'s store. */
  public static String channel(String schema) {
    return PostgresRunStore.channelFor(schema);
  }

  /** Whether the store's listener connection is up, so that notifications reach its runner. */
  public static boolean listening(PostgresRunStore store) {
    return store.listenerBackendPid() != 0;
  }

  /**
   * Queues {@code runs} due runs of {@link #AGENT} in one statement, each row and its
   * {@code queued} event as the store's insert writes them (same columns and values), then
   * vacuums and analyzes, so both sides of a round start from the same, settled table. Set-up
   * only: nothing here is timed.
   */
  public static void fill(Connection c, String schema, int runs) throws SQLException {
    String s = '"' + schema + '"';
    try (PreparedStatement ps = c.prepareStatement("WITH ins AS (INSERT INTO " + s + ".runs"
        + " (agent, status, input, serial_key, idempotency_key, priority, attempt, max_attempts,"
        + " created_at, not_before)"
        + " SELECT ?, 'QUEUED', 'x', NULL, NULL, 0, 0, 1, now(), now()"
        + " FROM generate_series(1, ?) RETURNING id, created_at)"
        + " INSERT INTO " + s + ".events (run_id, attempt, type, data, at)"
        + " SELECT id, 0, 'queued', '', created_at FROM ins ORDER BY id")) {
      ps.setString(1, AGENT);
      ps.setInt(2, runs);
      ps.executeUpdate();
    }
    try (Statement st = c.createStatement()) {
      st.execute("VACUUM (ANALYZE) " + s + ".runs, " + s + ".events");
    }
  }

  /** How the runs of a schema ended: the check that a round really ran every run once. */
  public record Outcome(long runs, long succeededFirstAttempt, long startedEvents,
      long succeededEvents, long runsWithSucceededEvent) {
    /** Every run SUCCEEDED on its first attempt, with exactly one started and one succeeded event. */
    public boolean everyRunSucceededOnce(long expected) {
      return runs == expected && succeededFirstAttempt == expected && startedEvents == expected
          && succeededEvents == expected && runsWithSucceededEvent == expected;
    }
  }

  /** Counts runs by how they ended, and their start and success events. */
  public static Outcome outcome(Connection c, String schema) throws SQLException {
    String s = '"' + schema + '"';
    try (Statement st = c.createStatement();
        ResultSet rs = st.executeQuery("SELECT"
            + " (SELECT count(*) FROM " + s + ".runs),"
            + " (SELECT count(*) FROM " + s + ".runs WHERE status = 'SUCCEEDED' AND attempt = 1),"
            + " (SELECT count(*) FROM " + s + ".events WHERE type = 'started'),"
            + " (SELECT count(*) FROM " + s + ".events WHERE type = 'succeeded'),"
            + " (SELECT count(DISTINCT run_id) FROM " + s + ".events WHERE type = 'succeeded')")) {
      rs.next();
      return new Outcome(rs.getLong(1), rs.getLong(2), rs.getLong(3), rs.getLong(4),
          rs.getLong(5));
    }
  }

  /** Opens a plain connection (set-up, checks, LISTEN). */
  public static Connection open(String url, String applicationName) throws SQLException {
    return connect(url, applicationName);
  }
}
