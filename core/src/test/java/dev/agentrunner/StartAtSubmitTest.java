package dev.agentrunner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.memory.InMemoryRunStore;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A submit that finds a free permit starts its run itself, in the same store operation that
 * stores it; every other run waits in the queue for the dispatcher, and a submit never starts
 * its run ahead of one that was waiting.
 */
@Timeout(60)
class StartAtSubmitTest {
  private static final Duration WAIT = Duration.ofSeconds(10);

  private final InMemoryRunStore store = InMemoryRunStore.create();

  @Test
  void aSubmitWithAFreePermitReturnsItsRunAlreadyStarted() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    AtomicReference<Thread> startedOn = new AtomicReference<>();
    try (AgentRunner runner = AgentRunner.builder().store(store)
        .agent("a", ctx -> {
          release.await();
          return AgentResult.of("ok");
        })
        .listener(new RunListener() {
          @Override
          public void onStarted(RunRecord run) {
            startedOn.set(Thread.currentThread());
          }
        })
        .build()) {
      RunHandle handle = runner.submit(RunRequest.of("a", "x"));
      RunRecord now = handle.current();
      assertThat(now.status()).isEqualTo(RunStatus.RUNNING);
      assertThat(now.startedAt()).isEqualTo(now.createdAt());
      assertThat(startedOn.get()).as("started by the submitting thread")
          .isSameAs(Thread.currentThread());
      assertThat(runner.events(handle.id()).stream().map(RunEvent::type))
          .containsExactly("queued", "started");
      release.countDown();
      assertThat(handle.await(WAIT).status()).isEqualTo(RunStatus.SUCCEEDED);
    }
  }

  @Test
  void aSubmitWithoutAFreePermitLeavesItsRunQueued() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    try (AgentRunner runner = AgentRunner.builder().store(store).maxConcurrency(1)
        .agent("a", ctx -> {
          release.await();
          return AgentResult.of("ok");
        })
        .build()) {
      RunHandle first = runner.submit(RunRequest.of("a", "1"));
      // (its start may come from the dispatcher, if it held the one permit at that moment)
      awaitStatus(first, RunStatus.RUNNING);
      RunHandle second = runner.submit(RunRequest.of("a", "2"));
      assertThat(second.current().status()).isEqualTo(RunStatus.QUEUED);
      release.countDown();
      assertThat(second.await(WAIT).status()).isEqualTo(RunStatus.SUCCEEDED);
    }
  }

  /**
   * One permit. While run "a" holds it, "b" and "c" queue. The moment "a" finishes, its
   * listener submits "d" on the finishing thread, racing the dispatcher for the freed permit.
   * Whoever wins, "d" must not start before "b" and "c": if it gets the permit, the store sees
   * older claimable runs and leaves it queued.
   */
  @Test
  void aSubmitNeverStartsItsRunAheadOfQueuedRuns() throws Exception {
    for (int round = 0; round < 20; round++) {
      List<String> starts = new CopyOnWriteArrayList<>();
      CountDownLatch releaseA = new CountDownLatch(1);
      AtomicReference<AgentRunner> self = new AtomicReference<>();
      AtomicReference<RunHandle> d = new AtomicReference<>();
      try (AgentRunner runner = AgentRunner.builder().maxConcurrency(1)
          .agent("a", ctx -> {
            starts.add(ctx.input());
            if (ctx.input().equals("a")) {
              releaseA.await();
            }
            return AgentResult.of("ok");
          })
          .listener(new RunListener() {
            @Override
            public void onFinished(RunRecord run) {
              if (run.input().equals("a")) {
                d.set(self.get().submit(RunRequest.of("a", "d")));
              }
            }
          })
          .build()) {
        self.set(runner);
        RunHandle a = runner.submit(RunRequest.of("a", "a"));
        runner.submit(RunRequest.of("a", "b"));
        RunHandle c = runner.submit(RunRequest.of("a", "c"));
        awaitStatus(a, RunStatus.RUNNING);
        releaseA.countDown();
        c.await(WAIT);
        awaitNonNull(d);
        d.get().await(WAIT);
        assertThat(starts).as("round %d", round).containsExactly("a", "b", "c", "d");
      }
    }
  }

  /** A run submitted not due yet starts when it falls due, not at the next poll a minute on. */
  @Test
  void aRunNotYetDueStartsWhenItFallsDueNotAtTheNextPoll() throws Exception {
    try (AgentRunner runner = AgentRunner.builder().store(store)
        .pollInterval(Duration.ofMinutes(1))
        .agent("a", ctx -> AgentResult.of("ok"))
        .build()) {
      Thread.sleep(200); // past the dispatcher's first poll
      long submitted = System.nanoTime();
      RunHandle handle = runner.submit(RunRequest.of("a", "later")
          .withNotBefore(java.time.Instant.now().plusMillis(300)));
      assertThat(handle.current().status()).isEqualTo(RunStatus.QUEUED);
      RunRecord done = handle.await(WAIT);
      assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(Duration.ofNanos(System.nanoTime() - submitted))
          .as("started when due, long before the next poll").isLessThan(Duration.ofSeconds(30));
    }
  }

  private static void awaitStatus(RunHandle handle, RunStatus status) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (handle.current().status() != status && System.nanoTime() < deadline) {
      Thread.sleep(1);
    }
    assertThat(handle.current().status()).isEqualTo(status);
  }

  private static void awaitNonNull(AtomicReference<?> ref) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (ref.get() == null && System.nanoTime() < deadline) {
      Thread.sleep(1);
    }
    assertThat(ref.get()).isNotNull();
  }
}
