package dev.agentrunner.sqlite;

import dev.agentrunner.AgentStats;
import dev.agentrunner.Page;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Schedule;
import dev.agentrunner.StoreException;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.Heartbeat;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import org.sqlite.SQLiteConfig;
import org.sqlite.SQLiteDataSource;

/**
 * The embedded default {@link RunStore}: runs and events in one SQLite file.
 *
 * <pre>{@code
 * RunStore store = SqliteRunStore.open(Path.of("runs.db"));
 * RunStore tuned = SqliteRunStore.builder(Path.of("runs.db"))
 *     .durability(SqliteRunStore.Durability.NORMAL)
 *     .busyTimeout(Duration.ofSeconds(10))
 *     .build();
 * }</pre>
 *
 * <p>How it keeps the {@link RunStore} contract:
 *
 * <ul>
 *   <li>The file is in WAL mode; every write is an IMMEDIATE transaction, so the database's own
 *       write lock orders writers across threads and processes, and reads never wait for writes.
 *   <li>Within this process every write goes through one writer thread and connection that
 *       commits concurrent operations in batches: one transaction and one fsync for many runs,
 *       each operation in its own savepoint so that one failing operation fails alone.
 *   <li>Ids come from {@code INSERT ... RETURNING}; claims are {@code UPDATE ... RETURNING};
 *       each status change writes its event in the same transaction.
 *   <li>Idempotency keys and "one RUNNING run per serial key" are unique indexes, so they hold
 *       even against a writer that is not this library.
 *   <li>Several processes may open the same file (on one machine: SQLite's locking does not work
 *       over network file systems). A write blocked by another process beyond the busy timeout
 *       is retried a few times with backoff, then fails with a {@link StoreException}.
 *   <li>Schedules are rows changed only by a compare-and-set on their version, one statement
 *       each; a scheduled run's idempotency key is unique like any other, so a fire time
 *       enqueues one run however many processes fire it.
 *   <li>The schema is created and migrated at open; a file written by a newer schema version is
 *       refused.
 * </ul>
 *
 * <p>Every failure is a {@link StoreException} naming the file and the problem (not a database,
 * read-only, locked, disk full, newer schema), and leaves the database as it was.
 *
 * <p>Thread-safety: thread-safe; share one instance per file within a process (a second
 * instance on the same file works, but its writes no longer share fsyncs with the first).
 */
public final class SqliteRunStore implements RunStore {

  /** How many more times a write waits out the busy timeout before giving up. */
  private static final int BUSY_RETRIES = 2;

  private static final long WAL_SIZE_LIMIT_BYTES = 64L << 20;

  /**
   * How hard a commit waits for the disk.
   *
   * <p>Thread-safety: an immutable enum.
   */
  public enum Durability {
    /**
     * {@code synchronous=FULL} (the default): a write returns only after the WAL is synced to the
     * disk, so an accepted run survives a crash of the process, the operating system or the
     * power.
     */
    FULL,
    /**
     * {@code synchronous=NORMAL}: the WAL is synced only at checkpoints. The database stays
     * consistent and nothing is lost if the process crashes, but a power loss or operating
     * system crash may roll back the most recent commits: runs whose submit already returned an
     * id can disappear, and finished runs can come back as RUNNING (their leases then expire and
     * they run again). Faster; use it only if that loss is acceptable.
     */
    NORMAL
  }

  private final Path path;
  private final Failures failures;
  private final Writes writes;
  private final Writer writer;
  private final Reads reads;
  private final Connection writeConnection;
  private final AtomicBoolean closed = new AtomicBoolean();

  private SqliteRunStore(Path path, Failures failures, Writes writes, Writer writer, Reads reads,
      Connection writeConnection) {
    this.path = path;
    this.failures = failures;
    this.writes = writes;
    this.writer = writer;
    this.reads = reads;
    this.writeConnection = writeConnection;
  }

  /**
   * Opens (creating if needed) the store in the file {@code path} with the default options.
   *
   * @throws StoreException if the file cannot be used; the message names the file and why
   */
  public static SqliteRunStore open(Path path) {
    return builder(path).build();
  }

  /** A builder for a store in the file {@code path}. */
  public static Builder builder(Path path) {
    return new Builder(path);
  }

  /** The database file. */
  public Path path() {
    return path;
  }

  // ---- writes: through the group-commit writer ----

