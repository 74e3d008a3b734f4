package dev.agentrunner.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.MissedFirePolicy;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Schedule;
import dev.agentrunner.ScheduleSpec;
import dev.agentrunner.UnknownAgentException;
import dev.agentrunner.UnknownScheduleException;
import dev.agentrunner.memory.InMemoryRunStore;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Schedule timing and bookkeeping, driven by a clock the test moves and by calling
 * {@code fireDue} directly (the runner's own poll is set to an hour so it stays out of the way).
 */
class ScheduleServiceTest {
  private static final Instant T0 = Instant.parse("2026-01-05T10:00:00Z");

  private final MovableClock clock = new MovableClock(T0);
  private InMemoryRunStore store;
  private AgentRunner runner;
  private ScheduleService schedules;

  @BeforeEach
  void start() {
    store = InMemoryRunStore.builder().clock(clock).build();
    runner = AgentRunner.builder().store(store).clock(clock).pollInterval(Duration.ofHours(1))
        .agent("report", ctx -> AgentResult.of("report for " + ctx.input()))
        .build();
    schedules = (ScheduleService) runner.schedules();
  }

  @AfterEach
  void stop() {
    runner.close();
    store.close();
  }

  @Test
  void aFixedRateScheduleEnqueuesOneRunPerFireTimeOnItsGrid() {
    Schedule s = schedules.upsert(ScheduleSpec.fixedRate("tick", "report", "x",
        Duration.ofMinutes(1)));
    assertThat(s.nextFireAt()).isEqualTo(T0.plusSeconds(60));
    assertThat(schedules.fireDue(clock.instant())).isEqualTo(T0.plusSeconds(60));
    assertThat(runsOf("tick")).isEmpty();

    clock.set(T0.plusSeconds(61));
    assertThat(schedules.fireDue(clock.instant())).isEqualTo(T0.plusSeconds(120));
    assertThat(schedules.fireDue(clock.instant())).as("a second look fires nothing more")
        .isEqualTo(T0.plusSeconds(120));
    clock.set(T0.plusSeconds(125));
    schedules.fireDue(clock.instant());
    assertThat(runsOf("tick")).extracting(RunRecord::idempotencyKey).containsExactly(
        Schedule.runKey("tick", T0.plusSeconds(120)), Schedule.runKey("tick", T0.plusSeconds(60)));
    Schedule after = schedules.get("tick").orElseThrow();
    assertThat(after.lastFireAt()).isEqualTo(T0.plusSeconds(120));
    assertThat(after.nextFireAt()).isEqualTo(T0.plusSeconds(180));
  }

  @Test
  void firingTheSameFireTimeTwiceCreatesOneRun() {
    schedules.upsert(ScheduleSpec.fixedRate("tick", "report", "x", Duration.ofMinutes(1)));
    Schedule due = schedules.get("tick").orElseThrow();
    clock.set(T0.plusSeconds(61));
    schedules.fireDue(clock.instant());
    // A second runner that read the schedule before the first advanced it fires the same time.
    store.putSchedule(new Schedule(due.spec(), false, due.nextFireAt(), null, 0,
        store.findSchedule("tick").orElseThrow().version()));
    schedules.fireDue(clock.instant());
    assertThat(runsOf("tick")).hasSize(1);
  }

  /**
   * Found by the jcstress harness ScheduleFireUpdateTest: a fire enqueues the run for T, then an
   * update of the input wins the compare-and-set, so the stored schedule still says "T is next".
   * Firing again must see T as done (its run exists), not fail on the changed input.
   */
  @Test
  void aFireTimeWhoseRunExistsUnderAnOlderInputIsDoneNotAConflict() {
    schedules.upsert(ScheduleSpec.fixedRate("tick", "report", "old", Duration.ofMinutes(1)));
    Schedule beforeFire = schedules.get("tick").orElseThrow();
    clock.set(T0.plusSeconds(61));
    schedules.fireDue(clock.instant());
    // The update computed from the pre-fire state and won: T is next again, with a new input.
    Schedule fired = schedules.get("tick").orElseThrow();
    store.putSchedule(new Schedule(beforeFire.spec().withInput("new"), false,
        beforeFire.nextFireAt(), null, 0, fired.version()));

    assertThat(schedules.fireDue(clock.instant())).isEqualTo(T0.plusSeconds(120));
    assertThat(runsOf("tick")).singleElement()
        .satisfies(r -> assertThat(r.input()).isEqualTo("old"));
    Schedule after = schedules.get("tick").orElseThrow();
    assertThat(after.lastFireAt()).isEqualTo(T0.plusSeconds(60));
    assertThat(after.spec().input()).isEqualTo("new");
  }

  @Test
  void missedFireTimesRunOnceOrAreSkipped() {
    schedules.upsert(ScheduleSpec.fixedRate("once", "report", "x", Duration.ofMinutes(1)));
    schedules.upsert(ScheduleSpec.fixedRate("skip", "report", "x", Duration.ofMinutes(1))
        .missedFires(MissedFirePolicy.SKIP));
    // Three hours of fire times went by: more than the poll interval (an hour here), so the
    // first one the runner sees counts as missed.
    clock.set(T0.plus(Duration.ofHours(3)).plusSeconds(30));
    schedules.fireDue(clock.instant());
    assertThat(runsOf("once")).hasSize(1);
    assertThat(runsOf("skip")).isEmpty();
    Instant next = T0.plus(Duration.ofHours(3)).plus(Duration.ofMinutes(1));
    assertThat(schedules.get("once").orElseThrow().nextFireAt()).isEqualTo(next);
    assertThat(schedules.get("skip").orElseThrow().nextFireAt()).isEqualTo(next);
    clock.set(next.plusMillis(10));
    schedules.fireDue(clock.instant());
    assertThat(runsOf("skip")).as("on-time fires are not skipped").hasSize(1);
  }

  @Test
  void aCronScheduleFiresAtItsTimesInItsZone() {
    // 07:00 on weekdays in Paris; 2026-01-05 is a Monday, Paris is UTC+1 in January.
    Schedule s = schedules.upsert(ScheduleSpec.cron("morning", "report", "x", "0 7 * * MON-FRI",
        ZoneId.of("Europe/Paris")));
    assertThat(s.nextFireAt()).isEqualTo(Instant.parse("2026-01-06T06:00:00Z"));
    clock.set(Instant.parse("2026-01-06T06:00:01Z"));
    schedules.fireDue(clock.instant());
    assertThat(runsOf("morning")).hasSize(1);
    assertThat(schedules.get("morning").orElseThrow().nextFireAt())
        .isEqualTo(Instant.parse("2026-01-07T06:00:00Z"));
    assertThatThrownBy(() -> ScheduleSpec.cron("bad", "report", "x", "61 * * * *",
        ZoneOffset.UTC))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("cron expression \"61 * * * *\" is not valid");
  }

  @Test
  void aFixedDelayScheduleWaitsForItsRunToEnd() {
    schedules.upsert(ScheduleSpec.fixedDelay("poll", "report", "x", Duration.ofMinutes(5)));
    clock.set(T0.plus(Duration.ofMinutes(5)));
    schedules.fireDue(clock.instant());
    Schedule waiting = schedules.get("poll").orElseThrow();
    assertThat(waiting.nextFireAt()).isNull();
    RunRecord first = runner.handle(waiting.lastRunId()).await(Duration.ofSeconds(10));
    assertThat(first.status()).isEqualTo(RunStatus.SUCCEEDED);
    clock.set(T0.plus(Duration.ofMinutes(7)));
    schedules.fireDue(clock.instant());
    assertThat(schedules.get("poll").orElseThrow().nextFireAt())
        .isEqualTo(first.finishedAt().plus(Duration.ofMinutes(5)));
    assertThat(runsOf("poll")).hasSize(1);
  }

  @Test
  void pauseStopsFiringAndResumeSkipsThePausedFireTimes() {
    schedules.upsert(ScheduleSpec.fixedRate("tick", "report", "x", Duration.ofMinutes(1)));
    assertThat(schedules.pause("tick").paused()).isTrue();
    clock.set(T0.plus(Duration.ofMinutes(5)).plusSeconds(1));
    schedules.fireDue(clock.instant());
    assertThat(runsOf("tick")).isEmpty();
    Schedule resumed = schedules.resume("tick");
    assertThat(resumed.paused()).isFalse();
    assertThat(resumed.nextFireAt()).isEqualTo(T0.plus(Duration.ofMinutes(6)));
    assertThat(schedules.trigger("tick").await(Duration.ofSeconds(10)).output())
        .isEqualTo("report for x");
    assertThat(schedules.delete("tick")).isTrue();
    assertThat(schedules.delete("tick")).isFalse();
    assertThatThrownBy(() -> schedules.trigger("tick")).isInstanceOf(UnknownScheduleException.class)
        .hasMessage("no schedule named \"tick\"");
  }

  @Test
  void anUpdateKeepsTheNextFireTimeUnlessTheTimingChanged() {
    Schedule created = schedules.upsert(
        ScheduleSpec.fixedRate("tick", "report", "x", Duration.ofMinutes(1)));
    clock.set(T0.plusSeconds(30));
    Schedule newInput = schedules.upsert(
        ScheduleSpec.fixedRate("tick", "report", "y", Duration.ofMinutes(1)));
    assertThat(newInput.nextFireAt()).isEqualTo(created.nextFireAt());
    assertThat(newInput.spec().input()).isEqualTo("y");
    assertThat(newInput.version()).isEqualTo(created.version() + 1);
    Schedule newRate = schedules.upsert(
        ScheduleSpec.fixedRate("tick", "report", "y", Duration.ofMinutes(10)));
    assertThat(newRate.nextFireAt()).isEqualTo(T0.plusSeconds(30).plus(Duration.ofMinutes(10)));
    assertThatThrownBy(() -> schedules.upsert(
        ScheduleSpec.fixedRate("other", "nobody", "y", Duration.ofMinutes(1))))
        .isInstanceOf(UnknownAgentException.class);
    assertThat(schedules.list()).extracting(Schedule::name).containsExactly("tick");
  }

  private List<RunRecord> runsOf(String schedule) {
    return store.query(RunQuery.all().limit(RunQuery.MAX_LIMIT)).items().stream()
        .filter(r -> r.idempotencyKey() != null
            && r.idempotencyKey().startsWith("schedule:" + schedule + "@"))
        .toList();
  }

  /** A clock the test sets; thread-safe, since the runner's threads read it too. */
  static final class MovableClock extends Clock {
    private final AtomicReference<Instant> now;

    MovableClock(Instant start) {
      this.now = new AtomicReference<>(start);
    }

    void set(Instant instant) {
      now.set(instant);
    }

    @Override
    public Instant instant() {
      return now.get();
    }

    @Override
    public ZoneId getZone() {
      return ZoneOffset.UTC;
    }

    @Override
    public Clock withZone(ZoneId zone) {
      return this;
    }
  }
}
