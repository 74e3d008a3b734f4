package dev.agentrunner.sqlite;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;

/**
 * A worker process for {@link SerialKeyAcrossProcessesTest}. Its agent holds an exclusive OS
 * file lock on its serial key's lock file while it runs: if another process (or another run in
 * this one) already holds it, two runs of one key are running at once, and the agent records a
 * violation. While holding the lock it appends {@code key id} to the shared order log, so the log
 * shows the order in which each key's runs executed.
 *
 * <p>Arguments: database file, worker id, folder for lock files, order log. Runs until its
 * standard input closes.
 */
public final class SerialKeyWorkerMain {
  private SerialKeyWorkerMain() {}

  public static void main(String[] args) throws Exception {
    Path db = Path.of(args[0]);
    String workerId = args[1];
    Path locks = Path.of(args[2]);
    Path orderLog = Path.of(args[3]);
    try (FileChannel order = FileChannel.open(orderLog, StandardOpenOption.CREATE,
            StandardOpenOption.WRITE, StandardOpenOption.APPEND);
        SqliteRunStore store = SqliteRunStore.open(db);
        AgentRunner runner = AgentRunner.builder()
            .store(store)
            .workerId(workerId)
            .pollInterval(Duration.ofMillis(20))
            .maxConcurrency(16)
            .agent("chat", ctx -> {
              String key = ctx.serialKey().orElseThrow();
              try (FileChannel lockFile = FileChannel.open(locks.resolve(key + ".lock"),
                  StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
                FileLock held;
                try {
                  held = lockFile.tryLock();
                } catch (OverlappingFileLockException sameProcess) {
                  held = null;
                }
                if (held == null) {
                  append(order, "VIOLATION " + key + " " + ctx.runId() + " " + workerId + "\n");
                  return AgentResult.of("overlap");
                }
                try {
                  append(order, key + " " + ctx.runId() + "\n");
                  Thread.sleep(3);
                } finally {
                  held.release();
                }
              }
              return AgentResult.of("done by " + workerId);
            })
            .build()) {
      System.out.println("ready " + workerId);
      System.out.flush();
      while (System.in.read() >= 0) {
        // wait for the parent to close our stdin
      }
    }
  }

  private static void append(FileChannel out, String line) throws IOException {
    ByteBuffer buf = ByteBuffer.wrap(line.getBytes(StandardCharsets.US_ASCII));
    synchronized (out) {
      while (buf.hasRemaining()) {
        out.write(buf);
      }
    }
  }
}
