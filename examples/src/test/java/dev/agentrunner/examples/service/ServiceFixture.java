package dev.agentrunner.examples.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.TextNode;
import dev.agentrunner.AgentContext;
import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentSpec;
import dev.agentrunner.Usage;
import dev.agentrunner.sqlite.SqliteRunStore;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

/**
 * The real service on a random loopback port and a SQLite file in a temp folder, with
 * deterministic agents, and a JDK {@link HttpClient} to talk to it. Closing it closes the
 * client, the service (server and runner) and the store, in that order.
 *
 * <p>Agents: {@code echo} answers {@code {"echo": <input>}} with fixed usage; {@code chat}
 * answers {@code {"reply": "re: <message>"}}, records the order and overlap of its runs, and
 * holds a run whose message is {@code "block"} until {@link #release} opens (or it is
 * interrupted).
 */
final class ServiceFixture implements AutoCloseable {
  static final Usage ECHO_USAGE = Usage.of(10, 5, 100);

  final SqliteRunStore store;
  final AgentService service;
  final HttpClient client;
  final URI base;

  /** Chat runs inside the agent right now, and the most seen at once. */
  final AtomicInteger chatsInside = new AtomicInteger();
  final AtomicInteger maxChatsInside = new AtomicInteger();
  /** Run ids in the order the chat agent started them. */
  final List<Long> chatOrder = Collections.synchronizedList(new ArrayList<>());
  /** Lets runs with the message "block" finish. */
  final CountDownLatch release = new CountDownLatch(1);
  /** A permit for each "block" run that is inside the agent, holding its conversation. */
  final Semaphore blocking = new Semaphore(0);

  ServiceFixture(Path dir, Consumer<AgentService.Builder> options) {
    store = SqliteRunStore.open(dir.resolve("service.db"));
    AgentService.Builder b = AgentService.builder(store)
        .address(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
        .agent(AgentSpec.named("echo"), ctx ->
            AgentResult.of("{\"echo\":" + ctx.input() + "}", ECHO_USAGE))
        .agent(AgentSpec.named("chat"), this::chat)
        .runner(r -> r.shutdownTimeout(Duration.ofSeconds(5)).abandonAfter(Duration.ofSeconds(2)));
    options.accept(b);
    service = b.start();
    base = service.uri();
    client = newClient();
  }

  ServiceFixture(Path dir) {
    this(dir, b -> { });
  }

  static HttpClient newClient() {
    return HttpClient.newBuilder()
        .version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(10))
        .build();
  }

  private AgentResult chat(AgentContext ctx) throws InterruptedException {
    int now = chatsInside.incrementAndGet();
    try {
      maxChatsInside.accumulateAndGet(now, Math::max);
      chatOrder.add(ctx.runId());
      String message = Json.stored(ctx.input()).get("message").asText();
      if (message.equals("block")) {
        blocking.release();
        release.await();
      } else {
        Thread.sleep(3); // some work, so that an overlapping run would be caught inside
      }
      return AgentResult.of("{\"reply\":" + Json.write(TextNode.valueOf("re: " + message)) + "}");
    } finally {
      chatsInside.decrementAndGet();
    }
  }

  HttpResponse<String> get(String path) {
    return send(HttpRequest.newBuilder(base.resolve(path)).GET(), client);
  }

  HttpResponse<String> post(String path, String body, String... headers) {
    return post(client, path, body, headers);
  }

  HttpResponse<String> post(HttpClient c, String path, String body, String... headers) {
    HttpRequest.Builder r = HttpRequest.newBuilder(base.resolve(path))
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(body));
    if (headers.length > 0) {
      r.headers(headers);
    }
    return send(r, c);
  }

  HttpResponse<String> send(HttpRequest.Builder request, HttpClient c) {
    try {
      // A guard against a hang, not a timing assertion.
      return c.send(request.timeout(Duration.ofSeconds(90)).build(),
          HttpResponse.BodyHandlers.ofString());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  static JsonNode json(HttpResponse<String> response) {
    try {
      return Json.MAPPER.readTree(response.body());
    } catch (IOException e) {
      throw new UncheckedIOException("not JSON: " + response.body(), e);
    }
  }

  /** Every run in the store, by status: what "stored nothing" is checked against. */
  long storedRuns() {
    return store.stats().total().total();
  }

  @Override
  public void close() {
    release.countDown();
    try {
      client.close();
    } finally {
      try {
        service.close();
      } finally {
        store.close();
      }
    }
  }
}
