package dev.agentrunner.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunRecord;
import dev.agentrunner.spi.ClaimRequest;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The hot paths read only live rows, never the whole history: on a table of 100,300 runs of
 * which 98,000 are terminal (what a queue looks like after a while), the claim must walk the
 * partial index over QUEUED runs, heartbeats the primary key (or a partial index over RUNNING
 * runs), and lease recovery its partial index over RUNNING runs. Checked with EXPLAIN on both the plan PostgreSQL makes for given values (custom)
 * and the one it caches for a prepared statement (generic), since the driver switches to the
 * latter after a few executions. A planner that ignored a plain {@code (status, id)} index here
 * was once measured at about 1,300 claims a second; this test keeps that from coming back.
 *
 * <p>Thread-safety: JUnit runs it on one thread; the throughput probe joins its threads.
 */
class QueryPlanTest {
  private static final String SCHEMA = PgTestDatabase.schemaName("plans");
  private static final int TERMINAL = 98_000;
  private static final int QUEUED = 2_000;
  private static final int RUNNING = 300;
  private static PostgresRunStore store;

  @BeforeAll
  static void fillTheTable() throws Exception {
    PgTestDatabase.dropSchema(SCHEMA);
    store = PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA).build();
    String runs = "\"" + SCHEMA + "\".runs";
    try (Connection c = PgTestDatabase.connect(); Statement s = c.createStatement()) {
      s.execute("INSERT INTO " + runs + " (agent, status, input, output, priority, attempt,"
          + " max_attempts, created_at, not_before, started_at, finished_at, owner, serial_key)"
          + " SELECT CASE WHEN g % 3 = 0 THEN 'beta' ELSE 'alpha' END, 'SUCCEEDED', '{}', 'ok',"
          + " g % 4, 1, 1, now(), now(), now(), now(), 'w-' || (g % 7),"
          + " CASE WHEN g % 2 = 0 THEN 'conversation-' || (g % 10) END"
          + " FROM generate_series(1, " + TERMINAL + ") g");
      s.execute("INSERT INTO " + runs + " (agent, status, input, priority, attempt,"
          + " max_attempts, created_at, not_before)"
          + " SELECT CASE WHEN g % 3 = 0 THEN 'beta' ELSE 'alpha' END, 'QUEUED', '{}',"
          + " g % 4, 0, 1, now(), now() FROM generate_series(1, " + QUEUED + ") g");
      s.execute("INSERT INTO " + runs + " (agent, status, input, priority, attempt,"
          + " max_attempts, created_at, not_before, started_at, owner, lease_until)"
          + " SELECT 'alpha', 'RUNNING', '{}', 0, 1, 1, now(), now(), now(), 'w-' || (g % 7),"
          + " now() + interval '1 hour' FROM generate_series(1, " + RUNNING + ") g");
      s.execute("ANALYZE " + runs);
    }
  }

  @AfterAll
  static void dropSchema() throws Exception {
    if (store != null) {
      store.close();
    }
    PgTestDatabase.dropSchema(SCHEMA);
  }

  @Test
  void theClaimWalksThePartialQueueIndexNotTheTable() throws Exception {
    for (String mode : List.of("force_custom_plan", "force_generic_plan")) {
      String plan = explain(store.sql().claim, mode,
          "NULL, ARRAY['alpha', 'beta'], ARRAY[32, 16], 32, 'w', 30000000");
      System.out.println("claim plan (" + mode + "):\n" + plan);
      assertThat(plan).as("claim plan, %s", mode)
          .contains("runs_queue")
          .doesNotContain("Seq Scan on runs");
    }
  }

  @Test
  void heartbeatRecoveryAndHistoryUseTheirIndexes() throws Exception {
    for (String mode : List.of("force_custom_plan", "force_generic_plan")) {
      String running = (TERMINAL + QUEUED + 1) + ", " + (TERMINAL + QUEUED + 8);
      String heartbeat = explain(store.sql().heartbeat, mode,
          "NULL, ARRAY[" + running + ", 17]::bigint[], 'w-1', 30000000");
      System.out.println("heartbeat plan (" + mode + "):\n" + heartbeat);
      // the listed runs by primary key, or the partial index over RUNNING runs: never the history
      assertThat(heartbeat).as("heartbeat, %s", mode)
          .containsPattern("runs_pkey|runs_running_(lease|owner)")
          .doesNotContain("Seq Scan on runs");
      assertThat(explain(store.sql().expiredLeases, mode, "NULL"))
          .as("lease recovery, %s", mode).containsPattern("runs_running_(lease|owner)")
          .doesNotContain("Seq Scan on runs");
      // A page of one agent's history walks an index backwards by id. (A filter on a rare status
      // may still read much of an agent's history: there is no index per status, on purpose,
      // since every status change would have to update it.)
      assertThat(explain(store.sql().query(true, false), mode, "'alpha', 9223372036854775807,"
          + " ARRAY['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'], 51"))
          .as("history of one agent, %s", mode).doesNotContain("Seq Scan on runs");
    }
  }

  @Test
  void aRejectingSubmitFindsTheKeysActiveRunWithoutReadingItsHistory() throws Exception {
    // conversation-4 has 9,800 ended runs and none active: the answer is in the partial indexes
    for (String mode : List.of("force_custom_plan", "force_generic_plan")) {
      String key = "'conversation-4'";
      assertThat(explain(store.sql().oldestActiveOfKey, mode, key + ", " + key))
          .as("oldest active run of a serial key, %s", mode)
          .contains("runs_serial_key_running").contains("runs_serial_key_queued")
          .doesNotContain("Seq Scan on runs");
    }
  }

  /** Prints (does not assert) how fast 4 claimers drain the 2,000 queued runs of the big table. */
  @Test
  void claimThroughputOnTheBigTable() throws Exception {
    AtomicInteger claimed = new AtomicInteger();
    ExecutorService pool = Executors.newFixedThreadPool(4);
    long start = System.nanoTime();
    List<Future<?>> workers = new ArrayList<>();
    for (int t = 0; t < 4; t++) {
      String owner = "probe-" + t;
      workers.add(pool.submit(() -> {
        ClaimRequest request = new ClaimRequest(owner, Map.of("alpha", 8, "beta", 8), 8,
            Duration.ofSeconds(30));
        List<RunRecord> got;
        while (!(got = store.claim(request)).isEmpty()) {
          claimed.addAndGet(got.size());
        }
        return null;
      }));
    }
    for (Future<?> f : workers) {
      f.get();
    }
    pool.shutdown();
    double seconds = (System.nanoTime() - start) / 1e9;
    System.out.printf("claimed %d runs (batches of 8, 4 claimers) on a %d-row table in %.2f s:"
        + " %.0f runs/s%n", claimed.get(), TERMINAL + QUEUED + RUNNING, seconds, claimed.get() / seconds);
    assertThat(claimed.get()).isEqualTo(QUEUED);
  }

  /** EXPLAIN of a prepared statement executed with {@code args}, under a plan cache mode. */
  static String explain(String sql, String planCacheMode, String args)
      throws SQLException {
    StringBuilder numbered = new StringBuilder();
    int n = 0;
    for (char ch : sql.toCharArray()) {
      if (ch == '?') {
        numbered.append('$').append(++n);
      } else {
        numbered.append(ch);
      }
    }
    try (Connection c = PgTestDatabase.connect(); Statement s = c.createStatement()) {
      s.execute("SET plan_cache_mode = " + planCacheMode);
      s.execute("PREPARE p AS " + numbered);
      StringBuilder plan = new StringBuilder();
      try (ResultSet rs = s.executeQuery("EXPLAIN EXECUTE p(" + args + ")")) {
        while (rs.next()) {
          plan.append(rs.getString(1)).append('\n');
        }
      }
      s.execute("DEALLOCATE p");
      return plan.toString();
    }
  }
}
