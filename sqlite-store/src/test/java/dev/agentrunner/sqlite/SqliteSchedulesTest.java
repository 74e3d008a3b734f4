package dev.agentrunner.sqlite;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.MissedFirePolicy;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Schedule;
import dev.agentrunner.ScheduleSpec;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Schedules on a real file, through a runner: fired by the runner's own poll, kept across a
 * reopen, and refused when a value cannot be stored. The store contract itself is in the TCK.
 */
@Timeout(60)
class SqliteSchedulesTest {
  private static final Instant T0 = Instant.parse("2026-01-05T10:00:00Z");

  @TempDir Path dir;

  @Test
  void aRunnerFiresAStoredScheduleAndTheScheduleOutlivesTheStore() throws Exception {
    Path file = dir.resolve("schedules.db");
    MutableClock clock = new MutableClock(T0);
    ScheduleSpec cron = ScheduleSpec.cron("morning", "report", "{\"a\":1}", "0 7 * * MON-FRI",
        ZoneId.of("Europe/Paris")).missedFires(MissedFirePolicy.SKIP);
    Schedule fired;
    Schedule morning;
    RunRecord run;
    try (SqliteRunStore store = SqliteRunStore.builder(file).clock(clock).build();
        AgentRunner runner = AgentRunner.builder().store(store).clock(clock)
            .pollInterval(Duration.ofMillis(20))
            .agent("report", ctx -> AgentResult.of("report for " + ctx.input()))
            .build()) {
      Schedule tick = runner.schedules().upsert(
          ScheduleSpec.fixedRate("tick", "report", "x", Duration.ofMinutes(1)));
      assertThat(tick.nextFireAt()).isEqualTo(T0.plusSeconds(60));
      assertThat(tick.version()).isEqualTo(1);
      morning = runner.schedules().upsert(cron);
      assertThat(morning.nextFireAt()).isEqualTo(Instant.parse("2026-01-06T06:00:00Z"));

      clock.advance(Duration.ofSeconds(61)); // the runner's next poll finds "tick" due
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (runner.schedules().get("tick").orElseThrow().lastRunId() == 0) {
        assertThat(System.nanoTime()).as("tick fired in time").isLessThan(deadline);
        Thread.sleep(10);
      }
      fired = runner.schedules().get("tick").orElseThrow();
      assertThat(fired.lastFireAt()).isEqualTo(T0.plusSeconds(60));
      assertThat(fired.nextFireAt()).isEqualTo(T0.plusSeconds(120));
      run = runner.handle(fired.lastRunId()).await(Duration.ofSeconds(10));
      assertThat(run.status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(run.output()).isEqualTo("report for x");
      assertThat(run.idempotencyKey()).isEqualTo(Schedule.runKey("tick", T0.plusSeconds(60)));
      fired = runner.schedules().pause("tick");
    }

    try (SqliteRunStore reopened = SqliteRunStore.open(file)) {
      assertThat(reopened.findSchedule("tick")).contains(fired);
      assertThat(fired.paused()).isTrue();
      assertThat(reopened.findSchedule("morning")).contains(morning);
      assertThat(reopened.schedules()).extracting(Schedule::name)
          .containsExactly("morning", "tick");
      assertThat(reopened.find(run.id())).contains(run);
      assertThat(reopened.deleteSchedule("tick")).isTrue();
      assertThat(reopened.find(run.id())).as("its runs stay").contains(run);
    }
  }

  @Test
  void anIntervalTooLongForTheColumnIsRefusedAndNothingIsStored() {
    try (SqliteRunStore store = SqliteRunStore.open(dir.resolve("long.db"))) {
      ScheduleSpec spec = ScheduleSpec.fixedRate("eons", "report", "x",
          Duration.ofDays(365L * 300));
      assertThatThrownBy(() -> store.putSchedule(new Schedule(spec, false, T0, null, 0, 0)))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("\"eons\"")
          .hasMessageContaining("too long to store");
      assertThat(store.schedules()).isEmpty();
    }
  }
}
