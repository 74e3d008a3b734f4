package dev.agentrunner.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunHandle;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.NewRun;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The database connections of a worker are killed while it runs agents: no run is lost, the
 * worker reconnects, and a worker that lost its lease meanwhile cannot overwrite the run.
 */
class ConnectionLossTest {
  private static final String SCHEMA = PgTestDatabase.schemaName("connloss");
  private static final String POOL_APPLICATION = "agentrunner:" + SCHEMA;

  @BeforeEach
  @AfterEach
  void dropSchema() throws Exception {
    PgTestDatabase.dropSchema(SCHEMA);
  }

  private static PostgresRunStore open() {
    return PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA)
        .connectionTimeout(Duration.ofSeconds(2)).build();
  }

  @Test
  void aRunWhoseWorkerLosesItsConnectionsStillEndsOnce() throws Exception {
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch proceed = new CountDownLatch(1);
    AtomicInteger executions = new AtomicInteger();
    try (PostgresRunStore store = open();
        AgentRunner runner = AgentRunner.builder().store(store)
            .pollInterval(Duration.ofMillis(200))
            .leaseDuration(Duration.ofSeconds(3))
            .agent("slow", ctx -> {
              executions.incrementAndGet();
              started.countDown();
              proceed.await();
              return AgentResult.of("done", Usage.of(1, 2, 3));
            })
            .build()) {
      RunHandle handle = runner.submit(RunRequest.of("slow", "x"));
      assertThat(started.await(10, java.util.concurrent.TimeUnit.SECONDS)).isTrue();

      assertThat(PgTestDatabase.terminate(POOL_APPLICATION)).as("pool connections killed")
          .isPositive();
      proceed.countDown();

      RunRecord done = handle.await(Duration.ofSeconds(20));
      assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
      assertThat(done.output()).isEqualTo("done");
      assertThat(done.attempt()).isEqualTo(1);
      assertThat(executions.get()).isEqualTo(1);
      assertThat(store.events(done.id())).extracting(RunEvent::type)
          .containsExactly("queued", "started", "succeeded");
    }
  }

  @Test
  void aWorkerThatLostItsConnectionAndItsLeaseCannotFinishTheRun() throws Exception {
    try (PostgresRunStore zombie = open(); PostgresRunStore survivor = open()) {
      RunRecord run = survivor.insert(new NewRun(RunRequest.of("job", "x"), 3));
      RunRecord lost = zombie.claim(
          new ClaimRequest("zombie", Map.of("job", 1), 1, Duration.ofMillis(500))).get(0);
      PgTestDatabase.terminate(POOL_APPLICATION); // both stores' pools: both reconnect
      Thread.sleep(800);

      List<RunRecord> recovered = survivor.recoverExpiredLeases();
      assertThat(recovered).extracting(RunRecord::id).containsExactly(run.id());
      RunRecord second = survivor.claim(
          new ClaimRequest("survivor", Map.of("job", 1), 1, Duration.ofSeconds(30))).get(0);
      assertThat(second.attempt()).isEqualTo(2);

      // The zombie is back on the database, but its attempt is over.
      assertThat(zombie.heartbeat("zombie", Set.of(run.id()), Duration.ofSeconds(30)).extended()).isZero();
      assertThat(zombie.finish(Finish.succeeded(run.id(), lost.attempt(), "zombie", "late",
          Usage.ZERO))).isEmpty();
      assertThat(survivor.finish(Finish.succeeded(run.id(), 2, "survivor", "on time",
          Usage.ZERO)).orElseThrow().output()).isEqualTo("on time");
      assertThat(zombie.find(run.id()).orElseThrow().output()).isEqualTo("on time");
    }
  }
}
