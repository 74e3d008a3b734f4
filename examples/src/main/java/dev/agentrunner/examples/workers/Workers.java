package dev.agentrunner.examples.workers;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.AgentSpec;
import dev.agentrunner.AgentStats;
import dev.agentrunner.Page;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import dev.agentrunner.postgres.PostgresRunStore;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import dev.agentrunner.sqlite.SqliteRunStore;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Several JVM processes sharing one store: a producer queues jobs, workers in other processes
 * claim and run them, each printing who ran what. A claim moves a run from QUEUED to RUNNING in
 * one transaction, so no job runs twice however the workers race: the bug the seed platform
 * fixed by hand with a conditional {@code UPDATE}, here a property of every store.
 *
 * <pre>
 * Workers launch   [--workers 3] [--runs 60] STORE   1 producer + N workers as child JVMs, then
 *                                                    a summary from their output and the store
 * Workers producer STORE [--runs 60] [--batch ID]    queue jobs and exit
 * Workers worker   STORE --name NAME [--expect N]    run jobs; with --expect, exit once N jobs
 *                                                    are finished and none waits, else at Ctrl+C
 *
 * STORE: --db FILE                        a SQLite file, one machine (launch: default a new
 *                                         temporary file)
 *        --postgres JDBC_URL [--schema S] PostgreSQL, any number of machines (default schema
 *                                         agentrunner_workers)
 * </pre>
 *
 * <p>A producer registers no agent, and a runner always executes what it may claim, so the
 * producer writes through the store's SPI ({@link RunStore#insert(NewRun)}): the same insert a
 * runner's {@code submit} makes.
 */
public final class Workers {
  /** The agent every job runs. */
  static final String AGENT = "task";

  /** The schema the PostgreSQL mode uses unless told otherwise. */
  public static final String DEFAULT_SCHEMA = "agentrunner_workers";

  private static final Pattern RAN = Pattern.compile("^\\[([^\\]]+)\\] ran run #(\\d+) ");
  private static final Pattern JOB = Pattern.compile("\"job\":(\\d+)");

  private Workers() {}

  /**
   * Where the processes keep their runs: a SQLite file, or a schema of a PostgreSQL database.
   *
   * @param db the SQLite file, or null
   * @param postgresUrl the PostgreSQL JDBC URL, or null
   * @param schema the PostgreSQL schema
   */
  public record Store(Path db, String postgresUrl, String schema) {

    /** A SQLite file. */
    public static Store sqlite(Path db) {
      return new Store(db.toAbsolutePath(), null, null);
    }

    /** A PostgreSQL schema. */
    public static Store postgres(String jdbcUrl, String schema) {
      return new Store(null, jdbcUrl, schema == null ? DEFAULT_SCHEMA : schema);
    }

    RunStore open() {
      return postgresUrl != null
          ? PostgresRunStore.builder(postgresUrl).schema(schema).poolSize(4).build()
          : SqliteRunStore.open(db);
    }

    List<String> args() {
      return postgresUrl != null
          ? List.of("--postgres", postgresUrl, "--schema", schema)
          : List.of("--db", db.toString());
    }

    @Override
    public String toString() {
      return postgresUrl != null ? "PostgreSQL " + postgresUrl + ", schema " + schema
          : "SQLite " + db;
    }
  }

  /** Dispatches on the mode; see the class comment. */
  public static void main(String[] args) throws Exception {
    if (args.length == 0) {
      System.err.println("usage: Workers launch|producer|worker [options]; see the class comment");
      System.exit(2);
    }
    Map<String, String> opts = options(args);
    switch (args[0]) {
      case "launch" -> {
        boolean named = !opts.getOrDefault("postgres", "").isBlank() || opts.containsKey("db");
        Store store = named ? store(opts)
            : Store.sqlite(Files.createTempDirectory("agentrunner-workers").resolve("runs.db"));
        Summary summary = launch(
            Integer.parseInt(opts.getOrDefault("workers", "3")),
            Integer.parseInt(opts.getOrDefault("runs", "60")),
            store, System.out);
        System.exit(summary.ok() ? 0 : 1);
      }
      case "producer" -> produce(store(opts), Integer.parseInt(opts.getOrDefault("runs", "60")),
          opts.getOrDefault("batch", "batch-" + UUID.randomUUID().toString().substring(0, 8)));
      case "worker" -> work(store(opts), required(opts, "name"),
          Integer.parseInt(opts.getOrDefault("expect", "0")));
      default -> {
        System.err.println("unknown mode \"" + args[0] + "\"; use launch, producer or worker");
        System.exit(2);
      }
    }
  }

  // ---- producer ----

  /**
   * Queues {@code runs} jobs, in bursts, the way work trickles in. Each job carries an
   * idempotency key, so a producer restarted halfway queues nothing twice, and may take up to
   * three attempts, so that the job of a worker that died is run again once its lease expires.
   */
  static void produce(Store target, int runs, String batch) throws InterruptedException {
    try (RunStore store = target.open()) {
      for (int job = 1; job <= runs; job++) {
        String input = "{\"batch\":\"" + batch + "\",\"job\":" + job + "}";
        RunRequest request = RunRequest.of(AGENT, input).withIdempotencyKey(batch + "/job-" + job);
        RunRecord run = store.insert(new NewRun(request, 3));
        System.out.println("[producer] queued job " + job + " as run #" + run.id());
        if (job % 10 == 0) {
          Thread.sleep(ThreadLocalRandom.current().nextLong(50, 150));
        }
      }
    }
    System.out.println("[producer] done: " + runs + " jobs queued");
  }

