package dev.agentrunner.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunEvent;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.spi.NewRun;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Several machines, one queue, simulated by worker JVMs on one schema:
 *
 * <ul>
 *   <li>I2 and I8 across processes: four worker JVMs drain 20,000 runs while this test submits
 *       them; one worker is killed with SIGKILL mid-drain. Afterwards every run is terminal, no
 *       attempt of any run was executed twice, and the dead worker's runs were recovered and
 *       finished by the others.
 *   <li>Start latency across processes with a 5 s poll interval: LISTEN/NOTIFY must make it far
 *       shorter than the poll. Printed (p50, p99), not asserted: it depends on the machine.
 * </ul>
 */
class MultiProcessTest {
  private static final String SCHEMA = PgTestDatabase.schemaName("multi");
  private static final int RUNS = 20_000;
  private static final int WORKERS = 4;
  private static final long LEASE_MS = 3_000;

  @TempDir Path dir;
  private final List<Process> processes = new ArrayList<>();

  @BeforeEach
  void dropSchemaBefore() throws Exception {
    PgTestDatabase.url(); // skip (or fail under CI) before starting anything
    PgTestDatabase.dropSchema(SCHEMA);
  }

  @AfterEach
  void stopAll() throws Exception {
    processes.forEach(Process::destroyForcibly);
    for (Process p : processes) {
      p.waitFor(10, TimeUnit.SECONDS);
    }
    PgTestDatabase.dropSchema(SCHEMA);
  }

  @Test
  @Timeout(150)
  void fourWorkerProcessesDrainOneQueueAndSurviveAKill() throws Exception {
    try (PostgresRunStore store = PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA)
        .poolSize(8).build()) {
      List<Path> logs = new ArrayList<>();
      for (int w = 0; w < WORKERS; w++) {
        Path log = dir.resolve("worker-" + w + ".log");
        logs.add(log);
        processes.add(startWorker("worker-" + w, log, 250));
      }
      for (int w = 0; w < WORKERS; w++) {
        awaitReady(processes.get(w), "worker-" + w);
      }

      // Submit while the workers drain. Three attempts, so a run lost with a worker is re-run.
      long start = System.nanoTime();
      ExecutorService submitters = Executors.newFixedThreadPool(4);
      List<Future<?>> submitting = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        int thread = t;
        submitting.add(submitters.submit(() -> {
          for (int i = 0; i < RUNS / 4; i++) {
            store.insert(new NewRun(RunRequest.of("job", thread + ":" + i), 3));
          }
          return null;
        }));
      }

      // Kill worker-0 while it holds runs, mid-drain. It is frozen first (SIGSTOP). Unlike a
      // SQLite writer, the frozen JVM's last statements live on in their server processes: one
      // sent just before still runs to its commit (a finish, say). Wait for those, then take
      // what it holds and kill it; if it holds nothing at that instant (its runs all ended
      // together), it goes on and the test tries again.
      String victim = "worker-0";
      Set<Long> heldByVictim = Set.of();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (System.nanoTime() < deadline) {
        if (lines(logs.get(0)) > 300 && running(store, victim).size() >= 8) {
          signal(processes.get(0), "STOP");
          Thread.sleep(500);
          Set<Long> held = running(store, victim);
          if (!held.isEmpty()) {
            processes.get(0).destroyForcibly().waitFor();
            heldByVictim = held;
            break;
          }
          signal(processes.get(0), "CONT");
        }
        Thread.sleep(2);
      }
      assertThat(heldByVictim).as("runs the killed worker held").isNotEmpty();

      for (Future<?> f : submitting) {
        f.get(120, TimeUnit.SECONDS);
      }
      submitters.shutdown();
      double submitSeconds = (System.nanoTime() - start) / 1e9;

