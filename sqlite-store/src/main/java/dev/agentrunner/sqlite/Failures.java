package dev.agentrunner.sqlite;

import dev.agentrunner.RunRejectedException;
import dev.agentrunner.StoreException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.SQLException;
import java.time.Duration;

/**
 * Turns SQLite errors into {@link StoreException}s that name the database file and say what went
 * wrong in words a host's operator can act on, keeping SQLite's own message and the cause.
 *
 * <p>Thread-safety: immutable.
 */
final class Failures {
  // Primary SQLite result codes (the low byte of an extended code).
  static final int SQLITE_PERM = 3;
  static final int SQLITE_BUSY = 5;
  static final int SQLITE_LOCKED = 6;
  static final int SQLITE_READONLY = 8;
  static final int SQLITE_IOERR = 10;
  static final int SQLITE_CORRUPT = 11;
  static final int SQLITE_FULL = 13;
  static final int SQLITE_CANTOPEN = 14;
  static final int SQLITE_CONSTRAINT = 19;
  static final int SQLITE_NOTADB = 26;

  private final Path path;
  private final Duration busyTimeout;
  private final int busyRetries;

  Failures(Path path, Duration busyTimeout, int busyRetries) {
    this.path = path;
    this.busyTimeout = busyTimeout;
    this.busyRetries = busyRetries;
  }

  Path path() {
    return path;
  }

  /** The primary result code; sqlite-jdbc reports extended codes such as SQLITE_BUSY_RECOVERY. */
  static int primaryCode(SQLException e) {
    return e.getErrorCode() & 0xff;
  }

  /** Whether waiting and trying again may succeed: another connection holds a lock. */
  static boolean isBusy(SQLException e) {
    int code = primaryCode(e);
    return code == SQLITE_BUSY || code == SQLITE_LOCKED;
  }

  /**
   * Whether the failure lies with the database or the machine (disk full, I/O, corruption,
   * read-only) rather than with one operation, so the transaction may already be gone.
   */
  static boolean isEnvironmental(SQLException e) {
    return switch (primaryCode(e)) {
      case SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL,
          SQLITE_CANTOPEN, SQLITE_NOTADB, SQLITE_PERM -> true;
      default -> false;
    };
  }

  /** A failure of {@code what} (e.g. "insert"), or the exception itself if it already is one. */
  RuntimeException wrap(String what, Throwable t) {
    if (t instanceof StoreException se) {
      return se;
    }
    if (t instanceof RunRejectedException rejected) {
      return rejected; // the caller's own answer, not a store failure
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
    return "SQLite run store " + path + ": ";
  }

  private String explain(SQLException e) {
    return switch (primaryCode(e)) {
      case SQLITE_BUSY, SQLITE_LOCKED ->
          "the database is locked by another connection (waited the busy timeout of "
              + busyTimeout.toMillis() + " ms, " + (busyRetries + 1) + " times)";
      case SQLITE_READONLY -> readOnlyReason();
      case SQLITE_PERM, SQLITE_CANTOPEN -> cannotOpenReason();
      case SQLITE_CORRUPT, SQLITE_NOTADB -> "the file is not a SQLite database or is corrupt";
      case SQLITE_FULL -> "the disk is full (or the database reached its size limit)";
      case SQLITE_IOERR -> "an I/O error occurred reading or writing the file";
      case SQLITE_CONSTRAINT -> "a constraint rejected the change";
      default -> "the database reported an error";
    };
  }

  private String readOnlyReason() {
    Path dir = path.getParent();
    boolean dirReadOnly = dir != null && !Files.isWritable(dir);
    if (Files.exists(path) && !Files.isWritable(path)) {
      return "the database file is read-only" + (dirReadOnly ? ", and so is its directory" : "");
    }
    if (dirReadOnly) {
      return "the directory " + dir + " is read-only (SQLite must create the -wal and -shm"
          + " files beside the database)";
    }
    return "the database is read-only";
  }

  private String cannotOpenReason() {
    Path dir = path.getParent();
    if (dir != null && !Files.isDirectory(dir)) {
      return "the directory " + dir + " does not exist";
    }
    if (Files.isDirectory(path)) {
      return "the path is a directory";
    }
    if (Files.exists(path) && !Files.isReadable(path)) {
      return "the file cannot be read (permission denied)";
    }
    if (Files.exists(path) && !Files.isWritable(path)) {
      return readOnlyReason();
    }
    if (dir != null && !Files.isWritable(dir)) {
      return "the directory " + dir + " is read-only (SQLite must create the database and its"
          + " -wal and -shm files there)";
    }
    return "the file cannot be opened";
  }
}
