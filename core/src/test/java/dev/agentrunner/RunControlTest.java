package dev.agentrunner;

import static dev.agentrunner.RunLifecycleTest.awaitLatch;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.agentrunner.memory.InMemoryRunStore;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Serial keys and their policies, idempotency keys, retries, and cancels across runners. */
@Timeout(60)
class RunControlTest {
  private static final Duration WAIT = Duration.ofSeconds(20);
  private final InMemoryRunStore store = InMemoryRunStore.create();

  @AfterEach
  void closeStore() {
    store.close();
  }

  /**
   * The seed scenario of the per-conversation chat queue: 50 concurrent messages to one
   * conversation. The agent appends to a plain, unsynchronised list and sleeps a little, as a
   * chat handler appending to a conversation history would: it must run strictly one at a time,
   * in submission (id) order, leave the list intact, answer each caller with its own reply, and
   * an error on one message must not stop the next.
   */
  @Test
  void fiftyConcurrentMessagesToOneConversationRunOneAtATimeInOrder() throws Exception {
    List<String> conversation = new ArrayList<>(); // deliberately not thread-safe
    AtomicInteger inside = new AtomicInteger();
    AtomicInteger maxInside = new AtomicInteger();
    try (AgentRunner runner = AgentRunner.builder().store(store).maxConcurrency(16)
        .agent("chat", ctx -> {
          maxInside.accumulateAndGet(inside.incrementAndGet(), Math::max);
          try {
            conversation.add(ctx.input());
            Thread.sleep(2);
            if (ctx.input().equals("message 7")) {
              throw new IllegalStateException("the model choked on message 7");
            }
            return AgentResult.of("reply to " + ctx.input() + " after " + conversation.size());
          } finally {
            inside.decrementAndGet();
          }
        })
        .build()) {
      List<Callable<RunHandle>> senders = new ArrayList<>();
      for (int i = 0; i < 50; i++) {
        String message = "message " + i;
        senders.add(() -> runner.submit(RunRequest.of("chat", message).withSerialKey("conv-1")));
      }
      List<RunHandle> handles = new ArrayList<>();
      try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
        for (Future<RunHandle> f : pool.invokeAll(senders)) {
          handles.add(f.get());
        }
      }
      List<RunRecord> done = new ArrayList<>();
      for (RunHandle h : handles) {
        done.add(h.await(WAIT));
      }

      assertThat(maxInside.get()).as("runs of one key at once").isEqualTo(1);
      List<RunRecord> byId = done.stream().sorted(Comparator.comparingLong(RunRecord::id)).toList();
      assertThat(conversation).as("executed in submission order")
          .containsExactlyElementsOf(byId.stream().map(RunRecord::input).toList());
      for (int i = 0; i < byId.size(); i++) {
        RunRecord run = byId.get(i);
        if (run.input().equals("message 7")) {
          assertThat(run.status()).isEqualTo(RunStatus.FAILED);
          assertThat(run.error()).contains("choked");
        } else {
          assertThat(run.status()).isEqualTo(RunStatus.SUCCEEDED);
          assertThat(run.output()).isEqualTo("reply to " + run.input() + " after " + (i + 1));
        }
      }
      for (int i = 0; i < 50; i++) {
        assertThat(done.get(i).input()).as("caller %d got its own run", i)
            .isEqualTo("message " + i);
      }
    }
  }

  @Test
  void rejectPolicyNamesTheActiveRunAndStoresNothing() {
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    try (AgentRunner runner = AgentRunner.builder().store(store)
        .agent("chat", ctx -> {
          started.countDown();
          release.await();
          return AgentResult.of("ok");
        })
        .build()) {
      RunHandle active = runner.submit(RunRequest.of("chat", "first").withSerialKey("c"));
      awaitLatch(started);
      long before = store.stats().total().total();
      assertThatThrownBy(() -> runner.submit(
          RunRequest.of("chat", "second").withSerialKey("c", SerialKeyPolicy.REJECT)))
          .isInstanceOfSatisfying(SerialKeyBusyException.class,
              e -> assertThat(e.activeRunId()).isEqualTo(active.id()))
          .hasMessageContaining("run " + active.id());
      assertThat(store.stats().total().total()).isEqualTo(before);
      release.countDown();
      assertThat(active.await(WAIT).status()).isEqualTo(RunStatus.SUCCEEDED);
      RunRecord later = runner.submit(
          RunRequest.of("chat", "third").withSerialKey("c", SerialKeyPolicy.REJECT)).await(WAIT);
      assertThat(later.status()).isEqualTo(RunStatus.SUCCEEDED);
    }
  }

  @Test
  void interruptPolicyCancelsTheActiveRunsThenRunsTheNewOne() {
    CountDownLatch started = new CountDownLatch(1);
    try (AgentRunner runner = AgentRunner.builder().store(store)
        .agent("chat", ctx -> {
          if (ctx.input().equals("long")) {
            started.countDown();
            Thread.sleep(600_000);
          }
          return AgentResult.of("answered " + ctx.input());
        })
        .build()) {
      RunHandle longOne = runner.submit(RunRequest.of("chat", "long").withSerialKey("c"));
      awaitLatch(started);
      RunHandle waiting = runner.submit(RunRequest.of("chat", "waiting").withSerialKey("c"));
      assertThat(runner.queueDepth("c")).isEqualTo(1);
      assertThat(runner.health().serialKeyQueues()).containsEntry("c", 1L);
      RunHandle urgent = runner.submit(
          RunRequest.of("chat", "urgent").withSerialKey("c", SerialKeyPolicy.INTERRUPT));
      assertThat(urgent.await(WAIT).output()).isEqualTo("answered urgent");
      assertThat(longOne.await(WAIT).status()).isEqualTo(RunStatus.CANCELLED);
      assertThat(waiting.await(WAIT).status()).isEqualTo(RunStatus.CANCELLED);
      assertThat(runner.queueDepth("c")).isZero();
    }
  }

  @Test
  void thirtyTwoSubmitsOfOneIdempotencyKeyMakeOneRun() throws Exception {
    AtomicInteger executions = new AtomicInteger();
    try (AgentRunner runner = AgentRunner.builder().store(store)
        .agent("pay", ctx -> {
          executions.incrementAndGet();
          return AgentResult.of("paid");
        })
        .build()) {
      List<Callable<Long>> callers = new ArrayList<>();
      for (int i = 0; i < 32; i++) {
        callers.add(() -> runner.submit(
            RunRequest.of("pay", "order 42").withIdempotencyKey("order-42")).id());
      }
      List<Long> ids = new ArrayList<>();
      try (ExecutorService pool = Executors.newFixedThreadPool(32)) {
        for (Future<Long> f : pool.invokeAll(callers)) {
          ids.add(f.get());
        }
      }
      assertThat(ids).containsOnly(ids.get(0));
      assertThat(runner.handle(ids.get(0)).await(WAIT).status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(store.stats().total().total()).isEqualTo(1);
      assertThat(executions.get()).isEqualTo(1);
    }
  }

  @Test
  void aFailingAttemptIsRetriedWithBackoffAndEachErrorIsKept() {
    AtomicInteger calls = new AtomicInteger();
    try (AgentRunner runner = AgentRunner.builder().store(store)
        .agent(AgentSpec.named("flaky")
                .retry(RetryPolicy.exponential(3, Duration.ofMillis(20)).withJitter(0)),
            ctx -> {
              if (calls.incrementAndGet() < 3) {
                throw new java.io.IOException("connection reset #" + ctx.attempt());
              }
              return AgentResult.of("ok on attempt " + ctx.attempt());
            })
        .build()) {
      RunHandle handle = runner.submit(RunRequest.of("flaky", "x"));
      RunRecord done = handle.await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(done.attempt()).isEqualTo(3);
      assertThat(done.maxAttempts()).isEqualTo(3);
      assertThat(done.output()).isEqualTo("ok on attempt 3");
      List<RunEvent> requeued = runner.events(handle.id()).stream()
          .filter(e -> e.type().equals("requeued")).toList();
      assertThat(requeued).extracting(RunEvent::data).satisfiesExactly(
          d -> assertThat(d).contains("connection reset #1").contains("attempt 1 of 3"),
          d -> assertThat(d).contains("connection reset #2").contains("attempt 2 of 3"));
    }
  }

  @Test
  void retriesStopAtMaxAttemptsAndSkipFailuresThePolicyRefuses() {
    try (AgentRunner runner = AgentRunner.builder().store(store)
        .agent(AgentSpec.named("broken")
                .retry(RetryPolicy.exponential(2, Duration.ofMillis(5)).withJitter(0)),
            ctx -> {
              throw new IllegalStateException("always");
            })
        .agent(AgentSpec.named("picky")
                .retry(RetryPolicy.exponential(5, Duration.ofMillis(5))
                    .retryOn(e -> e instanceof java.io.IOException)),
            ctx -> {
              throw new IllegalArgumentException("bad input is not worth a retry");
            })
        .build()) {
      RunRecord broken = runner.submit(RunRequest.of("broken", "x")).await(WAIT);
      assertThat(broken.status()).isEqualTo(RunStatus.FAILED);
      assertThat(broken.attempt()).isEqualTo(2);
      RunRecord picky = runner.submit(RunRequest.of("picky", "x")).await(WAIT);
      assertThat(picky.status()).isEqualTo(RunStatus.FAILED);
      assertThat(picky.attempt()).isEqualTo(1);
    }
  }

  @Test
  void aTimedOutAttemptIsRetriedWhenThePolicySaysSo() {
    try (AgentRunner runner = AgentRunner.builder().store(store)
        .agent(AgentSpec.named("slow-then-fast").timeout(Duration.ofMillis(50))
                .retry(RetryPolicy.exponential(2, Duration.ofMillis(5)).retryTimeouts(true)),
            ctx -> {
              if (ctx.attempt() == 1) {
                Thread.sleep(60_000);
              }
              return AgentResult.of("fast on attempt " + ctx.attempt());
            })
        .build()) {
      RunRecord done = runner.submit(RunRequest.of("slow-then-fast", "x")).await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(done.output()).isEqualTo("fast on attempt 2");
    }
  }

  @Test
  void aCancelIssuedThroughOneRunnerStopsTheRunExecutingOnAnother() {
    CountDownLatch started = new CountDownLatch(1);
    try (AgentRunner executor = AgentRunner.builder().store(store).workerId("executor")
        .leaseDuration(Duration.ofMillis(150))
        .agent("long", ctx -> {
          started.countDown();
          Thread.sleep(600_000);
          return AgentResult.of("never");
        })
        .build()) {
      RunHandle handle = executor.submit(RunRequest.of("long", "x"));
      awaitLatch(started);
      // Started only now, so it cannot have claimed the run itself.
      AgentRunner other = AgentRunner.builder().store(store).workerId("other")
          .agent("long", ctx -> AgentResult.of("unused"))
          .build();
      RunRecord requested = other.cancel(handle.id()).orElseThrow();
      assertThat(requested.cancelRequested()).isTrue();
      assertThat(requested.owner()).isEqualTo("executor");
      // "other" holds no execution of it: the request travels through the store and reaches
      // the executor at its next heartbeat (every 50 ms here).
      RunRecord done = other.handle(handle.id()).await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.CANCELLED);
      other.close();
    }
  }

  /**
   * A claim that commits but whose reply never arrives (a connection lost at that moment): the
   * runner does not know it holds the run, so its heartbeats, which go on for the run it does
   * execute, must not keep the lost one alive. Its lease runs out, it is recovered, and the
   * runner claims and runs it again. Heartbeats by owner alone kept it RUNNING for as long as
   * the other run went on.
   */
  @Test
  void aRunWhoseClaimReplyWasLostExpiresAndRunsAgainThoughTheRunnerHeartbeats() throws Exception {
    AtomicInteger lostReplies = new AtomicInteger();
    RunStore lossy = new ForwardingRunStore(store) {
      @Override
      public List<RunRecord> claim(ClaimRequest request) {
        List<RunRecord> claimed = super.claim(request);
        if (claimed.stream().anyMatch(r -> r.input().equals("lost"))
            && lostReplies.compareAndSet(0, 1)) {
          throw new StoreException("connection lost after the claim committed");
        }
        return claimed;
      }
    };
    CountDownLatch longStarted = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    try (AgentRunner runner = AgentRunner.builder().store(lossy).workerId("w")
        .leaseDuration(Duration.ofMillis(300)).pollInterval(Duration.ofMillis(10))
        .agent("job", ctx -> {
          if (ctx.input().equals("long")) {
            longStarted.countDown();
            release.await();
          }
          return AgentResult.of("done " + ctx.input());
        })
        .build()) {
      RunHandle longRun = runner.submit(RunRequest.of("job", "long"));
      awaitLatch(longStarted);
      long lost = store.insert(new NewRun(RunRequest.of("job", "lost"), 3)).id();
      RunRecord done = runner.handle(lost).await(WAIT);
      assertThat(lostReplies).hasValue(1);
      assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(done.attempt()).as("run again after its lease ran out").isEqualTo(2);
      assertThat(store.find(longRun.id()).orElseThrow().status()).isEqualTo(RunStatus.RUNNING);
      release.countDown();
      assertThat(longRun.await(WAIT).status()).isEqualTo(RunStatus.SUCCEEDED);
    }
  }
}
