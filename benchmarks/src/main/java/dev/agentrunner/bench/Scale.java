package dev.agentrunner.bench;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.RunListener;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.sqlite.SqliteRunStore;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;

/**
 * Figure 4: 100,000 concurrent IO-bound runs (the agent sleeps 1 s) on the SQLite store with
 * {@code maxConcurrency(100_000)}: do all finish, how long does it take, how much heap does it
 * use. The runs are queued first and then one runner starts them all, so all 100,000 are in
 * flight at once. Each side runs in a fresh JVM capped at {@code -Xmx1g}, so "finished" also
 * proves the 1 GiB bound and the heap figures are not polluted by the other figures. The
 * baseline is a raw virtual-thread executor running the same sleeping agent.
 */
final class Scale {
  static final int SUBMITTERS = 8;
  static final Duration SLEEP = Duration.ofSeconds(1);
  static final long HEAP_LIMIT = 1L << 30;

  private Scale() {}

  static void run(Mode mode, Report report, Path dir) throws Exception {
    int runs = mode.scaleRuns();
    System.err.printf("[4] %,d concurrent runs sleeping %s, each side in a fresh -Xmx1g JVM%n",
        runs, SLEEP);
    Map<String, String> raw = child("raw", runs, dir);
    Map<String, String> engine = child("engine", runs, dir);
    long finished = Long.parseLong(engine.getOrDefault("finished", "0"));
    long peakUsed = Long.parseLong(engine.getOrDefault("peakUsed", "-1"));
    long peakLive = Long.parseLong(engine.getOrDefault("peakAfterGc", "-1"));
    double wall = Double.parseDouble(engine.getOrDefault("wallNanos", "NaN"));
    double rawWall = Double.parseDouble(raw.getOrDefault("wallNanos", "NaN"));
    boolean ok = "true".equals(engine.get("ok")) && finished == runs && peakUsed <= HEAP_LIMIT;
    report.row("4", String.format(Locale.ROOT, "scale: %,d queued runs (agent sleeps 1 s), one"
            + " runner with maxConcurrency %,d, SQLite FULL, -Xmx1g: finished, most running at"
            + " once, wall time (runner start → last finish), peak heap used (live after GC)",
            runs, runs),
        String.format(Locale.ROOT, "%,d/%,d finished, %,d at once, %s, %s (%s)", finished, runs,
            Long.parseLong(engine.getOrDefault("peakRunning", "0")), Fmt.seconds(wall),
            Fmt.mib(peakUsed), Fmt.mib(peakLive)),
        String.format(Locale.ROOT, "raw executor: %,d at once, %s, %s (%s)",
            Long.parseLong(raw.getOrDefault("peakRunning", "0")), Fmt.seconds(rawWall),
            Fmt.mib(Long.parseLong(raw.getOrDefault("peakUsed", "-1"))),
            Fmt.mib(Long.parseLong(raw.getOrDefault("peakAfterGc", "-1")))),
        "wall " + Fmt.ratio(wall / rawWall) + "× raw",
        "all finish, peak heap ≤ 1 GiB", ok ? Report.Verdict.MET : Report.Verdict.MISSED);
    if (engine.containsKey("submitNanos")) {
      report.note(String.format(Locale.ROOT, "4: queueing the %,d runs through the store's"
              + " insert (8 threads, group commit) took %s (%s) before the runner started; the"
              + " raw executor took %s to accept them",
          runs, Fmt.seconds(Double.parseDouble(engine.get("submitNanos"))),
          Fmt.rate(runs * 1e9 / Double.parseDouble(engine.get("submitNanos"))),
          Fmt.seconds(Double.parseDouble(raw.getOrDefault("submitNanos", "NaN")))));
      report.note(String.format(Locale.ROOT, "4: after the runner started, its first run started"
              + " at %s and its last (the %,dth) at %s; the last finished at %s",
          Fmt.seconds(Double.parseDouble(engine.getOrDefault("firstStartNanos", "NaN"))), runs,
          Fmt.seconds(Double.parseDouble(engine.getOrDefault("lastStartNanos", "NaN"))),
          Fmt.seconds(wall)));
    }
    if (engine.containsKey("error")) {
      report.note("4: the engine side failed: " + engine.get("error"));
    }
  }

