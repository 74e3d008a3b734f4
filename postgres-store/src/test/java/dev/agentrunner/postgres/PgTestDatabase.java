package dev.agentrunner.postgres;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.junit.jupiter.api.Assumptions;

/**
 * The real PostgreSQL server the tests run against: 127.0.0.1:5432, database {@code test}, trust
 * authentication as {@code postgres} or {@code root} (or the URL in the environment variable
 * {@code AGENTRUNNER_PG_URL}).
 *
 * <p>When no server answers, tests are skipped with a message saying how to start one, except
 * under {@code CI=true}, where a missing server fails the build: CI must not go green by
 * skipping the store it is meant to prove.
 *
 * <p>Each test class works in its own schema, named with this JVM's pid so that two builds on
 * one machine do not collide, and drops it afterwards.
 *
 * <p>Thread-safety: thread-safe.
 */
final class PgTestDatabase {
  private PgTestDatabase() {}

  static final String START_HINT = "start it with: pg_ctlcluster --skip-systemctl-redirect"
      + " $(ls /etc/postgresql) main start";

  private static String url;
  private static String problem;
  private static boolean warned;

  /** The JDBC URL of the test database (with its user); skips or fails the test if none. */
  static synchronized String url() {
    if (url == null && problem == null) {
      probe();
    }
    if (url != null) {
      return url;
    }
    String message = "No PostgreSQL server for the postgres-store tests (" + problem + "); "
        + START_HINT;
    if ("true".equalsIgnoreCase(System.getenv("CI"))) {
      throw new AssertionError(message + ". CI=true: a missing server fails the build.");
    }
    if (!warned) {
      warned = true;
      System.err.println("[postgres-store] tests skipped: " + message);
    }
    Assumptions.abort(message);
    throw new AssertionError("unreachable");
  }

  /** Whether a server answers, without skipping or failing. */
  static synchronized boolean available() {
    if (url == null && problem == null) {
      probe();
    }
    return url != null;
  }

  private static void probe() {
    List<String> candidates = new ArrayList<>();
    String fromEnv = System.getenv("AGENTRUNNER_PG_URL");
    if (fromEnv != null && !fromEnv.isBlank()) {
      candidates.add(fromEnv);
    } else {
      candidates.add("jdbc:postgresql://127.0.0.1:5432/test?user=postgres");
      candidates.add("jdbc:postgresql://127.0.0.1:5432/test?user=root");
    }
    List<String> failures = new ArrayList<>();
    for (String candidate : candidates) {
      Properties p = new Properties();
      p.setProperty("connectTimeout", "3");
      try (Connection c = DriverManager.getConnection(candidate, p);
          Statement s = c.createStatement()) {
        s.execute("SELECT 1");
        url = candidate;
        return;
      } catch (SQLException e) {
        failures.add(PostgresRunStore.withoutParameters(candidate) + ": " + e.getMessage());
      }
    }
    problem = String.join("; ", failures);
  }

  /** A schema name for {@code purpose}, unique to this JVM. */
  static String schemaName(String purpose) {
    return "t_" + purpose + "_" + ProcessHandle.current().pid();
  }

  static Connection connect() throws SQLException {
    return DriverManager.getConnection(url());
  }

  static void execute(String sql) throws SQLException {
    try (Connection c = connect(); Statement s = c.createStatement()) {
      s.execute(sql);
    }
  }

  /** Drops the schema with everything in it, if the server is there at all. */
  static void dropSchema(String schema) throws SQLException {
    if (available()) {
      execute("DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE");
    }
  }

  /** Ends every server process whose application_name is {@code name}; returns how many. */
  static int terminate(String applicationName) throws SQLException {
    try (Connection c = connect();
        var ps = c.prepareStatement("SELECT count(pg_terminate_backend(pid))"
            + " FROM pg_stat_activity WHERE application_name = ? AND pid <> pg_backend_pid()")) {
      ps.setString(1, applicationName);
      try (var rs = ps.executeQuery()) {
        rs.next();
        return rs.getInt(1);
      }
    }
  }
}
