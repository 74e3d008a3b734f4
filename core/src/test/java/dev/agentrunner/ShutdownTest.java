package dev.agentrunner;

import static dev.agentrunner.RunLifecycleTest.awaitLatch;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.agentrunner.memory.InMemoryRunStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Graceful shutdown (I8 within one process) and submits racing it (I9). */
@Timeout(60)
class ShutdownTest {
  private final InMemoryRunStore store = InMemoryRunStore.create();

  @AfterEach
  void closeStore() {
    store.close();
  }

  @Test
  void runsInFlightFinishWhenTheyEndWithinTheTimeout() throws Exception {
    CountDownLatch started = new CountDownLatch(3);
    CountDownLatch release = new CountDownLatch(1);
    AgentRunner runner = AgentRunner.builder().store(store)
        .agent("work", ctx -> {
          started.countDown();
          release.await();
          return AgentResult.of("done");
        })
        .build();
    List<Long> ids = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      ids.add(runner.submit(RunRequest.of("work", "x")).id());
    }
    awaitLatch(started);
    Thread closer = Thread.ofVirtual().start(() -> runner.close(Duration.ofSeconds(20)));
    assertThatThrownBy(() -> submitUntilRefused(runner)).isInstanceOf(RunnerClosedException.class);
    release.countDown();
    closer.join();
    for (long id : ids) {
      assertThat(store.find(id).orElseThrow().status()).isEqualTo(RunStatus.SUCCEEDED);
    }
  }

  @Test
  void runsStillExecutingAtTheDeadlineAreCancelled() {
    CountDownLatch started = new CountDownLatch(2);
    AgentRunner runner = AgentRunner.builder().store(store)
        .agent("forever", ctx -> {
          started.countDown();
          Thread.sleep(600_000);
          return AgentResult.of("never");
        })
        .build();
    long a = runner.submit(RunRequest.of("forever", "a")).id();
    long b = runner.submit(RunRequest.of("forever", "b")).id();
    awaitLatch(started);
    runner.close(Duration.ofMillis(50));
    for (long id : List.of(a, b)) {
      RunRecord run = store.find(id).orElseThrow();
      assertThat(run.status()).isEqualTo(RunStatus.CANCELLED);
      assertThat(run.error()).contains("shut down");
    }
  }

  @Test
  void anAgentIgnoringInterruptsCannotHoldShutdownForever() {
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch testOver = new CountDownLatch(1);
    AgentRunner runner = AgentRunner.builder().store(store)
        .abandonAfter(Duration.ofMillis(100))
        .agent("stubborn", ctx -> {
          started.countDown();
          while (testOver.getCount() > 0) {
            try {
              testOver.await(5, TimeUnit.MILLISECONDS);
            } catch (InterruptedException ignored) {
              // ignores the interrupt on purpose
            }
          }
          return AgentResult.of("late");
        })
        .build();
    long id = runner.submit(RunRequest.of("stubborn", "x")).id();
    awaitLatch(started);
    runner.close(Duration.ofMillis(50));
    RunRecord run = store.find(id).orElseThrow();
    assertThat(run.status()).isEqualTo(RunStatus.CANCELLED);
    assertThat(run.error()).contains("abandoned");
    testOver.countDown();
  }

  @Test
  void submitAfterCloseThrowsAndStoresNothing() {
    AgentRunner runner = AgentRunner.builder().store(store)
        .agent("a", ctx -> AgentResult.of("ok")).build();
    runner.close();
    long before = store.stats().total().total();
    assertThatThrownBy(() -> runner.submit(RunRequest.of("a", "x")))
        .isInstanceOf(RunnerClosedException.class)
        .hasMessageContaining("closed");
    assertThat(store.stats().total().total()).isEqualTo(before);
    runner.close(); // a second close is harmless
    assertThat(runner.health().accepting()).isFalse();
  }

  @Test
  void claimedRunsThatNeverStartedGoBackToTheQueue() {
    CountDownLatch started = new CountDownLatch(1);
    AgentRunner runner = AgentRunner.builder().store(store).maxConcurrency(1)
        .agent("one", ctx -> {
          started.countDown();
          Thread.sleep(600_000);
          return AgentResult.of("never");
        })
        .build();
    long first = runner.submit(RunRequest.of("one", "1")).id();
    long second = runner.submit(RunRequest.of("one", "2")).id();
    awaitLatch(started);
    runner.close(Duration.ofMillis(20));
    assertThat(store.find(first).orElseThrow().status()).isEqualTo(RunStatus.CANCELLED);
    RunRecord waiting = store.find(second).orElseThrow();
    assertThat(waiting.status()).isEqualTo(RunStatus.QUEUED);
    assertThat(waiting.attempt()).isZero();
  }

  /**
   * I9: while one thread closes the runner, eight others keep submitting. Each submit either
   * returned an id whose run is in the store, or threw RunnerClosedException.
   */
  @Test
  void aSubmitRacingCloseIsEitherStoredOrRefused() throws Exception {
    for (int round = 0; round < 20; round++) {
      AgentRunner runner = AgentRunner.builder().store(store)
          .agent("a", ctx -> AgentResult.of("ok")).build();
      ConcurrentLinkedQueue<Long> accepted = new ConcurrentLinkedQueue<>();
      AtomicInteger refused = new AtomicInteger();
      CountDownLatch submitting = new CountDownLatch(8);
      try (ExecutorService pool = Executors.newFixedThreadPool(8)) {
        List<Future<?>> futures = new ArrayList<>();
        for (int t = 0; t < 8; t++) {
          futures.add(pool.submit(() -> {
            submitting.countDown();
            while (true) {
              try {
                accepted.add(runner.submit(RunRequest.of("a", "x")).id());
              } catch (RunnerClosedException e) {
                refused.incrementAndGet();
                return;
              }
            }
          }));
        }
        awaitLatch(submitting);
        runner.close(Duration.ofSeconds(10));
        for (Future<?> f : futures) {
          f.get();
        }
      }
      assertThat(refused.get()).isEqualTo(8);
      for (long id : accepted) {
        assertThat(store.find(id)).as("run %d returned by submit is stored", id).isPresent();
      }
      assertThat(accepted).doesNotHaveDuplicates();
    }
  }

  private static void submitUntilRefused(AgentRunner runner) {
    for (int i = 0; i < 1_000_000; i++) {
      runner.submit(RunRequest.of("work", "late"));
      Thread.onSpinWait();
    }
  }
}
