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
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.function.Predicate;
import java.util.function.Supplier;

/**
 * The reference {@link RunStore}: every run and event in this process's memory, gone when the
 * process ends. Use it for tests, demos, and hosts that need no history across restarts.
 *
 * <p>Runs are dealt by id to a few stripes, each with its own lock over its runs, their events,
 * its running list and its counters. The two operations every run makes when a runner starts it
 * at its submit (an insert claimed at once while nothing waits in the queue, and a finish that
 * ends it) touch one stripe and take only its lock, so runner threads on different cores seldom
 * wait for each other. Every other operation (anything that changes the claim queue, a serial
 * or idempotency key, a claim, a query, the stats) takes every stripe's lock, always in the same
 * order, and sees the store as of one moment: each operation is atomic and linearizable, which
 * also makes this store the yardstick the contract suite was written against. The work done
 * under a lock is kept small (runs in arrays indexed by id, counters updated in place, the clock
 * read before the lock). An ended run is kept as primitive
 * fields in those arrays rather than as objects (its record is built again when read), so the
 * history costs the collector little: about 230 bytes per run and its events, plus its strings.
 *
 * <p>Thread-safety: thread-safe.
 */
public final class InMemoryRunStore implements RunStore {

  /** Highest priority first, then lowest id; neither ever changes for a run. */
  private static final Comparator<Slot> CLAIM_ORDER = (a, b) -> {
    int byPriority = Integer.compare(b.priority, a.priority);
    return byPriority != 0 ? byPriority : Long.compare(a.id, b.id);
  };

  /**
   * How many QUEUED runs {@link #insertAndClaim} looks past (not due, blocked by their serial key,
   * or of an agent outside the quotas) before it stops proving that none comes first and leaves
   * the new run QUEUED for the dispatcher's claim.
   */
  private static final int MAX_PRECEDENCE_WALK = 64;

  /** How often {@link #acquire} retries before it parks: a few microseconds' worth. */
  private static final int LOCK_SPINS = 50;

  /**
   * Stripes, as a power of two: run {@code id} lives in stripe {@code (id - 1) % STRIPES}. Twice
   * the cores, at least 4 (on 2 cores, 8 stripes measured no better than 4) and at most 64 (an
   * operation that takes every lock takes them all).
   */
  private static final int STRIPE_BITS = Math.min(6, Math.max(2,
      64 - Long.numberOfLeadingZeros(2L * Runtime.getRuntime().availableProcessors() - 1)));
  private static final int STRIPES = 1 << STRIPE_BITS;

  private final Clock clock;
  private final Consumer<RunEvent> beforeEventWrite;
  /** Whether a fault hook is installed; without one, hot paths build no event objects. */
  private final boolean hooked;

  /** Each with its own lock, guarding its runs, their events, its running list and counters. */
  private final Stripe[] stripes = new Stripe[STRIPES];

  // Guarded by every stripe's lock at once: written only while all are held, so one stripe's
  // lock is enough to read them.
  private final TreeSet<Slot> queued = new TreeSet<>(CLAIM_ORDER);
  /** Idempotency key to the id of the run it stored. */
  private final Map<String, Long> idempotencyKeys = new HashMap<>();
  private final Map<String, Long> runningBySerialKey = new HashMap<>();
  private final Map<String, TreeSet<Long>> queuedBySerialKey = new HashMap<>();
  private final Map<String, Schedule> schedules = new TreeMap<>();
  /**
   * The last version of each deleted schedule's name, so that a schedule created again under it
   * goes on counting and no put prepared against the deleted one can match.
   */
  private final Map<String, Long> deletedScheduleVersions = new HashMap<>();
  private boolean closed;

  /** Handed out by the insert, under a stripe's lock or all of them. */
  private final java.util.concurrent.atomic.AtomicLong nextRunId =
      new java.util.concurrent.atomic.AtomicLong(1);
  /** Handed out as events commit, so a refused operation leaves no gap. */
  private final java.util.concurrent.atomic.AtomicLong nextEventSeq =
      new java.util.concurrent.atomic.AtomicLong(1);

  /**
   * One stripe of the runs: those whose id falls in it, with their events, the RUNNING ones
   * among them, and their counts. Guarded by its lock (or by all of them).
   */
  private static final class Stripe {
    final ReentrantLock lock = new ReentrantLock();
    final RunTable runs;
    final EventLog log = new EventLog();
    /** RUNNING runs, oldest claim first; walked by heartbeats and lease recovery. */
    final RunningList running = new RunningList();
    final Map<String, Counters> stats = new HashMap<>();

    Stripe(int index) {
      runs = new RunTable(index);
    }

    Counters counters(String agent) {
      return stats.computeIfAbsent(agent, a -> new Counters());
    }
  }

  private InMemoryRunStore(Builder builder) {
    this.clock = builder.clock;
    this.beforeEventWrite = builder.beforeEventWrite;
    this.hooked = builder.beforeEventWrite != Builder.NO_HOOK;
    for (int i = 0; i < STRIPES; i++) {
      stripes[i] = new Stripe(i);
    }
  }

  private Stripe stripeOf(long runId) {
    return stripes[(int) ((runId - 1) & (STRIPES - 1))];
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
    Instant now = clock.instant(); // read before the lock: see insertLocked
    lockAllOpen(); // a QUEUED run joins the claim queue, which every stripe's lock guards
    try {
      return insertLocked(run, null, now, 0);
    } finally {
      unlockAll();
    }
  }

  @Override
  public RunRecord insertAndClaim(NewRun run, ClaimRequest claim) {
    Objects.requireNonNull(run, "run");
    Objects.requireNonNull(claim, "claim");
    Instant now = clock.instant();
    long id = 0;
    if (!hooked && run.request().idempotencyKey() == null && run.request().serialKey() == null
        && (run.notBefore() == null || !run.notBefore().isAfter(now))
        && claim.quotas().containsKey(run.agent())) {
      // The common case touches nothing shared but the ids: its stripe's lock is enough while
      // no run waits in the queue (the queue only changes while every stripe's lock is held).
      id = nextRunId.getAndIncrement();
      Stripe stripe = stripeOf(id);
      acquireOpen(stripe.lock);
      try {
        if (queued.isEmpty()) {
          return store(id, run, claim, run.notBefore() == null ? now : run.notBefore(), now);
        }
      } finally {
        stripe.lock.unlock();
      }
      // Runs wait: whether one of them comes first needs every stripe held. The id is kept.
    }
    lockAllOpen();
    try {
      return insertLocked(run, claim, now, id);
    } finally {
      unlockAll();
    }
  }

