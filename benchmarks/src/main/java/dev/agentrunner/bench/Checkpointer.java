package dev.agentrunner.bench;

import dev.agentrunner.sqlite.SqliteRunStore;
import java.lang.reflect.Field;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;

/**
 * A diagnostic, off by default ({@code -Dbench.diag.backgroundCheckpoint=true}): turns off
 * SQLite's automatic WAL checkpoint on the store's writer connection (where it runs inside the
 * commit that crosses 1,000 WAL pages, stalling every operation of that batch) and checkpoints
 * from a background connection instead. It prices a change to the store that the benchmark
 * module cannot make itself; it reaches the writer connection by reflection, before the writer
 * has any work, so nothing else uses the connection at that moment.
 *
 * <p>Thread-safety: owns one background thread; close it once.
 */
final class Checkpointer implements AutoCloseable {
  static final Duration EVERY = Duration.ofMillis(500);

  private final Thread thread;
  private final Connection connection;

  private Checkpointer(Path file) throws SQLException {
    connection = DriverManager.getConnection("jdbc:sqlite:" + file.toUri());
    thread = Thread.ofPlatform().daemon().name("bench-checkpointer").start(this::loop);
  }

  static Checkpointer takeOver(SqliteRunStore store, Path file) throws Exception {
    Field f = SqliteRunStore.class.getDeclaredField("writeConnection");
    f.setAccessible(true);
    try (Statement s = ((Connection) f.get(store)).createStatement()) {
      s.execute("PRAGMA wal_autocheckpoint = 0");
    }
    return new Checkpointer(file);
  }

  private void loop() {
    try (Statement s = connection.createStatement()) {
      s.execute("PRAGMA busy_timeout = 5000");
      while (!Thread.currentThread().isInterrupted()) {
        Thread.sleep(EVERY);
        s.execute("PRAGMA wal_checkpoint(PASSIVE)");
      }
    } catch (InterruptedException e) {
      // closing
    } catch (SQLException e) {
      System.err.println("checkpointer stopped: " + e);
    }
  }

  @Override
  public void close() throws SQLException {
    thread.interrupt();
    boolean interrupted = false;
    while (thread.isAlive()) {
      try {
        thread.join();
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    connection.close();
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }
}
