package dev.agentrunner.postgres;

import dev.agentrunner.StoreException;
import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;
import org.postgresql.util.PSQLException;
import org.postgresql.util.ServerErrorMessage;

/**
 * Turns PostgreSQL errors into {@link StoreException}s that name the database and schema and
 * say what went wrong in words an operator can act on, keeping the server's message and the
 * cause. Also decides which failures are worth retrying.
 *
 * <p>Thread-safety: immutable.
 */
final class Failures {
  static final String SERIALIZATION_FAILURE = "40001";
  static final String DEADLOCK = "40P01";
  static final String UNIQUE_VIOLATION = "23505";

  private final String target;
  private final long connectionTimeoutMillis;

  /**
   * @param target the database and schema, as named in every message (no password: a JDBC
   *     URL's parameters are left out)
   */
  Failures(String target, long connectionTimeoutMillis) {
    this.target = target;
    this.connectionTimeoutMillis = connectionTimeoutMillis;
  }

  String target() {
    return target;
  }

  /**
   * Whether the transaction was rolled back because it collided with another one, so running
   * it again is safe and will likely succeed: a deadlock, a serialization failure, or two claims
   * that raced past the serial-key check (refused by {@code runs_serial_key_running}).
   */
  static boolean isConflict(SQLException e) {
    String state = state(e);
    if (SERIALIZATION_FAILURE.equals(state) || DEADLOCK.equals(state)) {
      return true;
    }
    return UNIQUE_VIOLATION.equals(state) && "runs_serial_key_running".equals(constraint(e));
  }

  /** Whether the connection broke (network, server restart, terminated backend). */
  static boolean isConnectionLoss(SQLException e) {
    if (e instanceof SQLTransientConnectionException) {
      return false; // the pool already waited its timeout for a connection: do not wait again
    }
    String state = state(e);
    return state != null && (state.startsWith("08") || state.equals("57P01")
        || state.equals("57P02") || state.equals("57P03"));
  }

  /** A failure of {@code what} (e.g. "insert"), or the exception itself if it already is one. */
  StoreException wrap(String what, Throwable t) {
    if (t instanceof StoreException se) {
      return se;
    }
    if (t instanceof SQLException e) {
      return new StoreException(
          prefix() + what + " failed: " + explain(e) + " [" + e.getMessage() + "]", e);
    }
    return new StoreException(prefix() + what + " failed: " + t, t);
  }

  StoreException closed() {
    return new StoreException(prefix() + "the store is closed");
  }

  StoreException problem(String description) {
    return new StoreException(prefix() + description);
  }

  private String prefix() {
    return "PostgreSQL run store " + target + ": ";
  }

  private String explain(SQLException e) {
    if (e instanceof SQLTransientConnectionException) {
      SQLException cause = e.getCause() instanceof SQLException c ? c : null;
      return "no database connection became available within " + connectionTimeoutMillis
          + " ms" + (cause == null ? " (all pooled connections busy)" : ": " + explain(cause));
    }
    String state = state(e);
    if (state == null) {
      return "the driver reported an error";
    }
    if (state.startsWith("08")) {
      return "cannot reach the database server, or the connection to it was lost";
    }
    return switch (state) {
      case "28000", "28P01" -> "the server refused the login (user or password)";
      case "3D000" -> "the database does not exist";
      case "3F000" -> "the schema does not exist";
      case "42501" -> "permission denied";
      case "42P01" -> "a table is missing (was the schema dropped while the store was open?)";
      case "53100" -> "the server's disk is full";
      case "53200", "53300" -> "the server is out of memory or connections";
      case "57P01", "57P02", "57P03" ->
          "the server is shutting down, or the connection was terminated by an administrator";
      case "57014" -> "the statement was cancelled (statement timeout or an administrator)";
      case SERIALIZATION_FAILURE, DEADLOCK ->
          "the transaction kept colliding with concurrent ones (deadlock or serialization"
              + " failure), also when retried";
      case UNIQUE_VIOLATION -> "a unique constraint rejected the change ("
          + constraint(e) + ")";
      case "22003" -> "a number is out of range (a usage sum overflowed?)";
      case "22021" -> "a text value holds a character PostgreSQL cannot store";
      case "P0001" -> "a trigger or function raised an error";
      default -> state.startsWith("23") ? "a constraint rejected the change"
          : "the database reported an error (SQLSTATE " + state + ")";
    };
  }

  private static String state(SQLException e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof SQLException s && s.getSQLState() != null) {
        return s.getSQLState();
      }
    }
    return null;
  }

  private static String constraint(SQLException e) {
    if (e instanceof PSQLException p) {
      ServerErrorMessage m = p.getServerErrorMessage();
      if (m != null) {
        return m.getConstraint();
      }
    }
    return null;
  }
}