  /**
   * Inserts {@code run}, claimed for {@code claim} if it is the run that claim takes first; with
   * every stripe's lock held. {@code now} was read just before the locks were taken, so that the
   * two operations every run makes (this and its finish) do not read the clock while other
   * threads wait; the microseconds it may be behind only make the run look due and its lease
   * end a little earlier. {@code id} is the run's id if one was taken already, else 0: the id is
   * taken once the insert can no longer be refused, so a refusal leaves no gap.
   */
  private RunRecord insertLocked(NewRun run, ClaimRequest claim, Instant now, long id) {
    String key = run.request().idempotencyKey();
    if (key != null) {
      Long existing = idempotencyKeys.get(key);
      if (existing != null) {
        return run.requireSameRequest(stripeOf(existing).runs.record(existing));
      }
    }
    String serialKey = run.request().serialKey();
    if (serialKey != null && run.request().serialKeyPolicy() == SerialKeyPolicy.REJECT) {
      Long active = oldestActive(serialKey);
      if (active != null) {
        throw new SerialKeyBusyException(serialKey, active);
      }
    }
    Instant notBefore = run.notBefore() == null ? now : run.notBefore();
    boolean claimed = claim != null && comesFirst(run, notBefore, claim, now);
    if (hooked) {
      // Nothing runs outside all the locks in a hooked store, so the next id is known.
      long next = id != 0 ? id : nextRunId.get();
      beforeEventWrite.accept(event(next, 0, "queued", "", now, 0));
      if (claimed) {
        beforeEventWrite.accept(event(next, 1, "started", claim.owner(), now, 1));
      }
    }
    return store(id != 0 ? id : nextRunId.getAndIncrement(), run, claimed ? claim : null,
        notBefore, now);
  }

  /** Stores a new run, RUNNING for {@code claimedFor} or QUEUED (null), with its events. */
  private RunRecord store(long id, NewRun run, ClaimRequest claimedFor, Instant notBefore,
      Instant now) {
    String key = run.request().idempotencyKey();
    String serialKey = run.request().serialKey();
    int priority = run.request().priority();
    RunRecord record = claimedFor != null
        ? new RunRecord(id, run.agent(), RunStatus.RUNNING, run.input(), null, null, serialKey,
            key, priority, 1, run.maxAttempts(), now, notBefore, now, null, claimedFor.owner(),
            now.plus(claimedFor.lease()), false, Usage.ZERO)
        : new RunRecord(id, run.agent(), RunStatus.QUEUED, run.input(), null, null, serialKey,
            key, priority, 0, run.maxAttempts(), now, notBefore, null, null, null, null, false,
            Usage.ZERO);
    Slot slot = new Slot(id, priority, stripeOf(id));
    slot.stripe.runs.add(slot);
    if (key != null) {
      assert allLocksHeld() : "an idempotency key stored without every stripe locked";
      idempotencyKeys.put(key, id);
    }
    apply(slot, record);
    commit(slot, 0, "queued", "", now);
    if (claimedFor != null) {
      commit(slot, 1, "started", claimedFor.owner(), now);
    }
    return record;
  }

  /**
   * Whether a claim for {@code claim} would take the not yet stored {@code run} before any
   * stored run: it is due, its agent has a quota, its serial key is idle, and no claimable QUEUED
   * run of at least its priority waits (a tie goes to the stored run, whatever the ids: the new
   * run's id may have been taken before theirs).
   */
  private boolean comesFirst(NewRun run, Instant notBefore, ClaimRequest claim, Instant now) {
    String serialKey = run.request().serialKey();
    if (!claim.quotas().containsKey(run.agent()) || notBefore.isAfter(now)
        || (serialKey != null && oldestActive(serialKey) != null)) {
      return false;
    }
    if (queued.isEmpty()) {
      return true;
    }
    int priority = run.request().priority();
    int looked = 0;
    for (Slot waiting : queued) {
      RunRecord other = waiting.run;
      if (other.priority() < priority) {
        return true; // everything after this one comes later than the new run
      }
      if (claim.quotas().containsKey(other.agent()) && !other.notBefore().isAfter(now)
          && serialKeyAllows(other, Set.of())) {
        return false;
      }
      if (++looked >= MAX_PRECEDENCE_WALK) {
        return false; // not worth proving under the lock: the dispatcher's claim decides
      }
    }
    return true;
  }

  @Override
  public List<RunRecord> claim(ClaimRequest request) {
    Objects.requireNonNull(request, "request");
    return locked(() -> {
      Instant now = clock.instant();
      Instant leaseUntil = now.plus(request.lease());
      Map<String, Integer> taken = new HashMap<>();
      Set<String> keysTaken = new HashSet<>();
      List<Slot> slots = new ArrayList<>();
      List<RunRecord> after = new ArrayList<>();
      List<RunEvent> newEvents = new ArrayList<>();
      for (Slot slot : queued) {
        if (after.size() >= request.limit()) {
          break;
        }
        RunRecord run = slot.run;
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
        slots.add(slot);
        after.add(claimed);
        newEvents.add(event(run.id(), claimed.attempt(), "started", request.owner(), now,
            newEvents.size()));
      }
      applyAll(slots, after, newEvents);
      return List.copyOf(after);
    });
  }

