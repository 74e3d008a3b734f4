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
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Queue;
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
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The runner engine behind {@link AgentRunner}.
 *
 * <p>One dispatcher thread owns the permits: only it starts runs, so the global and per-agent
 * limits cannot be overshot by a race between two starters; finished runs give their permits
 * back and wake it. A submit wakes it too, so local work never waits for the poll interval.
 * A timer thread sends heartbeats, enforces timeouts and abandons agents that ignore interrupts.
 *
 * <p>Submits hold the read side of {@link #submitGate} while they insert; closing takes the
 * write side to flip the state. A submit therefore either finishes its insert before the runner
 * starts closing (and its run is stored, to be run now or later), or sees the runner closing and
 * throws: never a silent loss (invariant I9).
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

  private final ReentrantReadWriteLock submitGate = new ReentrantReadWriteLock();
  private volatile State state = State.OPEN;
  private final AtomicBoolean closeStarted = new AtomicBoolean();
  private final CountDownLatch closed = new CountDownLatch(1);

  /** Wakes the dispatcher: a local submit, a freed permit, or close. */
  private final Semaphore wake = new Semaphore(0);

  // Permits: incremented only by the dispatcher, decremented when a run ends.
  private final AtomicInteger executingTotal = new AtomicInteger();
  private final Map<String, AtomicInteger> executingPerAgent = new HashMap<>();
  private final Map<Long, Execution> executing = new ConcurrentHashMap<>();
  private final ReentrantLock drainLock = new ReentrantLock();
  private final Condition drained = drainLock.newCondition();

  private final Map<String, AgentStatsRecorder> localStats = new TreeMap<>();
  /** Finishes the store refused with an error; retried until they apply or are fenced out. */
  private final Queue<PendingFinish> unfinished = new ConcurrentLinkedQueue<>();

  /** After this many refusals, an outcome is replaced by a bare FAILED that carries no data. */
  private static final int MAX_FINISH_TRIES = 5;

  /** A finish the store refused with an error, and how often it did. */
  private record PendingFinish(Finish finish, int failures, String lastError) {}

  private Engine(RunnerConfig config) {
    this.config = config;
    this.store = config.store();
    this.listeners = new Listeners(config.listeners());
    this.schedules = new ScheduleService(this);
    for (String agent : config.agents().keySet()) {
      executingPerAgent.put(agent, new AtomicInteger());
      localStats.put(agent, new AgentStatsRecorder(agent));
    }
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
    engine.remoteWork = engine.store.onRemoteWork(engine::wakeDispatcher);
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
    int maxAttempts = config.agents().get(request.agent()).spec().retry().maxAttempts();
    RunRecord stored;
    ReentrantReadWriteLock.ReadLock gate = submitGate.readLock();
    gate.lock();
    try {
      if (state != State.OPEN) {
        throw new RunnerClosedException(
            "runner " + config.workerId() + " is closed; the run was not stored");
      }
      if (request.serialKey() != null
          && request.serialKeyPolicy() == SerialKeyPolicy.INTERRUPT) {
        cancelActiveRuns(request.serialKey());
      }
      stored = store.insert(new NewRun(request, maxAttempts));
    } finally {
      gate.unlock();
    }
    wakeDispatcher();
    listeners.submitted(stored);
    return new Handle(stored.id());
  }

  /**
   * Stores a run for a schedule's fire time (no gate: only the dispatcher fires, and it stops
   * before the runner closes) and wakes the dispatcher.
   */
  RunRecord enqueue(RunRequest request) {
    RunnerConfig.AgentRegistration registration = config.agents().get(request.agent());
    int maxAttempts = registration == null ? 1 : registration.spec().retry().maxAttempts();
    RunRecord stored = store.insert(new NewRun(request, maxAttempts));
    wakeDispatcher();
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
      ReentrantReadWriteLock.WriteLock gate = submitGate.writeLock();
      gate.lock(); // waits for submits in flight: their runs are stored before we go on
      try {
        state = State.CLOSING;
      } finally {
        gate.unlock();
      }
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
          long untilFire = maintain();
          nextMaintenance = System.nanoTime() + Math.min(pollNanos, untilFire);
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

  /** Claims as many runs as permits allow and starts them; returns how many it claimed. */
  private int claimAndStart() {
    int free = config.maxConcurrency() - executingTotal.get();
    if (free <= 0) {
      return 0;
    }
    Map<String, Integer> quotas = new HashMap<>();
    config.agents().forEach((name, registration) -> {
      int agentFree = registration.spec().maxConcurrency() - executingPerAgent.get(name).get();
      if (agentFree > 0) {
        quotas.put(name, Math.min(agentFree, free));
      }
    });
    if (quotas.isEmpty()) {
      return 0;
    }
    List<RunRecord> claimed =
        store.claim(new ClaimRequest(config.workerId(), quotas, free, config.leaseDuration()));
    for (int i = 0; i < claimed.size(); i++) {
      if (state != State.OPEN) {
        List<RunRecord> unstarted = claimed.subList(i, claimed.size());
        int released = store.release(config.workerId(), unstarted);
        log.debug("runner {} closing: released {} claimed runs", config.workerId(), released);
        break;
      }
      startRun(claimed.get(i));
    }
    return claimed.size();
  }

  private void startRun(RunRecord run) {
    RunnerConfig.AgentRegistration registration = config.agents().get(run.agent());
    executingTotal.incrementAndGet();
    executingPerAgent.get(run.agent()).incrementAndGet();
    Execution execution = new Execution(this, run, registration);
    executing.put(run.id(), execution);
    localStats.get(run.agent()).started();
    listeners.started(run);
    execution.start();
  }

  /** Called exactly once per execution, from whichever thread ended it. */
  void ended(Execution execution, Finish finish) {
    RunRecord run = execution.run();
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
    executing.remove(run.id());
    executingPerAgent.get(run.agent()).decrementAndGet();
    executingTotal.decrementAndGet();
    wakeDispatcher();
    if (finish.status() == RunStatus.QUEUED && after.isPresent()) {
      // A retry is due at retryAt; wake then rather than up to a poll interval later.
      long delay = Duration.between(config.clock().instant(), finish.retryAt()).toNanos();
      timers.schedule(this::wakeDispatcher, Math.max(0, delay), TimeUnit.NANOSECONDS);
    }
    signalIfDrained();
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
        store.finish(finish).ifPresent(r -> {
          localStats.get(r.agent()).storedLater(finish.status(), finish.usage());
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

  private void heartbeat() {
    if (executing.isEmpty() && unfinished.isEmpty()) {
      return;
    }
    try {
      Heartbeat beat = store.heartbeat(config.workerId(), config.leaseDuration());
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

  private void wakeDispatcher() {
    if (wake.availablePermits() == 0) {
      wake.release();
    }
  }

  private void signalIfDrained() {
    if (executing.isEmpty()) {
      drainLock.lock();
      try {
        drained.signalAll();
      } finally {
        drainLock.unlock();
      }
    }
  }

  private boolean awaitDrained(Duration timeout) {
    long remaining = timeout.toNanos();
    drainLock.lock();
    try {
      while (!executing.isEmpty()) {
        if (remaining <= 0) {
          return false;
        }
        remaining = drained.awaitNanos(remaining);
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
