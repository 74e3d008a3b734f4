package dev.agentrunner.internal;

import dev.agentrunner.AgentContext;
import dev.agentrunner.AgentResult;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.Finish;
import java.time.Duration;
import java.time.Instant;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.ThreadFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

/**
 * One attempt of one run in this process: calls the agent on its own virtual thread and ends
 * the attempt exactly once, whichever comes first of the agent returning, the agent throwing, or
 * the runner giving up on an agent that ignored an interrupt. Whoever wins {@link #ended} writes
 * the finish; a result that arrives later is discarded, and the store's fence (attempt + owner)
 * would refuse it anyway.
 *
 * <p>Thread-safety: thread-safe; its methods are called from the agent's thread, the timer
 * thread, the dispatcher and the host's threads.
 */
final class Execution implements AgentContext {
  static final String MDC_RUN_ID = "agentrunner.runId";
  static final String MDC_AGENT = "agentrunner.agent";
  private static final String THREAD_NAME_PREFIX = "agentrunner-run-";

  private static final Logger log = LoggerFactory.getLogger(Execution.class);

  /**
   * One factory for every run's virtual thread (the thread is renamed after the run). Nothing
   * is inherited from the starting thread: a run started by a host's submit and one started by
   * the dispatcher see the same (empty) inheritable thread locals, such as a logging MDC.
   */
  private static final ThreadFactory THREADS =
      Thread.ofVirtual().inheritInheritableThreadLocals(false).factory();

  // Field handles rather than an AtomicBoolean and two AtomicReferences: three objects fewer
  // per run, on the engine's hottest path.
  private static final VarHandle ENDED;
  private static final VarHandle STOP;
  private static final VarHandle REPORTED;

  static {
    try {
      MethodHandles.Lookup lookup = MethodHandles.lookup();
      ENDED = lookup.findVarHandle(Execution.class, "ended", boolean.class);
      STOP = lookup.findVarHandle(Execution.class, "stop", Stop.class);
      REPORTED = lookup.findVarHandle(Execution.class, "reported", Usage.class);
    } catch (ReflectiveOperationException e) {
      throw new ExceptionInInitializerError(e);
    }
  }

  private final Engine engine;
  private final RunRecord run;
  /** The run id, boxed once for the engine's map of executions. */
  private final Long key;
  /** The run id as text, once for the thread's name and the logging context. */
  private final String idText;
  private final RunnerConfig.AgentRegistration registration;
  private final Instant deadline;
  /** Set once, by whoever ends the attempt first; through {@link #ENDED}. */
  private volatile boolean ended;
  /** Why the runner stopped the agent (TIMED_OUT or CANCELLED), with a message; null if not. */
  private volatile Stop stop;
  /** Usage the agent reported so far; through {@link #REPORTED}. */
  private volatile Usage reported = Usage.ZERO;
  private volatile Thread thread;
  private volatile ScheduledFuture<?> timeoutTask;

  private record Stop(RunStatus status, String reason) {}

  Execution(Engine engine, RunRecord run, RunnerConfig.AgentRegistration registration) {
    this.engine = engine;
    this.run = run;
    this.key = run.id();
    this.idText = Long.toString(run.id());
    this.registration = registration;
    Duration timeout = registration.spec().timeout();
    this.deadline = timeout == null ? null : engine.clock().instant().plus(timeout);
  }

  RunRecord run() {
    return run;
  }

  Long key() {
    return key;
  }

  /** Starts the agent on a new virtual thread, and its timeout. */
  void start() {
    Thread t = THREADS.newThread(this::execute);
    t.setName(THREAD_NAME_PREFIX.concat(idText));
    thread = t;
    Duration timeout = registration.spec().timeout();
    if (timeout != null) {
      timeoutTask = engine.timers().schedule(
          () -> stop(RunStatus.TIMED_OUT, "timed out after " + timeout),
          timeout.toNanos(), TimeUnit.NANOSECONDS);
    }
    t.start();
  }

  private void execute() {
    MDC.put(MDC_RUN_ID, idText);
    MDC.put(MDC_AGENT, run.agent());
    try {
      AgentResult result = registration.agent().execute(this);
      if (result == null) {
        end(null, null, "agent returned null instead of an AgentResult", Usage.ZERO, "");
      } else {
        end(null, result.output(), null, result.usage(), "");
      }
    } catch (Throwable t) { // an agent's Error ends its run too, rather than leaving it RUNNING
      end(t, null, describe(t), Usage.ZERO, "");
    } finally {
      MDC.remove(MDC_RUN_ID);
      MDC.remove(MDC_AGENT);
    }
  }

