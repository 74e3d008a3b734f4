package dev.agentrunner.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStats;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.NewRun;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Stats are kept as appended deltas folded into totals by a compaction: folding changes no
 * count, and compactions racing each other and concurrent writes neither lose nor double a
 * delta.
 */
class StatsCompactionTest {
  private static final String SCHEMA = PgTestDatabase.schemaName("stats");

  @BeforeEach
  @AfterEach
  void dropSchema() throws Exception {
    PgTestDatabase.dropSchema(SCHEMA);
  }

  private static long deltaRows() throws Exception {
    try (Connection c = PgTestDatabase.connect(); Statement s = c.createStatement();
        ResultSet rs = s.executeQuery(
            "SELECT count(*) FROM \"" + SCHEMA + "\".run_stats_delta")) {
      rs.next();
      return rs.getLong(1);
    }
  }

  @Test
  void compactionsRacingWritesKeepTheCountsExact() throws Exception {
    try (PostgresRunStore a = PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA)
            .build();
        PostgresRunStore b = PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA)
            .build()) {
      AtomicBoolean writing = new AtomicBoolean(true);
      ExecutorService pool = Executors.newFixedThreadPool(4);
      List<Future<?>> tasks = new ArrayList<>();
      tasks.add(pool.submit(() -> {
        try {
          for (int i = 0; i < 600; i++) {
            a.insert(NewRun.of(RunRequest.of(i % 2 == 0 ? "x" : "y", "r" + i)));
            if (i % 3 == 0) {
              for (RunRecord r : a.claim(new ClaimRequest("w", Map.of("x", 2, "y", 2), 2,
                  Duration.ofSeconds(30)))) {
                a.finish(Finish.succeeded(r.id(), r.attempt(), "w", "ok", Usage.of(1, 2, 3)));
              }
            }
          }
        } finally {
          writing.set(false);
        }
        return null;
      }));
      for (PostgresRunStore s : List.of(a, b, b)) {
        tasks.add(pool.submit(() -> {
          while (writing.get()) {
            s.compactStats();
          }
          return null;
        }));
      }
      for (Future<?> f : tasks) {
        f.get();
      }
      pool.shutdown();

      RunStats before = a.stats();
      assertThat(before.total().total()).isEqualTo(600);
      assertThat(before.total().usage())
          .isEqualTo(Usage.of(before.total().succeeded(), 2 * before.total().succeeded(),
              3 * before.total().succeeded()));
      a.compactStats();
      assertThat(deltaRows()).as("deltas left after a compaction").isZero();
      assertThat(b.stats()).isEqualTo(before);
      assertThat(a.count(dev.agentrunner.RunQuery.all())).isEqualTo(600);
    }
  }
}
