package dev.agentrunner.sqlite;

import dev.agentrunner.RunEvent;
import dev.agentrunner.RunRecord;
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
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * The store's write operations, each run by the {@link Writer} inside its IMMEDIATE transaction
 * and savepoint: every status change and its event row are written by the same operation, so
 * they commit together or not at all (I5).
 *
 * <p>Thread-safety: used only by the writer thread; holds no mutable state of its own.
 */
final class Writes {

  /** Claim order: highest priority first, then oldest. */
  private static final Comparator<long[]> CLAIM_ORDER =
      Comparator.<long[]>comparingLong(c -> -c[1]).thenComparingLong(c -> c[0]);

  private final Clock clock;

  Writes(Clock clock) {
    this.clock = clock;
  }

  RunRecord insert(Writer.Tx tx, NewRun run) throws SQLException {
    Instant now = clock.instant();
    rejectIfKeyBusy(tx, run);
    return insertQueued(tx, run, now);
  }

  /**
   * The insert of {@link dev.agentrunner.spi.RunStore#insertAndClaim}: the run is stored
   * RUNNING when it comes first in the claim's order, else QUEUED as by {@link #insert}. The
   * checks and the insert are one step: the writer holds the database's write lock.
   */
  RunRecord insertAndClaim(Writer.Tx tx, NewRun run, ClaimRequest claim) throws SQLException {
    Instant now = clock.instant();
    rejectIfKeyBusy(tx, run);
    if (!comesFirst(tx, run, claim, now)) {
      return insertQueued(tx, run, now);
    }
    long nowNanos = Rows.nanos(now);
    PreparedStatement ps = tx.prepare(Sql.INSERT_RUNNING_RUN);
    ps.setString(1, run.agent());
    ps.setString(2, run.input());
    Rows.setNullableString(ps, 3, run.request().serialKey());
    ps.setInt(4, run.request().priority());
    ps.setInt(5, run.maxAttempts());
    ps.setLong(6, nowNanos);
    ps.setLong(7, nowNanos);
    ps.setLong(8, nowNanos);
    ps.setString(9, claim.owner());
    ps.setLong(10, Rows.nanos(now.plus(claim.lease())));
    RunRecord inserted = Rows.runOrNull(ps);
    PreparedStatement events = tx.prepare(Sql.INSERT_QUEUED_AND_STARTED_EVENTS);
    events.setLong(1, inserted.id());
    events.setLong(2, nowNanos);
    events.setString(3, claim.owner());
    events.executeUpdate();
    return inserted;
  }

  /**
   * Whether a claim for {@code claim} would take the new run before every stored one (see
   * {@link dev.agentrunner.spi.RunStore#insertAndClaim}). A run with an idempotency key is
   * never claimed at insert: the key may already hold another run.
   */
  private boolean comesFirst(Writer.Tx tx, NewRun run, ClaimRequest claim, Instant now)
      throws SQLException {
    if (run.request().idempotencyKey() != null || !claim.quotas().containsKey(run.agent())
        || (run.notBefore() != null && run.notBefore().isAfter(now))) {
      return false;
    }
    String serialKey = run.request().serialKey();
    if (serialKey != null && oldestActiveOfKey(tx, serialKey) != 0) {
      return false;
    }
    PreparedStatement ahead = tx.prepare(Sql.CLAIMABLE_AT_OR_ABOVE);
    long nowNanos = Rows.nanos(now);
    for (String agent : claim.quotas().keySet()) {
      ahead.setString(1, agent);
      ahead.setInt(2, run.request().priority());
      ahead.setLong(3, nowNanos);
      try (ResultSet rs = ahead.executeQuery()) {
        if (rs.next()) {
          return false;
        }
      }
    }
    return true;
  }

  /**
   * REJECT: refuses the run if its serial key is busy. Runs before anything is written, as the
   * writer requires of a refusal (see {@link Writer.Op}).
   */
  private static void rejectIfKeyBusy(Writer.Tx tx, NewRun run) throws SQLException {
    String serialKey = run.request().serialKey();
    if (serialKey != null && run.request().serialKeyPolicy() == SerialKeyPolicy.REJECT) {
      // Inside the IMMEDIATE transaction: no other process can add or start a run of the key
      // between this check and the insert.
      long active = oldestActiveOfKey(tx, serialKey);
      if (active != 0) {
        throw new SerialKeyBusyException(serialKey, active);
      }
    }
  }