  // ---- worker ----

  /**
   * Runs jobs until at least {@code expect} jobs are finished in the store and none is waiting
   * (0: until the JVM is stopped). Jobs queued by other processes are found by polling every
   * 100 ms (a PostgreSQL store also wakes the runner at once through LISTEN/NOTIFY).
   */
  static void work(Store target, String name, int expect) throws InterruptedException {
    AtomicInteger ran = new AtomicInteger();
    RunStore store = target.open();
    AgentRunner runner = AgentRunner.builder()
        .store(store)
        .workerId(name)
        .maxConcurrency(4)
        .pollInterval(Duration.ofMillis(100))
        .leaseDuration(Duration.ofSeconds(10))
        .agent(AgentSpec.named(AGENT), ctx -> {
          long started = System.nanoTime();
          Thread.sleep(ThreadLocalRandom.current().nextLong(30, 150)); // the model call
          long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
          ran.incrementAndGet();
          Matcher job = JOB.matcher(ctx.input());
          System.out.println("[" + name + "] ran run #" + ctx.runId() + " (job "
              + (job.find() ? job.group(1) : "?") + ", attempt " + ctx.attempt() + ") in " + ms
              + " ms");
          return AgentResult.of("{\"worker\":\"" + name + "\"}", Usage.of(100, 20, 600));
        })
        .build();
    CountDownLatch stopped = new CountDownLatch(1);
    Thread hook = new Thread(() -> {
      runner.close(); // running jobs finish; claimed ones go back to the queue
      store.close();
      stopped.countDown();
    }, name + "-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);
    System.out.println("[" + name + "] started (pid " + ProcessHandle.current().pid() + ")");
    if (expect <= 0) {
      stopped.await();
      return;
    }
    while (true) {
      AgentStats s = runner.stats().agent(AGENT);
      if (s.finished() >= expect && s.queued() == 0 && s.running() == 0) {
        break;
      }
      Thread.sleep(100); // the store is the only signal shared by these processes
    }
    Runtime.getRuntime().removeShutdownHook(hook);
    hook.run();
    System.out.println("[" + name + "] done: ran " + ran.get() + " runs");
  }

  // ---- launcher ----

  /**
   * What the launcher saw.
   *
   * @param store where the runs were kept
   * @param queued runs the producer queued (runs of this launch in the store)
   * @param succeeded of those, runs that succeeded
   * @param perWorker executions per worker, from the workers' own output
   * @param ranTwice run ids printed as run by more than one execution
   * @param startedTwice run ids whose history has more than one start
   * @param exitCodes each child's exit code, producer last
   */
  public record Summary(Store store, int queued, long succeeded, Map<String, Integer> perWorker,
      List<Long> ranTwice, List<Long> startedTwice, List<Integer> exitCodes) {

    /** Executions printed by all workers together. */
    public int executions() {
      return perWorker.values().stream().mapToInt(Integer::intValue).sum();
    }

    /** Every job ran exactly once, succeeded, and every child exited cleanly. */
    public boolean ok() {
      return ranTwice.isEmpty() && startedTwice.isEmpty() && succeeded == queued
          && executions() == queued && exitCodes.stream().allMatch(c -> c == 0);
    }
  }

  /** {@link #launch(int, int, Store, PrintStream)} on a SQLite file. */
  public static Summary launch(int workers, int runs, Path db, PrintStream out)
      throws IOException, InterruptedException {
    return launch(workers, runs, Store.sqlite(db), out);
  }

  /**
   * Starts {@code workers} worker JVMs and one producer JVM on {@code store}, echoes their
   * output to {@code out}, waits for them, and summarizes who ran what, from their output and
   * from the store. Runs already in the store are left out of the summary.
   */
  public static Summary launch(int workers, int runs, Store store, PrintStream out)
      throws IOException, InterruptedException {
    if (workers < 1 || runs < 1) {
      throw new IllegalArgumentException("workers and runs must be positive");
    }
    long finishedBefore;
    long lastIdBefore;
    // Opening once creates or migrates the schema before the children race to.
    try (RunStore s = store.open()) {
      finishedBefore = s.stats().agent(AGENT).finished();
      lastIdBefore = s.query(RunQuery.agent(AGENT).limit(1)).items().stream()
          .mapToLong(RunRecord::id).findFirst().orElse(0);
    }
    out.println("Shared store: " + store);
    out.println("Starting " + workers + " workers and 1 producer of " + runs + " jobs...");

    Map<Long, List<String>> executions = new HashMap<>();
    List<Process> children = new ArrayList<>();
    List<Thread> readers = new ArrayList<>();
    for (int w = 1; w <= workers; w++) {
      children.add(child(store, "worker", "--name", "worker-" + w,
          "--expect", Long.toString(finishedBefore + runs)));
    }
    String batch = "batch-" + UUID.randomUUID().toString().substring(0, 8);
    children.add(child(store, "producer", "--runs", Integer.toString(runs), "--batch", batch));
    for (Process p : children) {
      readers.add(Thread.ofVirtual().start(() -> echo(p, out, executions)));
    }
    List<Integer> exitCodes = new ArrayList<>();
    for (Process p : children) {
      if (!p.waitFor(2, TimeUnit.MINUTES)) {
        out.println("a child did not finish within 2 minutes; stopping it");
        p.destroy();
        p.waitFor(30, TimeUnit.SECONDS);
      }
      exitCodes.add(p.isAlive() ? -1 : p.exitValue());
    }
    for (Thread r : readers) {
      r.join();
    }
    return summarize(store, lastIdBefore, executions, exitCodes, out);
  }

  private static Summary summarize(Store target, long lastIdBefore,
      Map<Long, List<String>> executions, List<Integer> exitCodes, PrintStream out) {
    Map<String, Integer> perWorker = new TreeMap<>();
    List<Long> ranTwice = new ArrayList<>();
    synchronized (executions) {
      executions.forEach((run, by) -> {
        by.forEach(w -> perWorker.merge(w, 1, Integer::sum));
        if (by.size() > 1) {
          ranTwice.add(run);
        }
      });
    }
    List<Long> startedTwice = new ArrayList<>();
    int queued = 0;
    long succeeded = 0;
    try (RunStore store = target.open()) {
      // Newest first, down to the runs that were there before this launch.
      RunQuery query = RunQuery.agent(AGENT).limit(RunQuery.MAX_LIMIT);
      boolean more = true;
      while (more) {
        Page<RunRecord> page = store.query(query);
        for (RunRecord run : page.items()) {
          if (run.id() <= lastIdBefore) {
            more = false;
            break;
          }
          queued++;
          succeeded += run.status() == RunStatus.SUCCEEDED ? 1 : 0;
          long starts = store.events(run.id()).stream()
              .filter(e -> e.type().equals("started")).count();
          if (starts != 1) {
            startedTwice.add(run.id());
          }
        }
        more = more && page.nextCursor().isPresent();
        if (more) {
          query = query.after(page.nextCursor().get());
        }
      }
    }
    Summary s = new Summary(target, queued, succeeded, perWorker, ranTwice, startedTwice,
        exitCodes);
    out.println();
    out.println("Runs per worker (from their output):");
    perWorker.forEach((w, n) -> out.printf("  %-10s %3d%n", w, n));
    out.printf("%d jobs queued, %d succeeded, %d executions printed; ran twice: %s; "
            + "started twice (run history): %s%n", queued, succeeded, s.executions(),
        ranTwice.isEmpty() ? "none" : ranTwice, startedTwice.isEmpty() ? "none" : startedTwice);
    out.println(s.ok() ? "OK: every job ran exactly once." : "FAILED: see above.");
    return s;
  }

  /** A child JVM on this JVM's java and class path, running {@code Workers} in one mode. */
  private static Process child(Store store, String mode, String... args) throws IOException {
    List<String> command = new ArrayList<>();
    command.add(ProcessHandle.current().info().command()
        .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
    command.add("--enable-native-access=ALL-UNNAMED");
    command.add("-cp");
    command.add(System.getProperty("java.class.path"));
    command.add(Workers.class.getName());
    command.add(mode);
    command.addAll(store.args());
    command.addAll(List.of(args));
    return new ProcessBuilder(command)
        .redirectError(ProcessBuilder.Redirect.INHERIT)
        .start();
  }

  /** Copies a child's output to {@code out}, noting each "ran run #N" line by worker. */
  private static void echo(Process p, PrintStream out, Map<Long, List<String>> executions) {
    try (BufferedReader in = new BufferedReader(
        new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      for (String line; (line = in.readLine()) != null; ) {
        out.println(line);
        Matcher m = RAN.matcher(line);
        if (m.find()) {
          synchronized (executions) {
            executions.computeIfAbsent(Long.parseLong(m.group(2)), k -> new ArrayList<>())
                .add(m.group(1));
          }
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * The store named by the options. An empty {@code --postgres} counts as absent, so that a
   * Maven property left empty selects SQLite.
   */
  private static Store store(Map<String, String> opts) {
    String pg = opts.getOrDefault("postgres", "");
    if (!pg.isBlank()) {
      return Store.postgres(pg, opts.get("schema"));
    }
    return Store.sqlite(Path.of(required(opts, "db")));
  }

  private static Map<String, String> options(String[] args) {
    Map<String, String> opts = new HashMap<>();
    for (int i = 1; i < args.length; i++) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException("expected --option value, got \"" + args[i] + "\"");
      }
      opts.put(args[i].substring(2), args[++i]);
    }
    return opts;
  }

  private static String required(Map<String, String> opts, String name) {
    String value = opts.get(name);
    if (value == null) {
      throw new IllegalArgumentException("--" + name + " is required");
    }
    return value;
  }
}
