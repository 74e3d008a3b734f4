package dev.agentrunner.bench;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.RunListener;
import dev.agentrunner.RunRecord;
import dev.agentrunner.postgres.PostgresRunStore;
import dev.agentrunner.Usage;
import dev.agentrunner.postgres.RawPostgres;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;

/**
 * A child JVM of figure 5, driven by the harness over its standard input, one command a line,
 * answering on its standard output. It measures nothing on its own: it is one of the four
 * workers of 5a (engine or raw, alternately, so both sides run in the same four warm JVMs) or
 * the remote worker of 5b.
 *
 * <ul>
 *   <li>{@code engine <schema> <owner>}: opens a store on the schema (or keeps
 *       the one of the last engine round, if on the same schema), answers {@code ready}; on
 *       {@code go} starts a runner with the no-op agent and reports {@code progress <finished>
 *       <nanoTime of the last finish>} as runs finish; on {@code stop} closes the runner and
 *       answers {@code stopped}.
 *   <li>{@code raw <schema> <owner> <limit> batched|single}: opens a connection (or keeps the
 *       last one, likewise), answers {@code ready}; on {@code go} claims and finishes with the
 *       store's statements until a claim comes back empty, then answers {@code done <finished>
 *       <nanoTime at the end>}; on {@code close} answers {@code closed}.
 *   <li>{@code latency <schema> <owner> <poll ms>}: a runner whose agent {@code probe} records
 *       the time from the run's scheduled submit (its input) to its start; {@code report}
 *       closes it and answers {@code histogram <base64>}.
 *   <li>{@code rawlisten <schema> <owner>}: the floor of that path: a LISTEN connection and a
 *       claim connection, recording scheduled submit → claim committed; {@code report} as above.
 *   <li>{@code exit}.
 * </ul>
 *
 * <p>Times are {@link System#nanoTime()}, which on Linux is {@code CLOCK_MONOTONIC}: one clock
 * for every process of the machine, so the harness can compare them with its own.
 */
final class PgWorker {
  /** The lease the raw workers claim with: the runner's default. */
  static final long LEASE_MICROS = 30_000_000L;
  /** More than the store's pool holds (10), so that priming opens every connection. */
  private static final int PRIMING_THREADS = 16;
  /** PostgreSQL plans a prepared statement five times before it keeps a generic plan. */
  static final int PRIMING_ROUNDS = 6;

  private final String url;
  private final BufferedReader in;
  private PostgresRunStore engineStore;
  private String engineSchema;
  private RawPostgres raw;
  private String rawSchema;

  private PgWorker(String url) {
    this.url = url;
    this.in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
  }

  /** Entry point of the child JVM (through {@link LoadHarness}). */
  static void childMain(String url) throws Exception {
    new PgWorker(url).loop();
  }

  private void loop() throws Exception {
    String line;
    while ((line = in.readLine()) != null) {
      String[] cmd = line.strip().split(" ");
      try {
        switch (cmd[0]) {
          case "engine" -> engine(cmd[1], cmd[2]);
          case "raw" -> raw(cmd[1], cmd[2], Integer.parseInt(cmd[3]), cmd[4].equals("batched"));
          case "latency" -> latency(cmd[1], cmd[2], Duration.ofMillis(Long.parseLong(cmd[3])));
          case "rawlisten" -> rawListen(cmd[1], cmd[2]);
          case "exit" -> {
            if (engineStore != null) {
              engineStore.close();
            }
            if (raw != null) {
              raw.close();
            }
            return;
          }
          default -> say("error unknown command: " + line);
        }
      } catch (Exception | Error e) {
        e.printStackTrace();
        say("error " + String.valueOf(e).replace('\n', ' '));
      }
    }
  }

  private static synchronized void say(String line) {
    System.out.println(line);
    System.out.flush();
  }

  private void expect(String command) throws Exception {
    String line = in.readLine();
    if (line == null || !line.strip().equals(command)) {
      throw new IllegalStateException("expected \"" + command + "\", got \"" + line + "\"");
    }
  }

  private void engine(String schema, String owner) throws Exception {
    LongAdder finished = new LongAdder();
    AtomicLong lastFinish = new AtomicLong();
    RunListener listener = new RunListener() {
      @Override
      public void onFinished(RunRecord run) {
        lastFinish.accumulateAndGet(System.nanoTime(), Math::max);
        finished.increment();
      }
    };
    PostgresRunStore store = engineStore(schema);
    say("ready");
    expect("go");
    AgentRunner runner = AgentRunner.builder().store(store).workerId(owner)
        .agent(RawPostgres.AGENT, Load::noop).listener(listener).build();
    Thread reporter = Thread.ofPlatform().daemon().name("progress").start(() -> {
      long said = -1;
      while (!Thread.currentThread().isInterrupted()) {
        long now = finished.sum();
        if (now != said) {
          say("progress " + now + " " + lastFinish.get());
          said = now;
        }
        LockSupport.parkNanos(20_000_000L); // the finish time is exact; only noticing waits
      }
    });
    try {
      expect("stop");
    } finally {
      runner.close();
      reporter.interrupt();
      reporter.join();
    }
    say("stopped " + finished.sum());
  }

  /**
   * The store of the engine rounds on {@code schema}: opened and primed for the first round, then
   * kept, as a runner's host keeps its store (a store per round meant a pool of new connections
   * per round, their statements parsed again in this JVM, and compilers never done with it).
   */
  private PostgresRunStore engineStore(String schema) throws Exception {
    if (engineStore != null && !schema.equals(engineSchema)) {
      engineStore.close();
      engineStore = null;
    }
    if (engineStore == null) {
      engineStore = PostgresRunStore.builder(url).schema(schema).build();
      engineSchema = schema;
      prime(engineStore);
    }
    return engineStore;
  }

