package dev.agentrunner.sqlite;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.spi.NewRun;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * I6 across processes: three worker JVMs share one file and 20 conversations (serial keys) of
 * 25 messages each. An OS file lock per key, taken inside the agent, detects any moment at which
 * two runs of one key execute at once in any process; the order log shows each key's runs
 * executed in submission (id) order.
 */
@Timeout(120)
class SerialKeyAcrossProcessesTest {
  private static final int WORKERS = 3;
  private static final int KEYS = 20;
  private static final int PER_KEY = 25;

  @TempDir Path dir;
  @RegisterExtension final ChildJvm processes = new ChildJvm();

  @Test
  void threeProcessesNeverRunTwoRunsOfOneKeyAtOnceAndKeepEachKeyInOrder() throws Exception {
    Path db = dir.resolve("chat.db");
    Path locks = Files.createDirectory(dir.resolve("locks"));
    Path orderLog = dir.resolve("order.log");
    try (SqliteRunStore store = SqliteRunStore.open(db)) {
      for (int w = 0; w < WORKERS; w++) {
        processes.start(SerialKeyWorkerMain.class,
            dir.resolve("worker-" + w + ".out"),
            db.toString(), "worker-" + w, locks.toString(), orderLog.toString());
      }
      // Submit only once every worker polls, so that a slow JVM start cannot leave all the
      // work to one process (the test is about several processes sharing keys).
      for (int w = 0; w < WORKERS; w++) {
        Path out = dir.resolve("worker-" + w + ".out");
        long readyBy = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!(Files.exists(out) && Files.readString(out).contains("ready worker-" + w))) {
          assertThat(System.nanoTime()).as("worker-%d started within 60 s", w).isLessThan(readyBy);
          Thread.sleep(20); // another process's start-up: nothing to await in this JVM
        }
      }
      for (int m = 0; m < PER_KEY; m++) {
        for (int k = 0; k < KEYS; k++) {
          store.insert(NewRun.of(RunRequest.of("chat", "message " + m).withSerialKey("conv" + k)));
        }
      }
      int total = KEYS * PER_KEY;
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
      while (store.count(RunQuery.all().status(RunStatus.SUCCEEDED)) < total
          && System.nanoTime() < deadline) {
        Thread.sleep(50); // polling another process's progress: nothing here to await
      }
      for (Process p : processes) {
        try (OutputStream stdin = p.getOutputStream()) {
          stdin.flush(); // closing stdin asks the worker to stop gracefully
        }
      }
      for (Process p : processes) {
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).as("worker stopped").isTrue();
      }
      assertThat(store.count(RunQuery.all().status(RunStatus.SUCCEEDED))).isEqualTo(total);
      java.util.Set<String> owners = new java.util.HashSet<>();
      RunQuery page = RunQuery.all().limit(RunQuery.MAX_LIMIT);
      store.query(page).items().forEach(r -> owners.add(r.owner()));
      assertThat(owners).as("the keys were shared out over several processes").hasSizeGreaterThan(1);
    }

    List<String> lines = Files.readAllLines(orderLog);
    assertThat(lines).as("no two runs of one key overlapped")
        .noneMatch(l -> l.startsWith("VIOLATION"));
    assertThat(lines).hasSize(KEYS * PER_KEY);
    Map<String, Long> lastIdPerKey = new HashMap<>();
    for (String line : lines) {
      String[] parts = line.split(" ");
      long id = Long.parseLong(parts[1]);
      Long previous = lastIdPerKey.put(parts[0], id);
      assertThat(previous == null || previous < id)
          .as("key %s ran %d after %d: out of submission order", parts[0], id, previous)
          .isTrue();
    }
    assertThat(lastIdPerKey).hasSize(KEYS);
  }
}
