package dev.agentrunner;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The VO-335 seed bug: concurrent runs of one agent read back each other's id and the run count
 * drifted. Here every caller must get the id of the row it wrote, that row must hold its own
 * input and output, and the agent's counts must equal the runs (invariants I1 and I7).
 */
class SeedScenarioTest {

  @ParameterizedTest(name = "{0} concurrent submits")
  @ValueSource(ints = {10, 1_000})
  @Timeout(60)
  void concurrentSubmitsGetTheirOwnIdsAndOutputs(int submits) throws Exception {
    AgentRunner runner = AgentRunner.builder()
        .agent("scanner", ctx -> AgentResult.of("out:" + ctx.input(), Usage.of(10, 2, 3)))
        .build();
    try (runner) {
      CountDownLatch go = new CountDownLatch(1);
      List<Callable<RunHandle>> callers = new ArrayList<>();
      for (int i = 0; i < submits; i++) {
        String input = "caller-" + i;
        callers.add(() -> {
          go.await();
          return runner.submit(RunRequest.of("scanner", input));
        });
      }
      List<RunHandle> handles = new ArrayList<>();
      try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
        List<Future<RunHandle>> futures = callers.stream().map(pool::submit).toList();
        go.countDown();
        for (Future<RunHandle> f : futures) {
          handles.add(f.get());
        }
      }

      Set<Long> ids = new HashSet<>();
      handles.forEach(h -> ids.add(h.id()));
      assertThat(ids).hasSize(submits);
      for (int i = 0; i < submits; i++) {
        RunRecord done = handles.get(i).await(Duration.ofSeconds(30));
        assertThat(done.id()).isEqualTo(handles.get(i).id());
        assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
        assertThat(done.input()).isEqualTo("caller-" + i);
        assertThat(done.output()).isEqualTo("out:caller-" + i);
      }
      AgentStats stats = runner.stats().agent("scanner");
      assertThat(stats.succeeded()).isEqualTo(submits);
      assertThat(stats.total()).isEqualTo(submits);
      assertThat(stats.usage()).isEqualTo(Usage.of(10L * submits, 2L * submits, 3L * submits));
    }
    // After close every execution has ended, so this process's own counts are final too.
    AgentStats local = runner.health().local().get("scanner");
    assertThat(local.succeeded()).isEqualTo(submits);
    assertThat(local.total()).isEqualTo(submits);
  }
}
