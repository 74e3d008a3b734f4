package dev.agentrunner.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.NewRun;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * LISTEN/NOTIFY wake-ups between two stores on one schema (two nodes, as far as the database
 * can tell), and the listener's recovery when its connection is killed.
 */
class RemoteWorkTest {
  private static final String SCHEMA = PgTestDatabase.schemaName("remote");
  private PostgresRunStore listening;
  private PostgresRunStore other;
  private final Semaphore wakeUps = new Semaphore(0);

  @BeforeEach
  void open() throws Exception {
    PgTestDatabase.dropSchema(SCHEMA);
    listening = PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA).build();
    other = PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA).build();
    listening.onRemoteWork(wakeUps::release);
    await("the listener connects", () -> listening.listenerBackendPid() != 0);
    await("the wake-up after connecting", () -> wakeUps.tryAcquire());
  }

  @AfterEach
  void close() throws Exception {
    if (listening != null) {
      listening.close();
    }
    if (other != null) {
      other.close();
    }
    PgTestDatabase.dropSchema(SCHEMA);
  }

  @Test
  void aClosedSubscriptionIsNotCalledAgain() throws Exception {
    Semaphore closedOnes = new Semaphore(0);
    AutoCloseable subscription = listening.onRemoteWork(closedOnes::release);
    subscription.close();
    other.insert(NewRun.of(RunRequest.of("a", "theirs")));
    assertThat(wakeUps.tryAcquire(5, TimeUnit.SECONDS)).as("the open one is woken").isTrue();
    assertThat(closedOnes.availablePermits()).as("the closed one is not").isZero();
  }

  @Test
  void anotherNodesSubmitWakesTheListenerButItsOwnDoesNot() throws Exception {
    listening.insert(NewRun.of(RunRequest.of("a", "mine")));
    assertThat(wakeUps.tryAcquire(500, TimeUnit.MILLISECONDS))
        .as("woken by its own submit").isFalse();

    other.insert(NewRun.of(RunRequest.of("a", "theirs")));
    assertThat(wakeUps.tryAcquire(5, TimeUnit.SECONDS)).as("woken by the other's").isTrue();

    // Not yet due: nothing to claim, no wake-up; a release puts a run back: wake-up.
    other.insert(NewRun.of(RunRequest.of("a", "later")
        .withNotBefore(Instant.now().plus(Duration.ofHours(1)))));
    assertThat(wakeUps.tryAcquire(500, TimeUnit.MILLISECONDS)).isFalse();
    List<RunRecord> claimed = other.claim(new ClaimRequest("w", Map.of("a", 5), 5,
        Duration.ofSeconds(30)));
    assertThat(claimed).hasSize(2);
    wakeUps.drainPermits();
    assertThat(other.release("w", claimed)).isEqualTo(2);
    assertThat(wakeUps.tryAcquire(5, TimeUnit.SECONDS)).as("woken by a release").isTrue();
  }

  @Test
  void theListenerReconnectsAfterItsConnectionIsKilled() throws Exception {
    int pid = listening.listenerBackendPid();
    try (Connection c = PgTestDatabase.connect();
        PreparedStatement ps = c.prepareStatement("SELECT pg_terminate_backend(?)")) {
      ps.setInt(1, pid);
      ps.executeQuery().close();
    }
    await("a new listening connection",
        () -> listening.listenerBackendPid() != 0 && listening.listenerBackendPid() != pid);
    assertThat(listening.listenerConnections()).isEqualTo(2);
    // after reconnecting it wakes its runner once: notifications sent meanwhile were lost
    assertThat(wakeUps.tryAcquire(5, TimeUnit.SECONDS)).isTrue();
    wakeUps.drainPermits();

    other.insert(NewRun.of(RunRequest.of("a", "after the reconnect")));
    assertThat(wakeUps.tryAcquire(5, TimeUnit.SECONDS)).isTrue();
  }

  static void await(String what, BooleanSupplier condition) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for " + what);
      }
      Thread.sleep(10);
    }
  }
}
