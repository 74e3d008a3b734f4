package dev.agentrunner.sqlite;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Schedule;
import dev.agentrunner.ScheduleSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * I10 across processes: two worker JVMs run the scheduler on one SQLite file for 30 s over a
 * schedule firing every second. Both poll for due schedules and wake exactly at each fire time,
 * so they race for every one. Afterwards there is exactly one run per fire time (their
 * idempotency keys are distinct, as the unique index guarantees, and there is no run without
 * one), and the fire times are consecutive seconds from the first to the last: none was fired
 * twice and none was lost. Each worker logs which fire times it won and which runs it executed
 * (see {@link ScheduleWorkerMain}); both must have taken part.
 */
@Timeout(90)
class MultiProcessScheduleTest {
  private static final int WORKERS = 2;
  private static final Duration RUN_FOR = Duration.ofSeconds(30);
  private static final Duration EVERY = Duration.ofSeconds(1);
  private static final long POLL_MS = 250;

  @TempDir Path dir;
  @RegisterExtension final ChildJvm processes = new ChildJvm();

  @Test
  void twoProcessesFireEachSecondOfA30sScheduleExactlyOnce() throws Exception {
    Path db = dir.resolve("schedule.db");
    try (SqliteRunStore store = SqliteRunStore.open(db)) {
      List<Path> logs = new ArrayList<>();
      for (int w = 0; w < WORKERS; w++) {
        Path log = dir.resolve("worker-" + w + ".log");
        logs.add(log);
        processes.start(ScheduleWorkerMain.class, out(w),
            db.toString(), "worker-" + w, log.toString(), Long.toString(POLL_MS));
      }
      for (int w = 0; w < WORKERS; w++) {
        awaitReady(w);
      }

      // Created by the test, on a whole second, so the fire times are whole seconds.
      Instant first = Instant.now().truncatedTo(ChronoUnit.SECONDS).plusSeconds(1);
      ScheduleSpec spec = ScheduleSpec.fixedRate("tick", "job", "{}", EVERY);
      store.putSchedule(new Schedule(spec, false, first, null, 0, 0)).orElseThrow();
      Instant end = first.plus(RUN_FOR);
      Thread.sleep(Math.max(0, Duration.between(Instant.now(), end).toMillis()) + 300);

      for (Process p : processes) {
        p.getOutputStream().close(); // graceful stop
      }
      for (int w = 0; w < WORKERS; w++) {
        assertThat(processes.get(w).waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(processes.get(w).exitValue()).as("exit of worker-%s", w).isZero();
      }

      List<RunRecord> runs = ChildJvm.allRuns(store, RunQuery.all().limit(RunQuery.MAX_LIMIT));
      List<RunRecord> scheduled = runs.stream()
          .filter(r -> r.idempotencyKey() != null && r.idempotencyKey().startsWith("schedule:tick@"))
          .toList();
      assertThat(runs).as("runs without a schedule key (a double fire)").hasSameSizeAs(scheduled);

      // One run per fire time: distinct keys, consecutive seconds from the first to the last.
      TreeMap<Long, Long> runByFireMs = new TreeMap<>();
      for (RunRecord r : scheduled) {
        long fireMs = Long.parseLong(r.idempotencyKey().substring("schedule:tick@".length()));
        assertThat(runByFireMs.put(fireMs, r.id())).as("second run for fire time %s", fireMs)
            .isNull();
      }
      assertThat(runByFireMs.firstKey()).as("the first fire time").isEqualTo(first.toEpochMilli());
      long last = runByFireMs.lastKey();
      List<Long> expected = new ArrayList<>();
      for (long t = first.toEpochMilli(); t <= last; t += EVERY.toMillis()) {
        expected.add(t);
      }
      assertThat(runByFireMs.keySet()).as("fire times, one per second").containsExactlyElementsOf(
          expected);
      assertThat(runByFireMs).as("fire times in %s", RUN_FOR)
          .hasSizeGreaterThanOrEqualTo((int) RUN_FOR.toSeconds());
      // Stopped gracefully: every run ran (a run fired just before the stop may still wait).
      assertThat(scheduled).allSatisfy(r -> assertThat(r.status()).as("run %s", r.id())
          .isIn(RunStatus.SUCCEEDED, RunStatus.QUEUED));
      long succeeded = scheduled.stream().filter(r -> r.status() == RunStatus.SUCCEEDED).count();

      // Who did what: fire times won (advanced), runs stored or found (enqueue), runs executed.
      Map<Long, String> advancedBy = new HashMap<>();
      Map<Long, String> executedBy = new HashMap<>();
      List<String> summary = new ArrayList<>();
      for (int w = 0; w < WORKERS; w++) {
        String worker = "worker-" + w;
        List<String> lines = Files.readAllLines(logs.get(w));
        long enqueued = 0;
        long advanced = 0;
        long executed = 0;
        for (String line : lines) {
          String[] f = line.split(" ");
          switch (f[0]) {
            case "enqueue" -> {
              enqueued++;
              assertThat(runByFireMs.get(Long.parseLong(f[1])))
                  .as("%s: run id of fire time %s", worker, f[1]).isEqualTo(Long.parseLong(f[2]));
            }
            case "advanced" -> {
              advanced++;
              assertThat(advancedBy.put(Long.parseLong(f[1]), worker))
                  .as("fire time %s advanced twice", f[1]).isNull();
            }
            case "executed" -> {
              executed++;
              assertThat(executedBy.put(Long.parseLong(f[1]), worker))
                  .as("run %s executed twice", f[1]).isNull();
            }
            default -> throw new AssertionError(worker + ": unexpected log line " + line);
          }
        }
        summary.add(worker + ": fired (won the advance) " + advanced + ", stored or found "
            + enqueued + " runs, executed " + executed);
        assertThat(advanced + executed).as("%s took part (fired or executed)", worker)
            .isPositive();
      }
      assertThat(advancedBy.keySet()).as("every fire time was advanced by exactly one worker")
          .containsExactlyInAnyOrderElementsOf(runByFireMs.keySet());
      assertThat(executedBy).as("every succeeded run was executed once").hasSize((int) succeeded);

      System.out.println("two-JVM schedule: " + runByFireMs.size() + " fire times "
          + Instant.ofEpochMilli(runByFireMs.firstKey()) + " .. "
          + Instant.ofEpochMilli(last) + ", " + scheduled.size() + " runs (" + succeeded
          + " succeeded)");
      summary.forEach(line -> System.out.println("  " + line));
      for (int w = 0; w < WORKERS; w++) {
        int worker = w;
        try (Stream<String> out = Files.lines(out(w))) {
          out.filter(l -> l.contains("WARN") || l.contains("ERROR") || l.contains("Exception"))
              .limit(20).forEach(l -> System.out.println("  worker-" + worker + ": " + l));
        }
      }
    }
  }

  private Path out(int worker) {
    return dir.resolve("worker-" + worker + ".out");
  }

  /** Waits for the worker's "ready" line: its runner, and so its scheduler, is running. */
  private void awaitReady(int worker) throws IOException, InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (!Files.exists(out(worker))
        || Files.readAllLines(out(worker)).stream().noneMatch(l -> l.startsWith("ready"))) {
      assertThat(processes.get(worker).isAlive()).as("worker-%s alive", worker).isTrue();
      assertThat(System.nanoTime()).as("worker-%s ready in time", worker).isLessThan(deadline);
      Thread.sleep(20);
    }
  }

}
