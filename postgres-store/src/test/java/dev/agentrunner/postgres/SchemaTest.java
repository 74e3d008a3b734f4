package dev.agentrunner.postgres;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.Schedule;
import dev.agentrunner.ScheduleSpec;
import dev.agentrunner.StoreException;
import dev.agentrunner.spi.NewRun;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.postgresql.ds.PGSimpleDataSource;

/** Schema creation and migration, the builder's checks, and failures at open. */
class SchemaTest {
  private static final String SCHEMA = PgTestDatabase.schemaName("schema");
  private static final String Q = "\"" + SCHEMA + "\"";

  @BeforeEach
  @AfterEach
  void dropSchema() throws Exception {
    PgTestDatabase.dropSchema(SCHEMA);
  }

  private static PostgresRunStore open() {
    return PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA).build();
  }

  private static List<String> column(String sql) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Connection c = PgTestDatabase.connect(); Statement s = c.createStatement();
        ResultSet rs = s.executeQuery(sql)) {
      while (rs.next()) {
        out.add(rs.getString(1));
      }
    }
    return out;
  }

  @Test
  void buildCreatesTheSchemaAtTheLatestVersionAndReopeningAppliesNothingTwice() throws Exception {
    open().close();
    try (PostgresRunStore store = open()) {
      store.insert(NewRun.of(RunRequest.of("a", "x")));
      assertThat(store.schema()).isEqualTo(SCHEMA);
    }
    assertThat(column("SELECT version FROM " + Q + ".schema_version ORDER BY version"))
        .containsExactlyElementsOf(everyVersion());
    assertThat(column("SELECT tablename FROM pg_tables WHERE schemaname = '" + SCHEMA + "'"))
        .contains("runs", "events", "run_stats", "run_stats_delta", "schedules",
            "schema_version");
  }

  @Test
  void eightNodesStartingAtOnceMigrateOnce() throws Exception {
    int nodes = 8;
    String url = PgTestDatabase.url(); // here, so that a missing server skips rather than errs
    ExecutorService pool = Executors.newFixedThreadPool(nodes);
    CountDownLatch go = new CountDownLatch(1);
    List<Future<PostgresRunStore>> opening = new ArrayList<>();
    for (int i = 0; i < nodes; i++) {
      opening.add(pool.submit(() -> {
        go.await();
        return PostgresRunStore.builder(url).schema(SCHEMA).poolSize(2).build();
      }));
    }
    go.countDown();
    List<PostgresRunStore> stores = new ArrayList<>();
    try {
      for (Future<PostgresRunStore> f : opening) {
        stores.add(f.get());
      }
      Set<Long> ids = new HashSet<>();
      for (PostgresRunStore s : stores) {
        ids.add(s.insert(NewRun.of(RunRequest.of("a", "x"))).id());
      }
      assertThat(ids).hasSize(nodes);
    } finally {
      stores.forEach(PostgresRunStore::close);
      pool.shutdown();
    }
    assertThat(column("SELECT count(*) FROM " + Q + ".schema_version"))
        .containsExactly(String.valueOf(Schema.LATEST));
  }

  /** "1" to the latest version, as the schema_version table lists them. */
  private static List<String> everyVersion() {
    return Schema.MIGRATIONS.stream().map(m -> String.valueOf(m.version())).toList();
  }

  @Test
  void aVersion1SchemaMigratesAndKeepsItsSchedulesAndRuns() throws Exception {
    ScheduleSpec spec = ScheduleSpec.fixedRate("tick", "a", "x", Duration.ofSeconds(1));
    long runId;
    try (PostgresRunStore store = open()) {
      runId = store.insert(NewRun.of(RunRequest.of("a", "kept"))).id();
      store.putSchedule(new Schedule(spec, false, Instant.EPOCH, null, 0, 0)).orElseThrow();
    }
    // Back to what version 1 wrote (migrations never change): no deleted column, one version.
    PgTestDatabase.execute("ALTER TABLE " + Q + ".schedules DROP COLUMN deleted");
    PgTestDatabase.execute("DELETE FROM " + Q + ".schema_version WHERE version > 1");
    try (PostgresRunStore store = open()) {
      assertThat(store.find(runId).orElseThrow().input()).isEqualTo("kept");
      Schedule tick = store.findSchedule("tick").orElseThrow();
      assertThat(tick.version()).isEqualTo(1);
      assertThat(store.deleteSchedule("tick")).isTrue();
      assertThat(store.schedules()).isEmpty();
      assertThat(store.putSchedule(new Schedule(spec, false, Instant.EPOCH, null, 0, 0))
          .orElseThrow().version()).as("created again after the delete").isEqualTo(2);
    }
    assertThat(column("SELECT version FROM " + Q + ".schema_version ORDER BY version"))
        .containsExactlyElementsOf(everyVersion());
  }

  @Test
  void aNewerSchemaIsRefusedNamingTheSchemaAndBothVersions() throws Exception {
    open().close();
    PgTestDatabase.execute("INSERT INTO " + Q + ".schema_version (version, description)"
        + " VALUES (99, 'from the future')");
    assertThatThrownBy(SchemaTest::open)
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("\"" + SCHEMA + "\"")
        .hasMessageContaining("schema version 99")
        .hasMessageContaining("up to " + Schema.LATEST);
    // refused without touching it
    assertThat(column("SELECT max(version) FROM " + Q + ".schema_version"))
        .containsExactly("99");
  }

  @Test
  void schemaNamesAreCheckedBeforeTheyReachSql() {
    PostgresRunStore.Builder b = PostgresRunStore.builder("jdbc:postgresql://127.0.0.1/test");
    for (String ok : List.of("a", "_x", "agentrunner_2", "select", "a".repeat(63))) {
      b.schema(ok);
    }
    for (String bad : List.of("", "A", "Runs", "1abc", "a-b", "a b", "a\"b", "x;drop table runs",
        "a".repeat(64), "é", "a.b", "public\u0000")) {
      assertThatThrownBy(() -> b.schema(bad)).as("schema \"%s\"", bad)
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("schema must be 1 to 63 characters of a-z, 0-9 and _");
    }
    assertThatThrownBy(() -> b.schema("pg_runs")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("pg_");
    assertThatThrownBy(() -> b.schema(null)).isInstanceOf(NullPointerException.class);
  }

  @Test
  void builderRefusesBadOptions() {
    assertThatThrownBy(() -> PostgresRunStore.builder("jdbc:mysql://h/db?password=secret"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("jdbc:postgresql:")
        .hasMessageNotContaining("secret");
    PostgresRunStore.Builder b = PostgresRunStore.builder("jdbc:postgresql://127.0.0.1/test");
    assertThatThrownBy(() -> b.poolSize(0)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> b.connectionTimeout(Duration.ofMillis(10)))
        .isInstanceOf(IllegalArgumentException.class);
    PostgresRunStore.Builder onDataSource = PostgresRunStore.builder(new PGSimpleDataSource());
    assertThatThrownBy(() -> onDataSource.user("u")).isInstanceOf(IllegalStateException.class);
    assertThatThrownBy(() -> onDataSource.poolSize(3)).isInstanceOf(IllegalStateException.class);
    assertThatThrownBy(() -> PostgresRunStore.builder((String) null))
        .isInstanceOf(NullPointerException.class);
  }

  @Test
  void anUnreachableServerIsAClearStoreExceptionWithoutThePassword() {
    assertThatThrownBy(() -> PostgresRunStore.builder(
            "jdbc:postgresql://127.0.0.1:1/test?password=secret")
        .schema(SCHEMA).connectionTimeout(Duration.ofSeconds(1)).build())
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("jdbc:postgresql://127.0.0.1:1/test")
        .hasMessageContaining("cannot reach the database server")
        .hasMessageNotContaining("secret");
  }

  @Test
  void aStoreOnTheHostsDataSourceWorksAndLeavesItOpen() throws Exception {
    PGSimpleDataSource ds = new PGSimpleDataSource();
    ds.setURL(PgTestDatabase.url());
    try (PostgresRunStore store = PostgresRunStore.builder(ds).schema(SCHEMA).build()) {
      RunRecord r = store.insert(NewRun.of(RunRequest.of("a", "x")));
      assertThat(store.find(r.id())).contains(r);
    }
    try (Connection c = ds.getConnection()) {
      assertThat(c.isValid(1)).isTrue();
    }
  }

  @Test
  void textWithNulIsRefusedAndNothingIsStored() {
    try (PostgresRunStore store = open()) {
      assertThatThrownBy(() -> store.insert(NewRun.of(RunRequest.of("a", "x\u0000y"))))
          .isInstanceOf(StoreException.class).hasMessageContaining("NUL");
      assertThat(store.count(RunQuery.all())).isZero();
    }
  }

  @Test
  void channelsFitPostgresLimitAndDifferPerSchema() {
    String a = PostgresRunStore.channelFor("a".repeat(63));
    String b = PostgresRunStore.channelFor("a".repeat(62) + "b");
    assertThat(a).hasSizeLessThanOrEqualTo(63).isNotEqualTo(b);
    assertThat(b).hasSizeLessThanOrEqualTo(63);
    assertThat(PostgresRunStore.channelFor("runs")).isEqualTo("agentrunner:runs");
  }
}