  /** The oldest QUEUED or RUNNING run of {@code key}, or null. */
  private Long oldestActive(String key) {
    Long runningId = runningBySerialKey.get(key);
    TreeSet<Long> waiting = queuedBySerialKey.get(key);
    Long queuedFirst = waiting == null ? null : waiting.first();
    if (runningId == null) {
      return queuedFirst;
    }
    return queuedFirst == null ? runningId : Math.min(runningId, queuedFirst);
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
  public Heartbeat heartbeat(String owner, Set<Long> runIds, Duration lease) {
    Objects.requireNonNull(owner, "owner");
    Objects.requireNonNull(runIds, "runIds");
    Objects.requireNonNull(lease, "lease");
    return locked(() -> {
      Instant leaseUntil = clock.instant().plus(lease);
      int extended = 0;
      Set<Long> cancelRequested = new HashSet<>();
      long highest = nextRunId.get() - 1;
      for (long id : runIds) {
        Slot slot = id < 1 || id > highest ? null : stripeOf(id).runs.active(id);
        RunRecord run = slot == null ? null : slot.run;
        if (run != null && run.status() == RunStatus.RUNNING && owner.equals(run.owner())) {
          // Only the lease changes: no index or counter depends on it.
          slot.run = with(run, run.status(), run.attempt(), owner, leaseUntil, run.startedAt(),
              run.finishedAt(), run.output(), run.error(), run.usage(), run.notBefore());
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
    Instant early = clock.instant(); // before the lock, as for an insert
    if (!hooked && finish.status() != RunStatus.QUEUED) {
      // An attempt ending for good changes nothing shared unless its run has a serial key:
      // its stripe's lock is enough.
      Stripe stripe = stripeOf(finish.runId());
      acquireOpen(stripe.lock);
      try {
        Slot slot = stripe.runs.active(finish.runId());
        if (!fenceMatches(slot, finish)) {
          return Optional.empty();
        }
        if (slot.run.serialKey() == null) {
          return Optional.of(finishLocked(slot, finish, early));
        }
      } finally {
        stripe.lock.unlock();
      }
    }
    lockAllOpen();
    try {
      Slot slot = stripeOf(finish.runId()).runs.active(finish.runId());
      return fenceMatches(slot, finish)
          ? Optional.of(finishLocked(slot, finish, early)) : Optional.empty();
    } finally {
      unlockAll();
    }
  }

  /** Whether {@code slot} holds a RUNNING run under the finish's attempt and owner. */
  private static boolean fenceMatches(Slot slot, Finish finish) {
    RunRecord run = slot == null ? null : slot.run;
    return run != null && run.status() == RunStatus.RUNNING && run.attempt() == finish.attempt()
        && finish.owner().equals(run.owner());
  }

  /**
   * Applies a finish whose fence matched, with the run's stripe's lock held, or all of them
   * when it requeues the run or the run has a serial key.
   */
  private RunRecord finishLocked(Slot slot, Finish finish, Instant early) {
    RunRecord run = slot.run;
    // An event written meanwhile (a cancel request) may carry a later time: never end a run
    // before its last event.
    Instant now = slot.stripe.log.noEarlierThan(slot.lastEvent, early);
    Usage usage = run.usage().plus(finish.usage());
    boolean retry = finish.status() == RunStatus.QUEUED && !run.cancelRequested();
    // A retry of a run with a pending cancel ends it CANCELLED instead.
    RunStatus status = finish.status() == RunStatus.QUEUED && !retry
        ? RunStatus.CANCELLED : finish.status();
    String error = status == finish.status() ? finish.error()
        : "cancelled; the failed attempt was not retried: " + finish.error();
    RunRecord done = retry
        ? with(run, RunStatus.QUEUED, run.attempt(), null, null, null, null, null,
            error, usage, now.plus(finish.retryAfter()))
        : with(run, status, run.attempt(), run.owner(), null, run.startedAt(), now,
            finish.output(), error, usage, run.notBefore());
    String type = retry ? "requeued" : eventType(done.status());
    String data = error == null ? "" : error;
    if (hooked) {
      beforeEventWrite.accept(event(run.id(), done.attempt(), type, data, now, 0));
    }
    apply(slot, done);
    commit(slot, done.attempt(), type, data, now);
    return done;
  }

  @Override
  public int release(String owner, List<RunRecord> claimed) {
    Objects.requireNonNull(owner, "owner");
    Objects.requireNonNull(claimed, "claimed");
    return locked(() -> {
      Instant now = clock.instant();
      List<Slot> slots = new ArrayList<>();
      List<RunRecord> changed = new ArrayList<>();
      List<RunEvent> newEvents = new ArrayList<>();
      // A run listed twice is released once: changes are applied after this loop, so a
      // duplicate would still look RUNNING here and be applied twice (lost row, torn stats).
      Set<Long> seen = new HashSet<>();
      for (RunRecord c : claimed) {
        Slot slot = stripeOf(c.id()).runs.active(c.id());
        RunRecord run = slot == null ? null : slot.run;
        if (run != null && run.status() == RunStatus.RUNNING && run.attempt() == c.attempt()
            && owner.equals(run.owner()) && seen.add(run.id())) {
          // A claim with a pending cancel ends CANCELLED rather than going back to the queue.
          RunRecord back = run.cancelRequested()
              ? with(run, RunStatus.CANCELLED, run.attempt(), owner, null, run.startedAt(),
                  now, null, "cancelled before it started", run.usage(), run.notBefore())
              : with(run, RunStatus.QUEUED, run.attempt() - 1, null, null, null, null,
                  run.output(), run.error(), run.usage(), run.notBefore());
          slots.add(slot);
          changed.add(back);
          newEvents.add(event(run.id(), back.attempt(),
              run.cancelRequested() ? "cancelled" : "released", owner, now, newEvents.size()));
        }
      }
      applyAll(slots, changed, newEvents);
      return slots.size();
    });
  }

  @Override
  public Optional<RunRecord> cancel(long runId) {
    return locked(() -> {
      Slot slot = stripeOf(runId).runs.active(runId);
      if (slot == null) {
        // ended (nothing to cancel) or unknown
        return Optional.ofNullable(stripeOf(runId).runs.record(runId));
      }
      RunRecord run = slot.run;
      Instant now = clock.instant();
      RunRecord after;
      RunEvent event;
      switch (run.status()) {
        case QUEUED -> {
          after = with(run, RunStatus.CANCELLED, run.attempt(), null, null, null,
              now, null, "cancelled before it started", run.usage(), run.notBefore());
          event = event(run.id(), after.attempt(), "cancelled", "", now, 0);
        }
        case RUNNING -> {
          if (run.cancelRequested()) {
            return Optional.of(run);
          }
          after = new RunRecord(run.id(), run.agent(), run.status(), run.input(), run.output(),
              run.error(), run.serialKey(), run.idempotencyKey(), run.priority(), run.attempt(),
              run.maxAttempts(), run.createdAt(), run.notBefore(), run.startedAt(),
              run.finishedAt(), run.owner(), run.leaseUntil(), true, run.usage());
          event = event(run.id(), after.attempt(), "cancel_requested", "", now, 0);
        }
        default -> {
          return Optional.of(run);
        }
      }
      beforeEventWrite.accept(event);
      apply(slot, after);
      commit(slot, event);
      return Optional.of(after);
    });
  }

  @Override
  public List<RunRecord> recoverExpiredLeases() {
    return locked(() -> {
      Instant now = clock.instant();
      List<Slot> slots = new ArrayList<>();
      List<RunRecord> changed = new ArrayList<>();
      List<RunEvent> newEvents = new ArrayList<>();
      for (Slot slot : allRunning()) {
        RunRecord run = slot.run;
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
        slots.add(slot);
        changed.add(after);
        newEvents.add(event(run.id(), after.attempt(),
            end != null ? eventType(end) : "recovered", why, now, newEvents.size()));
      }
      applyAll(slots, changed, newEvents);
      return List.copyOf(changed);
    });
  }

  @Override
  public Optional<RunEvent> appendEvent(long runId, int attempt, String type, String data) {
    Objects.requireNonNull(type, "type");
    Objects.requireNonNull(data, "data");
    // The run's stripe is enough, unless a hook must see the event's number before it is
    // taken: only with every stripe held is the next number known.
    java.util.function.Function<Stripe, Optional<RunEvent>> append = stripe -> {
      Slot slot = stripe.runs.active(runId);
      if (!isRunning(slot, attempt)) {
        return Optional.empty();
      }
      Instant at = clock.instant();
      if (hooked) {
        beforeEventWrite.accept(event(runId, attempt, type, data, at, 0));
      }
      long seq = commit(slot, attempt, type, data, at);
      return Optional.of(new RunEvent(seq, runId, attempt, type, data, at));
    };
    return hooked ? locked(() -> append.apply(stripeOf(runId))) : inStripe(runId, append);
  }

  private static boolean isRunning(Slot slot, int attempt) {
    return slot != null && slot.run.status() == RunStatus.RUNNING
        && slot.run.attempt() == attempt;
  }

  @Override
  public Optional<RunRecord> find(long runId) {
    return inStripe(runId, stripe -> Optional.ofNullable(stripe.runs.record(runId)));
  }

  @Override
  public Page<RunRecord> query(RunQuery query) {
    Objects.requireNonNull(query, "query");
    return locked(() -> {
      long below = query.beforeId().isPresent() ? query.beforeId().getAsLong() : Long.MAX_VALUE;
      // The page is the highest matching ids: at most limit + 1 of them from each stripe.
      List<RunRecord> fetched = new ArrayList<>();
      for (Stripe stripe : stripes) {
        int before = fetched.size();
        stripe.runs.descendingBelow(below, query, null, run -> {
          if (query.matches(run)) {
            fetched.add(run);
          }
          return fetched.size() - before <= query.limit();
        });
      }
      fetched.sort(Comparator.comparingLong(RunRecord::id).reversed());
      return query.toPage(fetched.subList(0, Math.min(fetched.size(), query.limit() + 1)));
    });
  }

  @Override
  public long count(RunQuery query) {
    Objects.requireNonNull(query, "query");
    return locked(() -> {
      long[] n = new long[1];
      for (Stripe stripe : stripes) {
        stripe.runs.descendingBelow(Long.MAX_VALUE, query, null, run -> {
          if (query.matches(run)) {
            n[0]++;
          }
          return true;
        });
      }
      return n[0];
    });
  }

  @Override
  public List<RunEvent> events(long runId) {
    return inStripe(runId, stripe -> stripe.log.eventsEndingAt(runId, stripe.runs.lastEvent(runId)));
  }

  @Override
  public RunStats stats() {
    return locked(() -> {
      Map<String, Counters> sums = new HashMap<>();
      for (Stripe stripe : stripes) {
        stripe.stats.forEach((agent, counters) ->
            sums.computeIfAbsent(agent, a -> new Counters()).add(counters));
      }
      Map<String, AgentStats> snapshot = new HashMap<>();
      sums.forEach((agent, counters) -> snapshot.put(agent, counters.snapshot(agent)));
      return new RunStats(snapshot);
    });
  }

  @Override
  public int purge(Instant finishedBefore) {
    Objects.requireNonNull(finishedBefore, "finishedBefore");
    return locked(() -> {
      int purged = 0;
      for (Stripe stripe : stripes) {
        List<RunRecord> old = new ArrayList<>();
        stripe.runs.descendingBelow(Long.MAX_VALUE, null, finishedBefore, run -> {
          if (run.isTerminal() && run.finishedAt().isBefore(finishedBefore)) {
            old.add(run);
          }
          return true;
        });
        for (RunRecord run : old) {
          stripe.log.forgetEndingAt(stripe.runs.lastEvent(run.id()));
          stripe.runs.remove(run.id());
          if (run.idempotencyKey() != null) {
            idempotencyKeys.remove(run.idempotencyKey());
          }
          stripe.stats.get(run.agent()).remove(run);
        }
        purged += old.size();
      }
      return purged;
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
      long counted = stored != null ? storedVersion
          : deletedScheduleVersions.getOrDefault(schedule.name(), 0L);
      Schedule next = new Schedule(schedule.spec(), schedule.paused(), schedule.nextFireAt(),
          schedule.lastFireAt(), schedule.lastRunId(), counted + 1);
      schedules.put(schedule.name(), next);
      return Optional.of(next);
    });
  }

  @Override
  public boolean deleteSchedule(String name) {
    Objects.requireNonNull(name, "name");
    return locked(() -> {
      Schedule deleted = schedules.remove(name);
      if (deleted == null) {
        return false;
      }
      deletedScheduleVersions.put(name, deleted.version());
      return true;
    });
  }

  @Override
  public void close() {
    lockAll();
    try {
      closed = true;
    } finally {
      unlockAll();
    }
  }

  // ---- the bookkeeping behind every change; all called with the lock held ----

  /** Runs {@code action} with every stripe's lock held. */
  private <T> T locked(Supplier<T> action) {
    lockAllOpen();
    try {
      return action.get();
    } finally {
      unlockAll();
    }
  }

  /** Runs {@code action} with the lock of run {@code runId}'s stripe held. */
  private <T> T inStripe(long runId, java.util.function.Function<Stripe, T> action) {
    Stripe stripe = stripeOf(runId);
    acquireOpen(stripe.lock);
    try {
      return action.apply(stripe);
    } finally {
      stripe.lock.unlock();
    }
  }

  /**
   * Takes every stripe's lock, always in the same order (so two callers cannot deadlock, and
   * none holds one stripe's lock while it waits for another's), and fails, releasing them, if
   * the store is closed.
   */
  private void lockAllOpen() {
    lockAll();
    if (closed) {
      unlockAll();
      throw new StoreException("in-memory run store is closed");
    }
  }

  private void lockAll() {
    for (Stripe stripe : stripes) {
      acquire(stripe.lock);
    }
  }

  /** For assertions: whether this thread holds every stripe's lock. */
  private boolean allLocksHeld() {
    for (Stripe stripe : stripes) {
      if (!stripe.lock.isHeldByCurrentThread()) {
        return false;
      }
    }
    return true;
  }

  private void unlockAll() {
    for (int i = STRIPES - 1; i >= 0; i--) {
      stripes[i].lock.unlock();
    }
  }

  /** Takes {@code lock}, and fails (releasing it) if the store is closed. */
  private void acquireOpen(ReentrantLock lock) {
    acquire(lock);
    if (closed) {
      lock.unlock();
      throw new StoreException("in-memory run store is closed");
    }
  }

  /** Every RUNNING run, stripe by stripe; only with every stripe's lock held. */
  private Iterable<Slot> allRunning() {
    List<Slot> all = new ArrayList<>();
    for (Stripe stripe : stripes) {
      stripe.running.forEach(all::add);
    }
    return all;
  }

  /**
   * Takes the lock, spinning a little first: the lock is held for a microsecond or less, and a
   * thread that parks at once pays far more than that to park and be woken (a virtual thread
   * even unmounts and copies its stack).
   */
  private static void acquire(ReentrantLock lock) {
    if (lock.tryLock()) {
      return;
    }
    for (int spin = 0; spin < LOCK_SPINS; spin++) {
      Thread.onSpinWait();
      if (!lock.isLocked() && lock.tryLock()) {
        return;
      }
    }
    lock.lock();
  }

  /**
   * An event numbered as the {@code offset}-th of the operation: numbers are handed out only
   * when the operation commits, so a refused operation leaves no gap. Only with every stripe's
   * lock held (else another stripe may take the number first).
   */
  private RunEvent event(long runId, int attempt, String type, String data, Instant at,
      int offset) {
    return new RunEvent(nextEventSeq.get() + offset, runId, attempt, type, data, at);
  }

  /** Stores one event of the committing operation; events are committed in numbering order. */
  private void commit(Slot slot, RunEvent event) {
    commit(slot, event.attempt(), event.type(), event.data(), event.at());
  }

  /** Stores one event of the run in {@code slot}; returns its sequence number. */
  private long commit(Slot slot, int attempt, String type, String data, Instant at) {
    assert slot.stripe.lock.isHeldByCurrentThread() : "run " + slot.id + ": stripe not locked";
    long seq = nextEventSeq.getAndIncrement();
    slot.lastEvent = slot.stripe.log.append(seq, attempt, type, data, at, slot.lastEvent);
    if (slot.run.isTerminal()) {
      slot.stripe.runs.freeze(slot); // its last event: nothing changes an ended run again
    }
    return seq;
  }

  /**
   * Commits a change of several runs: the fault hook sees every event first (if it throws,
   * nothing changed), then each slot gets its new record and its event.
   */
  private void applyAll(List<Slot> slots, List<RunRecord> after, List<RunEvent> newEvents) {
    newEvents.forEach(beforeEventWrite);
    for (int i = 0; i < slots.size(); i++) {
      apply(slots.get(i), after.get(i));
      commit(slots.get(i), newEvents.get(i));
    }
  }

  /** Makes {@code after} the current state of {@code slot}, in every index and counter. */
  private void apply(Slot slot, RunRecord after) {
    RunRecord before = slot.run;
    // Only a change to or from QUEUED, or of a run with a serial key, touches what all the
    // stripes share; callers holding one stripe's lock make neither.
    assert slot.stripe.lock.isHeldByCurrentThread() : "run " + slot.id + ": stripe not locked";
    assert (before == null || before.status() != RunStatus.QUEUED)
        && after.status() != RunStatus.QUEUED && after.serialKey() == null || allLocksHeld()
        : "run " + slot.id + ": a change of shared indexes without every stripe locked";
    if (before != null) {
      if (before.status() == RunStatus.QUEUED) {
        queued.remove(slot); // found by (priority, id), which never change
      } else if (before.status() == RunStatus.RUNNING) {
        slot.stripe.running.remove(slot);
      }
      unindexSerialKey(before);
    }
    slot.run = after;
    if (after.status() == RunStatus.QUEUED) {
      queued.add(slot);
    } else if (after.status() == RunStatus.RUNNING) {
      slot.stripe.running.add(slot);
    }
    indexSerialKey(after);
    slot.stripe.counters(after.agent()).move(before, after);
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

  private static RunRecord with(RunRecord run, RunStatus status, int attempt, String owner,
      Instant leaseUntil, Instant startedAt, Instant finishedAt, String output, String error,
      Usage usage, Instant notBefore) {
    return new RunRecord(run.id(), run.agent(), status, run.input(), output, error,
        run.serialKey(), run.idempotencyKey(), run.priority(), attempt, run.maxAttempts(),
        run.createdAt(), notBefore, startedAt, finishedAt, owner, leaseUntil,
        status == RunStatus.RUNNING && run.cancelRequested(), usage);
  }

  private static final String[] EVENT_TYPES = new String[RunStatus.values().length];

  static {
    for (RunStatus status : RunStatus.values()) {
      EVENT_TYPES[status.ordinal()] = status.name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  private static String eventType(RunStatus status) {
    return EVENT_TYPES[status.ordinal()];
  }

  /**
   * One QUEUED or RUNNING run: its current record and its events. Dropped when the run ends
   * ({@link RunTable#freeze}). Guarded by the store's lock.
   */
  private static final class Slot {
    final long id;
    final int priority;
    final Stripe stripe;
    RunRecord run;
    /** Where the run's last event is in its stripe's {@link EventLog}; 0: none yet. */
    long lastEvent;
    /** Neighbours in the {@link RunningList} while RUNNING; null otherwise. */
    Slot previousRunning;
    Slot nextRunning;

    Slot(long id, int priority, Stripe stripe) {
      this.id = id;
      this.priority = priority;
      this.stripe = stripe;
    }
  }

  /**
   * The RUNNING runs as a list threaded through their slots: adding and removing a run
   * allocates nothing. Guarded by the lock.
   */
  private static final class RunningList implements Iterable<Slot> {
    private Slot first;
    private Slot last;

    void add(Slot slot) {
      slot.previousRunning = last;
      slot.nextRunning = null;
      if (last == null) {
        first = slot;
      } else {
        last.nextRunning = slot;
      }
      last = slot;
    }

    void remove(Slot slot) {
      if (slot.previousRunning == null) {
        first = slot.nextRunning;
      } else {
        slot.previousRunning.nextRunning = slot.nextRunning;
      }
      if (slot.nextRunning == null) {
        last = slot.previousRunning;
      } else {
        slot.nextRunning.previousRunning = slot.previousRunning;
      }
      slot.previousRunning = null;
      slot.nextRunning = null;
    }

    /** Walks the list; the loop body may not add or remove runs (callers collect first). */
    @Override
    public java.util.Iterator<Slot> iterator() {
      return new java.util.Iterator<>() {
        private Slot next = first;

        @Override
        public boolean hasNext() {
          return next != null;
        }

        @Override
        public Slot next() {
          if (next == null) {
            throw new java.util.NoSuchElementException();
          }
          Slot current = next;
          next = current.nextRunning;
          return current;
        }
      };
    }
  }

  /** One agent's counts by status and usage sums, updated in place. Guarded by the lock. */
  private static final class Counters {
    private final long[] byStatus = new long[RunStatus.values().length];
    private long inputTokens;
    private long outputTokens;
    private long costMicros;

    /** Moves one run from {@code before} (null: a new run) to {@code after}. */
    void move(RunRecord before, RunRecord after) {
      if (before != null) {
        byStatus[before.status().ordinal()]--;
        add(before.usage(), -1);
      }
      byStatus[after.status().ordinal()]++;
      add(after.usage(), 1);
    }

    void remove(RunRecord run) {
      byStatus[run.status().ordinal()]--;
      add(run.usage(), -1);
    }

    /** Adds another stripe's counts into these. */
    void add(Counters other) {
      for (int i = 0; i < byStatus.length; i++) {
        byStatus[i] += other.byStatus[i];
      }
      inputTokens += other.inputTokens;
      outputTokens += other.outputTokens;
      costMicros += other.costMicros;
    }

    private void add(Usage usage, int sign) {
      inputTokens += sign * usage.inputTokens();
      outputTokens += sign * usage.outputTokens();
      costMicros += sign * usage.costMicros();
    }

    AgentStats snapshot(String agent) {
      return new AgentStats(agent, byStatus[RunStatus.QUEUED.ordinal()],
          byStatus[RunStatus.RUNNING.ordinal()], byStatus[RunStatus.SUCCEEDED.ordinal()],
          byStatus[RunStatus.FAILED.ordinal()], byStatus[RunStatus.CANCELLED.ordinal()],
          byStatus[RunStatus.TIMED_OUT.ordinal()],
          new Usage(inputTokens, outputTokens, costMicros));
    }
  }

  /**
   * One stripe's events, in the order they were appended: the event at position {@code p} (1, 2,
   * 3, ...) lives at index {@code p - 1} of fixed-size chunks, its fields (its sequence number
   * across the store among them) side by side in two arrays (numbers, strings), and a run's
   * events form a chain back from its last through {@code PREVIOUS}, so that an append writes
   * nothing but the new event. No object per event: a store holding a million runs holds no
   * three million event objects for the collector to trace. Events are built as
   * {@link RunEvent} values only when read. A chunk whose every event belongs to purged runs is
   * dropped. Guarded by the stripe's lock.
   */
  private static final class EventLog {
    /** Events per chunk, as a power of two. */
    private static final int CHUNK_BITS = 14;

    // An event's numbers at index i * NUMS + field of its chunk's longs, its strings at
    // i * TEXTS + field of its texts: an append writes two cache lines, not one per field, which
    // counts when the threads taking turns at the lock run on different cores.
    private static final int NUMS = 4;
    /** The event's sequence number, across the whole store. */
    private static final int SEQ = 0;
    private static final int AT_SECONDS = 1;
    /** The attempt in the high half, the nanoseconds of its time in the low half. */
    private static final int ATTEMPT_NANOS = 2;
    /** The position of the same run's previous event; 0 for its first. */
    private static final int PREVIOUS = 3;
    private static final int TEXTS = 2;
    private static final int TYPE = 0;
    private static final int DATA = 1;

    /** One chunk's events, sized by the {@link ChunkList}. */
    private static final class Chunk extends ChunkList.Chunk {
      long[] nums;
      String[] texts;

      Chunk(int capacity) {
        nums = new long[capacity * NUMS];
        texts = new String[capacity * TEXTS];
      }

      @Override
      int capacity() {
        return texts.length / TEXTS;
      }

      @Override
      void resize(int capacity) {
        nums = java.util.Arrays.copyOf(nums, capacity * NUMS);
        texts = java.util.Arrays.copyOf(texts, capacity * TEXTS);
      }
    }

    private final ChunkList<Chunk> chunks = new ChunkList<>(CHUNK_BITS, Chunk::new);
    /** The position of the next event appended here: 1, 2, 3, ... */
    private long next = 1;

    /** Appends event {@code seq} of a run whose last event is at {@code previous}; returns its position. */
    long append(long seq, int attempt, String type, String data, Instant at, long previous) {
      long position = next++;
      Chunk chunk = chunks.add(position);
      int n = chunks.offset(position) * NUMS;
      int t = chunks.offset(position) * TEXTS;
      chunk.nums[n + SEQ] = seq;
      chunk.nums[n + AT_SECONDS] = at.getEpochSecond();
      chunk.nums[n + ATTEMPT_NANOS] = ((long) attempt << 32) | at.getNano();
      chunk.nums[n + PREVIOUS] = previous;
      chunk.texts[t + TYPE] = type;
      chunk.texts[t + DATA] = data;
      return position;
    }

    /** {@code at}, or the time of the event at {@code position} if that is later. */
    Instant noEarlierThan(long position, Instant at) {
      Chunk chunk = chunks.of(position);
      int n = chunks.offset(position) * NUMS;
      long seconds = chunk.nums[n + AT_SECONDS];
      int nanos = (int) chunk.nums[n + ATTEMPT_NANOS];
      return seconds < at.getEpochSecond()
          || (seconds == at.getEpochSecond() && nanos <= at.getNano())
          ? at : Instant.ofEpochSecond(seconds, nanos);
    }

    /** Run {@code runId}'s chain of events ending at {@code position} (0: none), in write order. */
    List<RunEvent> eventsEndingAt(long runId, long position) {
      List<RunEvent> out = new ArrayList<>(4);
      for (long s = position; s != 0; ) {
        Chunk chunk = chunks.of(s);
        int n = chunks.offset(s) * NUMS;
        int t = chunks.offset(s) * TEXTS;
        long attemptNanos = chunk.nums[n + ATTEMPT_NANOS];
        out.add(new RunEvent(chunk.nums[n + SEQ], runId, (int) (attemptNanos >>> 32),
            chunk.texts[t + TYPE], chunk.texts[t + DATA],
            Instant.ofEpochSecond(chunk.nums[n + AT_SECONDS], (int) attemptNanos)));
        s = chunk.nums[n + PREVIOUS];
      }
      return List.copyOf(out.reversed());
    }

    /** Forgets the chain of a purged run's events; chunks left empty are released. */
    void forgetEndingAt(long seq) {
      for (long s = seq; s != 0; ) {
        Chunk chunk = chunks.of(s);
        int t = chunks.offset(s) * TEXTS;
        chunk.texts[t + TYPE] = null;
        chunk.texts[t + DATA] = null;
        long previous = chunk.nums[chunks.offset(s) * NUMS + PREVIOUS];
        chunks.removed(s);
        s = previous;
      }
    }
  }

  /**
   * Fixed-size chunks of the entries numbered 1, 2, 3, ... (event sequence numbers, run ids):
   * entry {@code n} is at {@link #offset} {@code (n - 1) % size} of chunk {@code (n - 1) / size}.
   * A chunk left empty once no later entry can land in it is released, and released leading
   * chunks are dropped, so a long-lived store with regular purges keeps no chunk per entry it ever
   * held. The very first chunk starts small (a test's store, a jcstress sample's, holds a
   * handful of entries) and doubles up to the full size. Guarded by the store's lock.
   */
  private static final class ChunkList<C extends ChunkList.Chunk> {
    /** What a chunk keeps for the list: its live entries, and room for more. */
    abstract static class Chunk {
      int live;

      abstract int capacity();

      /** Grows every array of the chunk to {@code capacity} entries. */
      abstract void resize(int capacity);
    }

    private static final int FIRST_CAPACITY = 16;

    private final int bits;
    private final java.util.function.IntFunction<C> newChunk;
    /** Chunk {@code dropped + i} is {@code chunks.get(i)}; null once released. */
    private final List<C> chunks = new ArrayList<>();
    private long dropped;
    private long highest;

    ChunkList(int bits, java.util.function.IntFunction<C> newChunk) {
      this.bits = bits;
      this.newChunk = newChunk;
    }

    /** The chunk for new entry {@code n}, with room for it; counts the entry live. */
    C add(long n) {
      int c = (int) (((n - 1) >>> bits) - dropped);
      while (chunks.size() <= c) {
        // later chunks are needed only by a store that filled one
        chunks.add(newChunk.apply(chunks.isEmpty() && dropped == 0 ? FIRST_CAPACITY : 1 << bits));
      }
      C chunk = chunks.get(c);
      int i = offset(n);
      if (i >= chunk.capacity()) {
        chunk.resize(Math.min(1 << bits, Math.max(i + 1, chunk.capacity() * 2)));
      }
      chunk.live++;
      highest = Math.max(highest, n);
      return chunk;
    }

    /** The chunk of entry {@code n}; null if it was dropped, released or never made. */
    C of(long n) {
      if (n < 1) {
        return null;
      }
      long c = ((n - 1) >>> bits) - dropped;
      return c < 0 || c >= chunks.size() ? null : chunks.get((int) c);
    }

    int offset(long n) {
      return (int) ((n - 1) & ((1 << bits) - 1));
    }

    /** Counts entry {@code n} gone, releasing its chunk if that leaves it empty for good. */
    void removed(long n) {
      int c = (int) (((n - 1) >>> bits) - dropped);
      boolean full = ((n - 1) | ((1 << bits) - 1)) < highest; // no later entry can land in it
      if (--chunks.get(c).live == 0 && full) {
        chunks.set(c, null);
      }
      int leading = 0;
      while (leading < chunks.size() - 1 && chunks.get(leading) == null) {
        leading++;
      }
      if (leading > 0) {
        chunks.subList(0, leading).clear();
        dropped += leading;
      }
    }

    /** The highest entry number added so far; 0 if none. */
    long highest() {
      return highest;
    }

    /** The position, for {@link #at}, of the last chunk at or below entry {@code n}'s. */
    int positionOf(long n) {
      return (int) Math.min(chunks.size() - 1, ((n - 1) >>> bits) - dropped);
    }

    /** The chunk at {@code position} (0 to {@link #positionOf}); null if released. */
    C at(int position) {
      return chunks.get(position);
    }

    /** The number of the first entry of the chunk at {@code position}. */
    long firstAt(int position) {
      return ((dropped + position) << bits) + 1;
    }
  }

  /**
   * One stripe's runs by id. Ids are dense (1, 2, 3, ...) and dealt to the stripes in turn, so a
   * stripe's runs are dense too: run {@code id} is at position {@code (id - 1) / STRIPES + 1} of
   * fixed-size chunks. A QUEUED or RUNNING run is a {@link Slot} (the claim queue, the running list
   * and the serial-key indexes point at it); an ended run, which never changes again, is
   * <em>frozen</em>: its fields move into the chunk's parallel arrays and its slot and record are
   * dropped, so the history a long-lived store keeps is a few array entries per run rather than a
   * slot, a record and their {@link Instant}s for the collector to trace and copy. Its
   * {@link RunRecord} is built again when read. A chunk whose every run was purged is dropped, so
   * a store with regular purges does not keep one entry per run it ever held. Guarded by the
   * stripe's lock.
   */
  private static final class RunTable {
    /** Runs per chunk, as a power of two. */
    private static final int CHUNK_BITS = 12;

    // A frozen run's fields, at index i * stride + field of its chunk's arrays.
    private static final int LONGS = 5;
    private static final int CREATED_S = 0;
    private static final int NOT_BEFORE_S = 1;
    private static final int STARTED_S = 2;
    private static final int FINISHED_S = 3;
    private static final int LAST_EVENT = 4;
    private static final int INTS = 8;
    private static final int CREATED_N = 0;
    private static final int NOT_BEFORE_N = 1;
    private static final int STARTED_N = 2; // NO_TIME: never started
    private static final int FINISHED_N = 3;
    private static final int PRIORITY = 4;
    private static final int ATTEMPT = 5;
    private static final int MAX_ATTEMPTS = 6;
    private static final int STATUS = 7;
    private static final int REFS = 8;
    private static final int AGENT = 0; // null: no frozen run at this index
    private static final int INPUT = 1;
    private static final int OUTPUT = 2;
    private static final int ERROR = 3;
    private static final int SERIAL_KEY = 4;
    private static final int IDEMPOTENCY_KEY = 5;
    private static final int OWNER = 6;
    private static final int USAGE = 7;
    /** The nanosecond field of an absent time (a valid one is 0 to 999,999,999). */
    private static final int NO_TIME = -1;
    private static final RunStatus[] STATUSES = RunStatus.values();

    /** One chunk's runs: the slots of active ones, the fields of ended ones. */
    private static final class Chunk extends ChunkList.Chunk {
      Slot[] slots;
      long[] longs;
      int[] ints;
      Object[] refs;

      Chunk(int capacity) {
        slots = new Slot[capacity];
        longs = new long[capacity * LONGS];
        ints = new int[capacity * INTS];
        refs = new Object[capacity * REFS];
      }

      @Override
      int capacity() {
        return slots.length;
      }

      @Override
      void resize(int capacity) {
        slots = java.util.Arrays.copyOf(slots, capacity);
        longs = java.util.Arrays.copyOf(longs, capacity * LONGS);
        ints = java.util.Arrays.copyOf(ints, capacity * INTS);
        refs = java.util.Arrays.copyOf(refs, capacity * REFS);
      }

      boolean frozen(int i) {
        return i < slots.length && refs[i * REFS + AGENT] != null;
      }

      RunRecord thaw(long id, int i) {
        int l = i * LONGS;
        int n = i * INTS;
        int r = i * REFS;
        return new RunRecord(id, (String) refs[r + AGENT], STATUSES[ints[n + STATUS]],
            (String) refs[r + INPUT], (String) refs[r + OUTPUT], (String) refs[r + ERROR],
            (String) refs[r + SERIAL_KEY], (String) refs[r + IDEMPOTENCY_KEY],
            ints[n + PRIORITY], ints[n + ATTEMPT], ints[n + MAX_ATTEMPTS],
            time(longs[l + CREATED_S], ints[n + CREATED_N]),
            time(longs[l + NOT_BEFORE_S], ints[n + NOT_BEFORE_N]),
            time(longs[l + STARTED_S], ints[n + STARTED_N]),
            time(longs[l + FINISHED_S], ints[n + FINISHED_N]),
            (String) refs[r + OWNER], null, false, (Usage) refs[r + USAGE]);
      }

      void freeze(int i, RunRecord run, long lastEvent) {
        int l = i * LONGS;
        int n = i * INTS;
        int r = i * REFS;
        put(run.createdAt(), l + CREATED_S, n + CREATED_N);
        put(run.notBefore(), l + NOT_BEFORE_S, n + NOT_BEFORE_N);
        put(run.startedAt(), l + STARTED_S, n + STARTED_N);
        put(run.finishedAt(), l + FINISHED_S, n + FINISHED_N);
        longs[l + LAST_EVENT] = lastEvent;
        ints[n + PRIORITY] = run.priority();
        ints[n + ATTEMPT] = run.attempt();
        ints[n + MAX_ATTEMPTS] = run.maxAttempts();
        ints[n + STATUS] = run.status().ordinal();
        refs[r + AGENT] = run.agent();
        refs[r + INPUT] = run.input();
        refs[r + OUTPUT] = run.output();
        refs[r + ERROR] = run.error();
        refs[r + SERIAL_KEY] = run.serialKey();
        refs[r + IDEMPOTENCY_KEY] = run.idempotencyKey();
        refs[r + OWNER] = run.owner();
        refs[r + USAGE] = run.usage();
        slots[i] = null;
      }

      /** Whether frozen run {@code i} passes {@code query} and ended before {@code before}. */
      boolean passes(int i, RunQuery query, Instant before) {
        int r = i * REFS;
        int n = i * INTS;
        if (query != null && !query.matches((String) refs[r + AGENT],
            (String) refs[r + SERIAL_KEY], STATUSES[ints[n + STATUS]])) {
          return false;
        }
        if (before == null) {
          return true;
        }
        long seconds = longs[i * LONGS + FINISHED_S];
        return seconds < before.getEpochSecond()
            || (seconds == before.getEpochSecond() && ints[n + FINISHED_N] < before.getNano());
      }

      void clear(int i) {
        slots[i] = null;
        java.util.Arrays.fill(refs, i * REFS, (i + 1) * REFS, null);
      }

      private void put(Instant at, int l, int n) {
        if (at == null) {
          ints[n] = NO_TIME;
        } else {
          longs[l] = at.getEpochSecond();
          ints[n] = at.getNano();
        }
      }

      private static Instant time(long seconds, int nanos) {
        return nanos == NO_TIME ? null : Instant.ofEpochSecond(seconds, nanos);
      }
    }

    private final ChunkList<Chunk> chunks = new ChunkList<>(CHUNK_BITS, Chunk::new);
    /** Which stripe: its runs have ids {@code index + 1}, {@code index + 1 + STRIPES}, ... */
    private final int index;

    RunTable(int index) {
      this.index = index;
    }

    /** Run {@code id}'s position here (the id must be this stripe's). */
    private static long at(long id) {
      return ((id - 1) >>> STRIPE_BITS) + 1;
    }

    /** The id of the run at {@code position}. */
    private long idAt(long position) {
      return ((position - 1) << STRIPE_BITS) + index + 1;
    }

    void add(Slot slot) {
      long n = at(slot.id);
      chunks.add(n).slots[chunks.offset(n)] = slot;
    }

    /** The slot of a QUEUED or RUNNING run; null for an ended, purged or unknown one. */
    Slot active(long id) {
      long n = at(id);
      Chunk chunk = chunks.of(n);
      int i = chunks.offset(n);
      return chunk == null || i >= chunk.slots.length ? null : chunk.slots[i];
    }

    /** The run's current record, whatever its status; null if purged or unknown. */
    RunRecord record(long id) {
      long n = at(id);
      Chunk chunk = chunks.of(n);
      int i = chunks.offset(n);
      if (chunk == null || i >= chunk.slots.length) {
        return null;
      }
      Slot slot = chunk.slots[i];
      return slot != null ? slot.run : chunk.frozen(i) ? chunk.thaw(id, i) : null;
    }

    /** The position of the run's last event in the stripe's log; 0 if none or unknown. */
    long lastEvent(long id) {
      long n = at(id);
      Chunk chunk = chunks.of(n);
      int i = chunks.offset(n);
      if (chunk == null || i >= chunk.slots.length) {
        return 0;
      }
      Slot slot = chunk.slots[i];
      return slot != null ? slot.lastEvent
          : chunk.frozen(i) ? chunk.longs[i * LONGS + LAST_EVENT] : 0;
    }

    /** Moves an ended run out of its slot, which nothing may use afterwards. */
    void freeze(Slot slot) {
      RunRecord run = slot.run;
      if (run.leaseUntil() == null && !run.cancelRequested()) { // (never set on an ended run)
        long n = at(slot.id);
        chunks.of(n).freeze(chunks.offset(n), run, slot.lastEvent);
      }
    }

    void remove(long id) {
      long n = at(id);
      chunks.of(n).clear(chunks.offset(n));
      chunks.removed(n);
    }

    /**
     * Calls {@code visit} on the records of runs with ids below {@code below}, highest first,
     * while it says so. An ended run is built into a record only if it passes {@code query}
     * and ended before {@code endedBefore} (either null: no such filter), so that a scan under
     * the lock allocates for the runs it returns, not for every run it looks at; {@code visit}
     * still sees every QUEUED and RUNNING run and must apply its own test.
     */
    void descendingBelow(long below, RunQuery query, Instant endedBefore,
        Predicate<RunRecord> visit) {
      if (below <= 1) {
        return;
      }
      long top = at(below - 1);
      if (idAt(top) > below - 1) {
        top--; // the stripe's run at that position has an id at or above the bound
      }
      top = Math.min(top, chunks.highest());
      if (top < 1) {
        return;
      }
      for (int c = chunks.positionOf(top); c >= 0; c--) {
        Chunk chunk = chunks.at(c);
        if (chunk == null) {
          continue;
        }
        long first = chunks.firstAt(c); // the position of the chunk's first run
        for (int i = (int) Math.min(chunk.slots.length - 1, top - first); i >= 0; i--) {
          Slot slot = chunk.slots[i];
          RunRecord run = slot != null ? slot.run
              : chunk.frozen(i) && chunk.passes(i, query, endedBefore)
                  ? chunk.thaw(idAt(first + i), i) : null;
          if (run != null && !visit.test(run)) {
            return;
          }
        }
      }
    }
  }

  /**
   * Builds an {@link InMemoryRunStore}.
   *
   * <p>Thread-safety: not thread-safe; build from one thread.
   */
  public static final class Builder {
    private Clock clock = Clock.systemUTC();
    static final Consumer<RunEvent> NO_HOOK = e -> { };

    private Consumer<RunEvent> beforeEventWrite = NO_HOOK;

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
