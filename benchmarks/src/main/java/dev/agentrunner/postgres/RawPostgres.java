package dev.agentrunner.postgres;

import dev.agentrunner.Usage;
import dev.agentrunner.spi.Finish;

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
    p.setProperty("options", PostgresRunStore.SESSION_OPTIONS); // the store's session settings
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
   * The store's terminal finish statement, bound as {@code PostgresRunStore} binds it for a
   * batch: every run of {@code runs} SUCCEEDED with an empty output and no usage, each fenced
   * by its attempt and owner, in one statement (so one transaction).
   *
   * @return how many finishes matched their fence
   */
  public int finishSucceeded(List<RunRecord> claimed) throws SQLException {
    List<FinishBatcher.Request> batch = new java.util.ArrayList<>(claimed.size());
    for (RunRecord r : claimed) {
      batch.add(new FinishBatcher.Request(
          Finish.succeeded(r.id(), r.attempt(), r.owner(), "", Usage.ZERO), "", null));
    }
    PostgresRunStore.bindFinishTerminal(c, finish, null, PostgresRunStore.inLockOrder(batch));
    return Rows.changed(finish).runs().size();
  }

  /**
   * Finishes {@code runs} (SUCCEEDED): all in one statement when {@code batched}, else each in
   * a statement (and transaction) of its own, as the store did before it combined finishes.
   *
   * @return how many finishes matched their fence
   */
  public int finishAll(List<RunRecord> runs, boolean batched) throws SQLException {
    if (batched) {
      return finishSucceeded(runs);
    }
    int done = 0;
    for (RunRecord r : runs) {
      done += finishSucceeded(List.of(r));
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

  /**
   * Prepares and plans the claim and finish statements on this connection, as a worker that has
   * been running a while has them, by running each a few times on nothing (an agent without
   * runs, an empty list).
   */
  public void prime() throws SQLException {
    for (int i = 0; i < 6; i++) {
      claim("prime-no-such-agent", 1, "prime", 30_000_000L);
      finishSucceeded(List.of());
    }
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

  /**
   * How the runs of a schema ended (the check that a round really ran every run once), and how
   * many claim and finish statements it took. A statement's rows share its transaction's
   * {@code now()}: a claim's started events carry the claimer and that instant, a finish's runs
   * their owner and {@code finished_at}, so distinct pairs count the statements.
   */
  public record Outcome(long runs, long succeededFirstAttempt, long startedEvents,
      long succeededEvents, long runsWithSucceededEvent, long claimStatements,
      long finishStatements) {
    /** Every run SUCCEEDED on attempt 1, with exactly one started and one succeeded event. */
    public boolean everyRunSucceededOnce(long expected) {
      return runs == expected && succeededFirstAttempt == expected && startedEvents == expected
          && succeededEvents == expected && runsWithSucceededEvent == expected;
    }
  }

  /** Counts runs by how they ended, their start and success events, and the statements. */
  public static Outcome outcome(Connection c, String schema) throws SQLException {
    String s = '"' + schema + '"';
    try (Statement st = c.createStatement();
        ResultSet rs = st.executeQuery("SELECT"
            + " (SELECT count(*) FROM " + s + ".runs),"
            + " (SELECT count(*) FROM " + s + ".runs WHERE status = 'SUCCEEDED' AND attempt = 1),"
            + " (SELECT count(*) FROM " + s + ".events WHERE type = 'started'),"
            + " (SELECT count(*) FROM " + s + ".events WHERE type = 'succeeded'),"
            + " (SELECT count(DISTINCT run_id) FROM " + s + ".events WHERE type = 'succeeded'),"
            + " (SELECT count(DISTINCT (data, at)) FROM " + s + ".events WHERE type = 'started'),"
            + " (SELECT count(DISTINCT (owner, finished_at)) FROM " + s + ".runs"
            + "   WHERE finished_at IS NOT NULL)")) {
      rs.next();
      return new Outcome(rs.getLong(1), rs.getLong(2), rs.getLong(3), rs.getLong(4),
          rs.getLong(5), rs.getLong(6), rs.getLong(7));
    }
  }

  /** Opens a plain connection (set-up, checks, LISTEN). */
  public static Connection open(String url, String applicationName) throws SQLException {
    return connect(url, applicationName);
  }
}
