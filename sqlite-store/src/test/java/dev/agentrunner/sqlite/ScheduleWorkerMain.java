package dev.agentrunner.sqlite;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.Page;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStats;
import dev.agentrunner.Schedule;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.Heartbeat;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * A worker process for {@link MultiProcessScheduleTest}: a runner with the scheduler on the shared
 * database file, executing agent "job". It logs to its own file, one line per event:
 *
 * <ul>
 *   <li>{@code enqueue <fire ms> <run id>}: this process's scheduler stored (or found) the run of
 *       a fire time;
 *   <li>{@code advanced <fire ms> <run id>}: this process won the compare-and-set that moved the
 *       schedule past that fire time, i.e. it is the one that fired it;
 *   <li>{@code executed <run id>}: this process executed the run.
 * </ul>
 *
 * <p>Arguments: database file, worker id, log file, poll interval in milliseconds. Runs until its
 * standard input closes, then stops gracefully.
 */
public final class ScheduleWorkerMain {
  private ScheduleWorkerMain() {}

  public static void main(String[] args) throws Exception {
    Path db = Path.of(args[0]);
    String workerId = args[1];
    Path log = Path.of(args[2]);
    Duration poll = Duration.ofMillis(Long.parseLong(args[3]));
    try (FileChannel out = FileChannel.open(log, StandardOpenOption.CREATE,
            StandardOpenOption.WRITE, StandardOpenOption.APPEND);
        SqliteRunStore sqlite = SqliteRunStore.open(db);
        AgentRunner runner = AgentRunner.builder()
            .store(new Observed(sqlite, out))
            .workerId(workerId)
            .pollInterval(poll)
            .agent("job", ctx -> {
              write(out, "executed " + ctx.runId() + "\n");
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

  static void write(FileChannel out, String line) {
    ByteBuffer buf = ByteBuffer.wrap(line.getBytes(StandardCharsets.US_ASCII));
    try {
      synchronized (out) {
        while (buf.hasRemaining()) {
          out.write(buf);
        }
      }
    } catch (IOException e) {
      throw new IllegalStateException("cannot write the worker log", e);
    }
  }

  /**
   * The SQLite store, unchanged, with the scheduler's two writes logged: which process stored a
   * fire time's run, and which one advanced the schedule. Everything else just delegates.
   */
  private static final class Observed implements RunStore {
    private static final String KEY_PREFIX = "schedule:";

    private final RunStore store;
    private final FileChannel out;

    Observed(RunStore store, FileChannel out) {
      this.store = store;
      this.out = out;
    }

    @Override
    public RunRecord insert(NewRun run) {
      RunRecord stored = store.insert(run);
      String key = run.request().idempotencyKey();
      if (key != null && key.startsWith(KEY_PREFIX)) {
        write(out, "enqueue " + key.substring(key.lastIndexOf('@') + 1) + " " + stored.id()
            + "\n");
      }
      return stored;
    }

    @Override
    public Optional<Schedule> putSchedule(Schedule schedule) {
      Optional<Schedule> stored = store.putSchedule(schedule);
      // The only puts these workers make are the advances after a fire.
      stored.filter(s -> s.lastFireAt() != null).ifPresent(s -> write(out, "advanced "
          + s.lastFireAt().toEpochMilli() + " " + s.lastRunId() + "\n"));
      return stored;
    }

    @Override
    public Optional<Schedule> findSchedule(String name) {
      return store.findSchedule(name);
    }

    @Override
    public List<Schedule> schedules() {
      return store.schedules();
    }

    @Override
    public boolean deleteSchedule(String name) {
      return store.deleteSchedule(name);
    }

    @Override
    public List<RunRecord> claim(ClaimRequest request) {
      return store.claim(request);
    }

    @Override
    public Heartbeat heartbeat(String owner, Set<Long> runIds, Duration lease) {
      return store.heartbeat(owner, runIds, lease);
    }

    @Override
    public Optional<RunRecord> finish(Finish finish) {
      return store.finish(finish);
    }

    @Override
    public int release(String owner, List<RunRecord> claimed) {
      return store.release(owner, claimed);
    }

    @Override
    public Optional<RunRecord> cancel(long runId) {
      return store.cancel(runId);
    }

    @Override
    public List<RunRecord> recoverExpiredLeases() {
      return store.recoverExpiredLeases();
    }

    @Override
    public Optional<RunEvent> appendEvent(long runId, int attempt, String type, String data) {
      return store.appendEvent(runId, attempt, type, data);
    }

    @Override
    public Optional<RunRecord> find(long runId) {
      return store.find(runId);
    }

    @Override
    public Page<RunRecord> query(RunQuery query) {
      return store.query(query);
    }

    @Override
    public long count(RunQuery query) {
      return store.count(query);
    }

    @Override
    public List<RunEvent> events(long runId) {
      return store.events(runId);
    }

    @Override
    public RunStats stats() {
      return store.stats();
    }

    @Override
    public int purge(Instant finishedBefore) {
      return store.purge(finishedBefore);
    }

    @Override
    public AutoCloseable onRemoteWork(Runnable wakeUp) {
      return store.onRemoteWork(wakeUp);
    }

    @Override
    public void close() {
      store.close();
    }
  }
}
