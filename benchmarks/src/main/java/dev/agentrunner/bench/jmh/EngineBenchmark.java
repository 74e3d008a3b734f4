package dev.agentrunner.bench.jmh;

import dev.agentrunner.AgentContext;
import dev.agentrunner.AgentResult;
import dev.agentrunner.bench.BareContext;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.RunListener;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.memory.InMemoryRunStore;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.NewRun;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The engine on the in-memory store against a raw virtual-thread executor running the same
 * no-op agent, measured by JMH in one run so the two scores can be divided:
 *
 * <ul>
 *   <li>{@code *Batch}: submit {@value #BATCH} runs from one thread and wait until all have
 *       finished; throughput in runs/s.
 *   <li>{@code historyBatch}: the raw executor's batch keeping the engine's history, each run
 *       stored claimed before its task starts and finished by it: the ceiling of an engine on
 *       the in-memory store.
 *   <li>{@code *Single}: submit one run and await its result; JMH's sample histogram gives p50
 *       and p99 of the round trip.
 * </ul>
 *
 * <p>A fresh runner per iteration keeps the in-memory store (which keeps every run) from
 * growing across the whole trial.
 */
@State(Scope.Benchmark)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class EngineBenchmark {
  /** Runs per batch invocation. */
  public static final int BATCH = 1_000;

  private static final ClaimRequest CLAIM =
      new ClaimRequest("raw-history", Map.of("noop", 1), 1, Duration.ofSeconds(30));

  private AgentRunner runner;
  private ExecutorService executor;
  private InMemoryRunStore store;
  private volatile CountDownLatch batchDone;

  /** Starts a runner whose listener counts finished runs down, and a raw executor. */
  @Setup(Level.Iteration)
  public void start() {
    // A limit as large as a batch, so that like the raw executor it may run a whole batch at
    // once.
    runner = AgentRunner.builder()
        .maxConcurrency(BATCH)
        .agent("noop", EngineBenchmark::noop)
        .listener(new RunListener() {
          @Override
          public void onFinished(RunRecord run) {
            CountDownLatch latch = batchDone;
            if (latch != null) {
              latch.countDown();
            }
          }
        })
        .build();
    executor = Executors.newVirtualThreadPerTaskExecutor();
    store = InMemoryRunStore.create();
  }

  /** Closes both after each iteration. */
  @TearDown(Level.Iteration)
  public void stop() {
    runner.close();
    executor.close();
    store.close();
  }

  static AgentResult noop(AgentContext ctx) {
    return AgentResult.of("");
  }

  /** Engine: submit a batch, wait for every run of it to finish. */
  @Benchmark
  @BenchmarkMode(Mode.Throughput)
  @OutputTimeUnit(TimeUnit.SECONDS)
  @OperationsPerInvocation(BATCH)
  public void engineBatch() throws InterruptedException {
    CountDownLatch latch = new CountDownLatch(BATCH);
    batchDone = latch;
    for (int i = 0; i < BATCH; i++) {
      runner.submit(RunRequest.of("noop", "x"));
    }
    latch.await();
  }

  /** Raw executor: the same batch of no-op agent calls, each on its own virtual thread. */
  @Benchmark
  @BenchmarkMode(Mode.Throughput)
  @OutputTimeUnit(TimeUnit.SECONDS)
  @OperationsPerInvocation(BATCH)
  public void rawBatch() throws InterruptedException {
    CountDownLatch latch = new CountDownLatch(BATCH);
    for (int i = 0; i < BATCH; i++) {
      long id = i;
      executor.execute(() -> {
        noop(new BareContext(id, "noop", "x"));
        latch.countDown();
      });
    }
    latch.await();
  }

  /** Raw executor keeping the history: the batch of {@link #rawBatch}, each run in the store. */
  @Benchmark
  @BenchmarkMode(Mode.Throughput)
  @OutputTimeUnit(TimeUnit.SECONDS)
  @OperationsPerInvocation(BATCH)
  public void historyBatch() throws InterruptedException {
    CountDownLatch latch = new CountDownLatch(BATCH);
    for (int i = 0; i < BATCH; i++) {
      RunRecord run = store.insertAndClaim(NewRun.of(RunRequest.of("noop", "x")), CLAIM);
      executor.execute(() -> {
        AgentResult result = noop(new BareContext(run.id(), run.agent(), run.input()));
        store.finish(Finish.succeeded(run.id(), run.attempt(), run.owner(), result.output(),
            result.usage()));
        latch.countDown();
      });
    }
    latch.await();
  }

  /** Engine: one run's round trip, submit to awaited result. */
  @Benchmark
  @BenchmarkMode(Mode.SampleTime)
  @OutputTimeUnit(TimeUnit.MICROSECONDS)
  public RunRecord engineSingle() {
    return runner.submit(RunRequest.of("noop", "x")).await(Duration.ofSeconds(10));
  }

  /** Raw executor: one no-op agent call on a virtual thread, awaited. */
  @Benchmark
  @BenchmarkMode(Mode.SampleTime)
  @OutputTimeUnit(TimeUnit.MICROSECONDS)
  public AgentResult rawSingle() throws Exception {
    return executor.submit(() -> noop(new BareContext(1, "noop", "x"))).get();
  }

}
