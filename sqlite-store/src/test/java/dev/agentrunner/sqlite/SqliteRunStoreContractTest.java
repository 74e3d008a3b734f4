package dev.agentrunner.sqlite;

import dev.agentrunner.spi.RunStore;
import dev.agentrunner.tck.RunStoreContractTest;
import dev.agentrunner.tck.TestClock;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import org.junit.jupiter.api.io.TempDir;

/**
 * The store contract suite on a real SQLite file. Event-write faults are real: a trigger on the
 * events table, created from a separate connection, aborts every event insert inside the
 * writer's transaction until it is dropped.
 *
 * <p>Thread-safety: one instance per test, as JUnit creates them.
 */
class SqliteRunStoreContractTest extends RunStoreContractTest {

  private static final String FAIL_TRIGGER = "CREATE TRIGGER tck_fail_event_writes"
      + " BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'injected fault'); END";

  @TempDir Path dir;

  @Override
  protected RunStore newStore(TestClock clock) {
    return SqliteRunStore.builder(dir.resolve("contract.db")).clock(clock).build();
  }

  @Override
  protected AutoCloseable failEventWrites(RunStore store) throws Exception {
    Path file = ((SqliteRunStore) store).path();
    execute(file, FAIL_TRIGGER);
    return () -> execute(file, "DROP TRIGGER tck_fail_event_writes");
  }

  @Override
  protected boolean claimsAtInsert() {
    return true;
  }

  private static void execute(Path file, String sql) throws Exception {
    try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + file.toUri());
        Statement s = c.createStatement()) {
      s.execute("PRAGMA busy_timeout = 10000");
      s.execute(sql);
    }
  }
}
