package dev.agentrunner.sqlite;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.RunHandle;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The VO-335 seed scenario end to end on a real SQLite file: 1,000 concurrent submits through
 * the runner get 1,000 distinct ids, each row holds its own caller's input and output, and the
 * agent's run count is 1,000 — also when read back after reopening the file.
 */
class RunnerSeedScenarioTest {

  @Test
  @Timeout(120)
  void thousandConcurrentSubmitsKeepTheirOwnIdsInputsAndOutputs(@TempDir Path dir)
      throws Exception {
    int submits = 1_000;
    Path file = dir.resolve("seed.db");
    List<RunHandle> handles = new ArrayList<>();
    try (SqliteRunStore store = SqliteRunStore.open(file);
        AgentRunner runner = AgentRunner.builder().store(store)
            .agent("scanner", ctx -> AgentResult.of("out:" + ctx.input(), Usage.of(5, 1, 2)))
            .build()) {
      CountDownLatch go = new CountDownLatch(1);
      try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
        List<Future<RunHandle>> futures = new ArrayList<>();
        for (int i = 0; i < submits; i++) {
          String input = "caller-" + i;
          futures.add(pool.submit(() -> {
            go.await();
            return runner.submit(RunRequest.of("scanner", input));
          }));
        }
        go.countDown();
        for (Future<RunHandle> f : futures) {
          handles.add(f.get());
        }
      }
      assertThat(handles.stream().map(RunHandle::id).distinct().count()).isEqualTo(submits);
      for (int i = 0; i < submits; i++) {
        RunRecord done = handles.get(i).await(Duration.ofSeconds(60));
        assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
        assertThat(done.input()).isEqualTo("caller-" + i);
        assertThat(done.output()).isEqualTo("out:caller-" + i);
      }
    }
    try (SqliteRunStore reopened = SqliteRunStore.open(file)) {
      assertThat(reopened.stats().agent("scanner").succeeded()).isEqualTo(submits);
      assertThat(reopened.stats().agent("scanner").total()).isEqualTo(submits);
      for (int i = 0; i < submits; i++) {
        RunRecord row = reopened.find(handles.get(i).id()).orElseThrow();
        assertThat(row.input()).isEqualTo("caller-" + i);
        assertThat(row.output()).isEqualTo("out:caller-" + i);
      }
    }
  }
}