  @Override
  public RunRecord insert(NewRun run) {
    Objects.requireNonNull(run, "run");
    ensureOpen();
    return run.requireSameRequest(writer.submit(
        "insert of a run of agent \"" + run.agent() + "\"", tx -> writes.insert(tx, run)));
  }

  /**
   * {@inheritDoc}
   *
   * <p>One writer operation: the checks (serial key idle, no claimable run of at least the
   * same priority for any agent in the quotas) and the insert share the write transaction, so
   * no other thread or process can slip a run in between. A run with an idempotency key is
   * always stored QUEUED.
   */
  @Override
  public RunRecord insertAndClaim(NewRun run, ClaimRequest claim) {
    Objects.requireNonNull(run, "run");
    Objects.requireNonNull(claim, "claim");
    ensureOpen();
    return run.requireSameRequest(writer.submit(
        "insert of a run of agent \"" + run.agent() + "\"",
        tx -> writes.insertAndClaim(tx, run, claim)));
  }

  @Override
  public List<RunRecord> claim(ClaimRequest request) {
    Objects.requireNonNull(request, "request");
    ensureOpen();
    if (request.quotas().isEmpty()) {
      return List.of();
    }
    return writer.submit("claim for " + request.owner(), tx -> writes.claim(tx, request));
  }

  @Override
  public Heartbeat heartbeat(String owner, Set<Long> runIds, Duration lease) {
    Objects.requireNonNull(owner, "owner");
    Objects.requireNonNull(runIds, "runIds");
    Objects.requireNonNull(lease, "lease");
    ensureOpen();
    if (runIds.isEmpty()) {
      return new Heartbeat(0, Set.of());
    }
    // Built here, not under the writer's lock: for a runner with 100,000 runs it is 700 KB.
    String ids = Rows.jsonNumbers(runIds);
    return writer.submit("heartbeat of " + owner, tx -> writes.heartbeat(tx, owner, ids, lease));
  }

  @Override
  public Optional<RunRecord> finish(Finish finish) {
    Objects.requireNonNull(finish, "finish");
    ensureOpen();
    return writer.submit("finish of run " + finish.runId(), tx -> writes.finish(tx, finish));
  }

  @Override
  public int release(String owner, List<RunRecord> claimed) {
    Objects.requireNonNull(owner, "owner");
    Objects.requireNonNull(claimed, "claimed");
    List<RunRecord> copy = List.copyOf(claimed);
    ensureOpen();
    if (copy.isEmpty()) {
      return 0;
    }
    return writer.submit("release by " + owner, tx -> writes.release(tx, owner, copy));
  }

  @Override
  public Optional<RunRecord> cancel(long runId) {
    ensureOpen();
    return writer.submit("cancel of run " + runId, tx -> writes.cancel(tx, runId));
  }

  @Override
  public List<RunRecord> recoverExpiredLeases() {
    ensureOpen();
    return writer.submit("lease recovery", writes::recoverExpiredLeases);
  }

  @Override
  public Optional<RunEvent> appendEvent(long runId, int attempt, String type, String data) {
    Objects.requireNonNull(type, "type");
    Objects.requireNonNull(data, "data");
    ensureOpen();
    return writer.submit("event \"" + type + "\" of run " + runId,
        tx -> writes.appendEvent(tx, runId, attempt, type, data));
  }

  @Override
  public int purge(Instant finishedBefore) {
    Objects.requireNonNull(finishedBefore, "finishedBefore");
    ensureOpen();
    return writer.submit("purge", tx -> writes.purge(tx, finishedBefore));
  }

  /**
   * {@inheritDoc}
   *
   * <p>One statement through the writer: an {@code INSERT ... ON CONFLICT DO NOTHING} for
   * version 0, else an {@code UPDATE ... WHERE version = ?}; the database's write lock makes it
   * atomic across threads and processes.
   *
   * @throws IllegalArgumentException if the interval is too long to store (over 292 years)
   */
  @Override
  public Optional<Schedule> putSchedule(Schedule schedule) {
    Objects.requireNonNull(schedule, "schedule");
    Rows.checkStorable(schedule.spec());
    ensureOpen();
    return writer.submit("put of schedule \"" + schedule.name() + "\" at version "
        + schedule.version(), tx -> writes.putSchedule(tx, schedule));
  }

  @Override
  public boolean deleteSchedule(String name) {
    Objects.requireNonNull(name, "name");
    ensureOpen();
    return writer.submit("delete of schedule \"" + name + "\"",
        tx -> writes.deleteSchedule(tx, name));
  }

