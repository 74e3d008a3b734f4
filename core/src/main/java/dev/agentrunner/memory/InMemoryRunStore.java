package dev.agentrunner.memory;

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
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * The reference {@link RunStore}: every run and event in this process's memory, gone when the
 * process ends. Use it for tests, demos, and hosts that need no history across restarts.
 *
 * <p>Each operation runs under one lock, so it is atomic and linearizable; that also makes this
 * store the yardstick the contract suite was written against.
 *
 * <p>Thread-safety: thread-safe.
 */
public final class InMemoryRunStore implements RunStore {

  private static final Comparator<RunRecord> CLAIM_ORDER =
      Comparator.comparingInt(RunRecord::priority).reversed().thenComparingLong(RunRecord::id);

  private final Clock clock;
  private final Consumer<RunEvent> beforeEventWrite;
  private final ReentrantLock lock = new ReentrantLock();

  // All guarded by lock.
  private final NavigableMap<Long, RunRecord> runs = new TreeMap<>();
  private final TreeSet<RunRecord> queued = new TreeSet<>(CLAIM_ORDER);
  private final Set<Long> running = new HashSet<>();
  private final Map<Long, List<RunEvent>> events = new HashMap<>();
  private final Map<String, Long> idempotencyKeys = new HashMap<>();
  private final Map<String, Long> runningBySerialKey = new HashMap<>();
  private final Map<String, TreeSet<Long>> queuedBySerialKey = new HashMap<>();
  private final Map<String, AgentStats> stats = new TreeMap<>();
  private final Map<String, Schedule> schedules = new TreeMap<>();
  private long nextRunId = 1;
  private long nextEventSeq = 1;
  private boolean closed;

  private InMemoryRunStore(Builder builder) {
    this.clock = builder.clock;
    this.beforeEventWrite = builder.beforeEventWrite;
  }

  /** A store on the system clock. */
  public static InMemoryRunStore create() {
    return builder().build();
  }

  /** A builder for a store with another clock or a fault hook. */
  public static Builder builder() {
    return new Builder();
  }

  @Override
  public RunRecord insert(NewRun run) {
    Objects.requireNonNull(run, "run");
    return locked(() -> {
      String key = run.request().idempotencyKey();
      if (key != null && idempotencyKeys.containsKey(key)) {
        return run.requireSameRequest(runs.get(idempotencyKeys.get(key)));
      }
      String serialKey = run.request().serialKey();
      if (serialKey != null && run.request().serialKeyPolicy() == SerialKeyPolicy.REJECT) {
        Long active = oldestActive(serialKey);
        if (active != null) {
          throw new SerialKeyBusyException(serialKey, active);
        }
      }
      Instant now = clock.instant();
      Instant notBefore = run.notBefore() == null ? now : run.notBefore();
      RunRecord record = new RunRecord(nextRunId, run.agent(), RunStatus.QUEUED, run.input(),
          null, null, run.request().serialKey(), key, run.request().priority(), 0,
          run.maxAttempts(), now, notBefore, null, null, null, null, false, Usage.ZERO);
      RunEvent event = event(record, "queued", "");
      beforeEventWrite.accept(event);
      nextRunId++;
      if (key != null) {
        idempotencyKeys.put(key, record.id());
      }
      apply(null, record);
      commitEvents(List.of(event));
      return record;
    });
  }

  @Override
  public List<RunRecord> claim(ClaimRequest request) {
    Objects.requireNonNull(request, "request");
    return locked(() -> {
      Instant now = clock.instant();
      Instant leaseUntil = now.plus(request.lease());
      Map<String, Integer> taken = new HashMap<>();
      Set<String> keysTaken = new HashSet<>();
      List<RunRecord> before = new ArrayList<>();
      List<RunRecord> after = new ArrayList<>();
      List<RunEvent> newEvents = new ArrayList<>();
      for (RunRecord run : queued) {
        if (after.size() >= request.limit()) {
          break;
        }
        Integer quota = request.quotas().get(run.agent());
        if (quota == null || taken.getOrDefault(run.agent(), 0) >= quota
            || run.notBefore().isAfter(now) || !serialKeyAllows(run, keysTaken)) {
          continue;
        }
        RunRecord claimed = with(run, RunStatus.RUNNING, run.attempt() + 1, request.owner(),
            leaseUntil, now, null, run.output(), run.error(), run.usage(), run.notBefore());
        taken.merge(run.agent(), 1, Integer::sum);
        if (run.serialKey() != null) {
          keysTaken.add(run.serialKey());
        }
        before.add(run);
        after.add(claimed);
        newEvents.add(event(claimed, "started", request.owner()));
      }
      for (RunEvent e : newEvents) {
        beforeEventWrite.accept(e);
      }
      for (int i = 0; i < after.size(); i++) {
        apply(before.get(i), after.get(i));
      }
      commitEvents(newEvents);
      return List.copyOf(after);
    });
  }