  /**
   * Stops the agent: marks the run cancelled, interrupts the agent's thread and, if it has not
   * returned within the grace period, ends the attempt without it. The first stop wins.
   */
  void stop(RunStatus status, String reason) {
    if (ended || !STOP.compareAndSet(this, null, new Stop(status, reason))) {
      return;
    }
    Thread t = thread;
    if (t != null) {
      t.interrupt();
    }
    Duration grace = engine.config().abandonAfter();
    engine.timers().schedule(() -> {
      if (!ended) {
        log.warn("run {} of agent {} ignored the interrupt for {}; abandoning it, its late "
            + "result will be discarded", run.id(), run.agent(), grace);
        end(null, null, null, Usage.ZERO, "; the agent ignored the interrupt and was abandoned"
            + " after " + grace);
      }
    }, grace.toNanos(), TimeUnit.NANOSECONDS);
  }

  /**
   * Ends the attempt once; a later call (a late result) changes nothing. The outcome is, in
   * order: the runner's stop (timeout or cancel), the agent's failure ({@code error} set), or
   * success with {@code output}. A timeout or failure the retry policy accepts queues the run
   * again after its backoff instead of ending it.
   */
  private void end(Throwable failure, String output, String error, Usage usage, String note) {
    if (!ENDED.compareAndSet(this, false, true)) {
      log.debug("run {} already ended; discarding a late outcome", run.id());
      return;
    }
    ScheduledFuture<?> timeout = timeoutTask;
    if (timeout != null) {
      timeout.cancel(false);
    }
    Usage total = reported.plus(usage);
    Stop stopped = stop;
    String owner = run.owner();
    Finish finish;
    if (stopped != null) {
      String reason = stopped.reason() + note;
      finish = stopped.status() == RunStatus.TIMED_OUT && retries(null)
          ? retry(reason, total)
          : Finish.unsuccessful(run.id(), run.attempt(), owner, stopped.status(), reason, total);
    } else if (error == null) {
      finish = Finish.succeeded(run.id(), run.attempt(), owner, output, total);
    } else {
      finish = failure != null && retries(failure)
          ? retry(error, total)
          : Finish.unsuccessful(run.id(), run.attempt(), owner, RunStatus.FAILED, error, total);
    }
    engine.ended(this, finish);
  }

  /** Whether the policy retries this failure (null: a timeout); a throwing predicate says no. */
  private boolean retries(Throwable failure) {
    try {
      return registration.spec().retry().shouldRetry(run.attempt(), run.maxAttempts(), failure);
    } catch (RuntimeException e) {
      log.warn("run {}: the retry policy's predicate threw; not retrying", run.id(), e);
      return false;
    }
  }

  private Finish retry(String error, Usage usage) {
    Duration backoff = registration.spec().retry()
        .delayAfter(run.attempt(), ThreadLocalRandom.current());
    return Finish.retry(run.id(), run.attempt(), run.owner(),
        error + " (attempt " + run.attempt() + " of " + run.maxAttempts() + "; retrying after "
            + backoff + ")",
        usage, backoff);
  }

  private static String describe(Throwable t) {
    String message = t.getMessage();
    return message == null ? t.getClass().getName() : t.getClass().getSimpleName() + ": " + message;
  }

  // ---- AgentContext ----

  @Override
  public long runId() {
    return run.id();
  }

  @Override
  public String agent() {
    return run.agent();
  }

  @Override
  public String input() {
    return run.input();
  }

  @Override
  public int attempt() {
    return run.attempt();
  }

  @Override
  public Optional<String> serialKey() {
    return Optional.ofNullable(run.serialKey());
  }

  @Override
  public Optional<Instant> deadline() {
    return Optional.ofNullable(deadline);
  }

  @Override
  public boolean isCancelled() {
    return stop != null;
  }

  @Override
  public void emit(String type, String data) {
    Checks.name(type, "type");
    Objects.requireNonNull(data, "data");
    if (ended) {
      return;
    }
    engine.store().appendEvent(run.id(), run.attempt(), type, data)
        .ifPresent(engine.listeners()::event);
  }

  @Override
  public void reportUsage(Usage usage) {
    Objects.requireNonNull(usage, "usage");
    if (!ended) {
      Usage before;
      do {
        before = reported;
      } while (!REPORTED.compareAndSet(this, before, before.plus(usage)));
    }
  }
}
