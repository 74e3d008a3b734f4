package dev.agentrunner.sqlite;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.sql.Connection;
import java.sql.SQLException;
import org.sqlite.SQLiteDataSource;

/**
 * The read path: a HikariCP pool of read-only connections. In WAL mode a reader works on the
 * last committed snapshot and neither waits for the writer nor makes it wait, and every single
 * SELECT sees one consistent snapshot.
 *
 * <p>Thread-safety: thread-safe.
 */
final class Reads implements AutoCloseable {

  /** A query run on a pooled connection. */
  @FunctionalInterface
  interface Query<T> {
    T apply(Connection c) throws SQLException;
  }

  private final HikariDataSource pool;
  private final Failures failures;
  private final int busyRetries;

  Reads(SQLiteDataSource readOnlySource, int poolSize, Failures failures, int busyRetries) {
    this.failures = failures;
    this.busyRetries = busyRetries;
    HikariConfig config = new HikariConfig();
    config.setDataSource(readOnlySource);
    config.setPoolName("agentrunner-sqlite-read[" + failures.path().getFileName() + "]");
    config.setMaximumPoolSize(poolSize);
    config.setMinimumIdle(1);
    config.setAutoCommit(true);
    // Must match the connections' own read-only open flag: sqlite-jdbc refuses to change it.
    config.setReadOnly(true);
    // Opening a SQLite connection is local and quick; waiting long means the pool is exhausted.
    config.setConnectionTimeout(30_000);
    this.pool = new HikariDataSource(config);
  }

  /** Runs {@code query} on a pooled connection, retrying while another connection blocks it. */
  <T> T read(String what, Query<T> query) {
    for (int attempt = 0; ; attempt++) {
      try (Connection c = pool.getConnection()) {
        return query.apply(c);
      } catch (SQLException e) {
        // In WAL mode a reader is blocked only briefly (WAL recovery, a truncating checkpoint).
        if (!Failures.isBusy(e) || attempt >= busyRetries) {
          throw failures.wrap(what, e);
        }
        Writer.pause(attempt);
      }
    }
  }

  @Override
  public void close() {
    pool.close();
  }
}