  /** The oldest QUEUED or RUNNING run of {@code key}, or null. */
  private Long oldestActive(String key) {
    Long running = runningBySerialKey.get(key);
    TreeSet<Long> waiting = queuedBySerialKey.get(key);
    Long queuedFirst = waiting == null ? null : waiting.first();
    if (running == null) {
      return queuedFirst;
    }
    return queuedFirst == null ? running : Math.min(running, queuedFirst);
  }

  private boolean serialKeyAllows(RunRecord run, Set<String> keysTakenNow) {
    String key = run.serialKey();
    if (key == null) {
      return true;
    }
    return !runningBySerialKey.containsKey(key)
        && !keysTakenNow.contains(key)
        && queuedBySerialKey.get(key).first() == run.id();
  }

  @Override
  public Heartbeat heartbeat(String owner, Duration lease) {
    Objects.requireNonNull(owner, "owner");
    Objects.requireNonNull(lease, "lease");
    return locked(() -> {
      Instant leaseUntil = clock.instant().plus(lease);
      int extended = 0;
      Set<Long> cancelRequested = new HashSet<>();
      for (long id : running) {
        RunRecord run = runs.get(id);
        if (owner.equals(run.owner())) {
          RunRecord renewed = with(run, run.status(), run.attempt(), owner, leaseUntil,
              run.startedAt(), run.finishedAt(), run.output(), run.error(), run.usage(),
              run.notBefore());
          runs.put(run.id(), renewed);
          extended++;
          if (run.cancelRequested()) {
            cancelRequested.add(run.id());
          }
        }
      }
      return new Heartbeat(extended, cancelRequested);
    });
  }

  @Override
  public Optional<RunRecord> finish(Finish finish) {
    Objects.requireNonNull(finish, "finish");
    return locked(() -> {
      RunRecord run = runs.get(finish.runId());
      if (run == null || run.status() != RunStatus.RUNNING || run.attempt() != finish.attempt()
          || !finish.owner().equals(run.owner())) {
        return Optional.empty();
      }
      Instant now = clock.instant();
      Usage usage = run.usage().plus(finish.usage());
      boolean retry = finish.status() == RunStatus.QUEUED && !run.cancelRequested();
      // A retry of a run with a pending cancel ends it CANCELLED instead.
      RunStatus status = finish.status() == RunStatus.QUEUED && !retry
          ? RunStatus.CANCELLED : finish.status();
      String error = status == finish.status() ? finish.error()
          : "cancelled; the failed attempt was not retried: " + finish.error();
      RunRecord done = retry
          ? with(run, RunStatus.QUEUED, run.attempt(), null, null, null, null, null,
              error, usage, finish.retryAt())
          : with(run, status, run.attempt(), run.owner(), null, run.startedAt(), now,
              finish.output(), error, usage, run.notBefore());
      String type = retry ? "requeued" : eventType(done.status());
      RunEvent event = event(done, type, error == null ? "" : error);
      beforeEventWrite.accept(event);
      apply(run, done);
      commitEvents(List.of(event));
      return Optional.of(done);
    });
  }

