package dev.agentrunner.examples.workers;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.StoreException;
import dev.agentrunner.spi.RunStore;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The workers example for real: a producer JVM and two worker JVMs on one store. Every job is
 * run exactly once, by one of the workers, as their own output and the run history say.
 */
@Timeout(180)
class WorkersTest {
  private static final int JOBS = 24;

  @Test
  void onASqliteFileEveryJobRunsExactlyOnce(@TempDir Path dir) throws Exception {
    check(Workers.Store.sqlite(dir.resolve("workers.db")));
  }

  /**
   * The same on PostgreSQL, when a server answers (the URL in {@code AGENTRUNNER_PG_URL}, or
   * the local test database); skipped otherwise, since the PostgreSQL store's own tests are
   * the ones that insist on a server.
   */
  @Test
  void onPostgresEveryJobRunsExactlyOnce() throws Exception {
    Workers.Store store = postgres();
    try (RunStore s = store.open()) {
      s.purge(Instant.now()); // keep the shared test schema small; nothing else uses it
    }
    check(store);
  }

  private static void check(Workers.Store store) throws Exception {
    ByteArrayOutputStream printed = new ByteArrayOutputStream();
    PrintStream out = new PrintStream(printed, true, StandardCharsets.UTF_8);

    Workers.Summary summary = Workers.launch(2, JOBS, store, out);

    String log = printed.toString(StandardCharsets.UTF_8);
    assertThat(summary.ok()).as(log).isTrue();
    assertThat(summary.queued()).isEqualTo(JOBS);
    assertThat(summary.succeeded()).isEqualTo(JOBS);
    assertThat(summary.executions()).isEqualTo(JOBS);
    assertThat(summary.ranTwice()).isEmpty();
    assertThat(summary.startedTwice()).isEmpty();
    assertThat(summary.perWorker().keySet()).isSubsetOf("worker-1", "worker-2");
    assertThat(summary.exitCodes()).containsOnly(0);
    assertThat(log).contains("[producer] done: " + JOBS + " jobs queued",
        "OK: every job ran exactly once.");
  }

  private static Workers.Store postgres() {
    String fromEnv = System.getenv("AGENTRUNNER_PG_URL");
    List<String> urls = fromEnv != null && !fromEnv.isBlank() ? List.of(fromEnv)
        : List.of("jdbc:postgresql://127.0.0.1:5432/test?user=postgres",
            "jdbc:postgresql://127.0.0.1:5432/test?user=root");
    List<String> problems = new ArrayList<>();
    for (String url : urls) {
      Workers.Store store = Workers.Store.postgres(url, "agentrunner_examples_test");
      try (RunStore s = store.open()) {
        s.stats();
        return store;
      } catch (StoreException e) {
        problems.add(e.getMessage());
      }
    }
    Assumptions.abort("no PostgreSQL server for the workers example: " + problems);
    throw new AssertionError("unreachable");
  }
}