  // ---- reads: pooled read-only connections ----

  @Override
  public Optional<Schedule> findSchedule(String name) {
    Objects.requireNonNull(name, "name");
    ensureOpen();
    return reads.read("find of schedule \"" + name + "\"", c -> {
      try (PreparedStatement ps = c.prepareStatement(Sql.SCHEDULE_BY_NAME)) {
        ps.setString(1, name);
        return Optional.ofNullable(Rows.scheduleOrNull(ps));
      }
    });
  }

  @Override
  public List<Schedule> schedules() {
    ensureOpen();
    return reads.read("list of schedules", c -> {
      try (PreparedStatement ps = c.prepareStatement(Sql.SCHEDULES)) {
        return List.copyOf(Rows.schedules(ps));
      }
    });
  }

  @Override
  public Optional<RunRecord> find(long runId) {
    ensureOpen();
    return reads.read("find of run " + runId, c -> {
      try (PreparedStatement ps = c.prepareStatement(Sql.RUN_BY_ID)) {
        ps.setLong(1, runId);
        return Optional.ofNullable(Rows.runOrNull(ps));
      }
    });
  }

  @Override
  public Page<RunRecord> query(RunQuery query) {
    Objects.requireNonNull(query, "query");
    ensureOpen();
    return reads.read("query", c -> {
      String sql = query.serialKey() != null ? Sql.QUERY_SERIAL_KEY
          : query.agent() == null ? Sql.QUERY_ALL : Sql.QUERY_AGENT;
      try (PreparedStatement ps = c.prepareStatement(sql)) {
        int i = 1;
        if (query.serialKey() != null) {
          ps.setString(i++, query.serialKey());
          Rows.setNullableString(ps, i++, query.agent());
          Rows.setNullableString(ps, i++, query.agent());
        } else if (query.agent() != null) {
          ps.setString(i++, query.agent());
        }
        ps.setLong(i++, query.beforeId().orElse(Long.MAX_VALUE));
        i = bindStatuses(ps, i, query);
        // one more than a page tells whether another page follows
        ps.setInt(i, query.limit() + 1);
        return query.toPage(Rows.runs(ps));
      }
    });
  }