  @Override
  public int release(String owner, List<RunRecord> claimed) {
    Objects.requireNonNull(owner, "owner");
    Objects.requireNonNull(claimed, "claimed");
    return locked(() -> {
      List<RunRecord[]> changes = new ArrayList<>();
      List<RunEvent> newEvents = new ArrayList<>();
      // A run listed twice is released once: changes are applied after this loop, so a
      // duplicate would still look RUNNING here and be applied twice (lost row, torn stats).
      Set<Long> seen = new HashSet<>();
      for (RunRecord c : claimed) {
        RunRecord run = runs.get(c.id());
        if (run != null && run.status() == RunStatus.RUNNING && run.attempt() == c.attempt()
            && owner.equals(run.owner()) && seen.add(run.id())) {
          // A claim with a pending cancel ends CANCELLED rather than going back to the queue.
          RunRecord back = run.cancelRequested()
              ? with(run, RunStatus.CANCELLED, run.attempt(), owner, null, run.startedAt(),
                  clock.instant(), null, "cancelled before it started", run.usage(),
                  run.notBefore())
              : with(run, RunStatus.QUEUED, run.attempt() - 1, null, null, null, null,
                  run.output(), run.error(), run.usage(), run.notBefore());
          changes.add(new RunRecord[] {run, back});
          newEvents.add(event(back, run.cancelRequested() ? "cancelled" : "released", owner));
        }
      }
      newEvents.forEach(beforeEventWrite);
      changes.forEach(c -> apply(c[0], c[1]));
      commitEvents(newEvents);
      return changes.size();
    });
  }

  @Override
  public Optional<RunRecord> cancel(long runId) {
    return locked(() -> {
      RunRecord run = runs.get(runId);
      if (run == null) {
        return Optional.empty();
      }
      RunRecord after;
      RunEvent event;
      switch (run.status()) {
        case QUEUED -> {
          after = with(run, RunStatus.CANCELLED, run.attempt(), null, null, null,
              clock.instant(), null, "cancelled before it started", run.usage(), run.notBefore());
          event = event(after, "cancelled", "");
        }
        case RUNNING -> {
          if (run.cancelRequested()) {
            return Optional.of(run);
          }
          after = new RunRecord(run.id(), run.agent(), run.status(), run.input(), run.output(),
              run.error(), run.serialKey(), run.idempotencyKey(), run.priority(), run.attempt(),
              run.maxAttempts(), run.createdAt(), run.notBefore(), run.startedAt(),
              run.finishedAt(), run.owner(), run.leaseUntil(), true, run.usage());
          event = event(after, "cancel_requested", "");
        }
        default -> {
          return Optional.of(run);
        }
      }
      beforeEventWrite.accept(event);
      apply(run, after);
      commitEvents(List.of(event));
      return Optional.of(after);
    });
  }

  @Override
  public List<RunRecord> recoverExpiredLeases() {
    return locked(() -> {
      Instant now = clock.instant();
      List<RunRecord[]> changes = new ArrayList<>();
      List<RunEvent> newEvents = new ArrayList<>();
      for (long id : running) {
        RunRecord run = runs.get(id);
        if (!run.leaseUntil().isBefore(now)) {
          continue;
        }
        String why = "worker " + run.owner() + " was lost (lease expired at " + run.leaseUntil()
            + ") during attempt " + run.attempt() + " of " + run.maxAttempts();
        RunStatus end = run.cancelRequested() ? RunStatus.CANCELLED
            : run.attempt() >= run.maxAttempts() ? RunStatus.FAILED : null;
        RunRecord after = end != null
            ? with(run, end, run.attempt(), run.owner(), null, run.startedAt(), now,
                null, why, run.usage(), run.notBefore())
            : with(run, RunStatus.QUEUED, run.attempt(), null, null, null, null, null, why,
                run.usage(), now);
        changes.add(new RunRecord[] {run, after});
        newEvents.add(event(after, end != null ? eventType(end) : "recovered", why));
      }
      newEvents.forEach(beforeEventWrite);
      changes.forEach(c -> apply(c[0], c[1]));
      commitEvents(newEvents);
      return changes.stream().map(c -> c[1]).toList();
    });
  }

  @Override
  public Optional<RunEvent> appendEvent(long runId, int attempt, String type, String data) {
    Objects.requireNonNull(type, "type");
    Objects.requireNonNull(data, "data");
    return locked(() -> {
      RunRecord run = runs.get(runId);
      if (run == null || run.status() != RunStatus.RUNNING || run.attempt() != attempt) {
        return Optional.empty();
      }
      RunEvent event = event(run, type, data);
      beforeEventWrite.accept(event);
      commitEvents(List.of(event));
      return Optional.of(event);
    });
  }

  @Override
  public Optional<RunRecord> find(long runId) {
    return locked(() -> Optional.ofNullable(runs.get(runId)));
  }

