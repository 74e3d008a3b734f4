package dev.agentrunner.examples.service;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Idempotency keys, keyset paging, cancel, health, and the 503 of a stopping service. */
@Timeout(60)
class EndpointsTest {
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

  private long submit(String input) {
    HttpResponse<String> r = fx.post("/api/agents/echo/run", "{\"input\":" + input + "}");
    assertThat(r.statusCode()).as(r.body()).isEqualTo(202);
    return ServiceFixture.json(r).get("run_id").asLong();
  }

  private JsonNode awaitRun(long id) {
    return ServiceFixture.json(fx.get("/api/runs/" + id + "?wait=30"));
  }

  @Test
  void aRepeatedIdempotencyKeyReturnsTheFirstRunAndAReusedOneIsAConflict() {
    HttpResponse<String> first = fx.post("/api/agents/echo/run", "{\"input\":\"pay 10\"}",
        "Idempotency-Key", "order-7");
    HttpResponse<String> again = fx.post("/api/agents/echo/run", "{\"input\":\"pay 10\"}",
        "Idempotency-Key", "order-7");
    long id = ServiceFixture.json(first).get("run_id").asLong();

    assertThat(ServiceFixture.json(again).get("run_id").asLong()).isEqualTo(id);
    assertThat(fx.storedRuns()).isEqualTo(1);
    assertThat(awaitRun(id).get("idempotency_key").asText()).isEqualTo("order-7");

    HttpResponse<String> reused = fx.post("/api/agents/echo/run", "{\"input\":\"pay 99\"}",
        "Idempotency-Key", "order-7");
    assertThat(reused.statusCode()).isEqualTo(409);
    assertThat(ServiceFixture.json(reused).get("run_id").asLong()).isEqualTo(id);
    assertThat(fx.storedRuns()).isEqualTo(1);
  }

  @Test
  void historyPagesByCursorNewestFirstWithoutRepeats() {
    List<Long> ids = new ArrayList<>();
    for (int i = 0; i < 7; i++) {
      ids.add(submit(Integer.toString(i)));
    }
    ids.forEach(this::awaitRun);

    List<Long> seen = new ArrayList<>();
    String cursor = null;
    int pages = 0;
    do {
      JsonNode page = ServiceFixture.json(fx.get("/api/agents/echo/runs?status=succeeded&limit=3"
          + (cursor == null ? "" : "&cursor=" + cursor)));
      page.get("items").forEach(run -> seen.add(run.get("run_id").asLong()));
      cursor = page.get("next_cursor").isNull() ? null : page.get("next_cursor").asText();
      pages++;
    } while (cursor != null);

    assertThat(pages).isEqualTo(3);
    assertThat(seen).isEqualTo(ids.reversed());
    JsonNode failed = ServiceFixture.json(fx.get("/api/agents/echo/runs?status=FAILED,TIMED_OUT"));
    assertThat(failed.get("items")).isEmpty();
    assertThat(failed.get("next_cursor").isNull()).isTrue();
  }

  @Test
  void cancelStopsARunningRunAndAFinishedOneIsAConflict() {
    HttpResponse<String> chat = fx.post("/api/agents/chat/chat",
        "{\"conversation_id\":\"c\",\"message\":\"block\",\"wait_seconds\":0}");
    long blocked = ServiceFixture.json(chat).get("run_id").asLong();

    HttpResponse<String> cancel = fx.post("/api/runs/" + blocked + "/cancel", "");

    // 200 if it was still queued (cancelled at once), 202 if running (asked to stop).
    assertThat(cancel.statusCode()).as(cancel.body()).isIn(200, 202);
    assertThat(awaitRun(blocked).get("status").asText()).isEqualTo("CANCELLED");

    long done = submit("1");
    awaitRun(done);
    HttpResponse<String> late = fx.post("/api/runs/" + done + "/cancel", "");
    assertThat(late.statusCode()).isEqualTo(409);
    assertThat(ServiceFixture.json(late).get("status").asInt()).isEqualTo(409);
    assertThat(ServiceFixture.json(late).get("run_status").asText()).isEqualTo("SUCCEEDED");
  }

  @Test
  void healthReportsStoreQueuesCountsAndUsage() {
    awaitRun(submit("1"));
    awaitRun(submit("2"));

    HttpResponse<String> r = fx.get("/health");

    assertThat(r.statusCode()).isEqualTo(200);
    JsonNode h = ServiceFixture.json(r);
    assertThat(h.get("status").asText()).isEqualTo("ok");
    assertThat(h.get("store").get("reachable").asBoolean()).isTrue();
    assertThat(h.get("queue_depth").asLong()).isZero();
    assertThat(h.get("running").asLong()).isZero();
    assertThat(h.get("agents").get("echo").get("succeeded").asLong()).isEqualTo(2);
    assertThat(h.get("agents").get("chat").get("total").asLong()).isZero();
    assertThat(h.get("totals").get("usage").get("output_tokens").asLong())
        .isEqualTo(2 * ServiceFixture.ECHO_USAGE.outputTokens());
  }

  @Test
  void healthShowsTheQueueOfABusyConversation() {
    String body = "{\"conversation_id\":\"q\",\"message\":\"%s\",\"wait_seconds\":0}";
    fx.post("/api/agents/chat/chat", body.formatted("block"));
    fx.post("/api/agents/chat/chat", body.formatted("two"));
    fx.post("/api/agents/chat/chat", body.formatted("three"));
    fx.blocking.acquireUninterruptibly(); // the first message is inside the agent

    JsonNode h = ServiceFixture.json(fx.get("/health"));

    assertThat(h.get("conversation_queues").get("q").asLong()).isEqualTo(2);
    assertThat(h.get("queue_depth").asLong()).isEqualTo(2);
    assertThat(h.get("running").asLong()).isEqualTo(1);
  }

  @Test
  void aStoppingServiceAnswers503AndStoresNothing() {
    fx.service.stopAccepting();

    HttpResponse<String> r = fx.post("/api/agents/echo/run", "{\"input\":1}");

    assertThat(r.statusCode()).isEqualTo(503);
    assertThat(r.headers().firstValue("Content-Type")).hasValue("application/problem+json");
    assertThat(ServiceFixture.json(r).get("detail").asText()).contains("shutting down");
    assertThat(fx.storedRuns()).isZero();
    HttpResponse<String> health = fx.get("/health");
    assertThat(health.statusCode()).isEqualTo(503);
    assertThat(ServiceFixture.json(health).get("status").asText()).isEqualTo("stopping");
  }
}