  /** Runs one side in a fresh JVM and parses its "RESULT key=value ..." line. */
  private static Map<String, String> child(String side, int runs, Path dir) throws Exception {
    Process p = LoadHarness.startChild("1g", "scale-child", side, Integer.toString(runs),
        dir.toString());
    Map<String, String> result = new HashMap<>();
    try (BufferedReader out = new BufferedReader(
        new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = out.readLine()) != null) {
        if (line.startsWith("RESULT ")) {
          for (String kv : line.substring(7).split(" ")) {
            int eq = kv.indexOf('=');
            result.put(kv.substring(0, eq), kv.substring(eq + 1));
          }
        } else {
          System.err.println("    " + line);
        }
      }
    }
    int exit = p.waitFor();
    if (exit != 0) {
      result.put("ok", "false");
      result.putIfAbsent("error", side + " JVM exited with " + exit);
    }
    System.err.println("[4] " + side + ": " + result);
    return result;
  }

  /** The child JVM's side: prints one RESULT line. */
  static void childMain(String side, int runs, Path dir) throws Exception {
    LongAdder finished = new LongAdder();
    AtomicLong lastFinish = new AtomicLong();
    StringBuilder out = new StringBuilder("RESULT");
    long[] start = {System.nanoTime()};
    AtomicLong peakRunning = new AtomicLong();
    AtomicLong firstStart = new AtomicLong();
    AtomicLong lastStart = new AtomicLong();
    try (HeapWatch heap = new HeapWatch()) {
      try {
        long submitted = side.equals("engine")
            ? engine(runs, dir, finished, lastFinish, start, peakRunning, firstStart, lastStart)
            : raw(runs, finished, lastFinish, start, peakRunning);
        out.append(" ok=true submitNanos=").append(submitted);
      } catch (Throwable e) {
        out.append(" ok=false error=").append(String.valueOf(e).replace(' ', '_'));
        e.printStackTrace();
      }
      out.append(" finished=").append(finished.sum())
          .append(" wallNanos=").append(lastFinish.get() - start[0])
          .append(" peakRunning=").append(peakRunning.get())
          .append(" firstStartNanos=").append(sinceStart(firstStart, start[0]))
          .append(" lastStartNanos=").append(sinceStart(lastStart, start[0]))
          .append(" peakUsed=").append(heap.peakUsed())
          .append(" peakAfterGc=").append(heap.peakAfterGc())
          .append(" peakCommitted=").append(heap.peakCommitted())
          .append(" maxHeap=").append(heap.maxHeap());
    }
    System.out.println(out);
    System.out.flush();
  }

  /**
   * Queues every run first (through the store's SPI, before any runner exists), then starts one
   * runner allowed to run all of them: so all of them really are in flight at once, which a
   * submit loop slower than 100,000 runs/s could never reach with 1-second runs. The wall time
   * counts from building the runner (its first claim) to the last finish.
   *
   * @return how long queueing took, in nanoseconds
   */
  private static long engine(int runs, Path dir, LongAdder finished, AtomicLong lastFinish,
      long[] start, AtomicLong peakRunning, AtomicLong firstStart, AtomicLong lastStart)
      throws Exception {
    Path file = dir.resolve("scale-" + ProcessHandle.current().pid() + ".db");
    AtomicLong running = new AtomicLong();
    AtomicLong startedAll = new AtomicLong();
    RunListener listener = new RunListener() {
      @Override
      public void onStarted(RunRecord run) {
        long now = running.incrementAndGet();
        peakRunning.accumulateAndGet(now, Math::max);
        firstStart.compareAndSet(0, System.nanoTime());
        if (startedAll.incrementAndGet() == runs) {
          lastStart.set(System.nanoTime());
        }
      }

      @Override
      public void onFinished(RunRecord run) {
        running.decrementAndGet();
        lastFinish.accumulateAndGet(System.nanoTime(), Math::max);
        finished.increment();
      }
    };
    try (SqliteRunStore store = SqliteRunStore.open(file)) {
      long queueStart = System.nanoTime();
      submitAll(runs, () -> store.insert(NewRun.of(RunRequest.of("sleeper", "x"))));
      long queueNanos = System.nanoTime() - queueStart;
      System.gc(); // the measured phase starts from the queue's live set, not the filler's garbage
      start[0] = System.nanoTime();
      AgentRunner runner = AgentRunner.builder().store(store).maxConcurrency(runs)
          .agent("sleeper", ctx -> {
            Thread.sleep(SLEEP);
            return AgentResult.of("");
          })
          .listener(listener).build();
      try {
        awaitAll(finished, runs);
      } finally {
        runner.close();
      }
      return queueNanos;
    } finally {
      RawSqlite.delete(file);
    }
  }

  /** The same sleeping work on a raw virtual-thread executor; returns the submit time. */
  private static long raw(int runs, LongAdder finished, AtomicLong lastFinish, long[] start,
      AtomicLong peakRunning) throws Exception {
    AtomicLong running = new AtomicLong();
    start[0] = System.nanoTime();
    try (ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor()) {
      long submitNanos = submitAll(runs, () -> executor.execute(() -> {
        peakRunning.accumulateAndGet(running.incrementAndGet(), Math::max);
        try {
          Thread.sleep(SLEEP);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        running.decrementAndGet();
        lastFinish.accumulateAndGet(System.nanoTime(), Math::max);
        finished.increment();
      }));
      awaitAll(finished, runs);
      return submitNanos;
    }
  }

  /** Submits {@code runs} from {@link #SUBMITTERS} threads; returns the nanos it took. */
  private static long submitAll(int runs, Runnable submit) throws Exception {
    long start = System.nanoTime();
    CountDownLatch done = new CountDownLatch(SUBMITTERS);
    AtomicLong left = new AtomicLong(runs);
    Throwable[] failure = new Throwable[1];
    for (int t = 0; t < SUBMITTERS; t++) {
      Thread.ofPlatform().start(() -> {
        try {
          while (left.getAndDecrement() > 0) {
            submit.run();
          }
        } catch (Throwable e) {
          failure[0] = e;
        } finally {
          done.countDown();
        }
      });
    }
    done.await();
    if (failure[0] != null) {
      throw new IllegalStateException("a submit failed", failure[0]);
    }
    return System.nanoTime() - start;
  }

  private static void awaitAll(LongAdder finished, int runs) {
    long deadline = System.nanoTime() + Duration.ofMinutes(10).toNanos();
    while (finished.sum() < runs) {
      if (System.nanoTime() - deadline > 0) {
        throw new IllegalStateException(finished.sum() + " of " + runs + " finished in 10 min");
      }
      LockSupport.parkNanos(1_000_000L);
    }
  }

  /** Nanoseconds from {@code start} to the instant held, or -1 if none was recorded. */
  private static long sinceStart(AtomicLong instant, long start) {
    return instant.get() == 0 ? -1 : instant.get() - start;
  }

  /** Makes sure the data directory exists (the child gets it from the parent). */
  static Path dir(String path) throws Exception {
    return Files.createDirectories(Path.of(path));
  }
}
