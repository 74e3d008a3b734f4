package dev.agentrunner.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * The harness's handle on one {@link PgWorker} JVM: sends it commands and waits for its
 * answers. {@code progress} lines are not queued but kept as the latest count and finish time,
 * which is all the harness needs to know when a round is over.
 *
 * <p>Thread-safety: {@link #send} and {@link #expect} are for the harness's main thread;
 * {@link #finished()} and {@link #lastFinishNanos()} may be read from any thread.
 */
final class PgChild implements AutoCloseable {
  /** The first words of {@link PgWorker}'s answers; anything else on stdout is passed on. */
  private static final Pattern ANSWER =
      Pattern.compile("(ready|done|stopped|closed|histogram|error)( |$)");

  private final Process process;
  private final Writer stdin;
  private final BlockingQueue<String> answers = new LinkedBlockingQueue<>();
  private final String name;
  private volatile long finished;
  private volatile long lastFinishNanos;

  private PgChild(Process process, String name) {
    this.process = process;
    this.name = name;
    this.stdin = new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8);
    Thread.ofPlatform().daemon().name(name + "-stdout").start(this::read);
  }

  /** Starts a worker JVM on the same class path and JDK as this one. */
  static PgChild start(String url, String name) throws IOException {
    // (with -Dbench.childJvmArgs=JFR options, put %p in the file name: four JVMs)
    return new PgChild(LoadHarness.startChild("512m", "pg-worker", url), name);
  }

  private void read() {
    try (BufferedReader out = new BufferedReader(
        new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = out.readLine()) != null) {
        if (line.startsWith("progress ")) {
          String[] f = line.split(" ");
          lastFinishNanos = Long.parseLong(f[2]);
          finished = Long.parseLong(f[1]);
        } else if (ANSWER.matcher(line).lookingAt()) {
          answers.add(line);
        } else {
          System.err.println("    " + name + ": " + line); // the JVM's own, e.g. JFR's
        }
      }
    } catch (IOException | RuntimeException e) {
      answers.add("error reading the child's output: " + e);
    }
    answers.add("error " + name + " exited");
  }

  void send(String command) throws IOException {
    stdin.write(command + "\n");
    stdin.flush();
  }

  /** The next answer, which must start with {@code prefix}; returns what follows it. */
  String expect(String prefix, Duration timeout) throws InterruptedException {
    String line = answers.poll(timeout.toNanos(), TimeUnit.NANOSECONDS);
    if (line == null) {
      throw new IllegalStateException(name + ": no \"" + prefix + "\" within " + timeout);
    }
    if (!line.startsWith(prefix)) {
      throw new IllegalStateException(name + ": expected \"" + prefix + "\", got \"" + line
          + "\"");
    }
    return line.substring(prefix.length()).strip();
  }

  /** The child JVM's process id. */
  long pid() {
    return process.pid();
  }

  /** Runs finished in the current engine round, as last reported. */
  long finished() {
    return finished;
  }

  long lastFinishNanos() {
    return lastFinishNanos;
  }

  /** Forgets the previous round's progress. */
  void resetProgress() {
    finished = 0;
    lastFinishNanos = 0;
  }

  @Override
  public void close() throws InterruptedException {
    try {
      send("exit");
      stdin.close();
    } catch (IOException ignored) {
      // already gone
    }
    if (!process.waitFor(10, TimeUnit.SECONDS)) {
      process.destroyForcibly();
      process.waitFor(5, TimeUnit.SECONDS);
    }
  }
}