  @Override
  public Page<RunRecord> query(RunQuery query) {
    Objects.requireNonNull(query, "query");
    return locked(() -> {
      NavigableMap<Long, RunRecord> range = query.beforeId().isPresent()
          ? runs.headMap(query.beforeId().getAsLong(), false)
          : runs;
      List<RunRecord> fetched = new ArrayList<>(query.limit() + 1);
      for (RunRecord run : range.descendingMap().values()) {
        if (query.matches(run)) {
          fetched.add(run);
          if (fetched.size() > query.limit()) {
            break;
          }
        }
      }
      return query.toPage(fetched);
    });
  }

  @Override
  public long count(RunQuery query) {
    Objects.requireNonNull(query, "query");
    return locked(() -> runs.values().stream().filter(query::matches).count());
  }

  @Override
  public List<RunEvent> events(long runId) {
    return locked(() -> List.copyOf(events.getOrDefault(runId, List.of())));
  }

  @Override
  public RunStats stats() {
    return locked(() -> new RunStats(stats));
  }

  @Override
  public int purge(Instant finishedBefore) {
    Objects.requireNonNull(finishedBefore, "finishedBefore");
    return locked(() -> {
      List<RunRecord> old = runs.values().stream()
          .filter(r -> r.isTerminal() && r.finishedAt().isBefore(finishedBefore))
          .toList();
      for (RunRecord run : old) {
        runs.remove(run.id());
        events.remove(run.id());
        if (run.idempotencyKey() != null) {
          idempotencyKeys.remove(run.idempotencyKey());
        }
        AgentStats s = adjust(stats.get(run.agent()), run.status(), -1);
        stats.put(run.agent(), withUsage(s, subtract(s.usage(), run.usage())));
      }
      return old.size();
    });
  }

  @Override
  public Optional<Schedule> findSchedule(String name) {
    Objects.requireNonNull(name, "name");
    return locked(() -> Optional.ofNullable(schedules.get(name)));
  }

  @Override
  public List<Schedule> schedules() {
    return locked(() -> List.copyOf(schedules.values()));
  }

  @Override
  public Optional<Schedule> putSchedule(Schedule schedule) {
    Objects.requireNonNull(schedule, "schedule");
    return locked(() -> {
      Schedule stored = schedules.get(schedule.name());
      long storedVersion = stored == null ? 0 : stored.version();
      if (storedVersion != schedule.version()) {
        return Optional.empty();
      }
      Schedule next = new Schedule(schedule.spec(), schedule.paused(), schedule.nextFireAt(),
          schedule.lastFireAt(), schedule.lastRunId(), storedVersion + 1);
      schedules.put(schedule.name(), next);
      return Optional.of(next);
    });
  }

  @Override
  public boolean deleteSchedule(String name) {
    Objects.requireNonNull(name, "name");
    return locked(() -> schedules.remove(name) != null);
  }

  @Override
  public void close() {
    lock.lock();
    try {
      closed = true;
    } finally {
      lock.unlock();
    }
  }

  // ---- the bookkeeping behind every change; all called with the lock held ----

  private <T> T locked(java.util.function.Supplier<T> action) {
    lock.lock();
    try {
      if (closed) {
        throw new StoreException("in-memory run store is closed");
      }
      return action.get();
    } finally {
      lock.unlock();
    }
  }

  private RunEvent event(RunRecord run, String type, String data) {
    return new RunEvent(nextEventSeq, run.id(), run.attempt(), type, data, clock.instant());
  }

  /** Runs the fault hook on each event, then stores them; call after apply succeeded. */
  private void commitEvents(List<RunEvent> newEvents) {
    for (RunEvent e : newEvents) {
      RunEvent numbered = new RunEvent(nextEventSeq++, e.runId(), e.attempt(), e.type(), e.data(),
          e.at());
      events.computeIfAbsent(e.runId(), id -> new ArrayList<>()).add(numbered);
    }
  }

