package dev.agentrunner.examples.service;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Bad requests get the right status and an {@code application/problem+json} body, and store
 * nothing: the store's counts are the same before and after.
 */
@Timeout(60)
class BadRequestTest {
  private static final int MAX_BODY = 1024;

  @TempDir Path dir;
  private ServiceFixture fx;

  @BeforeEach
  void start() {
    fx = new ServiceFixture(dir, b -> b.maxBodyBytes(MAX_BODY));
    // One good run, so that listings and cursors have something to work on.
    HttpResponse<String> ok = fx.post("/api/agents/echo/run", "{\"input\":\"seed\"}");
    assertThat(ok.statusCode()).isEqualTo(202);
  }

  @AfterEach
  void stop() {
    fx.close();
  }

  static Stream<Arguments> badRequests() {
    String big = "{\"input\":\"" + "x".repeat(200 * 1024) + "\"}";
    return Stream.of(
        Arguments.of("malformed JSON", "POST", "/api/agents/echo/run", "{\"input\": ", 400),
        Arguments.of("not an object", "POST", "/api/agents/echo/run", "[1,2]", 400),
        Arguments.of("trailing garbage", "POST", "/api/agents/echo/run", "{\"input\":1} x", 400),
        Arguments.of("duplicate key", "POST", "/api/agents/echo/run",
            "{\"input\":1,\"input\":2}", 400),
        Arguments.of("empty body", "POST", "/api/agents/echo/run", "", 400),
        Arguments.of("missing input", "POST", "/api/agents/echo/run", "{}", 400),
        Arguments.of("unknown field", "POST", "/api/agents/echo/run",
            "{\"input\":1,\"inptu\":2}", 400),
        Arguments.of("unknown agent", "POST", "/api/agents/nope/run", "{\"input\":1}", 404),
        Arguments.of("unknown agent, chat", "POST", "/api/agents/nope/chat",
            "{\"conversation_id\":\"c\",\"message\":\"hi\"}", 404),
        Arguments.of("oversized body", "POST", "/api/agents/echo/run", big, 413),
        Arguments.of("oversized chat", "POST", "/api/agents/chat/chat",
            "{\"conversation_id\":\"c\",\"message\":\"" + "y".repeat(MAX_BODY) + "\"}", 413),
        Arguments.of("chat without conversation", "POST", "/api/agents/chat/chat",
            "{\"message\":\"hi\"}", 400),
        Arguments.of("bad conversation id", "POST", "/api/agents/chat/chat",
            "{\"conversation_id\":\"a b\",\"message\":\"hi\"}", 400),
        Arguments.of("message not a string", "POST", "/api/agents/chat/chat",
            "{\"conversation_id\":\"c\",\"message\":42}", 400),
        Arguments.of("bad policy", "POST", "/api/agents/chat/chat",
            "{\"conversation_id\":\"c\",\"message\":\"hi\",\"policy\":\"later\"}", 400),
        Arguments.of("wait out of range", "POST", "/api/agents/chat/chat",
            "{\"conversation_id\":\"c\",\"message\":\"hi\",\"wait_seconds\":9999}", 400),
        Arguments.of("bad cursor", "GET", "/api/agents/echo/runs?cursor=not-a-cursor", null, 400),
        Arguments.of("forged cursor", "GET", "/api/agents/echo/runs?cursor=cjE6LTU", null, 400),
        Arguments.of("bad limit", "GET", "/api/agents/echo/runs?limit=0", null, 400),
        Arguments.of("bad status", "GET", "/api/agents/echo/runs?status=DONE", null, 400),
        Arguments.of("unknown parameter", "GET", "/api/agents/echo/runs?statsu=FAILED", null, 400),
        Arguments.of("unknown agent, runs", "GET", "/api/agents/nope/runs", null, 404),
        Arguments.of("unknown run", "GET", "/api/runs/999999", null, 404),
        Arguments.of("bad run id", "GET", "/api/runs/abc", null, 400),
        Arguments.of("cancel unknown run", "POST", "/api/runs/999999/cancel", "", 404),
        Arguments.of("unknown path", "GET", "/api/nothing", null, 404),
        Arguments.of("wrong method", "GET", "/api/agents/echo/run", null, 405));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("badRequests")
  void getsAProblemAndStoresNothing(String what, String method, String path, String body,
      int status) {
    long before = fx.storedRuns();

    HttpRequest.Builder request = HttpRequest.newBuilder(fx.base.resolve(path))
        .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
            : HttpRequest.BodyPublishers.ofString(body));
    HttpResponse<String> response = fx.send(request, fx.client);

    assertThat(response.statusCode()).as(response.body()).isEqualTo(status);
    assertThat(response.headers().firstValue("Content-Type"))
        .hasValue("application/problem+json");
    JsonNode problem = ServiceFixture.json(response);
    assertThat(problem.get("status").asInt()).isEqualTo(status);
    assertThat(problem.get("title").asText()).isNotBlank();
    assertThat(problem.get("detail").asText()).isNotBlank();
    assertThat(problem.get("instance").asText()).isEqualTo(path.replaceAll("\\?.*", ""));
    assertThat(fx.storedRuns()).isEqualTo(before);
  }

  @Test
  void anUnknownAgentIsNamedWithTheKnownOnes() {
    JsonNode problem = ServiceFixture.json(
        fx.post("/api/agents/nope/run", "{\"input\":1}"));

    assertThat(problem.get("detail").asText()).contains("\"nope\"");
    assertThat(problem.get("known_agents")).extracting(JsonNode::asText)
        .containsExactly("chat", "echo");
  }

  @Test
  void anOversizedBodySaysTheLimit() {
    JsonNode problem = ServiceFixture.json(
        fx.post("/api/agents/echo/run", "{\"input\":\"" + "x".repeat(5000) + "\"}"));

    assertThat(problem.get("max_bytes").asInt()).isEqualTo(MAX_BODY);
  }

  @Test
  void wrongMethodNamesTheAllowedOne() {
    HttpResponse<String> r = fx.get("/api/runs/1/cancel");

    assertThat(r.statusCode()).isEqualTo(405);
    assertThat(r.headers().firstValue("Allow")).hasValue("POST");
  }
}
