package dev.agentrunner.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.RunHandle;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.ScheduleSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Two runners, each on its own store instance of one schema (two nodes, as far as the database
 * can tell), sharing serial keys and schedules.
 */
class RunnersOnPostgresTest {
  private static final String SCHEMA = PgTestDatabase.schemaName("runners");

  @BeforeEach
  @AfterEach
  void dropSchema() throws Exception {
    PgTestDatabase.dropSchema(SCHEMA);
  }

  private static PostgresRunStore open() {
    return PostgresRunStore.builder(PgTestDatabase.url()).schema(SCHEMA).poolSize(4).build();
  }

  @Test
  void runsOfOneSerialKeyNeverOverlapAcrossRunnersAndKeepTheirOrder() throws Exception {
    AtomicInteger inFlight = new AtomicInteger();
    AtomicInteger overlaps = new AtomicInteger();
    List<Long> order = Collections.synchronizedList(new ArrayList<>());
    dev.agentrunner.Agent agent = ctx -> {
      if (inFlight.incrementAndGet() > 1) {
        overlaps.incrementAndGet();
      }
      order.add(ctx.runId());
      Thread.sleep(3);
      inFlight.decrementAndGet();
      return AgentResult.of("ok");
    };
    try (PostgresRunStore storeA = open(); PostgresRunStore storeB = open();
        AgentRunner a = AgentRunner.builder().store(storeA).workerId("a")
            .pollInterval(Duration.ofMillis(100)).agent("conv", agent).build();
        AgentRunner b = AgentRunner.builder().store(storeB).workerId("b")
            .pollInterval(Duration.ofMillis(100)).agent("conv", agent).build()) {
      List<RunHandle> handles = new ArrayList<>();
      for (int i = 0; i < 40; i++) {
        AgentRunner via = i % 2 == 0 ? a : b;
        handles.add(via.submit(RunRequest.of("conv", "m" + i).withSerialKey("chat-1")));
      }
      Set<String> owners = new TreeSet<>();
      for (RunHandle h : handles) {
        RunRecord done = h.await(Duration.ofSeconds(30));
        assertThat(done.status()).isEqualTo(RunStatus.SUCCEEDED);
        owners.add(done.owner());
      }
      assertThat(overlaps.get()).as("runs of one key running at once").isZero();
      assertThat(order).as("execution order is submission order")
          .isEqualTo(handles.stream().map(RunHandle::id).toList());
      System.out.println("serial key across two runners: executed by " + owners);
    }
  }

  @Test
  void aScheduleSharedByTwoRunnersFiresOncePerFireTime() throws Exception {
    AtomicInteger executions = new AtomicInteger();
    dev.agentrunner.Agent tick = ctx -> {
      executions.incrementAndGet();
      return AgentResult.of("tick");
    };
    try (PostgresRunStore storeA = open(); PostgresRunStore storeB = open();
        AgentRunner a = AgentRunner.builder().store(storeA).workerId("a")
            .pollInterval(Duration.ofMillis(50)).agent("tick", tick).build();
        AgentRunner b = AgentRunner.builder().store(storeB).workerId("b")
            .pollInterval(Duration.ofMillis(50)).agent("tick", tick).build()) {
      a.schedules().upsert(ScheduleSpec.fixedRate("every-200ms", "tick", "{}",
          Duration.ofMillis(200)));
      Thread.sleep(2_500);
      b.schedules().delete("every-200ms");
      long deadline = System.nanoTime() + 10_000_000_000L;
      while (storeA.count(RunQuery.agent("tick").status(RunStatus.QUEUED, RunStatus.RUNNING)) > 0
          && System.nanoTime() < deadline) {
        Thread.sleep(20); // let the last runs end
      }

      List<RunRecord> runs = storeA.query(RunQuery.agent("tick").limit(1000)).items();
      List<Long> fireMillis = runs.stream()
          .map(r -> Long.parseLong(r.idempotencyKey().substring(
              r.idempotencyKey().indexOf('@') + 1)))
          .sorted().toList();
      assertThat(fireMillis).as("one run per fire time").doesNotHaveDuplicates();
      assertThat(fireMillis.size()).as("fire times in 2.5 s at 200 ms").isBetween(6, 14);
      for (int i = 1; i < fireMillis.size(); i++) {
        assertThat((fireMillis.get(i) - fireMillis.get(0)) % 200).as("on the rate").isZero();
      }
      assertThat(executions.get()).isEqualTo(runs.size());
    }
  }
}