  /** The id of the oldest QUEUED or RUNNING run of {@code serialKey}; 0 if there is none. */
  private static long oldestActiveOfKey(Writer.Tx tx, String serialKey) throws SQLException {
    PreparedStatement active = tx.prepare(Sql.OLDEST_ACTIVE_OF_SERIAL_KEY);
    active.setString(1, serialKey);
    try (ResultSet rs = active.executeQuery()) {
      rs.next(); // an aggregate: always one row, NULL (read as 0) when the key is idle
      return rs.getLong(1);
    }
  }

  private RunRecord insertQueued(Writer.Tx tx, NewRun run, Instant now) throws SQLException {
    Instant notBefore = run.notBefore() == null ? now : run.notBefore();
    String key = run.request().idempotencyKey();
    PreparedStatement ps = tx.prepare(Sql.INSERT_RUN);
    ps.setString(1, run.agent());
    ps.setString(2, run.input());
    Rows.setNullableString(ps, 3, run.request().serialKey());
    Rows.setNullableString(ps, 4, key);
    ps.setInt(5, run.request().priority());
    ps.setInt(6, run.maxAttempts());
    ps.setLong(7, Rows.nanos(now));
    ps.setLong(8, Rows.nanos(notBefore));
    RunRecord inserted = Rows.runOrNull(ps);
    if (inserted == null) {
      // The key is taken. We hold the write lock, so the row cannot vanish before this read.
      PreparedStatement byKey = tx.prepare(Sql.RUN_BY_IDEMPOTENCY_KEY);
      byKey.setString(1, key);
      RunRecord existing = Rows.runOrNull(byKey);
      if (existing == null) {
        throw new StoreException("insert wrote no row and found no run with idempotency key \""
            + key + "\"");
      }
      return existing;
    }
    event(tx, inserted.id(), 0, "queued", "", now);
    return inserted;
  }

