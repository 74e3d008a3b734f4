package dev.agentrunner.sqlite;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;

/**
 * A worker process for {@link MultiProcessDrainTest}: a runner on the shared database file that
 * executes agent "job", appending {@code id,attempt} to its own log before each run ends. Runs
 * until its standard input closes, then stops gracefully.
 *
 * <p>Arguments: database file, worker id, log file, lease in milliseconds.
 */
public final class DrainWorkerMain {
  private DrainWorkerMain() {}

  public static void main(String[] args) throws Exception {
    Path db = Path.of(args[0]);
    String workerId = args[1];
    Path log = Path.of(args[2]);
    Duration lease = Duration.ofMillis(Long.parseLong(args[3]));
    try (FileChannel out = FileChannel.open(log, StandardOpenOption.CREATE,
            StandardOpenOption.WRITE, StandardOpenOption.APPEND);
        SqliteRunStore store = SqliteRunStore.open(db);
        AgentRunner runner = AgentRunner.builder()
            .store(store)
            .workerId(workerId)
            .leaseDuration(lease)
            .pollInterval(Duration.ofMillis(100))
            .maxConcurrency(32)
            .agent("job", ctx -> {
              // One write() per line with O_APPEND: in the kernel before the run can end, so a
              // kill -9 after this line cannot lose it.
              write(out, ctx.runId() + "," + ctx.attempt() + "\n");
              Thread.sleep(2); // some work, so that a killed worker holds runs mid-flight
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

  private static void write(FileChannel out, String line) throws IOException {
    ByteBuffer buf = ByteBuffer.wrap(line.getBytes(StandardCharsets.US_ASCII));
    synchronized (out) {
      while (buf.hasRemaining()) {
        out.write(buf);
      }
    }
  }
}
