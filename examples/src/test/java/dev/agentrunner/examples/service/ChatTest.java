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
 * The seed's {@code /chat} race: messages to one conversation must be processed one at a time,
 * in order, and each sender must get the reply to its own message; under {@code reject} a busy
 * conversation answers 409 naming the active run; under {@code interrupt} the active run is
 * cancelled for the new one.
 */
@Timeout(120)
class ChatTest {
  private static final int MESSAGES = 50;

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

  private static String chat(String conversation, String message, String more) {
    return "{\"conversation_id\":\"" + conversation + "\",\"message\":\"" + message + "\""
        + more + "}";
  }

  private record Reply(String message, HttpResponse<String> response) {}

  @Test
  void fiftyConcurrentMessagesToOneConversationRunOneAtATimeInOrderEachGettingItsOwnReply()
      throws Exception {
    CountDownLatch go = new CountDownLatch(1);
    List<Future<Reply>> futures = new ArrayList<>();
    try (ExecutorService senders = Executors.newVirtualThreadPerTaskExecutor()) {
      for (int i = 0; i < MESSAGES; i++) {
        String message = "message-" + i;
        futures.add(senders.submit(() -> {
          try (HttpClient client = ServiceFixture.newClient()) {
            go.await();
            return new Reply(message, fx.post(client, "/api/agents/chat/chat",
                chat("conv-1", message, ",\"wait_seconds\":60")));
          }
        }));
      }
      go.countDown();
    }

    // Measured inside the agent: never two at once, and started in submission (id) order.
    assertThat(fx.maxChatsInside.get()).as("chats inside the agent at once").isEqualTo(1);
    assertThat(fx.chatOrder).hasSize(MESSAGES).isSorted();

    Set<Long> ids = new HashSet<>();
    for (Future<Reply> f : futures) {
      Reply r = f.get();
      assertThat(r.response().statusCode()).as(r.response().body()).isEqualTo(200);
      JsonNode run = ServiceFixture.json(r.response());
      assertThat(run.get("status").asText()).isEqualTo("SUCCEEDED");
      assertThat(run.get("conversation_id").asText()).isEqualTo("conv-1");
      assertThat(run.get("input").get("message").asText()).isEqualTo(r.message());
      assertThat(run.get("output").get("reply").asText()).isEqualTo("re: " + r.message());
      ids.add(run.get("run_id").asLong());
    }
    assertThat(ids).hasSize(MESSAGES);
    assertThat(fx.chatOrder).containsExactlyInAnyOrderElementsOf(ids);
  }

  @Test
  void rejectAnswers409WithTheActiveRunAndStoresNothing() {
    HttpResponse<String> first = fx.post("/api/agents/chat/chat",
        chat("conv-r", "block", ",\"wait_seconds\":0"));
    assertThat(first.statusCode()).as(first.body()).isEqualTo(202);
    long active = ServiceFixture.json(first).get("run_id").asLong();
    long before = fx.storedRuns();

    HttpResponse<String> rejected = fx.post("/api/agents/chat/chat",
        chat("conv-r", "second", ",\"policy\":\"reject\""));

    assertThat(rejected.statusCode()).as(rejected.body()).isEqualTo(409);
    assertThat(rejected.headers().firstValue("Content-Type"))
        .hasValue("application/problem+json");
    JsonNode problem = ServiceFixture.json(rejected);
    assertThat(problem.get("status").asInt()).isEqualTo(409);
    assertThat(problem.get("active_run_id").asLong()).isEqualTo(active);
    assertThat(problem.get("conversation_id").asText()).isEqualTo("conv-r");
    assertThat(fx.storedRuns()).isEqualTo(before);

    fx.release.countDown();
    JsonNode done = ServiceFixture.json(fx.get("/api/runs/" + active + "?wait=60"));
    assertThat(done.get("status").asText()).isEqualTo("SUCCEEDED");
    // Idle again: reject lets the next message in.
    HttpResponse<String> next = fx.post("/api/agents/chat/chat",
        chat("conv-r", "third", ",\"policy\":\"reject\",\"wait_seconds\":60"));
    assertThat(next.statusCode()).as(next.body()).isEqualTo(200);
    assertThat(ServiceFixture.json(next).get("output").get("reply").asText())
        .isEqualTo("re: third");
  }

  @Test
  void interruptCancelsTheActiveRunAndAnswersTheNewMessage() {
    HttpResponse<String> first = fx.post("/api/agents/chat/chat",
        chat("conv-i", "block", ",\"wait_seconds\":0"));
    long blocked = ServiceFixture.json(first).get("run_id").asLong();

    HttpResponse<String> second = fx.post("/api/agents/chat/chat",
        chat("conv-i", "never mind", ",\"policy\":\"interrupt\",\"wait_seconds\":60"));

    assertThat(second.statusCode()).as(second.body()).isEqualTo(200);
    assertThat(ServiceFixture.json(second).get("output").get("reply").asText())
        .isEqualTo("re: never mind");
    JsonNode old = ServiceFixture.json(fx.get("/api/runs/" + blocked + "?wait=60"));
    assertThat(old.get("status").asText()).isEqualTo("CANCELLED");
  }

  @Test
  void aChatThatOutlastsItsWaitAnswers202WithTheRunId() {
    HttpResponse<String> r = fx.post("/api/agents/chat/chat",
        chat("conv-w", "block", ",\"wait_seconds\":0"));

    assertThat(r.statusCode()).isEqualTo(202);
    JsonNode body = ServiceFixture.json(r);
    long id = body.get("run_id").asLong();
    assertThat(body.get("conversation_id").asText()).isEqualTo("conv-w");
    assertThat(r.headers().firstValue("Location")).hasValue("/api/runs/" + id);
    JsonNode listed = ServiceFixture.json(fx.get("/api/agents/chat/runs?conversation_id=conv-w"));
    assertThat(listed.get("items")).hasSize(1);
    assertThat(listed.get("items").get(0).get("run_id").asLong()).isEqualTo(id);
  }
}
