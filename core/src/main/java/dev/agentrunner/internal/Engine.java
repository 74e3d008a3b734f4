package dev.agentrunner.internal;

import dev.agentrunner.AgentRunner;
import dev.agentrunner.AgentStats;
import dev.agentrunner.AgentRunnerException;
import dev.agentrunner.AwaitTimeoutException;
import dev.agentrunner.Health;
import dev.agentrunner.Page;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunHandle;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.RunnerClosedException;
import dev.agentrunner.Schedules;
import dev.agentrunner.SerialKeyPolicy;
import dev.agentrunner.UnknownAgentException;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.Heartbeat;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Queue;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The runner engine behind {@link AgentRunner}.
 *
 * <p>Runs start in one of two ways. A submit that finds a free permit asks the store to insert
 * its run and claim it in the same atomic step ({@link RunStore#insertAndClaim}), and starts it
 * at once: one store operation and no thread hand-off between submit and start. Every other
 * run (no free permit, another run ahead of it in claim order, a retry, work of other
 * processes) is claimed in batches by the dispatcher thread. Both take their permits by
 * compare-and-set before they ask the store (see {@link Permits}), so the global and per-agent
 * limits cannot be overshot by a race between starters. A run gives its permits back when its
 * agent returns and its place in the store once its outcome is written, so claims go on while
 * outcomes are written, and the runner holds at most twice its limit in the store. The
 * dispatcher claims only when there may be something to claim: a run went to the queue, another
 * process may have added one, a retry fell due, or its last claim was cut short by the permits
 * (see {@link #workSignals}).
 * A timer thread sends heartbeats, enforces timeouts and abandons agents that ignore interrupts.
 *
 * <p>A submit counts itself in {@link #submitsInFlight} before it checks the state, and out
 * after its insert; closing flips the state and then waits for the count to reach zero. Both
 * are sequentially consistent atomic operations (a {@link LongAdder}'s cells are updated by
 * compare-and-set and read as volatiles), so either the submit sees the runner closing
 * and throws, or closing sees the submit and waits until its run is stored (to be run now or
 * later): never a silent loss (invariant I9).
 *
 * <p>Thread-safety: thread-safe.
 */
public final class Engine implements AgentRunner {
  private static final Logger log = LoggerFactory.getLogger(Engine.class);

  private enum State { OPEN, CLOSING, CLOSED }

  private final RunnerConfig config;
  private final RunStore store;
  private final Listeners listeners;
  private final Completions completions = new Completions();
  private final ScheduleService schedules;
  private final ScheduledExecutorService timers;
  private final Thread dispatcher;
  /** The store's wake-up subscription, closed with the runner. */
  private volatile AutoCloseable remoteWork = () -> { };

  /**
   * Submits between their state check and the end of their insert (see the class comment). An
   * adder, not one atomic integer: every submit changes it twice, and one counter written by
   * every submitting thread moves its cache line between cores at each change. A submit that
   * counted itself in one cell and out in another still leaves the sum above zero until it is
   * out, which is all {@link #close} asks of it.
   */
  private final LongAdder submitsInFlight = new LongAdder();
  private volatile State state = State.OPEN;
  private final AtomicBoolean closeStarted = new AtomicBoolean();
  private final CountDownLatch closed = new CountDownLatch(1);

  /** Wakes the dispatcher: work to claim, a freed permit it may use, or close. */
  private final Semaphore wake = new Semaphore(0);

  private final Permits permits;
  /**
   * Counts the events after which the store may hold runs this runner could claim: a run stored
   * QUEUED by this runner, a wake-up from the store (other processes), a retry falling due, the
   * end of a run with a serial key, each poll. The dispatcher reads it before a claim; when the
   * claim comes back with fewer runs than the permits allowed, the queue held nothing more to
   * claim, and it records the value read in {@link #exhaustedAt}. Until the count moves on, it
   * does not claim again, and a finished run does not wake it: in a runner whose runs all start
   * from their submit, the dispatcher stays asleep.
   */
  private final AtomicLong workSignals = new AtomicLong();
  /** The value of {@link #workSignals} when the queue was last found empty; written by the dispatcher. */
  private volatile long exhaustedAt = -1;
  /** Whether the dispatcher's last claim used every permit it had; the dispatcher's own. */
  private boolean backlog;
  /** The claim a submit makes when the runner has a single agent (the common case); else null. */
  private final ClaimRequest singleAgentClaim;
  private final Map<Long, Execution> executing = new ConcurrentHashMap<>();
  private final ReentrantLock drainLock = new ReentrantLock();
  private final Condition drained = drainLock.newCondition();

  private final Map<String, AgentStatsRecorder> localStats = new TreeMap<>();
  /** Finishes the store refused with an error; retried until they apply or are fenced out. */
  private final Queue<PendingFinish> unfinished = new ConcurrentLinkedQueue<>();

  /**
   * The most runs one claim asks for. A runner with a huge limit and a deep queue would
   * otherwise claim everything in one store operation (on SQLite one transaction of two
   * statements per run) and start nothing until it committed; in slices, the first runs start
   * after the first slice while the dispatcher claims the next.
   */
  private static final int MAX_CLAIM = 10_000;

  /** The most runs a claim asks for when the dispatcher is not in a backlog. */
  private static final int PROBE_CLAIM = 16;

  /** The farthest ahead a run this runner queued gets a wake-up timer for its due time. */
  private static final Duration DUE_TIMER_HORIZON = Duration.ofHours(1);

  /** The longest close() waits for a signal before it looks at what it waits for again. */
  private static final long DRAIN_WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(20);

  /** How long the dispatcher waits, in a backlog, for more permits before it claims. */
  private static final long GATHER_NANOS = TimeUnit.MILLISECONDS.toNanos(2);

  /** After this many refusals, an outcome is replaced by a bare FAILED that carries no data. */
  private static final int MAX_FINISH_TRIES = 5;

  /** A finish the store refused with an error, and how often it did. */
  private record PendingFinish(Finish finish, int failures, String lastError) {}

  private Engine(RunnerConfig config) {
    this.config = config;
    this.store = config.store();
    this.listeners = new Listeners(config.listeners());
    this.schedules = new ScheduleService(this);
    Map<String, Integer> agentLimits = new HashMap<>();
    config.agents().forEach((agent, registration) -> {
      agentLimits.put(agent, registration.spec().maxConcurrency());
      localStats.put(agent, new AgentStatsRecorder(agent));
    });
    this.permits = new Permits(config.maxConcurrency(), agentLimits);
    this.singleAgentClaim = agentLimits.size() != 1 ? null
        : new ClaimRequest(config.workerId(), Map.of(agentLimits.keySet().iterator().next(), 1),
            1, config.leaseDuration());
    // Two threads, so that a slow heartbeat never delays a timeout.
    this.timers = Executors.newScheduledThreadPool(2,
        Thread.ofPlatform().daemon().name("agentrunner-timer-" + config.workerId()).factory());
    this.dispatcher = Thread.ofPlatform().daemon()
        .name("agentrunner-dispatcher-" + config.workerId()).unstarted(this::dispatchLoop);
  }

  /** Builds and starts a runner from a finished configuration. */
  public static AgentRunner start(RunnerConfig config) {
    Engine engine = new Engine(Objects.requireNonNull(config, "config"));
    long beat = Math.max(1, config.leaseDuration().toMillis() / 3);
    engine.timers.scheduleWithFixedDelay(engine::heartbeat, beat, beat, TimeUnit.MILLISECONDS);
    engine.remoteWork = engine.store.onRemoteWork(engine::signalWork);
    engine.dispatcher.start();
    return engine;
  }

  // ---- accessors for Execution ----

  RunnerConfig config() {
    return config;
  }

  Clock clock() {
    return config.clock();
  }

  RunStore store() {
    return store;
  }

  Listeners listeners() {
    return listeners;
  }

  ScheduledExecutorService timers() {
    return timers;
  }

  // ---- the API ----

  @Override
  public RunHandle submit(RunRequest request) {
    Objects.requireNonNull(request, "request");
    if (!config.agents().containsKey(request.agent())) {
      throw new UnknownAgentException(request.agent(), config.agents().keySet());
    }
    long bytes = Utf8.length(request.input());
    if (bytes > config.maxInputBytes()) {
      throw new IllegalArgumentException("input is " + bytes + " bytes of UTF-8, more than "
          + "maxInputBytes (" + config.maxInputBytes() + ")");
    }
    String agent = request.agent();
    NewRun run = new NewRun(request, config.agents().get(agent).spec().retry().maxAttempts());
    RunRecord stored;
    submitsInFlight.increment();
    try {
      if (state != State.OPEN) {
        throw new RunnerClosedException(
            "runner " + config.workerId() + " is closed; the run was not stored");
      }
      if (request.serialKey() != null
          && request.serialKeyPolicy() == SerialKeyPolicy.INTERRUPT) {
        cancelActiveRuns(request.serialKey());
      }
      // With an idempotency key the store may return a run another submit stored (and this
      // runner may be executing): only a run this very call inserted may start here.
      if (request.idempotencyKey() == null && permits.tryTakeOne(agent)) {
        try {
          stored = store.insertAndClaim(run, claimForSubmit(agent));
        } catch (RuntimeException e) {
          permits.giveOne(agent);
          throw e;
        }
        if (stored.status() == RunStatus.RUNNING && config.workerId().equals(stored.owner())) {
          // Started while this submit still counts as in flight, so close() waits for it
          // like for any other execution.
          listeners.submitted(stored);
          startRun(stored);
          return new Handle(stored.id());
        }
        permits.giveOne(agent);
      } else {
        stored = store.insert(run);
      }
    } finally {
      submitsInFlight.decrement();
      if (state != State.OPEN) {
        signalDrained(); // close() may be waiting for this submit
      }
    }
    if (stored.status() == RunStatus.QUEUED) {
      signalWorkAt(stored.notBefore());
    } else {
      signalWork(); // (a run an idempotency key found: nothing new, but cheap to look)
    }
    listeners.submitted(stored);
    return new Handle(stored.id());
  }

  /**
   * The claim a submit's run is inserted under: quotas for its agent and for every other agent
   * with a free permit, whose queued runs could take the permit first and so come before it.
   */
  private ClaimRequest claimForSubmit(String agent) {
    if (singleAgentClaim != null) {
      return singleAgentClaim;
    }
    Map<String, Integer> quotas = new HashMap<>();
    quotas.put(agent, 1);
    for (String other : config.agents().keySet()) {
      if (permits.agentFree(other) > 0) {
        quotas.put(other, 1);
      }
    }
    return new ClaimRequest(config.workerId(), quotas, 1, config.leaseDuration());
  }

  /**
   * Stores a run for a schedule's fire time (no gate: only the dispatcher fires, and it stops
   * before the runner closes) and wakes the dispatcher.
   */
  RunRecord enqueue(RunRequest request) {
    RunnerConfig.AgentRegistration registration = config.agents().get(request.agent());
    int maxAttempts = registration == null ? 1 : registration.spec().retry().maxAttempts();
    RunRecord stored = store.insert(new NewRun(request, maxAttempts));
    signalWork();
    listeners.submitted(stored);
    return stored;
  }

  @Override
  public java.util.SortedSet<String> agents() {
    return java.util.Collections.unmodifiableSortedSet(
        new java.util.TreeSet<>(config.agents().keySet()));
  }

  @Override
  public Schedules schedules() {
    return schedules;
  }

  @Override
  public RunHandle handle(long runId) {
    return new Handle(runId);
  }

  @Override
  public Optional<RunRecord> get(long runId) {
    return store.find(runId);
  }

  @Override
  public Page<RunRecord> history(RunQuery query) {
    return store.query(Objects.requireNonNull(query, "query"));
  }

  @Override
  public List<RunEvent> events(long runId) {
    return store.events(runId);
  }

  @Override
  public Optional<RunRecord> cancel(long runId) {
    Optional<RunRecord> after = store.cancel(runId);
    after.filter(r -> r.status() == RunStatus.RUNNING && r.cancelRequested())
        .map(r -> executing.get(r.id()))
        .ifPresent(e -> e.stop(RunStatus.CANCELLED, "cancelled"));
    after.ifPresent(completions::complete);
    return after;
  }

  /**
   * Cancels every QUEUED or RUNNING run of {@code serialKey}. A run that starts meanwhile is
   * still ordered before the new run by the store's FIFO rule, so nothing overtakes it.
   */
  private void cancelActiveRuns(String serialKey) {
    RunQuery active = RunQuery.all().serialKey(serialKey)
        .status(RunStatus.QUEUED, RunStatus.RUNNING).limit(RunQuery.MAX_LIMIT);
    Page<RunRecord> page;
    do {
      page = store.query(active);
      for (RunRecord run : page.items()) {
        cancel(run.id());
      }
      active = page.nextCursor().map(active::after).orElse(active);
    } while (page.hasNext());
  }

  @Override
  public long queueDepth(String serialKey) {
    Objects.requireNonNull(serialKey, "serialKey");
    return store.count(RunQuery.all().serialKey(serialKey).status(RunStatus.QUEUED));
  }

  @Override
  public RunStats stats() {
    return store.stats();
  }

  @Override
  public int purge(Instant finishedBefore) {
    return store.purge(Objects.requireNonNull(finishedBefore, "finishedBefore"));
  }

  @Override
  public Health health() {
    RunStats stats = null;
    String error = null;
    try {
      stats = store.stats();
    } catch (RuntimeException e) {
      error = e.getMessage() == null ? e.getClass().getName() : e.getMessage();
    }
    Map<String, AgentStats> local = new TreeMap<>();
    localStats.forEach((agent, recorder) -> local.put(agent, recorder.snapshot()));
    Map<String, Long> keyQueues = new TreeMap<>();
    if (stats != null) {
      try {
        for (Execution e : executing.values()) {
          String key = e.run().serialKey();
          if (key != null && !keyQueues.containsKey(key)) {
            keyQueues.put(key, queueDepth(key));
          }
        }
      } catch (RuntimeException e) {
        error = e.getMessage() == null ? e.getClass().getName() : e.getMessage();
      }
    }
    return new Health(state == State.OPEN, error == null, error, executing.size(), stats, local,
        keyQueues);
  }

  @Override
  public void close() {
    close(config.shutdownTimeout());
  }

  @Override
  public void close(Duration timeout) {
    Objects.requireNonNull(timeout, "timeout");
    if (timeout.isNegative()) {
      throw new IllegalArgumentException("timeout must not be negative, was " + timeout);
    }
    if (!closeStarted.compareAndSet(false, true)) {
      awaitClosed();
      return;
    }
    try {
      state = State.CLOSING;
      awaitNoSubmitInFlight(); // their runs are stored (or refused) before we go on
      wake.release();
      joinDispatcher();
      if (!awaitDrained(timeout)) {
        log.info("runner {}: {} runs still executing after {}; cancelling them",
            config.workerId(), executing.size(), timeout);
        executing.values().forEach(e -> e.stop(RunStatus.CANCELLED,
            "cancelled: the runner shut down before the run finished"));
        // Every stopped execution ends within abandonAfter, by returning or by being abandoned.
        awaitDrained(config.abandonAfter().plusSeconds(1));
      }
      retryUnfinished();
      try {
        remoteWork.close();
      } catch (Exception e) {
        log.debug("closing the store's wake-up subscription failed", e);
      }
      timers.shutdownNow();
      completions.closeAll(store);
    } finally {
      state = State.CLOSED;
      try {
        if (config.ownsStore()) {
          store.close();
        }
      } finally {
        closed.countDown();
      }
    }
  }

  // ---- the dispatcher ----

  private void dispatchLoop() {
    long pollNanos = config.pollInterval().toNanos();
    long nextMaintenance = System.nanoTime();
    while (state == State.OPEN) {
      try {
        if (System.nanoTime() - nextMaintenance >= 0) {
          workSignals.incrementAndGet(); // each poll looks for work of other processes
          long untilFire = maintain();
          nextMaintenance = System.nanoTime() + Math.min(pollNanos, untilFire);
        }
        if (backlog) {
          gatherPermits();
        }
        if (claimAndStart() > 0) {
          continue; // there may be more, and permits may remain
        }
        long waitNanos = Math.max(0, nextMaintenance - System.nanoTime());
        if (wake.tryAcquire(waitNanos, TimeUnit.NANOSECONDS)) {
          wake.drainPermits();
        }
      } catch (InterruptedException e) {
        if (state == State.OPEN) {
          log.warn("dispatcher of runner {} interrupted; it keeps running", config.workerId());
        }
      } catch (RuntimeException e) {
        log.warn("dispatcher of runner {}: store call failed; retrying after the poll interval",
            config.workerId(), e);
        try {
          wake.tryAcquire(pollNanos, TimeUnit.NANOSECONDS);
        } catch (InterruptedException ignored) {
          // the loop condition decides
        }
      }
    }
  }

  /**
   * In a backlog (the last claim used every permit it had), permits come back one finished run
   * at a time, and claiming each at once would cost a store call, and a write transaction, per
   * run. Waits a moment for half the permits to be free, or for {@link #GATHER_NANOS}: the
   * queued runs were waiting anyway. Called by the dispatcher only.
   */
  private void gatherPermits() throws InterruptedException {
    int target = Math.max(1, Math.min(config.maxConcurrency(), MAX_CLAIM) / 2);
    long until = System.nanoTime() + GATHER_NANOS;
    long left;
    while (permits.claimable() < target && state == State.OPEN
        && (left = until - System.nanoTime()) > 0) {
      wake.tryAcquire(left, TimeUnit.NANOSECONDS); // a finish releases it
    }
  }

  /**
   * Claims as many runs as free permits allow and starts them; returns how many it claimed.
   * Takes the permits first and gives back what the claim did not use.
   */
  private int claimAndStart() {
    long signals = workSignals.get();
    if (signals == exhaustedAt) {
      return 0; // the queue held nothing more to claim, and nothing has been added since
    }
    // Out of a backlog (idle, or polling for other processes' work) the claim first probes
    // with a few permits: the permits a claim holds are unavailable to submits starting their
    // own runs meanwhile. A full probe means a backlog, and the next claim takes them all.
    int wanted = Math.min(config.maxConcurrency(), backlog ? MAX_CLAIM : PROBE_CLAIM);
    int free = permits.takeGlobal(wanted);
    if (free == 0) {
      return 0;
    }
    Map<String, Integer> quotas = new HashMap<>();
    boolean everyAgent = true;
    for (Map.Entry<String, RunnerConfig.AgentRegistration> e : config.agents().entrySet()) {
      int quota = permits.takeAgent(e.getKey(),
          Math.min(free, e.getValue().spec().maxConcurrency()));
      if (quota > 0) {
        quotas.put(e.getKey(), quota);
      } else {
        everyAgent = false;
      }
    }
    List<RunRecord> claimed;
    try {
      claimed = quotas.isEmpty() ? List.of()
          : store.claim(new ClaimRequest(config.workerId(), quotas, free, config.leaseDuration()));
    } catch (RuntimeException e) {
      quotas.forEach(permits::giveAgent);
      permits.giveGlobal(free);
      throw e;
    }
    Map<String, Integer> unused = new HashMap<>(quotas);
    for (RunRecord run : claimed) {
      unused.merge(run.agent(), -1, Integer::sum);
    }
    unused.forEach(permits::giveAgent);
    permits.giveGlobal(free - claimed.size());
    boolean cutShortByPermits = !everyAgent || claimed.size() >= free
        || unused.containsValue(0);
    if (!cutShortByPermits) {
      exhaustedAt = signals;
    }
    backlog = cutShortByPermits && !claimed.isEmpty();
    for (int i = 0; i < claimed.size(); i++) {
      if (state != State.OPEN) {
        List<RunRecord> unstarted = claimed.subList(i, claimed.size());
        unstarted.forEach(run -> permits.giveOne(run.agent()));
        int released = store.release(config.workerId(), unstarted);
        log.debug("runner {} closing: released {} claimed runs", config.workerId(), released);
        break;
      }
      startRun(claimed.get(i));
    }
    return claimed.size();
  }

  /** Starts a run claimed for this runner; its permits are already held. */
  private void startRun(RunRecord run) {
    Execution execution = new Execution(this, run, config.agents().get(run.agent()));
    executing.put(execution.key(), execution);
    localStats.get(run.agent()).started();
    listeners.started(run);
    execution.start();
  }

  /** Called exactly once per execution, from whichever thread ended it. */
  void ended(Execution execution, Finish finish) {
    RunRecord run = execution.run();
    // The agent is done with its permits: the next run may start while this outcome is written
    // (on a SQL store in a batch with others, after which their runs' places come back at once;
    // holding the permits until then would halve every claim). The run keeps its place.
    permits.executionEnded(run.agent());
    Optional<RunRecord> after = Optional.empty();
    try {
      after = store.finish(finish);
      if (after.isEmpty()) {
        log.info("run {} attempt {}: finish refused by the store's fence (the run was recovered "
            + "or cancelled meanwhile); outcome {} discarded", run.id(), run.attempt(),
            finish.status());
      }
    } catch (RuntimeException e) {
      log.warn("run {}: could not store its {} outcome; will retry", run.id(), finish.status(), e);
      unfinished.add(new PendingFinish(finish, 1, String.valueOf(e.getMessage())));
    }
    // Count only outcomes the store took: a fenced-out or not-yet-stored outcome is not a
    // finished run (a retried finish is counted when it applies).
    localStats.get(run.agent()).finished(
        after.isPresent() ? finish.status() : RunStatus.QUEUED,
        after.isPresent() ? finish.usage() : Usage.ZERO);
    executing.remove(execution.key());
    permits.outcomeStored();
    if (run.serialKey() != null) {
      signalWork(); // the next run of its key may be claimable now
    } else if (workSignals.get() != exhaustedAt) {
      wakeDispatcher(); // runs may be waiting for the permits and the place just freed
    }
    if (finish.status() == RunStatus.QUEUED && after.isPresent()) {
      signalWorkAfter(finish.retryAfter());
    }
    if (state != State.OPEN) {
      signalIfDrained();
    }
    after.ifPresent(r -> {
      listeners.finished(r);
      completions.complete(r);
    });
  }

  /**
   * Periodic work: recover runs of dead workers, retry failed finishes, notice remote ends, fire
   * due schedules. Returns the nanoseconds until the next schedule fires (Long.MAX_VALUE: none).
   */
  private long maintain() {
    // Each step fails alone: a schedule row this runner cannot read, say, must not stop it from
    // recovering leases or claiming runs.
    attempt("recovering expired leases", () -> {
      List<RunRecord> recovered = store.recoverExpiredLeases();
      if (!recovered.isEmpty()) {
        log.info("runner {} recovered {} runs whose lease expired", config.workerId(),
            recovered.size());
        recovered.forEach(completions::complete);
      }
    });
    attempt("storing refused outcomes", this::retryUnfinished);
    attempt("checking awaited runs", () -> completions.pollStore(store));
    Instant now = config.clock().instant();
    Instant[] nextFire = new Instant[1];
    attempt("firing schedules", () -> nextFire[0] = schedules.fireDue(now));
    return nextFire[0] == null ? Long.MAX_VALUE
        : Math.max(0, Duration.between(now, nextFire[0]).toNanos());
  }

  private void attempt(String what, Runnable step) {
    try {
      step.run();
    } catch (RuntimeException e) {
      log.warn("runner {}: {} failed; retrying at the next poll", config.workerId(), what, e);
    }
  }

  /**
   * Retries finishes the store refused. One it keeps refusing (say, an output the database cannot
   * hold) becomes a bare FAILED naming the error, so the run does not stay RUNNING under this
   * worker's heartbeat forever; a store that is down refuses that too, and it waits.
   */
  private void retryUnfinished() {
    for (int n = unfinished.size(); n > 0; n--) {
      PendingFinish pending = unfinished.poll();
      if (pending == null) {
        return;
      }
      Finish finish = pending.failures() < MAX_FINISH_TRIES ? pending.finish()
          : Finish.unsuccessful(pending.finish().runId(), pending.finish().attempt(),
              pending.finish().owner(), RunStatus.FAILED, "the run's outcome ("
                  + pending.finish().status() + ") could not be stored after "
                  + pending.failures() + " tries: " + pending.lastError(), Usage.ZERO);
      try {
        Finish applied = finish;
        Optional<RunRecord> stored = store.finish(finish);
        if (stored.isEmpty()) {
          // Refused: fenced out, or applied already by the try that threw (its commit went
          // through, its answer was lost). Then the run shows that outcome, and it is reported.
          Optional<RunRecord> found = store.find(finish.runId());
          if (found.isPresent() && appliedEarlier(pending.finish(), found.get())) {
            applied = pending.finish();
            stored = found;
          } else if (found.isPresent() && appliedEarlier(finish, found.get())) {
            stored = found;
          }
        }
        Usage usage = applied.usage();
        stored.ifPresent(r -> {
          localStats.get(r.agent()).storedLater(r.status(), usage);
          listeners.finished(r);
          completions.complete(r);
        });
      } catch (RuntimeException e) {
        unfinished.add(new PendingFinish(pending.finish(), pending.failures() + 1,
            String.valueOf(e.getMessage())));
        log.debug("run {}: storing its outcome failed again", finish.runId(), e);
        return;
      }
    }
  }

  /** Whether {@code run} ended as {@code finish} would have ended it. */
  private static boolean appliedEarlier(Finish finish, RunRecord run) {
    return run.isTerminal() && run.status() == finish.status()
        && run.attempt() == finish.attempt() && finish.owner().equals(run.owner())
        && Objects.equals(run.output(), finish.output())
        && Objects.equals(run.error(), finish.error());
  }

  private void heartbeat() {
    if (executing.isEmpty() && unfinished.isEmpty()) {
      return;
    }
    // Only the runs this runner knows it holds: one the store holds for it without its knowing
    // (a claim whose reply was lost) must expire and be recovered, not be kept alive by it.
    Set<Long> held = new HashSet<>(executing.keySet());
    for (PendingFinish pending : unfinished) {
      held.add(pending.finish().runId());
    }
    try {
      Heartbeat beat = store.heartbeat(config.workerId(), held, config.leaseDuration());
      for (long id : beat.cancelRequested()) {
        Execution execution = executing.get(id);
        if (execution != null) {
          execution.stop(RunStatus.CANCELLED, "cancelled");
        }
      }
    } catch (RuntimeException e) {
      log.warn("runner {}: heartbeat failed; leases expire in {} unless a later one succeeds",
          config.workerId(), config.leaseDuration(), e);
    }
  }

  /** Tells the dispatcher the store may hold runs to claim, and wakes it. */
  private void signalWork() {
    workSignals.incrementAndGet();
    wakeDispatcher();
  }

  /**
   * Signals work when a run this runner queued falls due (a retry's backoff, a submit's
   * {@code notBefore}): now if it is due, else by a timer, so that local work never waits for the
   * poll interval. Beyond {@link #DUE_TIMER_HORIZON} the next poll is as good as a timer and
   * costs no memory per run.
   */
  private void signalWorkAt(Instant due) {
    signalWorkAfter(Duration.between(config.clock().instant(), due));
  }

  /** {@link #signalWorkAt} for a run due {@code until} from now. */
  private void signalWorkAfter(Duration until) {
    if (until.isNegative() || until.isZero()) {
      signalWork();
    } else if (until.compareTo(DUE_TIMER_HORIZON) <= 0) {
      timers.schedule(this::signalWork, until.toNanos(), TimeUnit.NANOSECONDS);
    }
  }

  private void wakeDispatcher() {
    if (wake.availablePermits() == 0) {
      wake.release();
    }
  }

  private void signalIfDrained() {
    if (executing.isEmpty()) {
      signalDrained();
    }
  }

  /** Wakes close() if it waits for executions or submits to finish. */
  private void signalDrained() {
    drainLock.lock();
    try {
      drained.signalAll();
    } finally {
      drainLock.unlock();
    }
  }

  /** Waits until no submit is between its state check and the end of its insert. */
  private void awaitNoSubmitInFlight() {
    boolean interrupted = false;
    drainLock.lock();
    try {
      while (submitsInFlight.sum() != 0) {
        try {
          // bounded, like awaitDrained: each submit out signals, but no wait relies on it
          drained.awaitNanos(DRAIN_WAIT_NANOS);
        } catch (InterruptedException e) {
          interrupted = true; // the count decides; keep the interrupt for the caller
        }
      }
    } finally {
      drainLock.unlock();
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private boolean awaitDrained(Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    drainLock.lock();
    try {
      while (!executing.isEmpty()) {
        long remaining = deadline - System.nanoTime();
        if (remaining <= 0) {
          return false;
        }
        // Bounded waits: the signal is sent only once closing has begun, so a run ending just
        // as close starts may not send one; the next look at executing sees it gone.
        drained.awaitNanos(Math.min(remaining, DRAIN_WAIT_NANOS));
      }
      return true;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return executing.isEmpty();
    } finally {
      drainLock.unlock();
    }
  }

  private void joinDispatcher() {
    try {
      dispatcher.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void awaitClosed() {
    try {
      closed.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** The handle returned by submit: just the id, reading everything else from the store. */
  private final class Handle implements RunHandle {
    private final long id;

    Handle(long id) {
      this.id = id;
    }

    @Override
    public long id() {
      return id;
    }

    @Override
    public RunRecord current() {
      return store.find(id).orElseThrow(() -> new AgentRunnerException(
          "run " + id + " is no longer in the store (purged?)"));
    }

    @Override
    public RunRecord await(Duration timeout) {
      Objects.requireNonNull(timeout, "timeout");
      if (timeout.isNegative()) {
        throw new IllegalArgumentException("timeout must not be negative, was " + timeout);
      }
      CompletableFuture<RunRecord> future = register();
      try {
        return future.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
      } catch (TimeoutException e) {
        RunRecord last = store.find(id).orElse(null);
        throw new AwaitTimeoutException("run " + id + " did not finish within " + timeout
            + (last == null ? "" : "; it is " + last.status()), last);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AgentRunnerException("interrupted while awaiting run " + id, e);
      } catch (ExecutionException e) {
        throw e.getCause() instanceof AgentRunnerException are
            ? are
            : new AgentRunnerException("awaiting run " + id + " failed", e.getCause());
      }
    }

    @Override
    public CompletableFuture<RunRecord> completion() {
      return register().copy();
    }

    private CompletableFuture<RunRecord> register() {
      return completions.register(id, () -> store.find(id));
    }

    @Override
    public String toString() {
      return "RunHandle[" + id + "]";
    }
  }
}
