package dev.agentrunner.jcstress;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.Page;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStats;
import dev.agentrunner.Schedule;
import dev.agentrunner.ScheduleSpec;
import dev.agentrunner.internal.ScheduleFiring;
import dev.agentrunner.memory.InMemoryRunStore;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.Heartbeat;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * One sample of an I10 race: its own {@link InMemoryRunStore} holding one fixed-rate schedule
 * that is due, fired and updated through the real {@link dev.agentrunner.internal.ScheduleService}
 * of a runner.
 *
 * <p>Why one runner for all samples: a runner costs two platform threads, and a schedule race
 * needs no runner life cycle (unlike {@link SubmitCloseRaceTest}). So every rig of a fork shares
 * one runner, whose store routes each call to the store of the rig the calling thread is working
 * for (set for the duration of the call). The runner's own threads (dispatcher, timers) have no
 * rig and see an empty store: the runner never fires or executes anything by itself, and every
 * run the actors' fires store stays QUEUED in its rig's store for the arbiter to count.
 *
 * <p>Time is fixed: the runner's clock stands at {@link #FIRE_AT}, the schedule's fire time, and
 * every fire is asked for at that instant, so the fire time is due and never counts as missed.
 *
 * <p>Thread-safety: thread-safe (each call is routed by the calling thread).
 */
final class ScheduleRig {
  static final String NAME = "report";
  static final String AGENT = "reporter";
  static final Instant FIRE_AT = Instant.parse("2026-01-05T10:00:00Z");
  static final Duration EVERY = Duration.ofSeconds(1);
  static final ScheduleSpec SPEC = ScheduleSpec.fixedRate(NAME, AGENT, "old", EVERY);

  private static final RoutingStore ROUTER = new RoutingStore();
  private static final AgentRunner RUNNER = AgentRunner.builder()
      .store(ROUTER)
      .clock(Clock.fixed(FIRE_AT, ZoneOffset.UTC))
      .agent(AGENT, ctx -> AgentResult.of("unused: the runner never claims a rig's runs"))
      // Its own polls only ever see the empty store; keep them rare.
      .pollInterval(Duration.ofMinutes(10))
      .leaseDuration(Duration.ofMinutes(10))
      .build();

  private final InMemoryRunStore store = InMemoryRunStore.create();
  /** How many times a fire reached the store's insert (a fire that lost the race adds one). */
  private final AtomicInteger inserts = new AtomicInteger();

  /** A rig whose schedule (input "old") is due at {@link #FIRE_AT}. */
  ScheduleRig() {
    store.putSchedule(new Schedule(SPEC, false, FIRE_AT, null, 0, 0)).orElseThrow();
  }

  /** What a runner's poll at the fire time does: fires the due schedule. */
  void fireDue() {
    on(() -> ScheduleFiring.fireDue(RUNNER.schedules(), FIRE_AT));
  }

  /** {@code runner.schedules().upsert(...)}: the same schedule and timing, another input. */
  Schedule upsert(String input) {
    return on(() -> RUNNER.schedules().upsert(SPEC.withInput(input)));
  }

  /** The schedule as stored. */
  Schedule schedule() {
    return store.findSchedule(NAME).orElseThrow();
  }

  /** Every run stored in this rig (the only runs are the schedule's). */
  List<RunRecord> runs() {
    return store.query(RunQuery.all().limit(10)).items();
  }

  int inserts() {
    return inserts.get();
  }

  /**
   * After a race: whether one more poll at the fire time leaves exactly one run, the one of the
   * fire time, and the schedule moved past it, pointing at that run, with {@code input}.
   */
  boolean settlesAfterAnotherPoll(String input) {
    fireDue();
    List<RunRecord> runs = runs();
    if (runs.size() != 1) {
      return false;
    }
    RunRecord run = runs.get(0);
    Schedule s = schedule();
    return Schedule.runKey(NAME, FIRE_AT).equals(run.idempotencyKey())
        && FIRE_AT.plus(EVERY).equals(s.nextFireAt())
        && FIRE_AT.equals(s.lastFireAt())
        && s.lastRunId() == run.id()
        && input.equals(s.spec().input());
  }

  private <T> T on(Supplier<T> call) {
    ROUTER.current.set(this);
    try {
      return call.get();
    } finally {
      ROUTER.current.remove();
    }
  }

  /**
   * The shared runner's store: each call goes to the store of the rig the calling thread works
   * for, or to an empty store for the runner's own threads. Otherwise plain delegation.
   */
  private static final class RoutingStore implements RunStore {
    private final ThreadLocal<ScheduleRig> current = new ThreadLocal<>();
    private final InMemoryRunStore idle = InMemoryRunStore.create();

    private RunStore target() {
      ScheduleRig rig = current.get();
      return rig == null ? idle : rig.store;
    }

    @Override
    public RunRecord insert(NewRun run) {
      ScheduleRig rig = current.get();
      if (rig != null) {
        rig.inserts.incrementAndGet();
      }
      return target().insert(run);
    }

    @Override
    public Optional<Schedule> findSchedule(String name) {
      return target().findSchedule(name);
    }

    @Override
    public List<Schedule> schedules() {
      return target().schedules();
    }

    @Override
    public Optional<Schedule> putSchedule(Schedule schedule) {
      return target().putSchedule(schedule);
    }

    @Override
    public boolean deleteSchedule(String name) {
      return target().deleteSchedule(name);
    }

    @Override
    public List<RunRecord> claim(ClaimRequest request) {
      return target().claim(request);
    }

    @Override
    public Heartbeat heartbeat(String owner, Set<Long> runIds, Duration lease) {
      return target().heartbeat(owner, runIds, lease);
    }

    @Override
    public Optional<RunRecord> finish(Finish finish) {
      return target().finish(finish);
    }

    @Override
    public int release(String owner, List<RunRecord> claimed) {
      return target().release(owner, claimed);
    }

    @Override
    public Optional<RunRecord> cancel(long runId) {
      return target().cancel(runId);
    }

    @Override
    public List<RunRecord> recoverExpiredLeases() {
      return target().recoverExpiredLeases();
    }

    @Override
    public Optional<RunEvent> appendEvent(long runId, int attempt, String type, String data) {
      return target().appendEvent(runId, attempt, type, data);
    }

    @Override
    public Optional<RunRecord> find(long runId) {
      return target().find(runId);
    }

    @Override
    public Page<RunRecord> query(RunQuery query) {
      return target().query(query);
    }

    @Override
    public List<RunEvent> events(long runId) {
      return target().events(runId);
    }

    @Override
    public RunStats stats() {
      return target().stats();
    }

    @Override
    public int purge(Instant finishedBefore) {
      return target().purge(finishedBefore);
    }

    @Override
    public void close() {
      // the rigs' stores are garbage once their sample is done; nothing to release
    }
  }
}
