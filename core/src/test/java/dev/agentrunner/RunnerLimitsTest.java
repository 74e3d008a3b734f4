package dev.agentrunner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.memory.InMemoryRunStore;
import dev.agentrunner.spi.Finish;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The global and per-agent concurrency limits are never exceeded, measured inside the agents; a
 * run's permits come back when its agent returns, and the runner holds at most twice its limit
 * in the store.
 */
class RunnerLimitsTest {

  private final AtomicInteger executingNow = new AtomicInteger();
  private final AtomicInteger maxExecuting = new AtomicInteger();
  private final Map<String, AtomicInteger> perAgentNow = new ConcurrentHashMap<>();
  private final Map<String, AtomicInteger> perAgentMax = new ConcurrentHashMap<>();

  private Agent measuring() {
    return ctx -> {
      AtomicInteger agentNow = perAgentNow.computeIfAbsent(ctx.agent(), a -> new AtomicInteger());
      maxExecuting.accumulateAndGet(executingNow.incrementAndGet(), Math::max);
      perAgentMax.computeIfAbsent(ctx.agent(), a -> new AtomicInteger())
          .accumulateAndGet(agentNow.incrementAndGet(), Math::max);
      try {
        Thread.sleep(3); // simulated model latency, so runs overlap
        return AgentResult.of("ok");
      } finally {
        agentNow.decrementAndGet();
        executingNow.decrementAndGet();
      }
    };
  }

  @Test
  @Timeout(60)
  void measuredConcurrencyNeverExceedsGlobalAndPerAgentLimits() {
    try (AgentRunner runner = AgentRunner.builder()
        .maxConcurrency(5)
        .agent(AgentSpec.named("two").maxConcurrency(2), measuring())
        .agent(AgentSpec.named("one").maxConcurrency(1), measuring())
        .agent("free", measuring())
        .build()) {
      List<RunHandle> handles = new ArrayList<>();
      for (int i = 0; i < 60; i++) {
        for (String agent : List.of("two", "one", "free")) {
          handles.add(runner.submit(RunRequest.of(agent, "i" + i)));
        }
      }
      for (RunHandle h : handles) {
        assertThat(h.await(Duration.ofSeconds(30)).status()).isEqualTo(RunStatus.SUCCEEDED);
      }
    }
    assertThat(maxExecuting.get()).isBetween(1, 5);
    assertThat(perAgentMax.get("two").get()).isBetween(1, 2);
    assertThat(perAgentMax.get("one").get()).isEqualTo(1);
    assertThat(perAgentMax.get("free").get()).isBetween(1, 5);
  }

  /**
   * Eight threads submit at once, so that submits starting their own runs race each other and
   * the dispatcher for the same permits.
   */
  @Test
  @Timeout(60)
  void concurrentSubmitsNeverExceedTheLimits() throws Exception {
    try (AgentRunner runner = AgentRunner.builder()
        .maxConcurrency(4)
        .agent(AgentSpec.named("two").maxConcurrency(2), measuring())
        .agent("free", measuring())
        .build()) {
      List<RunHandle> handles = new java.util.concurrent.CopyOnWriteArrayList<>();
      List<Thread> submitters = new ArrayList<>();
      java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
      for (int t = 0; t < 8; t++) {
        String agent = t % 2 == 0 ? "two" : "free";
        submitters.add(Thread.ofPlatform().start(() -> {
          try {
            go.await();
            for (int i = 0; i < 40; i++) {
              handles.add(runner.submit(RunRequest.of(agent, "i" + i)));
            }
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        }));
      }
      go.countDown();
      for (Thread t : submitters) {
        t.join();
      }
      assertThat(handles).hasSize(320);
      for (RunHandle h : handles) {
        assertThat(h.await(Duration.ofSeconds(30)).status()).isEqualTo(RunStatus.SUCCEEDED);
      }
    }
    assertThat(maxExecuting.get()).isBetween(1, 4);
    assertThat(perAgentMax.get("two").get()).isBetween(1, 2);
  }

  /**
   * With every outcome's write held up, a runner limited to 2 starts 2 more runs in the places of
   * 2 whose agents returned (their outcomes still being written), and no fifth: 4 runs RUNNING
   * in the store is twice the limit.
   */
  @Test
  @Timeout(60)
  void aRunStartsWhileAnOutcomeIsWrittenButTheRunnerHoldsAtMostTwiceItsLimit()
      throws InterruptedException {
    InMemoryRunStore memory = InMemoryRunStore.create();
    CountDownLatch writesMayGo = new CountDownLatch(1);
    AtomicInteger writesWaiting = new AtomicInteger();
    ForwardingRunStore slowWrites = new ForwardingRunStore(memory) {
      @Override
      public Optional<RunRecord> finish(Finish finish) {
        writesWaiting.incrementAndGet();
        try {
          writesMayGo.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        return super.finish(finish);
      }
    };
    AtomicInteger started = new AtomicInteger();
    try (AgentRunner runner = AgentRunner.builder().store(slowWrites).maxConcurrency(2)
        .pollInterval(Duration.ofMillis(10))
        .agent("quick", ctx -> {
          started.incrementAndGet();
          return AgentResult.of("ok");
        })
        .build()) {
      List<RunHandle> handles = new ArrayList<>();
      try {
        for (int i = 0; i < 2; i++) {
          handles.add(runner.submit(RunRequest.of("quick", "first" + i)));
        }
        awaitCount(writesWaiting::get, 2);
        for (int i = 0; i < 2; i++) {
          handles.add(runner.submit(RunRequest.of("quick", "second" + i)));
        }
        awaitCount(writesWaiting::get, 4); // red if a permit came back only with its write
        handles.add(runner.submit(RunRequest.of("quick", "fifth")));
        Thread.sleep(200); // twenty polls of the dispatcher, any of which could claim it
        assertThat(started.get()).as("agents started with 4 runs held").isEqualTo(4);
        assertThat(runner.get(handles.get(4).id()).orElseThrow().status())
            .isEqualTo(RunStatus.QUEUED);
      } finally {
        writesMayGo.countDown();
      }
      for (RunHandle h : handles) {
        assertThat(h.await(Duration.ofSeconds(30)).status()).isEqualTo(RunStatus.SUCCEEDED);
      }
      assertThat(started.get()).isEqualTo(5);
    }
    memory.close();
  }

  private static void awaitCount(IntSupplier count, int expected) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
    while (count.getAsInt() < expected) {
      assertThat(System.nanoTime() - deadline).as("waiting for %d, at %d", expected,
          count.getAsInt()).isNegative();
      Thread.sleep(2);
    }
    assertThat(count.getAsInt()).isEqualTo(expected);
  }
}
