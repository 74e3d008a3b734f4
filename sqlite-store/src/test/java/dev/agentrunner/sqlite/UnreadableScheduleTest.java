package dev.agentrunner.sqlite;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A schedule row this runner cannot read must not stop it from executing runs.
 *
 * <p>Rows written by another node can be unreadable here: a cron schedule on a node without the
 * optional cron-utils, a time zone newer than this JDK's tz database, or (as in this test) a cron
 * expression this node's cron-utils rejects. {@code store.schedules()} then throws inside the
 * dispatcher's maintenance; each maintenance step fails alone, so claiming goes on (this once
 * kept every run QUEUED).
 */
@Timeout(60)
class UnreadableScheduleTest {
  @TempDir Path dir;

  @Test
  void anUnreadableScheduleDoesNotStopTheRunnerFromRunningRuns() throws Exception {
    Path file = dir.resolve("unreadable.db");
    SqliteRunStore.open(file).close();
    try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + file.toUri());
        Statement s = c.createStatement()) {
      // Passes the table's checks; "61" is no minute, so reading it back as a spec throws.
      s.execute("INSERT INTO schedules (name, agent, input, kind, interval_nanos, cron, zone,"
          + " missed_fires, paused, next_fire_at, last_fire_at, last_run_id, version)"
          + " VALUES ('elsewhere', 'other', '', 'CRON', NULL, '61 * * * *', 'UTC', 'RUN_ONCE',"
          + " 0, NULL, NULL, 0, 1)");
    }
    try (SqliteRunStore store = SqliteRunStore.open(file);
        AgentRunner runner = AgentRunner.builder().store(store)
            .pollInterval(Duration.ofMillis(50))
            .agent("job", ctx -> AgentResult.of("done"))
            .build()) {
      RunRecord run = runner.submit(RunRequest.of("job", "x")).await(Duration.ofSeconds(10));
      assertThat(run.status()).isEqualTo(RunStatus.SUCCEEDED);
    }
  }
}
