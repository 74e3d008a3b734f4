package dev.agentrunner;

import static dev.agentrunner.RunLifecycleTest.awaitLatch;
import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.memory.InMemoryRunStore;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.NewRun;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Several runners on one store: work is picked up by polling, leases keep or free it. */
@Timeout(30)
class SharedStoreTest {
  private static final Duration WAIT = Duration.ofSeconds(10);
  private final InMemoryRunStore store = InMemoryRunStore.create();

  @AfterEach
  void closeStore() {
    store.close();
  }

  @Test
  void aRunSubmittedOnOneRunnerIsExecutedByAnotherAndAwaitedOnTheFirst() {
    CountDownLatch busy = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    try (AgentRunner a = AgentRunner.builder().store(store).workerId("a").maxConcurrency(1)
        .agent("x", ctx -> {
          busy.countDown();
          release.await();
          return AgentResult.of("done by a");
        })
        .build()) {
      RunHandle blocker = a.submit(RunRequest.of("x", "block"));
      awaitLatch(busy); // a's only permit is taken, so a cannot run the next one
      try (AgentRunner b = AgentRunner.builder().store(store).workerId("b")
          .pollInterval(Duration.ofMillis(20))
          .agent("x", ctx -> AgentResult.of("done by b"))
          .build()) {
        RunHandle second = a.submit(RunRequest.of("x", "second"));
        RunRecord done = second.await(WAIT);
        assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
        assertThat(done.owner()).isEqualTo("b");
        assertThat(done.output()).isEqualTo("done by b");
      }
      release.countDown();
      assertThat(blocker.await(WAIT).output()).isEqualTo("done by a");
    }
  }

  @Test
  void aRunWhoseWorkerDiedIsRecoveredAndRunAgain() {
    long id = store.insert(new NewRun(RunRequest.of("x", "orphan"), 2)).id();
    List<RunRecord> claimed =
        store.claim(new ClaimRequest("dead-worker", Map.of("x", 1), 1, Duration.ofMillis(50)));
    assertThat(claimed).extracting(RunRecord::id).containsExactly(id);
    // "dead-worker" never heartbeats nor finishes: its lease lapses after 50 ms.
    try (AgentRunner runner = AgentRunner.builder().store(store).workerId("alive")
        .pollInterval(Duration.ofMillis(20))
        .agent("x", ctx -> AgentResult.of("attempt " + ctx.attempt()))
        .build()) {
      RunRecord done = runner.submit(RunRequest.of("x", "other")).await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
      RunRecord recovered = runner.handle(id).await(WAIT);
      assertThat(recovered.status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(recovered.output()).isEqualTo("attempt 2");
      assertThat(recovered.owner()).isEqualTo("alive");
      assertThat(runner.events(id)).extracting(RunEvent::type).contains("recovered");
    }
  }

  @Test
  void aRunWhoseWorkerDiedOnItsLastAttemptFailsSayingTheWorkerWasLost() {
    long id = store.insert(NewRun.of(RunRequest.of("x", "orphan"))).id();
    store.claim(new ClaimRequest("dead-worker", Map.of("x", 1), 1, Duration.ofMillis(50)));
    try (AgentRunner runner = AgentRunner.builder().store(store)
        .pollInterval(Duration.ofMillis(20))
        .agent("x", ctx -> AgentResult.of("never for the orphan"))
        .build()) {
      RunRecord failed = runner.handle(id).await(WAIT);
      assertThat(failed.status()).isEqualTo(RunStatus.FAILED);
      assertThat(failed.error()).contains("dead-worker").contains("lost");
      assertThat(failed.attempt()).isEqualTo(1);
    }
  }

  @Test
  void heartbeatsKeepALongRunOwnedSoNobodyElseRunsIt() {
    AtomicInteger executions = new AtomicInteger();
    CountDownLatch started = new CountDownLatch(1);
    Agent slow = ctx -> {
      executions.incrementAndGet();
      started.countDown();
      Thread.sleep(1_500); // three lease lengths
      return AgentResult.of("attempt " + ctx.attempt());
    };
    try (AgentRunner a = AgentRunner.builder().store(store).workerId("a")
            .leaseDuration(Duration.ofMillis(500)).pollInterval(Duration.ofMillis(10))
            .agent("slow", slow).build();
        AgentRunner b = AgentRunner.builder().store(store).workerId("b")
            .leaseDuration(Duration.ofMillis(500)).pollInterval(Duration.ofMillis(10))
            .agent("slow", slow).build()) {
      RunHandle handle = a.submit(RunRequest.of("slow", "x"));
      awaitLatch(started);
      RunRecord done = handle.await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(done.attempt()).isEqualTo(1);
      assertThat(executions.get()).isEqualTo(1);
      assertThat(b.health().executing()).isZero();
    }
  }
}