      // Everything ends: the survivors finish their runs and recover the dead worker's.
      deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      while (store.stats().total().finished() < RUNS) {
        assertThat(System.nanoTime()).as("all runs terminal in time; stats %s", store.stats())
            .isLessThan(deadline);
        Thread.sleep(100);
      }
      double drainSeconds = (System.nanoTime() - start) / 1e9;
      for (int w = 1; w < WORKERS; w++) {
        processes.get(w).getOutputStream().close(); // graceful stop
      }
      for (int w = 1; w < WORKERS; w++) {
        assertThat(processes.get(w).waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(processes.get(w).exitValue()).as("exit of worker-%s", w).isZero();
      }

      System.out.printf("drain: %d runs submitted in %.1f s and all terminal after %.1f s"
          + " (%.0f runs/s end to end), 4 worker JVMs, one killed holding %d runs%n",
          RUNS, submitSeconds, drainSeconds, RUNS / drainSeconds, heldByVictim.size());
      for (int worker = 0; worker < WORKERS; worker++) {
        int w = worker;
        System.out.println("worker-" + w + " executed " + lines(logs.get(w)) + " attempts");
        try (var out = Files.lines(dir.resolve("worker-" + w + ".out"))) {
          out.filter(l -> l.contains("WARN") || l.contains("ERROR") || l.contains("Exception"))
              .limit(20).forEach(l -> System.out.println("  worker-" + w + ": " + l));
        }
      }

      // No attempt of any run was executed twice, across all processes.
      Map<String, String> executedBy = new HashMap<>();
      for (int w = 0; w < WORKERS; w++) {
        for (String line : Files.readAllLines(logs.get(w))) {
          String previous = executedBy.putIfAbsent(line, "worker-" + w);
          assertThat(previous).as("run,attempt %s executed by %s and worker-%s", line, previous, w)
              .isNull();
        }
      }

      // Every run is terminal, succeeded, and its last attempt ran in its owner's process.
      List<RunRecord> all = scanAll(store);
      assertThat(all).hasSize(RUNS);
      for (RunRecord r : all) {
        assertThat(r.status()).as("run %s", r.id()).isEqualTo(RunStatus.SUCCEEDED);
        assertThat(executedBy.get(r.id() + "," + r.attempt())).as("executor of %s", r.id())
            .isEqualTo(r.owner());
        assertThat(r.output()).isEqualTo("done by " + r.owner());
      }

      // The killed worker's runs were recovered and finished by the others.
      for (long id : heldByVictim) {
        RunRecord r = store.find(id).orElseThrow();
        assertThat(r.owner()).as("owner of %s", id).isNotEqualTo(victim);
        assertThat(r.attempt()).isGreaterThanOrEqualTo(2);
        assertThat(store.events(id)).extracting(RunEvent::type).contains("recovered");
        assertThat(store.events(id)).filteredOn(e -> e.type().equals("recovered"))
            .allSatisfy(e -> assertThat(e.data()).contains(victim).contains("lost"));
      }
    }
  }

  @Test
  @Timeout(90)
  void aRunSubmittedOnOneJvmStartsOnAnotherLongBeforeThePollInterval() throws Exception {
    int samples = 200;
    long pollMs = 5_000;
    try (PostgresRunStore store = PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA)
        .poolSize(2).build()) {
      processes.add(startWorker("worker-b", dir.resolve("b.log"), pollMs));
      awaitReady(processes.get(0), "worker-b");
      // Warm-up: the worker's first claims run interpreted code.
      for (int i = 0; i < 20; i++) {
        awaitStart(store, store.insert(NewRun.of(RunRequest.of("ping", "warm-up"))).id());
      }
      long[] micros = new long[samples];
      for (int i = 0; i < samples; i++) {
        Thread.sleep(ThreadLocalRandom.current().nextInt(5, 25)); // each run its own wake-up
        RunRecord submitted = store.insert(NewRun.of(RunRequest.of("ping", "sample-" + i)));
        RunRecord started = awaitStart(store, submitted.id());
        // Both instants are the database's clock: no skew between the two JVMs enters here.
        micros[i] = Duration.between(submitted.createdAt(), started.startedAt()).toNanos() / 1000;
      }
      Arrays.sort(micros);
      System.out.printf("start latency, submit on this JVM to start on worker-b (poll interval"
          + " %d ms), %d runs: p50 %.1f ms, p99 %.1f ms, max %.1f ms%n", pollMs, samples,
          micros[samples / 2] / 1000.0, micros[samples * 99 / 100] / 1000.0,
          micros[samples - 1] / 1000.0);
      assertThat(micros[0]).isNotNegative();
    }
  }

  private static RunRecord awaitStart(PostgresRunStore store, long id) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (true) {
      RunRecord r = store.find(id).orElseThrow();
      if (r.status() != RunStatus.QUEUED) {
        // startedAt of the run's one attempt: read it from its started event if it already ended
        return r.startedAt() != null ? r : withStart(store, r);
      }
      assertThat(System.nanoTime()).as("run %d started in time", id).isLessThan(deadline);
      Thread.sleep(1);
    }
  }

  private static RunRecord withStart(PostgresRunStore store, RunRecord r) {
    RunEvent started = store.events(r.id()).stream().filter(e -> e.type().equals("started"))
        .findFirst().orElseThrow();
    return new RunRecord(r.id(), r.agent(), r.status(), r.input(), r.output(), r.error(),
        r.serialKey(), r.idempotencyKey(), r.priority(), r.attempt(), r.maxAttempts(),
        r.createdAt(), r.notBefore(), started.at(), r.finishedAt(), r.owner(), r.leaseUntil(),
        r.cancelRequested(), r.usage());
  }

  private Process startWorker(String id, Path log, long pollMs) throws IOException {
    List<String> command = new ArrayList<>(List.of(
        ProcessHandle.current().info().command().orElse("java"), "-Xmx256m", "-cp",
        System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
        DrainWorkerMain.class.getName(),
        PgTestDatabase.url(), SCHEMA, id, log.toString(), Long.toString(LEASE_MS),
        Long.toString(pollMs)));
    return new ProcessBuilder(command)
        .redirectErrorStream(true)
        .redirectOutput(dir.resolve(id + ".out").toFile())
        .start();
  }

  /** Waits until the worker says it is ready (its listener is up). */
  private void awaitReady(Process p, String id) throws Exception {
    Path out = dir.resolve(id + ".out");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (!Files.exists(out) || Files.readAllLines(out).stream()
        .noneMatch(l -> l.startsWith("ready "))) {
      assertThat(p.isAlive()).as("%s is alive; its output: %s", id,
          Files.exists(out) ? Files.readString(out) : "none").isTrue();
      assertThat(System.nanoTime()).as("%s ready in time", id).isLessThan(deadline);
      Thread.sleep(20);
    }
  }

  private static void signal(Process process, String signal) throws Exception {
    Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(process.pid()))
        .inheritIO().start();
    assertThat(kill.waitFor()).as("kill -%s %s", signal, process.pid()).isZero();
  }

  private static long lines(Path log) throws IOException {
    if (!Files.exists(log)) {
      return 0;
    }
    try (var s = Files.lines(log)) {
      return s.count();
    }
  }

  private static Set<Long> running(PostgresRunStore store, String owner) {
    Set<Long> ids = new HashSet<>();
    Optional<String> cursor = Optional.empty();
    do {
      RunQuery q = RunQuery.agent("job").status(RunStatus.RUNNING).limit(RunQuery.MAX_LIMIT);
      var page = store.query(cursor.map(q::after).orElse(q));
      page.items().stream().filter(r -> owner.equals(r.owner())).forEach(r -> ids.add(r.id()));
      cursor = page.nextCursor();
    } while (cursor.isPresent());
    return ids;
  }

  private static List<RunRecord> scanAll(PostgresRunStore store) {
    List<RunRecord> all = new ArrayList<>();
    Optional<String> cursor = Optional.empty();
    do {
      RunQuery q = RunQuery.all().limit(RunQuery.MAX_LIMIT);
      var page = store.query(cursor.map(q::after).orElse(q));
      all.addAll(page.items());
      cursor = page.nextCursor();
    } while (cursor.isPresent());
    return all;
  }
}