  @Override
  public long count(RunQuery query) {
    Objects.requireNonNull(query, "query");
    ensureOpen();
    return reads.read("count", c -> {
      try (PreparedStatement ps = c.prepareStatement(Sql.COUNT_RUNS)) {
        Rows.setNullableString(ps, 1, query.serialKey());
        Rows.setNullableString(ps, 2, query.serialKey());
        Rows.setNullableString(ps, 3, query.agent());
        Rows.setNullableString(ps, 4, query.agent());
        bindStatuses(ps, 5, query);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          return rs.getLong(1);
        }
      }
    });
  }

  /** Fills the six status slots from parameter {@code first}; returns the next parameter. */
  private static int bindStatuses(PreparedStatement ps, int first, RunQuery query)
      throws SQLException {
    Iterator<RunStatus> statuses =
        (query.statuses().isEmpty() ? List.of(RunStatus.values()) : query.statuses()).iterator();
    int i = first;
    for (int slot = 0; slot < RunStatus.values().length; slot++) {
      Rows.setNullableString(ps, i++, statuses.hasNext() ? statuses.next().name() : null);
    }
    return i;
  }

  @Override
  public List<RunEvent> events(long runId) {
    ensureOpen();
    return reads.read("events of run " + runId, c -> {
      try (PreparedStatement ps = c.prepareStatement(Sql.EVENTS_OF_RUN)) {
        ps.setLong(1, runId);
        List<RunEvent> out = new ArrayList<>();
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) {
            out.add(Rows.event(rs));
          }
        }
        return List.copyOf(out);
      }
    });
  }

  @Override
  public RunStats stats() {
    ensureOpen();
    return reads.read("stats", c -> {
      Map<String, AgentStats> agents = new LinkedHashMap<>();
      // a single SELECT reads one snapshot: the counts can never mix two moments
      try (PreparedStatement ps = c.prepareStatement(Sql.STATS);
          ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          String agent = rs.getString(1);
          RunStatus status = RunStatus.valueOf(rs.getString(2));
          long count = rs.getLong(3);
          Usage usage = new Usage(rs.getLong(4), rs.getLong(5), rs.getLong(6));
          AgentStats s = agents.getOrDefault(agent, AgentStats.empty(agent));
          agents.put(agent, add(s, status, count, usage));
        }
      }
      return new RunStats(agents);
    });
  }

  private static AgentStats add(AgentStats s, RunStatus status, long count, Usage usage) {
    return new AgentStats(s.agent(),
        s.queued() + (status == RunStatus.QUEUED ? count : 0),
        s.running() + (status == RunStatus.RUNNING ? count : 0),
        s.succeeded() + (status == RunStatus.SUCCEEDED ? count : 0),
        s.failed() + (status == RunStatus.FAILED ? count : 0),
        s.cancelled() + (status == RunStatus.CANCELLED ? count : 0),
        s.timedOut() + (status == RunStatus.TIMED_OUT ? count : 0),
        s.usage().plus(usage));
  }

  /**
   * Finishes the writes already handed over, then closes the connections. Idempotent; later
   * calls of any other method fail with a {@link StoreException}.
   */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    try {
      writer.close();
    } finally {
      try {
        reads.close();
      } finally {
        // Closed last: the last connection to close checkpoints the WAL into the database.
        closeQuietly(writeConnection);
      }
    }
  }

  /** The writer, for tests in this package. */
  Writer writer() {
    return writer;
  }

  private void ensureOpen() {
    if (closed.get()) {
      throw failures.closed();
    }
  }

  @Override
  public String toString() {
    return "SqliteRunStore[" + path + "]";
  }

  private static void closeQuietly(Connection c) {
    if (c == null) {
      return;
    }
    try {
      c.close();
    } catch (SQLException ignored) {
      // nothing more to release
    }
  }

  // ---- opening ----

  private static SqliteRunStore open(Builder b) {
    if (b.path.getFileSystem() != FileSystems.getDefault()) {
      // SQLite opens files through the operating system, not through a Java FileSystem.
      throw new IllegalArgumentException(
          "path must be on the default file system, was " + b.path.toUri());
    }
    Path path = b.path.toAbsolutePath().normalize();
    Failures failures = new Failures(path, b.busyTimeout, BUSY_RETRIES);
    Path dir = path.getParent();
    if (dir == null || !Files.isDirectory(dir)) {
      throw failures.problem("cannot open the database: the directory " + dir
          + " does not exist");
    }
    if (Files.isDirectory(path)) {
      throw failures.problem("cannot open the database: the path is a directory");
    }
    // A file: URI so that any character in the path is taken literally.
    String url = "jdbc:sqlite:" + path.toUri();
    Connection writeConnection = null;
    Writer writer = null;
    try {
      writeConnection = writeConfig(b).createConnection(url);
      configureWriter(writeConnection, b, failures);
      migrateWithRetry(writeConnection, failures, Rows.nanos(b.clock.instant()));
      writer = new Writer(writeConnection, failures, b.maxBatchSize, BUSY_RETRIES);
      Reads reads = new Reads(readSource(url, b), b.readPoolSize, failures, BUSY_RETRIES);
      return new SqliteRunStore(path, failures, new Writes(b.clock), writer, reads,
          writeConnection);
    } catch (SQLException e) {
      closeAfterFailedOpen(writer, writeConnection);
      throw failures.wrap("opening the database", e);
    } catch (RuntimeException e) {
      closeAfterFailedOpen(writer, writeConnection);
      // Hikari reports a failed first connection as its own exception, the cause inside
      Throwable cause = e.getCause() instanceof SQLException ? e.getCause() : e;
      throw failures.wrap("opening the database", cause);
    }
  }

  private static void closeAfterFailedOpen(Writer writer, Connection connection) {
    if (writer != null) {
      writer.close();
    }
    closeQuietly(connection);
  }

  private static SQLiteConfig writeConfig(Builder b) {
    SQLiteConfig config = new SQLiteConfig();
    // Set at open, so that even the first statement waits for another process's lock.
    config.setBusyTimeout((int) b.busyTimeout.toMillis());
    // Ids come from RETURNING; the driver's generated-keys emulation would add a regex match
    // and a "SELECT last_insert_rowid()" after every insert (7% of the writer's time, profiled).
    config.setGetGeneratedKeys(false);
    return config;
  }

  private static void configureWriter(Connection c, Builder b, Failures failures)
      throws SQLException {
    try (Statement s = c.createStatement()) {
      String mode;
      try (ResultSet rs = s.executeQuery("PRAGMA journal_mode = WAL")) {
        rs.next();
        mode = rs.getString(1);
      }
      if (!"wal".equalsIgnoreCase(mode)) {
        throw failures.problem("cannot switch the database to WAL mode (journal mode is "
            + mode + "); is the file or its directory read-only?");
      }
      s.execute("PRAGMA synchronous = " + (b.durability == Durability.FULL ? "FULL" : "NORMAL"));
      s.execute("PRAGMA foreign_keys = ON");
      // After a burst the WAL is cut back to this size at the next checkpoint, not kept large.
      s.execute("PRAGMA journal_size_limit = " + WAL_SIZE_LIMIT_BYTES);
    }
  }

  /** Migrating needs the write lock; another process may hold it for a while. */
  private static void migrateWithRetry(Connection c, Failures failures, long nowNanos)
      throws SQLException {
    for (int attempt = 0; ; attempt++) {
      try {
        Schema.migrate(c, failures, nowNanos);
        return;
      } catch (SQLException e) {
        if (!Failures.isBusy(e) || attempt >= BUSY_RETRIES) {
          throw e;
        }
        Writer.pause(attempt);
      }
    }
  }

  private static SQLiteDataSource readSource(String url, Builder b) {
    SQLiteConfig config = new SQLiteConfig();
    // Opened read-only by SQLite itself: a bug in the read path cannot write.
    config.setReadOnly(true);
    config.setBusyTimeout((int) b.busyTimeout.toMillis());
    SQLiteDataSource source = new SQLiteDataSource(config);
    source.setUrl(url);
    return source;
  }

  /**
   * Builds a {@link SqliteRunStore}.
   *
   * <p>Thread-safety: not thread-safe; build from one thread.
   */
  public static final class Builder {
    private final Path path;
    private Clock clock = Clock.systemUTC();
    private Durability durability = Durability.FULL;
    private Duration busyTimeout = Duration.ofSeconds(5);
    private int readPoolSize = 4;
    private int maxBatchSize = 256;

    private Builder(Path path) {
      this.path = Objects.requireNonNull(path, "path");
    }

    /**
     * The clock for every timestamp and lease (default: the UTC system clock). Processes sharing
     * one file should have clocks that agree, since leases are compared across them.
     */
    public Builder clock(Clock clock) {
      this.clock = Objects.requireNonNull(clock, "clock");
      return this;
    }

    /** How hard commits wait for the disk (default {@link Durability#FULL}). */
    public Builder durability(Durability durability) {
      this.durability = Objects.requireNonNull(durability, "durability");
      return this;
    }

    /**
     * How long a statement waits for a lock held by another connection or process before
     * SQLite reports the database busy (default 5 s). A write still busy is tried twice more
     * after a short pause, then fails with a {@link StoreException}.
     *
     * @throws IllegalArgumentException if negative or above {@link Integer#MAX_VALUE} ms
     */
    public Builder busyTimeout(Duration busyTimeout) {
      Objects.requireNonNull(busyTimeout, "busyTimeout");
      if (busyTimeout.isNegative() || busyTimeout.toMillis() > Integer.MAX_VALUE) {
        throw new IllegalArgumentException(
            "busyTimeout must be between 0 and " + Integer.MAX_VALUE + " ms, was " + busyTimeout);
      }
      this.busyTimeout = busyTimeout;
      return this;
    }

    /**
     * How many read-only connections serve find, query, events and stats at once (default 4).
     *
     * @throws IllegalArgumentException if below 1
     */
    public Builder readPoolSize(int readPoolSize) {
      if (readPoolSize < 1) {
        throw new IllegalArgumentException("readPoolSize must be positive, was " + readPoolSize);
      }
      this.readPoolSize = readPoolSize;
      return this;
    }

    /**
     * The most write operations committed in one transaction (default 256). Larger batches
     * share more fsyncs under load and hold the write lock longer.
     *
     * @throws IllegalArgumentException if below 1
     */
    public Builder maxBatchSize(int maxBatchSize) {
      if (maxBatchSize < 1) {
        throw new IllegalArgumentException("maxBatchSize must be positive, was " + maxBatchSize);
      }
      this.maxBatchSize = maxBatchSize;
      return this;
    }

    /**
     * Opens the store, creating the file and its schema if needed and migrating an older schema.
     *
     * @throws StoreException if the file cannot be used: its directory is missing, it is not a
     *     SQLite database or is corrupt, it or its directory is read-only, it has a newer schema
     *     version, or it stayed locked by another process beyond the busy timeout
     */
    public SqliteRunStore build() {
      return open(this);
    }
  }
}
