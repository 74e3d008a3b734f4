package dev.agentrunner.postgres;

import java.sql.Connection;
import java.sql.SQLException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.locks.LockSupport;
import javax.sql.DataSource;

/**
 * Runs store operations on pooled connections: one statement in autocommit mode (each write of
 * the store is one statement, so one transaction and one round trip), or several statements in
 * one explicit transaction.
 *
 * <p>What is retried, and why that is safe:
 *
 * <ul>
 *   <li>A transaction the server rolled back because it collided with another (deadlock,
 *       serialization failure, the serial-key index refusing a racing claim): it had no effect,
 *       so it is run again, a few times, after a short random pause.
 *   <li>A lost connection, only for operations that may run twice with the same result (reads,
 *       heartbeats). A write whose connection broke may or may not have committed; running it
 *       again could insert a run twice, so it fails with a {@code StoreException} and the caller
 *       (the runner retries finishes; a host may retry a submit with an idempotency key)
 *       decides.
 * </ul>
 *
 * <p>Thread-safety: thread-safe.
 */
final class Db {
  static final int RETRIES = 5;

  /** Work on one connection. */
  @FunctionalInterface
  interface Work<T> {
    T apply(Connection c) throws SQLException;
  }

  private final DataSource source;
  private final Failures failures;

  Db(DataSource source, Failures failures) {
    this.source = source;
    this.failures = failures;
  }

  Failures failures() {
    return failures;
  }

  /** Runs {@code work} in autocommit mode; {@code idempotent} work is also retried on a lost connection. */
  <T> T autocommit(String what, boolean idempotent, Work<T> work) {
    for (int attempt = 0; ; attempt++) {
      try (Connection c = source.getConnection()) {
        if (!c.getAutoCommit()) {
          c.setAutoCommit(true); // a host's DataSource may hand out connections in a transaction
        }
        return work.apply(c);
      } catch (SQLException e) {
        if (!retryable(e, idempotent) || attempt >= RETRIES) {
          throw failures.wrap(what, e);
        }
        pause(attempt);
      }
    }
  }

  /** Runs {@code work} in one transaction, committed at the end and rolled back on failure. */
  <T> T transaction(String what, Work<T> work) {
    for (int attempt = 0; ; attempt++) {
      try (Connection c = source.getConnection()) {
        c.setAutoCommit(false);
        boolean committed = false;
        try {
          T result = work.apply(c);
          c.commit();
          committed = true;
          return result;
        } finally {
          if (!committed) {
            rollbackQuietly(c);
          }
          try {
            c.setAutoCommit(true);
          } catch (SQLException ignored) {
            // a broken connection is discarded by the pool
          }
        }
      } catch (SQLException e) {
        // A transaction whose connection broke before COMMIT returned is not retried: the
        // commit may have happened.
        if (!Failures.isConflict(e) || attempt >= RETRIES) {
          throw failures.wrap(what, e);
        }
        pause(attempt);
      }
    }
  }

  private static boolean retryable(SQLException e, boolean idempotent) {
    return Failures.isConflict(e) || (idempotent && Failures.isConnectionLoss(e));
  }

  private static void rollbackQuietly(Connection c) {
    try {
      c.rollback();
    } catch (SQLException ignored) {
      // the original failure is what matters
    }
  }

  /** A short pause that grows with each attempt, randomised so colliding callers part ways. */
  static void pause(int attempt) {
    long maxMicros = 1_000L << Math.min(attempt, 6);
    LockSupport.parkNanos(ThreadLocalRandom.current().nextLong(maxMicros / 2, maxMicros) * 1_000);
  }
}