  /** Replaces {@code before} (null for a new run) with {@code after} in every index. */
  private void apply(RunRecord before, RunRecord after) {
    if (before != null) {
      queued.remove(before); // runs needs no removal: the put below replaces the same id
      running.remove(before.id());
      unindexSerialKey(before);
      stats.put(before.agent(), adjust(stats.get(before.agent()), before.status(), -1));
    }
    runs.put(after.id(), after);
    if (after.status() == RunStatus.QUEUED) {
      queued.add(after);
    } else if (after.status() == RunStatus.RUNNING) {
      running.add(after.id());
    }
    indexSerialKey(after);
    // usage only grows, so the difference is never negative
    Usage added = before == null ? after.usage() : subtract(after.usage(), before.usage());
    AgentStats s = adjust(stats.getOrDefault(after.agent(), AgentStats.empty(after.agent())),
        after.status(), 1);
    stats.put(after.agent(), withUsage(s, s.usage().plus(added)));
  }

  private void indexSerialKey(RunRecord run) {
    String key = run.serialKey();
    if (key == null) {
      return;
    }
    if (run.status() == RunStatus.RUNNING) {
      runningBySerialKey.put(key, run.id());
    } else if (run.status() == RunStatus.QUEUED) {
      queuedBySerialKey.computeIfAbsent(key, k -> new TreeSet<>()).add(run.id());
    }
  }

  private void unindexSerialKey(RunRecord run) {
    String key = run.serialKey();
    if (key == null) {
      return;
    }
    if (run.status() == RunStatus.RUNNING) {
      runningBySerialKey.remove(key, run.id());
    } else if (run.status() == RunStatus.QUEUED) {
      TreeSet<Long> ids = queuedBySerialKey.get(key);
      ids.remove(run.id());
      if (ids.isEmpty()) {
        queuedBySerialKey.remove(key);
      }
    }
  }

  private static Usage subtract(Usage a, Usage b) {
    return new Usage(a.inputTokens() - b.inputTokens(), a.outputTokens() - b.outputTokens(),
        a.costMicros() - b.costMicros());
  }

  private static AgentStats adjust(AgentStats s, RunStatus status, int delta) {
    long q = s.queued(), r = s.running(), ok = s.succeeded(), f = s.failed(),
        c = s.cancelled(), t = s.timedOut();
    switch (status) {
      case QUEUED -> q += delta;
      case RUNNING -> r += delta;
      case SUCCEEDED -> ok += delta;
      case FAILED -> f += delta;
      case CANCELLED -> c += delta;
      case TIMED_OUT -> t += delta;
    }
    return new AgentStats(s.agent(), q, r, ok, f, c, t, s.usage());
  }

  private static AgentStats withUsage(AgentStats s, Usage usage) {
    return new AgentStats(s.agent(), s.queued(), s.running(), s.succeeded(), s.failed(),
        s.cancelled(), s.timedOut(), usage);
  }

  private static RunRecord with(RunRecord run, RunStatus status, int attempt, String owner,
      Instant leaseUntil, Instant startedAt, Instant finishedAt, String output, String error,
      Usage usage, Instant notBefore) {
    return new RunRecord(run.id(), run.agent(), status, run.input(), output, error,
        run.serialKey(), run.idempotencyKey(), run.priority(), attempt, run.maxAttempts(),
        run.createdAt(), notBefore, startedAt, finishedAt, owner, leaseUntil,
        status == RunStatus.RUNNING && run.cancelRequested(), usage);
  }

  private static String eventType(RunStatus status) {
    return status.name().toLowerCase(java.util.Locale.ROOT);
  }

  /**
   * Builds an {@link InMemoryRunStore}.
   *
   * <p>Thread-safety: not thread-safe; build from one thread.
   */
  public static final class Builder {
    private Clock clock = Clock.systemUTC();
    private Consumer<RunEvent> beforeEventWrite = e -> {};

    private Builder() {}

    /** The clock for timestamps and leases (default: the UTC system clock). */
    public Builder clock(Clock clock) {
      this.clock = Objects.requireNonNull(clock, "clock");
      return this;
    }

    /**
     * A hook called with each event just before a change commits, inside the store's lock.
     * If it throws, the whole operation is abandoned and nothing changes: the contract suite
     * uses it to inject a failure between a status change and its event. Keep it quick.
     */
    public Builder beforeEventWrite(Consumer<RunEvent> hook) {
      this.beforeEventWrite = Objects.requireNonNull(hook, "hook");
      return this;
    }

    /** A new, empty store. */
    public InMemoryRunStore build() {
      return new InMemoryRunStore(this);
    }
  }
}
