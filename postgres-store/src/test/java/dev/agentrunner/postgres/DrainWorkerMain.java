package dev.agentrunner.postgres;

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
 * A worker process for {@link MultiProcessTest}: a runner on the shared schema that executes
 * agent "job", appending {@code id,attempt} to its own log before each run ends, and agent
 * "ping", which does nothing (for start latency). Runs until its standard input closes, then
 * stops gracefully.
 *
 * <p>Arguments: JDBC URL, schema, worker id, log file, lease in ms, poll interval in ms.
 */
public final class DrainWorkerMain {
  private DrainWorkerMain() {}

  @SuppressWarnings("try") // the runner works while this thread waits on stdin
  public static void main(String[] args) throws Exception {
    String url = args[0];
    String schema = args[1];
    String workerId = args[2];
    Path log = Path.of(args[3]);
    Duration lease = Duration.ofMillis(Long.parseLong(args[4]));
    Duration poll = Duration.ofMillis(Long.parseLong(args[5]));
    try (FileChannel out = FileChannel.open(log, StandardOpenOption.CREATE,
            StandardOpenOption.WRITE, StandardOpenOption.APPEND);
        PostgresRunStore store = PostgresRunStore.builder(url).schema(schema).poolSize(6)
            .build();
        AgentRunner runner = AgentRunner.builder()
            .store(store)
            .workerId(workerId)
            .leaseDuration(lease)
            .pollInterval(poll)
            .maxConcurrency(32)
            .agent("job", ctx -> {
              // One write() per line with O_APPEND: in the kernel before the run can end, so a
              // kill -9 after this line cannot lose it.
              write(out, ctx.runId() + "," + ctx.attempt() + "\n");
              Thread.sleep(2); // some work, so that a killed worker holds runs mid-flight
              return AgentResult.of("done by " + workerId);
            })
            .agent("ping", ctx -> AgentResult.of("pong"))
            .build()) {
      // Ready once the listener is connected, so that measurements start from a steady state.
      long deadline = System.nanoTime() + 10_000_000_000L;
      while (store.listenerBackendPid() == 0 && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
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
