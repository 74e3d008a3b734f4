package dev.agentrunner.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunEvent;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.NewRun;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * In production the store has no clock of its own: timestamps and leases are the database's
 * {@code now()}, the one clock every node shares, so skew between hosts cannot expire a live
 * lease.
 */
class DatabaseClockTest {
  private static final String SCHEMA = PgTestDatabase.schemaName("dbclock");
  private static PostgresRunStore store;

  @BeforeAll
  static void open() throws Exception {
    PgTestDatabase.dropSchema(SCHEMA);
    store = PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA).build();
  }

  @AfterAll
  static void close() throws Exception {
    if (store != null) {
      store.close();
    }
    PgTestDatabase.dropSchema(SCHEMA);
  }

  private static Instant databaseNow() throws Exception {
    try (Connection c = PgTestDatabase.connect(); Statement s = c.createStatement();
        ResultSet rs = s.executeQuery("SELECT now()")) {
      rs.next();
      return rs.getObject(1, java.time.OffsetDateTime.class).toInstant();
    }
  }

  @Test
  void timestampsAndLeasesComeFromTheDatabase() throws Exception {
    Instant before = databaseNow();
    RunRecord run = store.insert(NewRun.of(RunRequest.of("clock", "x")));
    RunRecord claimed = store.claim(
        new ClaimRequest("w", Map.of("clock", 1), 1, Duration.ofSeconds(30))).get(0);
    Instant after = databaseNow();

    assertThat(run.createdAt()).isBetween(before, after);
    assertThat(run.notBefore()).isEqualTo(run.createdAt());
    assertThat(claimed.startedAt()).isBetween(run.createdAt(), after);
    assertThat(claimed.leaseUntil()).isEqualTo(claimed.startedAt().plusSeconds(30));
    assertThat(store.events(run.id()).get(0).at()).isEqualTo(run.createdAt());
  }

  @Test
  void aLeaseExpiresByTheDatabaseClockAndAHeartbeatRenewsIt() throws Exception {
    store.insert(new NewRun(RunRequest.of("lease", "x"), 2));
    Duration lease = Duration.ofMillis(400);
    RunRecord claimed = store.claim(new ClaimRequest("w", Map.of("lease", 1), 1, lease)).get(0);
    Thread.sleep(250);
    assertThat(store.heartbeat("w", Set.of(claimed.id()), lease).extended()).isEqualTo(1);
    Thread.sleep(250);
    assertThat(store.recoverExpiredLeases()).as("renewed 250 ms ago for 400 ms").isEmpty();
    Thread.sleep(300);
    List<RunRecord> recovered = store.recoverExpiredLeases();
    assertThat(recovered).extracting(RunRecord::id).containsExactly(claimed.id());
    assertThat(recovered.get(0).status()).isEqualTo(RunStatus.QUEUED);
    assertThat(recovered.get(0).error()).contains("lost");
  }

  @Test
  void aRetryFallsDueByTheDatabaseClock() throws Exception {
    store.insert(new NewRun(RunRequest.of("retry", "x"), 2));
    RunRecord claimed = store.claim(
        new ClaimRequest("w", Map.of("retry", 1), 1, Duration.ofSeconds(30))).get(0);
    RunRecord requeued = store.finish(Finish.retry(claimed.id(), 1, "w", "flaky", Usage.ZERO,
        Duration.ofSeconds(90))).orElseThrow();
    assertThat(requeued.status()).isEqualTo(RunStatus.QUEUED);
    // The requeued event carries the database's now of that statement; the run is due exactly
    // 90 s after it, whatever this host's clock says.
    RunEvent requeuedEvent = store.events(claimed.id()).getLast();
    assertThat(requeuedEvent.type()).isEqualTo("requeued");
    assertThat(requeued.notBefore()).isEqualTo(requeuedEvent.at().plusSeconds(90));
  }
}