  /** The raw connection of the raw rounds on {@code schema}: opened once, then kept. */
  private RawPostgres rawConnection(String schema, String owner) throws Exception {
    if (raw != null && !schema.equals(rawSchema)) {
      raw.close();
      raw = null;
    }
    if (raw == null) {
      raw = new RawPostgres(url, schema, "bench-raw-" + owner);
      rawSchema = schema;
      raw.prime();
    }
    return raw;
  }

  private void raw(String schema, String owner, int limit, boolean batched) throws Exception {
    RawPostgres connection = rawConnection(schema, owner);
    say("ready");
    expect("go");
    long finished = 0;
    while (true) {
      List<RunRecord> claimed = connection.claim(RawPostgres.AGENT, limit, owner, LEASE_MICROS);
      if (claimed.isEmpty()) {
        break; // the rest, if any, is being claimed or finished by the other workers
      }
      finished += connection.finishAll(claimed, batched);
    }
    say("done " + finished + " " + System.nanoTime());
    expect("close"); // the harness has read the backends' CPU time
    say("closed");
  }

  /**
   * Brings a new store to the state of one that has been serving for a while, before the go:
   * its pool's connections open, and on each of them the claim and finish statements prepared
   * and planned, and the stats trigger compiled (the claim of an agent without runs and the
   * finish of no run change nothing but run the same statements). Without it every round would
   * also measure a dozen new server processes warming up, a cost a runner pays once.
   */
  private static void prime(PostgresRunStore store) throws InterruptedException {
    ClaimRequest nothing = new ClaimRequest("prime", Map.of("prime-no-such-agent", 1), 1,
        Duration.ofSeconds(30));
    Finish noRun = Finish.succeeded(Long.MAX_VALUE, 1, "prime", "", Usage.ZERO);
    List<Thread> threads = new ArrayList<>();
    for (int t = 0; t < PRIMING_THREADS; t++) {
      threads.add(Thread.ofVirtual().start(() -> {
        for (int k = 0; k < PRIMING_ROUNDS; k++) {
          store.claim(nothing);
          store.finish(noRun);
        }
      }));
    }
    for (Thread t : threads) {
      t.join();
    }
  }

  private void latency(String schema, String owner, Duration poll) throws Exception {
    Recorder starts = new Recorder(3);
    try (PostgresRunStore store = PostgresRunStore.builder(url).schema(schema).build()) {
      AgentRunner runner = AgentRunner.builder().store(store).workerId(owner)
          .pollInterval(poll).maxConcurrency(1_000)
          .agent(PgStartLatency.AGENT, ctx -> {
            long now = System.nanoTime();
            record(starts, ctx.input(), now);
            return AgentResult.of("");
          })
          .build();
      try {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!RawPostgres.listening(store) && System.nanoTime() - deadline < 0) {
          Thread.sleep(5);
        }
        say(RawPostgres.listening(store) ? "ready" : "error the listener did not connect");
        expect("report");
      } finally {
        runner.close();
      }
    }
    say("histogram " + encode(starts.getIntervalHistogram()));
  }

  private void rawListen(String schema, String owner) throws Exception {
    Recorder claims = new Recorder(3);
    try (RawPostgres raw = new RawPostgres(url, schema, "bench-rawclaim-" + owner);
        Connection listen = RawPostgres.open(url, "bench-rawlisten-" + owner)) {
      try (Statement s = listen.createStatement()) {
        s.execute("LISTEN \"" + RawPostgres.channel(schema) + "\"");
      }
      PGConnection pg = listen.unwrap(PGConnection.class);
      Throwable[] failure = new Throwable[1];
      Thread claimer = Thread.ofPlatform().name("raw-listener").start(() -> {
        try {
          while (!Thread.currentThread().isInterrupted()) {
            PGNotification[] got = pg.getNotifications(100);
            if (got == null || got.length == 0) {
              continue;
            }
            // One claim per wake-up, like the runner; again while a claim comes back full.
            List<RunRecord> claimed;
            do {
              claimed = raw.claim(PgStartLatency.FLOOR_AGENT, 256, owner, LEASE_MICROS);
              long now = System.nanoTime();
              for (RunRecord r : claimed) {
                record(claims, r.input(), now);
              }
            } while (claimed.size() == 256);
          }
        } catch (SQLException e) {
          if (!Thread.currentThread().isInterrupted()) {
            failure[0] = e;
          }
        }
      });
      say("ready");
      try {
        expect("report");
      } finally {
        claimer.interrupt();
        claimer.join();
      }
      if (failure[0] != null) {
        throw new IllegalStateException("the raw listener failed", failure[0]);
      }
    }
    say("histogram " + encode(claims.getIntervalHistogram()));
  }

  /** Records now minus the scheduled time in {@code input} ("nanos", or "nanos w" to skip). */
  private static void record(Recorder into, String input, long now) {
    if (input.endsWith(" w")) {
      return; // warm-up
    }
    into.recordValue(Math.max(0, now - Long.parseLong(input)));
  }

  static String encode(Histogram h) {
    ByteBuffer buf = ByteBuffer.allocate(h.getNeededByteBufferCapacity());
    int length = h.encodeIntoCompressedByteBuffer(buf);
    return Base64.getEncoder().encodeToString(Arrays.copyOf(buf.array(), length));
  }

  static Histogram decode(String base64) throws Exception {
    return Histogram.decodeFromCompressedByteBuffer(
        ByteBuffer.wrap(Base64.getDecoder().decode(base64)), 0);
  }
}