  List<RunRecord> claim(Writer.Tx tx, ClaimRequest request) throws SQLException {
    Instant now = clock.instant();
    long nowNanos = Rows.nanos(now);
    // Each agent's best candidates (at most its quota), then the best of all of them. Taking the
    // first `quota` per agent and then the first `limit` overall picks exactly the runs a
    // single walk down the queue in claim order would pick.
    List<long[]> candidates = new ArrayList<>();
    PreparedStatement ps = tx.prepare(Sql.CLAIM_CANDIDATES);
    for (Map.Entry<String, Integer> quota : new TreeMap<>(request.quotas()).entrySet()) {
      ps.setString(1, quota.getKey());
      ps.setLong(2, nowNanos);
      ps.setInt(3, Math.min(quota.getValue(), request.limit()));
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          candidates.add(new long[] {rs.getLong(1), rs.getLong(2)});
        }
      }
    }
    if (candidates.isEmpty()) {
      return List.of();
    }
    candidates.sort(CLAIM_ORDER);
    PreparedStatement update = tx.prepare(Sql.CLAIM_RUN);
    update.setString(1, request.owner());
    update.setLong(2, nowNanos);
    update.setLong(3, Rows.nanos(now.plus(request.lease())));
    List<RunRecord> claimed = new ArrayList<>();
    for (int i = 0; i < Math.min(candidates.size(), request.limit()); i++) {
      update.setLong(4, candidates.get(i)[0]);
      RunRecord run = Rows.runOrNull(update);
      if (run == null) {
        // cannot happen while we hold the write lock; fail loudly rather than claim less
        throw new StoreException("run " + candidates.get(i)[0] + " left the queue mid-claim");
      }
      event(tx, run.id(), run.attempt(), "started", request.owner(), now);
      claimed.add(run);
    }
    return List.copyOf(claimed);
  }

  /** {@code runIdsJson}: the runs to renew, as {@link Rows#jsonNumbers} writes them. */
  Heartbeat heartbeat(Writer.Tx tx, String owner, String runIdsJson, Duration lease)
      throws SQLException {
    Instant now = clock.instant();
    PreparedStatement ps = tx.prepare(Sql.HEARTBEAT);
    ps.setLong(1, Rows.nanos(now.plus(lease)));
    ps.setString(2, runIdsJson);
    ps.setString(3, owner);
    int extended = 0;
    Set<Long> cancelRequested = new HashSet<>();
    try (ResultSet rs = ps.executeQuery()) {
      while (rs.next()) {
        extended++;
        if (rs.getInt(2) != 0) {
          cancelRequested.add(rs.getLong(1));
        }
      }
    }
    return new Heartbeat(extended, cancelRequested);
  }

  Optional<RunRecord> finish(Writer.Tx tx, Finish finish) throws SQLException {
    Instant now = clock.instant();
    PreparedStatement ps;
    int i = 1;
    if (finish.status() == RunStatus.QUEUED) {
      ps = tx.prepare(Sql.FINISH_RETRY);
      Rows.setNullableString(ps, i++, finish.error());
      ps.setLong(i++, Rows.nanos(now.plus(finish.retryAfter())));
    } else {
      ps = tx.prepare(Sql.FINISH_TERMINAL);
      ps.setString(i++, finish.status().name());
      Rows.setNullableString(ps, i++, finish.output());
      Rows.setNullableString(ps, i++, finish.error());
      ps.setLong(i++, Rows.nanos(now));
    }
    ps.setLong(i++, finish.usage().inputTokens());
    ps.setLong(i++, finish.usage().outputTokens());
    ps.setLong(i++, finish.usage().costMicros());
    ps.setLong(i++, finish.runId());
    ps.setInt(i++, finish.attempt());
    ps.setString(i, finish.owner());
    RunRecord done = Rows.runOrNull(ps);
    if (done == null) {
      // A retry of a run with a pending cancel ends it CANCELLED; otherwise the fence failed.
      return finish.status() == RunStatus.QUEUED
          ? finish(tx, cancelInsteadOfRetry(finish))
          : Optional.empty();
    }
    String type = finish.status() == RunStatus.QUEUED ? "requeued" : eventType(done.status());
    event(tx, done.id(), done.attempt(), type, finish.error() == null ? "" : finish.error(), now);
    return Optional.of(done);
  }

  int release(Writer.Tx tx, String owner, List<RunRecord> claimed) throws SQLException {
    Instant now = clock.instant();
    PreparedStatement ps = tx.prepare(Sql.RELEASE);
    int released = 0;
    for (RunRecord c : claimed) {
      ps.setLong(1, c.id());
      ps.setInt(2, c.attempt());
      ps.setString(3, owner);
      RunRecord back = Rows.runOrNull(ps);
      if (back != null) {
        released++;
        event(tx, back.id(), back.attempt(), "released", owner, now);
      } else if (finish(tx, Finish.unsuccessful(c.id(), c.attempt(), owner,
          RunStatus.CANCELLED, "cancelled before it started", Usage.ZERO)).isPresent()) {
        released++; // a cancel was pending: the claim ends, as CANCELLED rather than QUEUED
      }
    }
    return released;
  }

  /** The terminal finish that replaces a retry when the run has a pending cancel. */
  static Finish cancelInsteadOfRetry(Finish retry) {
    return Finish.unsuccessful(retry.runId(), retry.attempt(), retry.owner(), RunStatus.CANCELLED,
        "cancelled; the failed attempt was not retried: " + retry.error(), retry.usage());
  }

  Optional<RunRecord> cancel(Writer.Tx tx, long runId) throws SQLException {
    Instant now = clock.instant();
    PreparedStatement queued = tx.prepare(Sql.CANCEL_QUEUED);
    queued.setLong(1, Rows.nanos(now));
    queued.setLong(2, runId);
    RunRecord cancelled = Rows.runOrNull(queued);
    if (cancelled != null) {
      event(tx, runId, cancelled.attempt(), "cancelled", "", now);
      return Optional.of(cancelled);
    }
    PreparedStatement running = tx.prepare(Sql.REQUEST_CANCEL);
    running.setLong(1, runId);
    RunRecord requested = Rows.runOrNull(running);
    if (requested != null) {
      event(tx, runId, requested.attempt(), "cancel_requested", "", now);
      return Optional.of(requested);
    }
    // terminal, already asked to cancel, or absent: nothing changes
    PreparedStatement find = tx.prepare(Sql.RUN_BY_ID);
    find.setLong(1, runId);
    return Optional.ofNullable(Rows.runOrNull(find));
  }

  List<RunRecord> recoverExpiredLeases(Writer.Tx tx) throws SQLException {
    Instant now = clock.instant();
    long nowNanos = Rows.nanos(now);
    PreparedStatement expiredQuery = tx.prepare(Sql.EXPIRED_LEASES);
    expiredQuery.setLong(1, nowNanos);
    List<RunRecord> expired = Rows.runs(expiredQuery);
    List<RunRecord> recovered = new ArrayList<>(expired.size());
    for (RunRecord run : expired) {
      String why = "worker " + run.owner() + " was lost (lease expired at " + run.leaseUntil()
          + ") during attempt " + run.attempt() + " of " + run.maxAttempts();
      RunStatus end = run.cancelRequested() ? RunStatus.CANCELLED
          : run.attempt() >= run.maxAttempts() ? RunStatus.FAILED : null;
      PreparedStatement ps = tx.prepare(end != null ? Sql.RECOVER_TO_TERMINAL
          : Sql.RECOVER_TO_QUEUED);
      int i = 1;
      if (end != null) {
        ps.setString(i++, end.name());
      }
      ps.setString(i++, why);
      ps.setLong(i++, nowNanos);
      ps.setLong(i++, run.id());
      ps.setInt(i, run.attempt());
      RunRecord after = Rows.runOrNull(ps);
      if (after == null) {
        // cannot happen while we hold the write lock; fail loudly rather than skip an event
        throw new StoreException("run " + run.id() + " changed while its lease was recovered");
      }
      event(tx, after.id(), after.attempt(), end != null ? eventType(end) : "recovered", why,
          now);
      recovered.add(after);
    }
    return List.copyOf(recovered);
  }

  Optional<RunEvent> appendEvent(Writer.Tx tx, long runId, int attempt, String type, String data)
      throws SQLException {
    Instant now = clock.instant();
    PreparedStatement ps = tx.prepare(Sql.APPEND_EVENT);
    ps.setString(1, type);
    ps.setString(2, data);
    ps.setLong(3, Rows.nanos(now));
    ps.setLong(4, runId);
    ps.setInt(5, attempt);
    RunEvent stored = null;
    try (ResultSet rs = ps.executeQuery()) {
      while (rs.next()) {
        stored = Rows.event(rs);
      }
    }
    return Optional.ofNullable(stored);
  }

  int purge(Writer.Tx tx, Instant finishedBefore) throws SQLException {
    PreparedStatement ps = tx.prepare(Sql.PURGE);
    ps.setLong(1, Rows.nanos(finishedBefore));
    return ps.executeUpdate();
  }

  /**
   * The schedule compare-and-set, one statement either way: version 0 creates the schedule unless
   * the name exists; any other version replaces it only while the stored version still matches.
   */
  Optional<Schedule> putSchedule(Writer.Tx tx, Schedule schedule) throws SQLException {
    PreparedStatement ps;
    if (schedule.version() == 0) {
      ps = tx.prepare(Sql.INSERT_SCHEDULE);
      ps.setString(1, schedule.name());
      Rows.bindScheduleState(ps, 2, schedule);
    } else {
      ps = tx.prepare(Sql.UPDATE_SCHEDULE);
      int i = Rows.bindScheduleState(ps, 1, schedule);
      ps.setString(i++, schedule.name());
      ps.setLong(i, schedule.version());
    }
    return Optional.ofNullable(Rows.scheduleOrNull(ps));
  }

  boolean deleteSchedule(Writer.Tx tx, String name) throws SQLException {
    PreparedStatement ps = tx.prepare(Sql.DELETE_SCHEDULE);
    ps.setString(1, name);
    return ps.executeUpdate() > 0;
  }

  private static void event(Writer.Tx tx, long runId, int attempt, String type, String data,
      Instant at) throws SQLException {
    PreparedStatement ps = tx.prepare(Sql.INSERT_EVENT);
    ps.setLong(1, runId);
    ps.setInt(2, attempt);
    ps.setString(3, type);
    ps.setString(4, data);
    ps.setLong(5, Rows.nanos(at));
    ps.executeUpdate();
  }

  private static String eventType(RunStatus status) {
    return status.name().toLowerCase(Locale.ROOT);
  }
}
