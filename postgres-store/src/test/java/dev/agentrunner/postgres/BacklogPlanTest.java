package dev.agentrunner.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunRecord;
import dev.agentrunner.spi.ClaimRequest;
import java.sql.Connection;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The claim and the batched finish stay on primary-key lookups on a table that is all backlog:
 * 20,000 QUEUED runs, analyzed while they were all queued (statistics that say "no run is
 * RUNNING", as after a burst of submits). There the planner once chose, for the claim's update,
 * a hash join over a scan of every QUEUED row, and for the finish a scan of the partial index of
 * RUNNING runs once per finished run (quadratic in the batch); both were measured by benchmark
 * figure 5a. {@link QueryPlanTest} covers the opposite shape, a table that is mostly history.
 *
 * <p>Thread-safety: JUnit runs it on one thread.
 */
class BacklogPlanTest {
  private static final String SCHEMA = PgTestDatabase.schemaName("backlog");
  private static final int QUEUED = 20_000;
  private static final int BATCH = 256;
  private static PostgresRunStore store;
  private static List<RunRecord> claimed;

  @BeforeAll
  static void fillTheQueue() throws Exception {
    PgTestDatabase.dropSchema(SCHEMA);
    store = PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA).build();
    String s = "\"" + SCHEMA + "\"";
    try (Connection c = PgTestDatabase.connect(); Statement st = c.createStatement()) {
      st.execute("INSERT INTO " + s + ".runs (agent, status, input, priority, attempt,"
          + " max_attempts, created_at, not_before)"
          + " SELECT 'alpha', 'QUEUED', '{}', 0, 0, 1, now(), now()"
          + " FROM generate_series(1, " + QUEUED + ")");
      st.execute("ANALYZE " + s + ".runs");
    }
    claimed = store.claim(new ClaimRequest("w-1", Map.of("alpha", BATCH), BATCH,
        Duration.ofMinutes(5)));
    assertThat(claimed).hasSize(BATCH);
  }

  @AfterAll
  static void dropSchema() throws Exception {
    if (store != null) {
      store.close();
    }
    PgTestDatabase.dropSchema(SCHEMA);
  }

  @Test
  void theClaimUpdatesByPrimaryKey() throws Exception {
    for (String mode : List.of("force_custom_plan", "force_generic_plan")) {
      String plan = QueryPlanTest.explain(store.sql().claim, mode,
          "NULL, ARRAY['alpha'], ARRAY[" + BATCH + "], " + BATCH + ", 'w-2', 30000000");
      assertThat(plan).as("claim plan, %s:%n%s", mode, plan)
          .contains("runs_queue")
          .contains("runs_pkey")
          .doesNotContain("Seq Scan on runs");
    }
  }

  @Test
  void theBatchedFinishLooksUpEachRunByPrimaryKey() throws Exception {
    String ids = claimed.stream().map(r -> Long.toString(r.id()))
        .collect(Collectors.joining(",", "ARRAY[", "]::bigint[]"));
    String attempts = "array_fill(1, ARRAY[" + BATCH + "])";
    String texts = "array_fill('w-1'::text, ARRAY[" + BATCH + "])";
    String statuses = "array_fill('SUCCEEDED'::text, ARRAY[" + BATCH + "])";
    String nulls = "array_fill(NULL::text, ARRAY[" + BATCH + "])";
    String zeros = "array_fill(0::bigint, ARRAY[" + BATCH + "])";
    String args = String.join(", ", "NULL", ids, attempts, texts, statuses, texts, nulls, zeros,
        zeros, zeros);
    for (String mode : List.of("force_custom_plan", "force_generic_plan")) {
      String plan = QueryPlanTest.explain(store.sql().finishTerminal, mode, args);
      assertThat(plan).as("finish plan, %s:%n%s", mode, plan)
          .contains("runs_pkey")
          .doesNotContain("runs_running_")
          .doesNotContain("Seq Scan on runs");
    }
  }
}
