package dev.agentrunner.bench;

import dev.agentrunner.postgres.PostgresRunStore;
import dev.agentrunner.postgres.RawPostgres;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Figure 5, PostgreSQL: finds the server, starts the four worker JVMs both parts share, and runs
 * 5a ({@link PgThroughput}: four worker JVMs vs the raw rate of the store's own claim and finish
 * statements) and 5b ({@link PgStartLatency}: cross-JVM submit → start through LISTEN/NOTIFY vs
 * the raw floor of that path). Without a server, or if the figure fails part-way, it reports a
 * row saying so and the harness goes on with the other figures.
 *
 * <p>The server: {@code -Dbench.pgUrl} if given, else 127.0.0.1:5432, database {@code test},
 * user {@code postgres} then {@code root} (as the postgres-store tests). Every round works in a
 * fresh schema, dropped afterwards.
 */
final class PostgresFigure {
  static final int WORKERS = 4;
  private static final AtomicInteger SCHEMAS = new AtomicInteger();

  private PostgresFigure() {}

  static void run(Mode mode, Report report, boolean throughput, boolean latency)
      throws InterruptedException {
    List<String> problems = new ArrayList<>();
    String url = findServer(problems);
    if (url == null) {
      System.err.println("[5] no PostgreSQL server: " + problems);
      report.row("5", "PostgreSQL (4 worker JVMs vs raw SKIP LOCKED; cross-JVM start latency)",
          "not run", "no server answered: " + String.join("; ", problems)
              + " (start one: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main"
              + " start, or pass -Dbench.pgUrl=jdbc:postgresql://…)",
          "–", "–", Report.Verdict.NOT_RUN);
      return;
    }
    System.err.printf("[5] PostgreSQL at %s: starting %d worker JVMs%n",
        withoutParameters(url), WORKERS);
    List<PgChild> workers = new ArrayList<>();
    try {
      for (int i = 0; i < (throughput ? WORKERS : 1); i++) {
        workers.add(PgChild.start(url, "pg-worker-" + i));
      }
      if (throughput) {
        PgThroughput.run(mode, report, url, workers);
      }
      if (latency) {
        PgStartLatency.run(mode, report, url, workers.get(0));
      }
    } catch (Exception e) {
      e.printStackTrace();
      report.row("5", "PostgreSQL", "failed part-way: " + String.valueOf(e).replace('|', '/'),
          "–", "–", "–", Report.Verdict.NOT_RUN);
    } finally {
      for (PgChild w : workers) {
        w.close();
      }
      dropLeftovers(url);
    }
  }

  /** Drops every schema this harness created that a failure left behind. */
  private static void dropLeftovers(String url) {
    try (Connection c = RawPostgres.open(url, "bench-admin");
        PreparedStatement ps = c.prepareStatement(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, ?)")) {
      ps.setString(1, schemaPrefix());
      List<String> left = new ArrayList<>();
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          left.add(rs.getString(1));
        }
      }
      for (String schema : left) {
        dropSchema(url, schema);
      }
    } catch (SQLException e) {
      System.err.println("[5] could not drop leftover schemas: " + e.getMessage());
    }
  }

  private static String schemaPrefix() {
    return "bench5_" + ProcessHandle.current().pid() + "_";
  }

  /** The first URL that answers, or null with the reasons in {@code problems}. */
  private static String findServer(List<String> problems) {
    String given = System.getProperty("bench.pgUrl", "").strip();
    List<String> candidates = given.isEmpty()
        ? List.of("jdbc:postgresql://127.0.0.1:5432/test?user=postgres",
            "jdbc:postgresql://127.0.0.1:5432/test?user=root")
        : List.of(given);
    for (String candidate : candidates) {
      try (Connection c = RawPostgres.open(candidate, "bench-probe");
          Statement s = c.createStatement()) {
        s.execute("SELECT 1");
        return candidate;
      } catch (SQLException e) {
        problems.add(withoutParameters(candidate) + ": " + e.getMessage());
      }
    }
    return null;
  }

  static String withoutParameters(String url) {
    int q = url.indexOf('?');
    return q < 0 ? url : url.substring(0, q);
  }

  /** A new schema, created and migrated by the store itself, unique to this harness run. */
  static String freshSchema(String url) {
    String schema = schemaPrefix() + SCHEMAS.incrementAndGet();
    PostgresRunStore.builder(url).schema(schema).poolSize(1).build().close();
    return schema;
  }

  static void dropSchema(String url, String schema) throws SQLException {
    try (Connection c = RawPostgres.open(url, "bench-admin"); Statement s = c.createStatement()) {
      s.execute("DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE");
    }
  }
}
