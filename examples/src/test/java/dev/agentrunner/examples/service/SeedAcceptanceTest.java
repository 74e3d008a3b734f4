package dev.agentrunner.examples.service;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.http.HttpClient;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The seed's acceptance criterion end to end (VO-335: run ids read back with {@code MAX(id)},
 * a run count bumped without a lock): 100 concurrent HTTP clients each POST a run, each gets
 * a distinct run id, each reads back its own input and output under that id, and the agent's
 * run count is 100.
 */
@Timeout(120)
class SeedAcceptanceTest {
  private static final int CLIENTS = 100;

  @TempDir Path dir;
  private ServiceFixture fx;

  @BeforeEach
  void start() {
    fx = new ServiceFixture(dir);
  }

  @AfterEach
  void stop() {
    fx.close();
  }

  private record Outcome(int caller, long runId, JsonNode run) {}

  @Test
  void hundredConcurrentClientsEachGetTheirOwnRunIdInputAndOutput() throws Exception {
    CountDownLatch go = new CountDownLatch(1);
    List<Future<Outcome>> futures = new ArrayList<>();
    try (ExecutorService callers = Executors.newVirtualThreadPerTaskExecutor()) {
      for (int i = 0; i < CLIENTS; i++) {
        int caller = i;
        futures.add(callers.submit(() -> {
          // Each caller is its own client, with its own connection.
          try (HttpClient client = ServiceFixture.newClient()) {
            go.await();
            HttpResponse<String> posted = fx.post(client, "/api/agents/echo/run",
                "{\"input\":{\"caller\":" + caller + "}}");
            assertThat(posted.statusCode()).as(posted.body()).isEqualTo(202);
            long id = ServiceFixture.json(posted).get("run_id").asLong();
            assertThat(posted.headers().firstValue("Location")).hasValue("/api/runs/" + id);
            // Long-polls until the run is finished: no sleeping, no polling loop.
            HttpResponse<String> read = fx.send(java.net.http.HttpRequest.newBuilder(
                fx.base.resolve("/api/runs/" + id + "?wait=60")).GET(), client);
            assertThat(read.statusCode()).as(read.body()).isEqualTo(200);
            return new Outcome(caller, id, ServiceFixture.json(read));
          }
        }));
      }
      go.countDown();
    }

    Set<Long> ids = new HashSet<>();
    for (Future<Outcome> f : futures) {
      Outcome o = f.get();
      ids.add(o.runId());
      JsonNode run = o.run();
      assertThat(run.get("run_id").asLong()).isEqualTo(o.runId());
      assertThat(run.get("status").asText()).isEqualTo("SUCCEEDED");
      assertThat(run.get("input")).isEqualTo(Json.MAPPER.readTree("{\"caller\":" + o.caller() + "}"));
      assertThat(run.get("output"))
          .isEqualTo(Json.MAPPER.readTree("{\"echo\":{\"caller\":" + o.caller() + "}}"));
    }
    assertThat(ids).hasSize(CLIENTS);

    JsonNode health = ServiceFixture.json(fx.get("/health"));
    JsonNode echo = health.get("agents").get("echo");
    assertThat(echo.get("total").asLong()).isEqualTo(CLIENTS);
    assertThat(echo.get("succeeded").asLong()).isEqualTo(CLIENTS);
    assertThat(echo.get("usage").get("input_tokens").asLong())
        .isEqualTo(CLIENTS * ServiceFixture.ECHO_USAGE.inputTokens());
    assertThat(echo.get("usage").get("cost_micros").asLong())
        .isEqualTo(CLIENTS * ServiceFixture.ECHO_USAGE.costMicros());
    assertThat(health.get("queue_depth").asLong()).isZero();
  }
}
