package dev.agentrunner.sqlite;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.agentrunner.IdempotencyConflictException;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Schedule;
import dev.agentrunner.ScheduleSpec;
import dev.agentrunner.StoreException;
import dev.agentrunner.spi.NewRun;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Schema creation, migration, connection settings, and the query plans of the hot paths. */
class SchemaTest {
  @TempDir Path dir;

  private Path file() {
    return dir.resolve("schema.db");
  }

  private static Connection connect(Path file) throws SQLException {
    return DriverManager.getConnection("jdbc:sqlite:" + file.toUri());
  }

  private static List<String> column(Connection c, String sql) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      while (rs.next()) {
        out.add(rs.getString(1));
      }
    }
    return out;
  }

  @Test
  void openCreatesTheSchemaAtTheLatestVersionInWalMode() throws Exception {
    try (SqliteRunStore store = SqliteRunStore.open(file())) {
      store.insert(NewRun.of(RunRequest.of("a", "x")));
    }
    try (Connection c = connect(file())) {
      assertThat(column(c, "SELECT version FROM schema_version ORDER BY version"))
          .containsExactly("1", "2", "3");
      assertThat(column(c, "PRAGMA journal_mode")).containsExactly("wal");
      assertThat(column(c, "SELECT name FROM sqlite_master WHERE type = 'table'"))
          .contains("runs", "events", "agent_stats", "schedules", "schema_version");
    }
  }

  @Test
  void reopeningAppliesNoMigrationTwice() throws Exception {
    SqliteRunStore.open(file()).close();
    SqliteRunStore.open(file()).close();
    try (Connection c = connect(file())) {
      assertThat(column(c, "SELECT count(*) FROM schema_version"))
          .containsExactly(String.valueOf(Schema.LATEST));
    }
  }

  @Test
  void aVersion1FileMigratesToTheLatestVersionAndKeepsItsRuns() throws Exception {
    // A file as the first release wrote it: migration 1 only (migrations never change), with
    // runs in three states, one of them keyed.
    try (Connection c = connect(file())) {
      Schema.migrate(c, new Failures(file(), Duration.ofSeconds(5), 0), 0, 1);
      try (Statement s = c.createStatement()) {
        s.execute("INSERT INTO runs (agent, status, input, idempotency_key, priority, attempt,"
            + " max_attempts, created_at, not_before) VALUES ('a', 'QUEUED', 'one', 'k1', 0, 0,"
            + " 1, 1000, 1000)");
        s.execute("INSERT INTO runs (agent, status, input, output, priority, attempt,"
            + " max_attempts, created_at, not_before, started_at, finished_at, owner,"
            + " input_tokens) VALUES ('a', 'SUCCEEDED', 'two', 'done', 0, 1, 1, 2000, 2000,"
            + " 2100, 2200, 'w1', 7)");
        s.execute("INSERT INTO runs (agent, status, input, priority, attempt, max_attempts,"
            + " created_at, not_before) VALUES ('b', 'QUEUED', 'three', 5, 0, 3, 3000, 3000)");
      }
      assertThat(column(c, "SELECT version FROM schema_version")).containsExactly("1");
      assertThat(column(c, "SELECT name FROM sqlite_master WHERE name = 'schedules'")).isEmpty();
    }

    try (SqliteRunStore store = SqliteRunStore.open(file())) {
      RunRecord one = store.find(1).orElseThrow();
      assertThat(one.input()).isEqualTo("one");
      assertThat(one.idempotencyKey()).isEqualTo("k1");
      RunRecord two = store.find(2).orElseThrow();
      assertThat(two.status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(two.output()).isEqualTo("done");
      assertThat(two.usage().inputTokens()).isEqualTo(7);
      assertThat(store.stats().total().total()).isEqualTo(3);
      assertThat(store.stats().agent("a").succeeded()).isEqualTo(1);
      // The migrated file keeps its unique keys and its ids, and stores schedules.
      assertThat(store.insert(NewRun.of(RunRequest.of("a", "one").withIdempotencyKey("k1")))
          .id()).isEqualTo(1);
      assertThatThrownBy(() -> store.insert(
          NewRun.of(RunRequest.of("a", "again").withIdempotencyKey("k1"))))
          .isInstanceOf(IdempotencyConflictException.class);
      // (ids go on after the old ones; a key conflict may use up a number, as before)
      assertThat(store.insert(NewRun.of(RunRequest.of("a", "four"))).id()).isGreaterThan(3);
      ScheduleSpec spec = ScheduleSpec.fixedRate("tick", "a", "x", Duration.ofSeconds(1));
      assertThat(store.putSchedule(new Schedule(spec, false, Instant.EPOCH, null, 0, 0)))
          .isPresent();
      assertThat(store.schedules()).extracting(Schedule::name).containsExactly("tick");
    }
    try (Connection c = connect(file())) {
      assertThat(column(c, "SELECT version FROM schema_version ORDER BY version"))
          .containsExactly("1", "2", "3");
    }
    // Opening again applies nothing twice.
    SqliteRunStore.open(file()).close();
    try (Connection c = connect(file())) {
      assertThat(column(c, "SELECT count(*) FROM schema_version")).containsExactly("3");
    }
  }

  @Test
  void aVersion2FileKeepsItsSchedulesAndDeletingOneKeepsItsVersion() throws Exception {
    try (Connection c = connect(file())) {
      Schema.migrate(c, new Failures(file(), Duration.ofSeconds(5), 0), 0, 2);
      try (Statement s = c.createStatement()) {
        s.execute("INSERT INTO schedules (name, agent, input, kind, interval_nanos, missed_fires,"
            + " paused, next_fire_at, last_run_id, version) VALUES ('tick', 'a', 'x',"
            + " 'FIXED_RATE', 1000000000, 'RUN_ONCE', 0, 5000, 0, 4)");
      }
    }
    try (SqliteRunStore store = SqliteRunStore.open(file())) {
      Schedule tick = store.findSchedule("tick").orElseThrow();
      assertThat(tick.version()).isEqualTo(4);
      assertThat(tick.spec().input()).isEqualTo("x");
      assertThat(store.deleteSchedule("tick")).isTrue();
      assertThat(store.findSchedule("tick")).isEmpty();
      assertThat(store.putSchedule(new Schedule(tick.spec(), false, Instant.EPOCH, null, 0, 0))
          .orElseThrow().version()).as("created again after the delete").isEqualTo(5);
    }
    try (Connection c = connect(file())) {
      assertThat(column(c, "SELECT version FROM schema_version ORDER BY version"))
          .containsExactly("1", "2", "3");
    }
  }

  @Test
  void aNewerSchemaIsRefusedNamingThePathAndBothVersions() throws Exception {
    SqliteRunStore.open(file()).close();
    try (Connection c = connect(file()); Statement s = c.createStatement()) {
      s.execute("INSERT INTO schema_version (version, description, applied_at)"
          + " VALUES (99, 'from the future', 0)");
    }
    assertThatThrownBy(() -> SqliteRunStore.open(file()))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining(file().toString())
        .hasMessageContaining("schema version 99")
        .hasMessageContaining("up to " + Schema.LATEST);
    // refused without touching it
    try (Connection c = connect(file())) {
      assertThat(column(c, "SELECT max(version) FROM schema_version")).containsExactly("99");
    }
  }

  @Test
  void writerConnectionSettings() {
    try (SqliteRunStore full = SqliteRunStore.open(file())) {
      assertThat(pragma(full, "synchronous")).isEqualTo("2"); // FULL
      assertThat(pragma(full, "foreign_keys")).isEqualTo("1");
      assertThat(pragma(full, "busy_timeout")).isEqualTo("5000");
      assertThat(pragma(full, "journal_mode")).isEqualTo("wal");
    }
    try (SqliteRunStore normal = SqliteRunStore.builder(file())
        .durability(SqliteRunStore.Durability.NORMAL)
        .busyTimeout(Duration.ofMillis(1234))
        .build()) {
      assertThat(pragma(normal, "synchronous")).isEqualTo("1"); // NORMAL
      assertThat(pragma(normal, "busy_timeout")).isEqualTo("1234");
    }
  }

  private static String pragma(SqliteRunStore store, String name) {
    return store.writer().submit("pragma", tx -> {
      try (Statement s = tx.connection().createStatement();
          ResultSet rs = s.executeQuery("PRAGMA " + name)) {
        rs.next();
        return rs.getString(1);
      }
    });
  }

  @Test
  void builderRejectsBadOptions() {
    SqliteRunStore.Builder b = SqliteRunStore.builder(file());
    assertThatThrownBy(() -> b.readPoolSize(0)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> b.maxBatchSize(0)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> b.busyTimeout(Duration.ofMillis(-1)))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> SqliteRunStore.builder(null)).isInstanceOf(NullPointerException.class);
  }

  /** The hot paths must read only live rows, never walk the whole (mostly terminal) history. */
  @Test
  void hotPathsUseTheirIndexesNotTableScans() throws Exception {
    try (SqliteRunStore store = SqliteRunStore.open(file())) {
      for (int i = 0; i < 50; i++) {
        RunRecord r = store.insert(NewRun.of(RunRequest.of("a", "x").withSerialKey("k" + i % 5)));
        if (i % 2 == 0) {
          store.cancel(r.id());
        }
      }
    }
    try (Connection c = connect(file()); Statement s = c.createStatement()) {
      checkPlans(c);
      s.execute("ANALYZE"); // and as they would be on a database with statistics
      checkPlans(c);
    }
  }

  private static void checkPlans(Connection c) throws SQLException {
    {
      String claim = plan(c, Sql.CLAIM_CANDIDATES);
      assertThat(claim).contains("USING INDEX runs_queue").doesNotContain("SCAN r\n");
      assertNoFullScan(claim);
      String update = plan(c, Sql.CLAIM_RUN);
      assertThat(update).contains("INTEGER PRIMARY KEY");
      assertNoFullScan(update);
      // a submit's "does anything come first?" walks the queue index, never the table
      String ahead = plan(c, Sql.CLAIMABLE_AT_OR_ABOVE);
      assertThat(ahead).contains("USING INDEX runs_queue");
      assertNoFullScan(ahead);
      String keyActive = plan(c, Sql.OLDEST_ACTIVE_OF_SERIAL_KEY);
      assertThat(keyActive).contains("runs_serial_key_running").contains("runs_serial_key_queued");
      assertNoFullScan(keyActive);
      // the listed runs by key, or the owner's RUNNING ones by their partial index
      String heartbeat = plan(c, Sql.HEARTBEAT);
      assertThat(heartbeat).containsPattern("INTEGER PRIMARY KEY|runs_running_owner");
      assertNoFullScan(heartbeat);
      assertThat(plan(c, Sql.EXPIRED_LEASES)).contains("runs_running_lease");
      assertThat(plan(c, Sql.PURGE)).contains("runs_finished");
      assertThat(plan(c, Sql.EVENTS_OF_RUN)).contains("events_run");
      assertThat(plan(c, Sql.QUERY_AGENT)).contains("runs_agent");
      assertNoFullScan(plan(c, Sql.RUN_BY_IDEMPOTENCY_KEY));
      // the schedule compare-and-set finds its row by key, never by a scan
      assertThat(plan(c, Sql.UPDATE_SCHEDULE)).contains("USING PRIMARY KEY");
      assertThat(plan(c, Sql.SCHEDULE_BY_NAME)).contains("USING PRIMARY KEY");
    }
  }

  private static void assertNoFullScan(String plan) {
    for (String line : plan.split("\n")) {
      // the list of ids a claim takes is scanned, which is the point; tables never are
      if (line.startsWith("SCAN ") && !line.startsWith("SCAN json_each")) {
        assertThat(line).as("plan step").contains("USING");
      }
    }
  }

  private static String plan(Connection c, String sql) throws SQLException {
    StringBuilder out = new StringBuilder();
    try (PreparedStatement ps = c.prepareStatement("EXPLAIN QUERY PLAN " + sql)) {
      int params = ps.getParameterMetaData().getParameterCount();
      for (int i = 1; i <= params; i++) {
        ps.setNull(i, java.sql.Types.NULL);
      }
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          out.append(rs.getString(4)).append('\n');
        }
      }
    }
    return out.toString();
  }
}
