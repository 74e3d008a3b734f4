package dev.agentrunner;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.memory.InMemoryRunStore;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Schedules on the real clock, fired by two runners sharing one store (I10 in one process). */
class SchedulesTest {

  @Test
  @Timeout(30)
  void twoRunnersFireEachFireTimeExactlyOnceAndMissNone() throws Exception {
    int fires = 15;
    CountDownLatch enough = new CountDownLatch(fires);
    Agent tick = ctx -> {
      enough.countDown();
      return AgentResult.of("tick");
    };
    try (InMemoryRunStore store = InMemoryRunStore.create();
        AgentRunner a = AgentRunner.builder().store(store).workerId("a")
            .pollInterval(Duration.ofMillis(40)).agent("tick", tick).build();
        AgentRunner b = AgentRunner.builder().store(store).workerId("b")
            .pollInterval(Duration.ofMillis(40)).agent("tick", tick).build()) {
      a.schedules().upsert(ScheduleSpec.fixedRate("every-100ms", "tick", "{}",
          Duration.ofMillis(100)));
      assertThat(enough.await(20, TimeUnit.SECONDS)).as("%d fires", fires).isTrue();
      b.schedules().pause("every-100ms");

      List<Instant> fireTimes = new ArrayList<>();
      for (RunRecord run : store.query(RunQuery.agent("tick").limit(RunQuery.MAX_LIMIT))
          .items()) {
        String key = run.idempotencyKey();
        fireTimes.add(Instant.ofEpochMilli(Long.parseLong(key.substring(key.indexOf('@') + 1))));
      }
      fireTimes.sort(null);
      assertThat(fireTimes).doesNotHaveDuplicates().hasSizeGreaterThanOrEqualTo(fires);
      for (int i = 1; i < fireTimes.size(); i++) {
        assertThat(Duration.between(fireTimes.get(i - 1), fireTimes.get(i)))
            .as("fire %d follows fire %d by one interval", i, i - 1)
            .isEqualTo(Duration.ofMillis(100));
      }
    }
  }
}
