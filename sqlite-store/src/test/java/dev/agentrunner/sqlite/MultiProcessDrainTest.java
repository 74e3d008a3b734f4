package dev.agentrunner.sqlite;

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
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * I2 and I8 across processes: four worker JVMs drain one SQLite file while this test submits;
 * one worker is killed with SIGKILL mid-drain. Afterwards every run is terminal, no attempt of
 * any run was executed twice, and the dead worker's runs were recovered and finished by the
 * others.
 */
@Timeout(170)
class MultiProcessDrainTest {
  private static final int RUNS = 20_000;
  private static final int WORKERS = 4;
  private static final long LEASE_MS = 2_000;

  @TempDir Path dir;
  @RegisterExtension final ChildJvm processes = new ChildJvm();

  @Test
  void fourWorkerProcessesDrainOneFileAndSurviveAKill() throws Exception {
    Path db = dir.resolve("drain.db");
    try (SqliteRunStore store = SqliteRunStore.open(db)) {
      List<Path> logs = new ArrayList<>();
      for (int w = 0; w < WORKERS; w++) {
        Path log = dir.resolve("worker-" + w + ".log");
        logs.add(log);
        startWorker(db, "worker-" + w, log, dir.resolve("worker-" + w + ".out"));
      }

      // Submit while the workers drain. Three attempts, so a run lost with a worker is re-run.
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

      // Kill worker-0 while it holds runs, mid-drain. It is frozen first (SIGSTOP), so that
      // the runs it holds cannot finish between reading them and the SIGKILL; if it happens to
      // hold none at that instant (all its runs just ended together), it goes on and the test
      // tries again. `kill -STOP` may return before every thread of the target has stopped, and a
      // thread still running can publish a commit after the read (seen once in CI: a run read as
      // held turned out finished by the victim, never recovered), so the read waits until all
      // have stopped.
      String victim = "worker-0";
      Set<Long> heldByVictim = Set.of();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (System.nanoTime() < deadline) {
        if (lines(logs.get(0)) > 300 && running(store, victim).size() >= 8) {
          signal(processes.get(0), "STOP");
          awaitStopped(processes.get(0));
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

      // Everything ends: the survivors finish their runs and recover the dead worker's.
      deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      while (store.stats().total().finished() < RUNS) {
        assertThat(System.nanoTime()).as("all runs terminal in time; stats %s", store.stats())
            .isLessThan(deadline);
        Thread.sleep(100);
      }
      for (int w = 1; w < WORKERS; w++) {
        processes.get(w).getOutputStream().close(); // graceful stop
      }
      for (int w = 1; w < WORKERS; w++) {
        assertThat(processes.get(w).waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(processes.get(w).exitValue()).as("exit of worker-%s", w).isZero();
      }

      for (int worker = 0; worker < WORKERS; worker++) {
        int w = worker;
        // for the report: how the work spread, and anything the workers complained about
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
      List<RunRecord> all = ChildJvm.allRuns(store, RunQuery.all().limit(RunQuery.MAX_LIMIT));
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

  private Process startWorker(Path db, String id, Path log, Path out) throws IOException {
    return processes.start(DrainWorkerMain.class, out,
        db.toString(), id, log.toString(), Long.toString(LEASE_MS));
  }

  /** Waits until every thread of {@code process} is stopped (state T in /proc). */
  private static void awaitStopped(Process process) throws Exception {
    Path tasks = Path.of("/proc", Long.toString(process.pid()), "task");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (true) {
      boolean allStopped = true;
      try (var threads = Files.list(tasks)) {
        for (Path task : threads.toList()) {
          String stat;
          try {
            stat = Files.readString(task.resolve("stat"));
          } catch (java.nio.file.NoSuchFileException gone) {
            continue; // a thread that ended meanwhile
          }
          // the state is the first field after the command name, which ends with ") "
          char state = stat.charAt(stat.lastIndexOf(')') + 2);
          allStopped &= state == 'T' || state == 't';
        }
      }
      if (allStopped) {
        return;
      }
      assertThat(System.nanoTime()).as("threads of %s stopped", process.pid())
          .isLessThan(deadline);
      Thread.sleep(1);
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

  private static Set<Long> running(SqliteRunStore store, String owner) {
    Set<Long> ids = new HashSet<>();
    ChildJvm.allRuns(store, RunQuery.agent("job").status(RunStatus.RUNNING)
            .limit(RunQuery.MAX_LIMIT)).stream()
        .filter(r -> owner.equals(r.owner())).forEach(r -> ids.add(r.id()));
    return ids;
  }

}
