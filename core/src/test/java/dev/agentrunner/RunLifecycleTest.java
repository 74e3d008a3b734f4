package dev.agentrunner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.memory.InMemoryRunStore;
import dev.agentrunner.spi.RunStore;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.MDC;

/** What happens to one run: success, failure, timeout, cancel, events, listeners, MDC. */
@Timeout(30)
class RunLifecycleTest {
  private static final Duration WAIT = Duration.ofSeconds(10);

  @Test
  void agentExceptionEndsTheRunFailedWithItsMessage() {
    try (AgentRunner runner = AgentRunner.builder()
        .agent("broken", ctx -> {
          throw new IllegalStateException("model quota exhausted");
        })
        .build()) {
      RunRecord done = runner.submit(RunRequest.of("broken", "x")).await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.FAILED);
      assertThat(done.error()).contains("IllegalStateException").contains("model quota exhausted");
      assertThat(done.finishedAt()).isNotNull();
    }
  }

  @Test
  void agentReturningNullFails() {
    try (AgentRunner runner = AgentRunner.builder().agent("null", ctx -> null).build()) {
      RunRecord done = runner.submit(RunRequest.of("null", "x")).await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.FAILED);
      assertThat(done.error()).contains("null");
    }
  }

  @Test
  void eventsAndUsageAreStoredWithTheRun() {
    try (AgentRunner runner = AgentRunner.builder()
        .agent("chatty", ctx -> {
          ctx.emit("progress", "{\"step\":1}");
          ctx.reportUsage(Usage.of(100, 0, 7));
          return AgentResult.of("done", Usage.of(1, 20, 3));
        })
        .build()) {
      RunHandle handle = runner.submit(RunRequest.of("chatty", "x"));
      RunRecord done = handle.await(WAIT);
      assertThat(done.usage()).isEqualTo(Usage.of(101, 20, 10));
      List<String> types = runner.events(handle.id()).stream().map(RunEvent::type).toList();
      assertThat(types).containsExactly("queued", "started", "progress", "succeeded");
    }
  }

  @Test
  void theRunIdAndAgentAreInTheMdcWhileTheAgentRuns() {
    try (AgentRunner runner = AgentRunner.builder()
        .agent("mdc", ctx -> AgentResult.of(
            MDC.get("agentrunner.runId") + "/" + MDC.get("agentrunner.agent")))
        .build()) {
      RunHandle handle = runner.submit(RunRequest.of("mdc", "x"));
      assertThat(handle.await(WAIT).output()).isEqualTo(handle.id() + "/mdc");
    }
  }

  @Test
  void aThrowingListenerHarmsNeitherTheRunNorOtherListeners() {
    List<String> seen = new CopyOnWriteArrayList<>();
    RunListener throwing = new RunListener() {
      @Override
      public void onSubmitted(RunRecord run) {
        throw new RuntimeException("listener bug");
      }

      @Override
      public void onStarted(RunRecord run) {
        throw new RuntimeException("listener bug");
      }

      @Override
      public void onFinished(RunRecord run) {
        throw new RuntimeException("listener bug");
      }
    };
    RunListener recording = new RunListener() {
      @Override
      public void onSubmitted(RunRecord run) {
        seen.add("submitted");
      }

      @Override
      public void onStarted(RunRecord run) {
        seen.add("started");
      }

      @Override
      public void onFinished(RunRecord run) {
        seen.add("finished:" + run.status());
      }
    };
    try (AgentRunner runner = AgentRunner.builder()
        .listener(throwing)
        .listener(recording)
        .agent("a", ctx -> AgentResult.of("ok"))
        .build()) {
      for (int i = 0; i < 5; i++) {
        assertThat(runner.submit(RunRequest.of("a", "x")).await(WAIT).status())
            .isEqualTo(RunStatus.SUCCEEDED);
      }
    }
    assertThat(seen).filteredOn("submitted"::equals).hasSize(5);
    assertThat(seen).filteredOn("started"::equals).hasSize(5);
    assertThat(seen).filteredOn("finished:SUCCEEDED"::equals).hasSize(5);
  }

  @Test
  void anAgentOverItsTimeoutIsInterruptedAndEndsTimedOut() {
    CountDownLatch interrupted = new CountDownLatch(1);
    try (AgentRunner runner = AgentRunner.builder()
        .agent(AgentSpec.named("slow").timeout(Duration.ofMillis(100)), ctx -> {
          try {
            Thread.sleep(60_000);
          } catch (InterruptedException e) {
            assertThat(ctx.isCancelled()).isTrue();
            interrupted.countDown();
            throw e;
          }
          return AgentResult.of("too late");
        })
        .build()) {
      RunRecord done = runner.submit(RunRequest.of("slow", "x")).await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.TIMED_OUT);
      assertThat(done.error()).contains("timed out after PT0.1S");
      assertThat(interrupted.getCount()).isZero();
    }
  }

  @Test
  void anAgentIgnoringTheInterruptIsAbandonedAndItsLateResultDiscarded() throws Exception {
    CountDownLatch mayReturn = new CountDownLatch(1);
    Thread[] agentThread = new Thread[1];
    InMemoryRunStore store = InMemoryRunStore.create();
    try (AgentRunner runner = AgentRunner.builder()
        .store(store)
        .abandonAfter(Duration.ofMillis(100))
        .agent(AgentSpec.named("stubborn").timeout(Duration.ofMillis(50)), ctx -> {
          agentThread[0] = Thread.currentThread();
          while (true) { // ignores interrupts on purpose
            try {
              if (mayReturn.await(10, TimeUnit.MILLISECONDS)) {
                return AgentResult.of("late result");
              }
            } catch (InterruptedException ignored) {
              // stubborn
            }
          }
        })
        .build()) {
      RunHandle handle = runner.submit(RunRequest.of("stubborn", "x"));
      RunRecord done = handle.await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.TIMED_OUT);
      assertThat(done.error()).contains("abandoned");

      mayReturn.countDown();
      agentThread[0].join(); // the late result has been handed back by now
      RunRecord after = runner.get(handle.id()).orElseThrow();
      assertThat(after.status()).isEqualTo(RunStatus.TIMED_OUT);
      assertThat(after.output()).isNull();
    }
    store.close();
  }

  @Test
  void cancellingAQueuedRunCancelsItAtOnce() {
    CountDownLatch release = new CountDownLatch(1);
    CountDownLatch started = new CountDownLatch(1);
    try (AgentRunner runner = AgentRunner.builder()
        .maxConcurrency(1)
        .agent("block", ctx -> {
          started.countDown();
          release.await();
          return AgentResult.of("ok");
        })
        .build()) {
      RunHandle first = runner.submit(RunRequest.of("block", "1"));
      awaitLatch(started);
      RunHandle second = runner.submit(RunRequest.of("block", "2"));
      RunRecord cancelled = runner.cancel(second.id()).orElseThrow();
      assertThat(cancelled.status()).isEqualTo(RunStatus.CANCELLED);
      release.countDown();
      assertThat(first.await(WAIT).status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(second.await(WAIT).status()).isEqualTo(RunStatus.CANCELLED);
      assertThat(runner.cancel(first.id()).orElseThrow().status())
          .as("a terminal run stays as it is").isEqualTo(RunStatus.SUCCEEDED);
      assertThat(runner.cancel(987_654)).isEmpty();
    }
  }

  @Test
  void cancellingARunningRunInterruptsTheAgentAndEndsItCancelled() {
    CountDownLatch started = new CountDownLatch(1);
    try (AgentRunner runner = AgentRunner.builder()
        .agent("wait", ctx -> {
          started.countDown();
          Thread.sleep(60_000);
          return AgentResult.of("never");
        })
        .build()) {
      RunHandle handle = runner.submit(RunRequest.of("wait", "x"));
      awaitLatch(started);
      assertThat(runner.cancel(handle.id()).orElseThrow().cancelRequested()).isTrue();
      RunRecord done = handle.await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.CANCELLED);
      assertThat(runner.events(handle.id()).stream().map(RunEvent::type))
          .contains("cancel_requested", "cancelled");
    }
  }

  @Test
  void awaitGivesUpWithTheLastSeenState() {
    CountDownLatch release = new CountDownLatch(1);
    try (AgentRunner runner = AgentRunner.builder()
        .agent("block", ctx -> {
          release.await();
          return AgentResult.of("ok");
        })
        .build()) {
      RunHandle handle = runner.submit(RunRequest.of("block", "x"));
      try {
        handle.await(Duration.ofMillis(50));
        throw new AssertionError("await should have timed out");
      } catch (AwaitTimeoutException e) {
        assertThat(e.getMessage()).contains("run " + handle.id());
        assertThat(e.lastSeen().isTerminal()).isFalse();
      }
      release.countDown();
      assertThat(handle.completion().join().status()).isEqualTo(RunStatus.SUCCEEDED);
    }
  }

  @Test
  void anOutcomeTheStoreKeepsRefusingEndsTheRunFailedInsteadOfStuck() {
    InMemoryRunStore memory = InMemoryRunStore.create();
    RunStore picky = new ForwardingRunStore(memory) {
      @Override
      public java.util.Optional<RunRecord> finish(dev.agentrunner.spi.Finish finish) {
        if (finish.output() != null && finish.output().contains("\u0000")) {
          throw new StoreException("text with NUL cannot be stored");
        }
        return super.finish(finish);
      }
    };
    try (AgentRunner runner = AgentRunner.builder().store(picky)
        .pollInterval(Duration.ofMillis(10))
        .agent("nul", ctx -> AgentResult.of("bad\u0000output"))
        .build()) {
      RunRecord done = runner.submit(RunRequest.of("nul", "x")).await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.FAILED);
      assertThat(done.error()).contains("could not be stored after 5 tries")
          .contains("text with NUL cannot be stored");
      assertThat(done.output()).isNull();
    }
    memory.close();
  }

  @Test
  void anOutcomeStoredByATryWhoseAnswerWasLostIsReportedOnce() throws InterruptedException {
    InMemoryRunStore memory = InMemoryRunStore.create();
    java.util.concurrent.atomic.AtomicInteger finishes =
        new java.util.concurrent.atomic.AtomicInteger();
    RunStore lossy = new ForwardingRunStore(memory) {
      @Override
      public java.util.Optional<RunRecord> finish(dev.agentrunner.spi.Finish finish) {
        java.util.Optional<RunRecord> stored = super.finish(finish);
        if (finishes.incrementAndGet() == 1) {
          throw new StoreException("connection lost after the commit");
        }
        return stored;
      }
    };
    List<RunRecord> finished = new CopyOnWriteArrayList<>();
    try (AgentRunner runner = AgentRunner.builder().store(lossy)
        .pollInterval(Duration.ofMillis(10))
        .agent("a", ctx -> AgentResult.of("done", Usage.of(7, 8, 9)))
        .listener(new RunListener() {
          @Override
          public void onFinished(RunRecord run) {
            finished.add(run);
          }
        })
        .build()) {
      RunRecord done = runner.submit(RunRequest.of("a", "x")).await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(done.output()).isEqualTo("done");
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (finished.isEmpty() && System.nanoTime() < deadline) {
        Thread.sleep(5); // the listener runs on the dispatcher's poll
      }
      assertThat(finishes.get()).as("the engine tried the finish again").isGreaterThan(1);
      assertThat(finished).as("the listener heard of it once").containsExactly(done);
      assertThat(runner.health().local().get("a").succeeded()).isEqualTo(1);
      assertThat(runner.health().local().get("a").running()).isZero();
      assertThat(runner.health().local().get("a").usage()).isEqualTo(Usage.of(7, 8, 9));
    }
    memory.close();
  }

  @Test
  void purgeDeletesEndedRunsAndKeepsTheRest() {
    CountDownLatch release = new CountDownLatch(1);
    try (AgentRunner runner = AgentRunner.builder()
        .agent("quick", ctx -> AgentResult.of("ok"))
        .agent("slow", ctx -> {
          release.await();
          return AgentResult.of("late");
        })
        .build()) {
      RunRecord first = runner.submit(RunRequest.of("quick", "1")).await(WAIT);
      RunRecord second = runner.submit(RunRequest.of("quick", "2")).await(WAIT);
      RunHandle running = runner.submit(RunRequest.of("slow", "3"));
      assertThat(runner.purge(first.finishedAt())).as("nothing ended before the first").isZero();
      assertThat(runner.purge(java.time.Instant.now().plusSeconds(1))).isEqualTo(2);
      assertThat(runner.get(first.id())).isEmpty();
      assertThat(runner.events(second.id())).isEmpty();
      assertThat(runner.history(RunQuery.all()).items()).extracting(RunRecord::id)
          .containsExactly(running.id());
      release.countDown();
      assertThat(running.await(WAIT).output()).isEqualTo("late");
      org.assertj.core.api.Assertions.assertThatThrownBy(() -> runner.purge(null))
          .isInstanceOf(NullPointerException.class).hasMessageContaining("finishedBefore");
    }
  }

  @Test
  void waitingOnAnUnknownRunFailsAtOnceAndAgentsAreListed() {
    try (AgentRunner runner = AgentRunner.builder()
        .agent("b", ctx -> AgentResult.of("ok"))
        .agent("a", ctx -> AgentResult.of("ok"))
        .build()) {
      assertThat(runner.agents()).containsExactly("a", "b");
      RunHandle missing = runner.handle(424_242);
      org.assertj.core.api.Assertions.assertThatThrownBy(() -> missing.await(WAIT))
          .isInstanceOf(AgentRunnerException.class)
          .hasMessageContaining("no run 424242");
      assertThat(missing.completion()).isCompletedExceptionally();
    }
  }

  static void awaitLatch(CountDownLatch latch) {
    try {
      assertThat(latch.await(10, TimeUnit.SECONDS)).as("latch reached").isTrue();
    } catch (InterruptedException e) {
      throw new AssertionError(e);
    }
  }
}
