package dev.agentrunner.postgres;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import dev.agentrunner.AgentStats;
import dev.agentrunner.Page;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Schedule;
import dev.agentrunner.SerialKeyBusyException;
import dev.agentrunner.SerialKeyPolicy;
import dev.agentrunner.StoreException;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.Heartbeat;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import javax.sql.DataSource;
import org.postgresql.ds.PGSimpleDataSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The multi-machine {@link RunStore}: runs and events in one PostgreSQL schema, shared by any
 * number of runners on any number of machines.
 *
 * <pre>{@code
 * try (PostgresRunStore store = PostgresRunStore.builder("jdbc:postgresql://db:5432/app")
 *         .schema("agentrunner").user("app").password(secret).poolSize(16).build();
 *      AgentRunner runner = AgentRunner.builder().store(store).agent("scanner", scanner).build()) {
 *   ...
 * }
 * }</pre>
 *
 * <p>How it keeps the {@link RunStore} contract:
 *
 * <ul>
 *   <li>Every status change and its event row are written by one statement (a data-modifying
 *       CTE), so they commit together or not at all; ids come from the insert's own
 *       {@code RETURNING}.
 *   <li>A claim is one statement: per agent, the best due QUEUED runs are locked with
 *       {@code FOR UPDATE SKIP LOCKED} and moved to RUNNING with their events. Claimers on
 *       other machines never wait for each other and never take the same run. A partial index
 *       over QUEUED runs keeps claims fast however much history the table holds.
 *   <li>Terminal finishes that arrive together (a busy runner ends many runs at once) are
 *       written by one statement and one commit ({@code FinishBatcher}); each is still fenced by
 *       its own attempt and owner and writes its own event. A lone finish runs at once.
 *   <li>Idempotency keys and "one RUNNING run per serial key" are unique indexes, so they hold
 *       against any writer. A {@code REJECT} submit checks its serial key and inserts in one
 *       transaction under an advisory lock on the key, so two racing submits cannot both get in.
 *   <li>Schedules are rows changed only by compare-and-set on their version.
 *   <li>Leases are set and compared with the database's clock ({@code now()}), never the
 *       hosts': clock skew between machines cannot expire a live lease. A finish is fenced by
 *       attempt and owner, so a worker that lost its connection and its lease cannot overwrite
 *       the run's newer state when it comes back.
 *   <li>Once a submit of a due run has committed (or a release or recovery has put runs back in
 *       the queue), the store sends {@code NOTIFY} on the schema's channel. A runner on this
 *       store {@code LISTEN}s on a dedicated connection and claims at once, instead of at its
 *       next poll; if that connection drops, polling carries on and the listener reconnects.
 *       (The notification follows the commit rather than riding inside the transaction: see
 *       {@code Notifier} in the source for the measurement behind that.)
 *   <li>The schema is created and migrated at {@link Builder#build()}, under an advisory lock,
 *       so nodes starting together are safe; a schema written by a newer version is refused.
 * </ul>
 *
 * <p>Every failure is a {@link StoreException} naming the database, the schema and the
 * problem. Conflicts the server resolves by rolling back (deadlocks, a claim racing another for
 * a serial key) are retried; a write whose connection broke is not, because it may have
 * committed.
 *
 * <p>PostgreSQL's text type cannot hold the NUL character (U+0000): an input, output, error or
 * event containing it is refused with a {@link StoreException}.
 *
 * <p>Thread-safety: thread-safe; share one instance per schema within a process.
 */
public final class PostgresRunStore implements RunStore {
  private static final Logger log = LoggerFactory.getLogger(PostgresRunStore.class);

  /** The schema used when none is given. */
  public static final String DEFAULT_SCHEMA = "agentrunner";

  private static final long COMPACT_EVERY_NANOS = TimeUnit.SECONDS.toNanos(1);

  /**
   * Server settings of the pool's sessions, sent when each connection opens. JIT compilation
   * off: the claim's cached generic plan is estimated above {@code jit_above_cost} (its
   * per-agent LIMIT is a parameter, so the planner assumes a long walk down the queue), and
   * compiling it took about 19 ms for a statement that runs in about 3 (measured with
   * {@code EXPLAIN ANALYZE} on PostgreSQL 15, 256 runs). A host passing its own
   * {@link DataSource} should set {@code jit = off} for the store's role or connections itself.
   */
  static final String SESSION_OPTIONS = "-c jit=off";
  private static final List<String> ALL_STATUSES =
      java.util.Arrays.stream(RunStatus.values()).map(Enum::name).toList();

  private final Sql sql;
  private final Db db;
  private final Failures failures;
  private final Clock clock; // null: the database's clock
  private final Listener listener;
  private final Notifier notifier;
  private final String channel;
  private final HikariDataSource pool; // null when the host passed its own DataSource
  private final AtomicBoolean closed = new AtomicBoolean();
  private final AtomicLong nextCompaction = new AtomicLong(System.nanoTime());
  private final FinishBatcher finishes;
  /**
   * Runs this store claimed whose finish or release it has not been asked for yet: a hint for
   * batching finishes (never below zero, and a run recovered elsewhere only makes a batch wait
   * its short maximum), not a count anything else relies on.
   */
  private final AtomicInteger running = new AtomicInteger();

  private PostgresRunStore(Sql sql, Db db, Clock clock, Listener listener, Notifier notifier,
      String channel, HikariDataSource pool) {
    this.sql = sql;
    this.db = db;
    this.failures = db.failures();
    this.clock = clock;
    this.listener = listener;
    this.notifier = notifier;
    this.channel = channel;
    this.pool = pool;
    this.finishes = new FinishBatcher(this::finishTerminal, notifier::signal, running::get);
  }

  /**
   * A builder for a store on the database at {@code jdbcUrl} (for example
   * {@code jdbc:postgresql://db.example:5432/app}), with its own connection pool.
   *
   * @throws IllegalArgumentException if the URL is not a PostgreSQL JDBC URL
   */
  public static Builder builder(String jdbcUrl) {
    Objects.requireNonNull(jdbcUrl, "jdbcUrl");
    if (!jdbcUrl.startsWith("jdbc:postgresql:")) {
      throw new IllegalArgumentException(
          "jdbcUrl must start with jdbc:postgresql:, was \"" + withoutParameters(jdbcUrl) + "\"");
    }
    return new Builder(jdbcUrl, null);
  }

  /**
   * A builder for a store on connections from {@code dataSource} (a pool the host manages and
   * closes). The store holds one of its connections for as long as a runner listens for
   * notifications.
   */
  public static Builder builder(DataSource dataSource) {
    return new Builder(null, Objects.requireNonNull(dataSource, "dataSource"));
  }

  /** The schema holding this store's tables. */
  public String schema() {
    return sql.schema;
  }

  // ---- writes ----

  @Override
  public RunRecord insert(NewRun run) {
    Objects.requireNonNull(run, "run");
    ensureOpen();
    Rows.text("the input", run.input());
    String key = run.request().idempotencyKey();
    String serialKey = run.request().serialKey();
    boolean reject = serialKey != null && run.request().serialKeyPolicy() == SerialKeyPolicy.REJECT;
    String what = "insert of a run of agent \"" + run.agent() + "\"";
    // Loops only if the run holding the idempotency key vanished before it could be read.
    for (int attempt = 0; ; attempt++) {
      Rows.Changed stored = reject
          ? db.transaction(what, c -> insertUnlessKeyBusy(c, run))
          : db.autocommit(what, false, c -> insertRow(c, run));
      if (stored.wake()) {
        notifier.signal(); // committed: other nodes may claim it now
      }
      if (stored.single() != null) {
        return run.requireSameRequest(stored.single());
      }
      // The idempotency key is taken. A new statement has a new snapshot, which sees the row
      // that won the conflict even if it committed after the insert's snapshot was taken.
      RunRecord existing = db.autocommit(what, true, c -> runByIdempotencyKey(c, key));
      if (existing != null) {
        return run.requireSameRequest(existing);
      }
      if (attempt >= Db.RETRIES) {
        throw failures.problem(what + " failed: idempotency key \"" + key
            + "\" is taken, but its run keeps disappearing before it can be read");
      }
    }
  }

  /** The insert statement; no run if the idempotency key is taken. */
  private Rows.Changed insertRow(Connection c, NewRun run) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(sql.insertRun)) {
      Rows.setInstant(ps, 1, testNow());
      ps.setString(2, run.agent());
      ps.setString(3, run.input());
      Rows.setNullableString(ps, 4, run.request().serialKey());
      Rows.setNullableString(ps, 5, run.request().idempotencyKey());
      ps.setInt(6, run.request().priority());
      ps.setInt(7, run.maxAttempts());
      Rows.setInstant(ps, 8, run.notBefore());
      return Rows.changed(ps);
    }
  }

  /**
   * REJECT: check and insert in one transaction, under a lock on the key that every REJECT
   * insert of that key takes, so two racing submits cannot both find the key idle. Runs with
   * other policies need not take it: one that commits after this check simply comes after this
   * run. Each statement after the lock has a fresh snapshot, which sees every run committed by
   * the lock's previous holder.
   */
  private Rows.Changed insertUnlessKeyBusy(Connection c, NewRun run) throws SQLException {
    String serialKey = run.request().serialKey();
    try (PreparedStatement lock =
        c.prepareStatement("SELECT pg_advisory_xact_lock(hashtext(?))")) {
      lock.setString(1, "agentrunner:serial:" + sql.schema + ":" + serialKey);
      lock.executeQuery().close();
    }
    String key = run.request().idempotencyKey();
    if (key != null) {
      RunRecord existing = runByIdempotencyKey(c, key);
      if (existing != null) {
        return new Rows.Changed(List.of(existing), false); // as with any policy
      }
    }
    try (PreparedStatement ps = c.prepareStatement(sql.oldestActiveOfKey)) {
      ps.setString(1, serialKey);
      ps.setString(2, serialKey);
      try (ResultSet rs = ps.executeQuery()) {
        rs.next(); // min() gives one row, NULL when the key has no active run
        long active = rs.getLong(1);
        if (!rs.wasNull()) {
          throw new SerialKeyBusyException(serialKey, active);
        }
      }
    }
    return insertRow(c, run);
  }

  private RunRecord runByIdempotencyKey(Connection c, String key) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(sql.runByIdempotencyKey)) {
      ps.setString(1, key);
      return Rows.runOrNull(ps);
    }
  }

  @Override
  public List<RunRecord> claim(ClaimRequest request) {
    Objects.requireNonNull(request, "request");
    ensureOpen();
    if (request.quotas().isEmpty()) {
      return List.of();
    }
    // Sorted, so that the statement text and the lock order do not depend on map order.
    Map<String, Integer> quotas = new TreeMap<>(request.quotas());
    String[] agents = quotas.keySet().toArray(String[]::new);
    Integer[] limits = quotas.values().stream()
        .map(q -> Math.min(q, request.limit())).toArray(Integer[]::new);
    long leaseMicros = Rows.leaseMicros(request.lease());
    List<RunRecord> claimed = db.autocommit("claim for " + request.owner(), false, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.claim)) {
        Rows.setInstant(ps, 1, testNow());
        ps.setArray(2, c.createArrayOf("text", agents));
        ps.setArray(3, c.createArrayOf("integer", limits));
        ps.setInt(4, request.limit());
        ps.setString(5, request.owner());
        ps.setLong(6, leaseMicros);
        return List.copyOf(Rows.runs(ps));
      }
    });
    running.addAndGet(claimed.size());
    return claimed;
  }

  @Override
  public Heartbeat heartbeat(String owner, Set<Long> runIds, Duration lease) {
    Objects.requireNonNull(owner, "owner");
    Long[] ids = Set.copyOf(Objects.requireNonNull(runIds, "runIds")).toArray(Long[]::new);
    Objects.requireNonNull(lease, "lease");
    ensureOpen();
    long leaseMicros = Rows.leaseMicros(lease);
    if (ids.length == 0) {
      return new Heartbeat(0, Set.of());
    }
    // Idempotent (a lease set twice is the same lease), so retried on a lost connection.
    return db.autocommit("heartbeat of " + owner, true, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.heartbeat)) {
        Rows.setInstant(ps, 1, testNow());
        ps.setArray(2, c.createArrayOf("bigint", ids));
        ps.setString(3, owner);
        ps.setLong(4, leaseMicros);
        int extended = 0;
        Set<Long> cancelRequested = new HashSet<>();
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) {
            extended++;
            if (rs.getBoolean(2)) {
              cancelRequested.add(rs.getLong(1));
            }
          }
        }
        return new Heartbeat(extended, cancelRequested);
      }
    });
  }

  @Override
  public Optional<RunRecord> finish(Finish finish) {
    Objects.requireNonNull(finish, "finish");
    ensureOpen();
    String output = Rows.text("the output", finish.output());
    String error = Rows.text("the error", finish.error());
    running.updateAndGet(n -> Math.max(0, n - 1));
    if (finish.status() != RunStatus.QUEUED) {
      return finishes.finish(finish, output, error); // with the finishes arriving meanwhile
    }
    Rows.Changed done = db.autocommit("finish of run " + finish.runId(), false, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.finishRetry)) {
        Rows.setInstant(ps, 1, testNow());
        // the error if a pending cancel turns the retry into CANCELLED, and if it does not
        ps.setString(2, "cancelled; the failed attempt was not retried: " + error);
        Rows.setNullableString(ps, 3, error);
        ps.setLong(4, Rows.micros(finish.retryAfter()));
        ps.setLong(5, finish.usage().inputTokens());
        ps.setLong(6, finish.usage().outputTokens());
        ps.setLong(7, finish.usage().costMicros());
        ps.setLong(8, finish.runId());
        ps.setInt(9, finish.attempt());
        ps.setString(10, finish.owner());
        return Rows.changed(ps);
      }
    });
    if (done.wake()) {
      notifier.signal();
    }
    return Optional.ofNullable(done.single());
  }

  /** Ends the runs of a batch of terminal finishes in one statement, {@link Sql#finishTerminal}. */
  private Rows.Changed finishTerminal(List<FinishBatcher.Request> requests) {
    List<FinishBatcher.Request> batch = inLockOrder(requests);
    long first = batch.get(0).finish.runId();
    String what = batch.size() == 1 ? "finish of run " + first
        : "finish of " + batch.size() + " runs (" + first + ", …)";
    return db.autocommit(what, false, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.finishTerminal)) {
        bindFinishTerminal(c, ps, testNow(), batch);
        return Rows.changed(ps);
      }
    });
  }

  /** The finishes by run id: the statement locks the rows in the order of its arrays. */
  static List<FinishBatcher.Request> inLockOrder(List<FinishBatcher.Request> requests) {
    List<FinishBatcher.Request> batch = new ArrayList<>(requests);
    batch.sort(java.util.Comparator.comparingLong(r -> r.finish.runId()));
    return batch;
  }

  /**
   * Binds {@link Sql#finishTerminal} for {@code batch} (in lock order): one array per column,
   * an element per finish. {@code now} null means the database's clock.
   */
  static void bindFinishTerminal(Connection c, PreparedStatement ps, Instant now,
      List<FinishBatcher.Request> batch) throws SQLException {
    int n = batch.size();
    Long[] ids = new Long[n];
    Integer[] attempts = new Integer[n];
    String[] owners = new String[n];
    String[] statuses = new String[n];
    String[] outputs = new String[n];
    String[] errors = new String[n];
    Long[] inputTokens = new Long[n];
    Long[] outputTokens = new Long[n];
    Long[] costs = new Long[n];
    for (int i = 0; i < n; i++) {
      FinishBatcher.Request r = batch.get(i);
      Finish f = r.finish;
      ids[i] = f.runId();
      attempts[i] = f.attempt();
      owners[i] = f.owner();
      statuses[i] = f.status().name();
      outputs[i] = r.output;
      errors[i] = r.error;
      inputTokens[i] = f.usage().inputTokens();
      outputTokens[i] = f.usage().outputTokens();
      costs[i] = f.usage().costMicros();
    }
    Rows.setInstant(ps, 1, now);
    ps.setArray(2, c.createArrayOf("bigint", ids));
    ps.setArray(3, c.createArrayOf("integer", attempts));
    ps.setArray(4, c.createArrayOf("text", owners));
    ps.setArray(5, c.createArrayOf("text", statuses));
    ps.setArray(6, c.createArrayOf("text", outputs));
    ps.setArray(7, c.createArrayOf("text", errors));
    ps.setArray(8, c.createArrayOf("bigint", inputTokens));
    ps.setArray(9, c.createArrayOf("bigint", outputTokens));
    ps.setArray(10, c.createArrayOf("bigint", costs));
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
    running.updateAndGet(n -> Math.max(0, n - copy.size()));
    Long[] ids = copy.stream().map(RunRecord::id).toArray(Long[]::new);
    Integer[] attempts = copy.stream().map(RunRecord::attempt).toArray(Integer[]::new);
    int released = db.autocommit("release by " + owner, false, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.release)) {
        Rows.setInstant(ps, 1, testNow());
        ps.setArray(2, c.createArrayOf("bigint", ids));
        ps.setArray(3, c.createArrayOf("integer", attempts));
        ps.setString(4, owner);
        ps.setString(5, owner);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          // negative: some went back to the queue, so other nodes should hear of it
          return rs.getBoolean(2) ? -rs.getInt(1) : rs.getInt(1);
        }
      }
    });
    if (released < 0) {
      notifier.signal();
    }
    return Math.abs(released);
  }

  @Override
  public Optional<RunRecord> cancel(long runId) {
    ensureOpen();
    String what = "cancel of run " + runId;
    // Three statements, each with its own snapshot: a claim that commits between the first and
    // the second is seen by the second, so a cancel racing a claim is never lost.
    Rows.Changed cancelled = db.autocommit(what, false, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.cancelQueued)) {
        Rows.setInstant(ps, 1, testNow());
        ps.setLong(2, runId);
        return Rows.changed(ps);
      }
    });
    if (cancelled.wake()) {
      notifier.signal(); // the next run of its serial key may be claimed now
    }
    if (cancelled.single() != null) {
      return Optional.of(cancelled.single());
    }
    RunRecord requested = db.autocommit(what, false, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.requestCancel)) {
        Rows.setInstant(ps, 1, testNow());
        ps.setLong(2, runId);
        return Rows.runOrNull(ps);
      }
    });
    if (requested != null) {
      return Optional.of(requested);
    }
    // terminal, already asked to cancel, or absent: nothing changes
    return find(runId);
  }

  @Override
  public List<RunRecord> recoverExpiredLeases() {
    ensureOpen();
    Rows.Changed recovered = db.transaction("lease recovery", c -> {
      Instant now = testNow(); // in production NULL: now() is the same in both statements
      List<RunRecord> expired;
      try (PreparedStatement ps = c.prepareStatement(sql.expiredLeases)) {
        Rows.setInstant(ps, 1, now);
        expired = Rows.runs(ps);
      }
      if (expired.isEmpty()) {
        return new Rows.Changed(List.of(), false);
      }
      int n = expired.size();
      Long[] ids = new Long[n];
      Integer[] attempts = new Integer[n];
      String[] whys = new String[n];
      String[] ends = new String[n];
      for (int i = 0; i < n; i++) {
        RunRecord run = expired.get(i);
        ids[i] = run.id();
        attempts[i] = run.attempt();
        whys[i] = "worker " + run.owner() + " was lost (lease expired at " + run.leaseUntil()
            + ") during attempt " + run.attempt() + " of " + run.maxAttempts();
        // We hold the row's lock, so cancelRequested is current.
        ends[i] = run.cancelRequested() ? RunStatus.CANCELLED.name()
            : run.attempt() >= run.maxAttempts() ? RunStatus.FAILED.name() : null;
      }
      try (PreparedStatement ps = c.prepareStatement(sql.recover)) {
        Rows.setInstant(ps, 1, now);
        ps.setArray(2, c.createArrayOf("bigint", ids));
        ps.setArray(3, c.createArrayOf("integer", attempts));
        ps.setArray(4, c.createArrayOf("text", whys));
        ps.setArray(5, c.createArrayOf("text", ends));
        Rows.Changed after = Rows.changed(ps);
        if (after.runs().size() != n) {
          // cannot happen while we hold the rows' locks; fail loudly rather than skip events
          throw new StoreException(failures.target() + ": " + (n - after.runs().size())
              + " runs changed while their leases were recovered");
        }
        return after;
      }
    });
    if (recovered.wake()) {
      notifier.signal();
    }
    maybeCompactStats();
    return recovered.runs();
  }

  @Override
  public Optional<RunEvent> appendEvent(long runId, int attempt, String type, String data) {
    Objects.requireNonNull(type, "type");
    Objects.requireNonNull(data, "data");
    ensureOpen();
    String checkedType = Rows.text("the event type", type);
    String checkedData = Rows.text("the event data", data);
    return db.autocommit("event \"" + type + "\" of run " + runId, false, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.appendEvent)) {
        Rows.setInstant(ps, 1, testNow());
        ps.setLong(2, runId);
        ps.setInt(3, attempt);
        ps.setString(4, checkedType);
        ps.setString(5, checkedData);
        RunEvent stored = null;
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) {
            stored = Rows.event(rs);
          }
        }
        return Optional.ofNullable(stored);
      }
    });
  }

  @Override
  public int purge(Instant finishedBefore) {
    Objects.requireNonNull(finishedBefore, "finishedBefore");
    ensureOpen();
    int purged = db.autocommit("purge", false, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.purge)) {
        Rows.setInstant(ps, 1, finishedBefore);
        return ps.executeUpdate();
      }
    });
    maybeCompactStats();
    return purged;
  }

  // ---- reads: one statement each, so one snapshot each; retried on a lost connection ----

  @Override
  public Optional<RunRecord> find(long runId) {
    ensureOpen();
    return db.autocommit("find of run " + runId, true, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.runById)) {
        ps.setLong(1, runId);
        return Optional.ofNullable(Rows.runOrNull(ps));
      }
    });
  }

  @Override
  public Page<RunRecord> query(RunQuery query) {
    Objects.requireNonNull(query, "query");
    ensureOpen();
    return db.autocommit("query", true, c -> {
      try (PreparedStatement ps = c.prepareStatement(
          sql.query(query.agent() != null, query.serialKey() != null))) {
        int i = bindFilters(ps, query);
        ps.setLong(i++, query.beforeId().orElse(Long.MAX_VALUE));
        ps.setArray(i++, c.createArrayOf("text", statuses(query)));
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
    return db.autocommit("count", true, c -> {
      try (PreparedStatement ps = c.prepareStatement(
          sql.count(query.agent() != null, query.serialKey() != null))) {
        int i = bindFilters(ps, query);
        ps.setArray(i, c.createArrayOf("text", statuses(query)));
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          return rs.getLong(1);
        }
      }
    });
  }

  /** Binds the serial key and agent filters that apply; returns the next parameter index. */
  private static int bindFilters(PreparedStatement ps, RunQuery query)
      throws SQLException {
    int i = 1;
    if (query.serialKey() != null) {
      ps.setString(i++, query.serialKey());
    }
    if (query.agent() != null) {
      ps.setString(i++, query.agent());
    }
    return i;
  }

  private static String[] statuses(RunQuery query) {
    return (query.statuses().isEmpty() ? ALL_STATUSES
        : query.statuses().stream().map(Enum::name).toList()).toArray(String[]::new);
  }

  @Override
  public List<RunEvent> events(long runId) {
    ensureOpen();
    return db.autocommit("events of run " + runId, true, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.eventsOfRun)) {
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
    RunStats stats = db.autocommit("stats", true, c -> {
      Map<String, AgentStats> agents = new LinkedHashMap<>();
      try (PreparedStatement ps = c.prepareStatement(sql.stats);
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
    maybeCompactStats();
    return stats;
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

  // ---- schedules ----

  @Override
  public Optional<Schedule> findSchedule(String name) {
    Objects.requireNonNull(name, "name");
    ensureOpen();
    return db.autocommit("find of schedule \"" + name + "\"", true, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.scheduleByName)) {
        ps.setString(1, name);
        try (ResultSet rs = ps.executeQuery()) {
          return rs.next() ? Optional.of(Rows.schedule(rs)) : Optional.<Schedule>empty();
        }
      }
    });
  }

  @Override
  public List<Schedule> schedules() {
    ensureOpen();
    return db.autocommit("list of schedules", true, c -> {
      List<Schedule> out = new ArrayList<>();
      try (PreparedStatement ps = c.prepareStatement(sql.allSchedules);
          ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          out.add(Rows.schedule(rs));
        }
      }
      // by name as Java orders strings, whatever the database's collation
      out.sort(java.util.Comparator.comparing(Schedule::name));
      return List.copyOf(out);
    });
  }

  @Override
  public Optional<Schedule> putSchedule(Schedule schedule) {
    Objects.requireNonNull(schedule, "schedule");
    ensureOpen();
    return db.autocommit("put of schedule \"" + schedule.name() + "\"", false, c -> {
      boolean create = schedule.version() == 0;
      try (PreparedStatement ps =
          c.prepareStatement(create ? sql.createSchedule : sql.updateSchedule)) {
        if (create) {
          ps.setString(1, schedule.name());
          Rows.setSchedule(ps, 2, schedule);
        } else {
          int i = Rows.setSchedule(ps, 1, schedule);
          ps.setString(i++, schedule.name());
          ps.setLong(i, schedule.version());
        }
        try (ResultSet rs = ps.executeQuery()) {
          return rs.next() ? Optional.of(Rows.schedule(rs)) : Optional.<Schedule>empty();
        }
      }
    });
  }

  @Override
  public boolean deleteSchedule(String name) {
    Objects.requireNonNull(name, "name");
    ensureOpen();
    return db.autocommit("delete of schedule \"" + name + "\"", false, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.deleteSchedule)) {
        ps.setString(1, name);
        return ps.executeUpdate() > 0;
      }
    });
  }

  /**
   * Folds the stats deltas into the totals, at most once a second per store and by one node at
   * a time (a try-lock: a node that finds another compacting skips). Housekeeping only: stats
   * are exact without it, just slower to read as deltas pile up, so a failure is only logged.
   */
  private void maybeCompactStats() {
    long due = nextCompaction.get();
    if (System.nanoTime() - due < 0
        || !nextCompaction.compareAndSet(due, System.nanoTime() + COMPACT_EVERY_NANOS)
        || closed.get()) {
      return;
    }
    compactStats();
  }

  /** Folds stats deltas into the totals now; for tests and {@link #maybeCompactStats()}. */
  void compactStats() {
    try {
      db.transaction("stats compaction", c -> {
        try (PreparedStatement lock =
            c.prepareStatement("SELECT pg_try_advisory_xact_lock(hashtext(?))")) {
          lock.setString(1, "agentrunner:stats:" + sql.schema);
          try (ResultSet rs = lock.executeQuery()) {
            rs.next();
            if (!rs.getBoolean(1)) {
              return 0;
            }
          }
        }
        try (PreparedStatement ps = c.prepareStatement(sql.compactStats)) {
          return ps.executeUpdate();
        }
      });
    } catch (StoreException e) {
      log.debug("stats compaction of schema {} failed; the deltas stay and count", sql.schema, e);
    }
  }

  /**
   * Calls {@code wakeUp} whenever another process (or this one) inserts a due run, releases
   * runs, recovers expired leases or ends a serial-keyed run, through {@code LISTEN/NOTIFY} on
   * a dedicated connection opened by the first call. Also called once after each (re)connection
   * of that connection, since notifications sent meanwhile are lost.
   */
  @Override
  public AutoCloseable onRemoteWork(Runnable wakeUp) {
    Objects.requireNonNull(wakeUp, "wakeUp");
    ensureOpen();
    listener.add(wakeUp);
    return () -> listener.remove(wakeUp);
  }

  /**
   * Stops listening and closes the store's connection pool (a {@link DataSource} passed to
   * {@link #builder(DataSource)} stays open: it is the host's). Idempotent; later calls of any
   * other method fail with a {@link StoreException}.
   */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    try {
      notifier.close();
      listener.close();
    } finally {
      if (pool != null) {
        pool.close();
      }
    }
  }

  // ---- for tests in this package ----

  /** The server process id of the listening connection; 0 while it is not connected. */
  int listenerBackendPid() {
    return listener.backendPid();
  }

  /** How many times the listening connection was established. */
  long listenerConnections() {
    return listener.connections();
  }

  /** The NOTIFY channel of this store's schema. */
  String channel() {
    return channel;
  }

  /** The statements, for plan checks. */
  Sql sql() {
    return sql;
  }

  private Instant testNow() {
    return clock == null ? null : clock.instant();
  }

  private void ensureOpen() {
    if (closed.get()) {
      throw failures.closed();
    }
  }

  @Override
  public String toString() {
    return "PostgresRunStore[" + failures.target() + "]";
  }

  /**
   * The channel for a schema: readable, and at most 63 bytes (PostgreSQL's identifier limit,
   * beyond which LISTEN would truncate the name and pg_notify would refuse it). Long schema
   * names are cut and given a hash of the whole name, so two schemas never share a channel
   * unless their hashes collide, which only costs spurious wake-ups.
   */
  static String channelFor(String schema) {
    String full = "agentrunner:" + schema;
    if (full.length() <= 63) {
      return full;
    }
    int hash = java.util.Arrays.hashCode(schema.getBytes(StandardCharsets.US_ASCII));
    return full.substring(0, 54) + ":" + String.format("%08x", hash);
  }

  static String withoutParameters(String jdbcUrl) {
    int q = jdbcUrl.indexOf('?');
    return q < 0 ? jdbcUrl : jdbcUrl.substring(0, q);
  }

  // ---- opening ----

  private static PostgresRunStore open(Builder b) {
    Sql sql = new Sql(b.schema);
    long timeoutMillis = b.connectionTimeout.toMillis();
    String target = (b.jdbcUrl != null ? withoutParameters(b.jdbcUrl)
        : b.dataSource.getClass().getSimpleName()) + ", schema \"" + b.schema + "\"";
    Failures failures = new Failures(target, timeoutMillis);
    String channel = channelFor(b.schema);
    HikariDataSource pool = null;
    DataSource source;
    Listener.Connector connector;
    if (b.jdbcUrl != null) {
      PGSimpleDataSource pg = new PGSimpleDataSource();
      pg.setURL(b.jdbcUrl);
      if (b.user != null) {
        pg.setUser(b.user);
      }
      if (b.password != null) {
        pg.setPassword(b.password);
      }
      // Named, so that an operator sees in pg_stat_activity whose connections these are.
      pg.setApplicationName(applicationName("agentrunner", b.schema));
      pg.setOptions(SESSION_OPTIONS);
      pg.setTcpKeepAlive(true);
      pg.setConnectTimeout((int) Math.max(1, TimeUnit.MILLISECONDS.toSeconds(timeoutMillis)));
      PGSimpleDataSource listen = new PGSimpleDataSource();
      listen.setURL(b.jdbcUrl);
      if (b.user != null) {
        listen.setUser(b.user);
      }
      if (b.password != null) {
        listen.setPassword(b.password);
      }
      listen.setApplicationName(applicationName("agentrunner-listen", b.schema));
      listen.setTcpKeepAlive(true);
      listen.setConnectTimeout(pg.getConnectTimeout());
      // A listening connection that stops answering its ping for this long is replaced.
      listen.setSocketTimeout(30);
      connector = listen::getConnection;
      HikariConfig config = new HikariConfig();
      config.setDataSource(pg);
      config.setPoolName("agentrunner-pg[" + b.schema + "]");
      config.setMaximumPoolSize(b.poolSize);
      config.setMinimumIdle(Math.min(2, b.poolSize));
      config.setConnectionTimeout(timeoutMillis);
      config.setAutoCommit(true);
      // Fail at build() if the server cannot be reached, rather than at the first submit.
      config.setInitializationFailTimeout(timeoutMillis);
      try {
        pool = new HikariDataSource(config);
      } catch (RuntimeException e) {
        Throwable cause = e.getCause() instanceof SQLException ? e.getCause() : e;
        throw failures.wrap("connecting", cause);
      }
      source = pool;
    } else {
      source = b.dataSource;
      connector = b.dataSource::getConnection;
    }
    try {
      Db db = new Db(source, failures);
      db.autocommit("creating or migrating the schema", false,
          c -> Schema.migrate(c, b.schema, failures));
      // Identifies this store's own notifications, which its listener skips.
      String senderId = java.util.UUID.randomUUID().toString();
      Listener listener = new Listener(connector, channel, senderId, b.schema);
      Notifier notifier = new Notifier(db, channel, senderId, b.schema);
      return new PostgresRunStore(sql, db, b.clock, listener, notifier, channel, pool);
    } catch (RuntimeException e) {
      if (pool != null) {
        pool.close();
      }
      throw e;
    }
  }

  private static String applicationName(String prefix, String schema) {
    String name = prefix + ":" + schema;
    return name.length() <= 63 ? name : name.substring(0, 63);
  }

  /**
   * Builds a {@link PostgresRunStore}.
   *
   * <p>Thread-safety: not thread-safe; build from one thread.
   */
  public static final class Builder {
    private final String jdbcUrl;
    private final DataSource dataSource;
    private String schema = DEFAULT_SCHEMA;
    private String user;
    private String password;
    private Integer poolSize;
    private Duration connectionTimeout = Duration.ofSeconds(10);
    private Clock clock;

    private Builder(String jdbcUrl, DataSource dataSource) {
      this.jdbcUrl = jdbcUrl;
      this.dataSource = dataSource;
    }

    /**
     * The schema for the store's tables (default {@value PostgresRunStore#DEFAULT_SCHEMA}), created if
     * missing. Stores on different schemas of one database are independent.
     *
     * @throws IllegalArgumentException unless the name is 1 to 63 characters of lower-case
     *     ASCII letters, digits and underscores, not starting with a digit (it is written into
     *     SQL, so nothing else is accepted), nor with {@code pg_} (reserved by PostgreSQL)
     */
    public Builder schema(String schema) {
      Objects.requireNonNull(schema, "schema");
      if (!Schema.IDENTIFIER.matcher(schema).matches()) {
        throw new IllegalArgumentException("schema must be 1 to 63 characters of a-z, 0-9 and _,"
            + " not starting with a digit, was \"" + abbreviate(schema) + "\"");
      }
      if (schema.startsWith("pg_")) {
        throw new IllegalArgumentException(
            "schema must not start with pg_ (PostgreSQL reserves it), was \"" + schema + "\"");
      }
      this.schema = schema;
      return this;
    }

    /** The role to log in as (default: the driver's, from the URL or the OS user). */
    public Builder user(String user) {
      requireUrl("user");
      this.user = Objects.requireNonNull(user, "user");
      return this;
    }

    /** The role's password (default: none, or from the URL). */
    public Builder password(String password) {
      requireUrl("password");
      this.password = Objects.requireNonNull(password, "password");
      return this;
    }

    /**
     * The most connections the store's pool opens (default 10), besides the one listening for
     * notifications.
     *
     * @throws IllegalArgumentException if below 1
     */
    public Builder poolSize(int poolSize) {
      requireUrl("poolSize");
      if (poolSize < 1) {
        throw new IllegalArgumentException("poolSize must be positive, was " + poolSize);
      }
      this.poolSize = poolSize;
      return this;
    }

    /**
     * How long connecting, or waiting for a free pooled connection, may take before the call
     * fails with a {@link StoreException} (default 10 s).
     *
     * @throws IllegalArgumentException if below 250 ms
     */
    public Builder connectionTimeout(Duration connectionTimeout) {
      Objects.requireNonNull(connectionTimeout, "connectionTimeout");
      if (connectionTimeout.toMillis() < 250) {
        throw new IllegalArgumentException(
            "connectionTimeout must be at least 250 ms, was " + connectionTimeout);
      }
      this.connectionTimeout = connectionTimeout;
      return this;
    }

    /**
     * For tests only: take "now" from {@code clock} instead of the database, bound into each
     * statement as a parameter, so that a test can move time by hand. Production code must not
     * call this: there, every timestamp and lease comes from the database's {@code now()}, the
     * one clock all nodes share. Package-private for that reason.
     */
    Builder clock(Clock clock) {
      this.clock = Objects.requireNonNull(clock, "clock");
      return this;
    }

    /**
     * Connects, creates or migrates the schema, and returns the store.
     *
     * @throws StoreException if the server cannot be reached or refuses the login, or the
     *     schema has a newer version or cannot be created; the message names the database, the
     *     schema and the problem
     */
    public PostgresRunStore build() {
      if (poolSize == null) {
        poolSize = 10;
      }
      return open(this);
    }

    private void requireUrl(String option) {
      if (jdbcUrl == null) {
        throw new IllegalStateException(option + " applies to builder(jdbcUrl) only; configure"
            + " it on the DataSource passed to builder(DataSource)");
      }
    }

    private static String abbreviate(String s) {
      return s.length() <= 70 ? s : s.substring(0, 70) + "…";
    }
  }
}
