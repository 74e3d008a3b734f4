package dev.agentrunner.examples.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.agentrunner.Agent;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.AgentRunnerBuilder;
import dev.agentrunner.AgentSpec;
import dev.agentrunner.AgentStats;
import dev.agentrunner.Health;
import dev.agentrunner.IdempotencyConflictException;
import dev.agentrunner.Page;
import dev.agentrunner.RunHandle;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.RunnerClosedException;
import dev.agentrunner.SerialKeyBusyException;
import dev.agentrunner.SerialKeyPolicy;
import dev.agentrunner.StoreException;
import dev.agentrunner.UnknownAgentException;
import dev.agentrunner.spi.RunStore;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent HTTP service: an {@link AgentRunner} on a caller's store, behind the JDK's
 * {@link HttpServer} with one virtual thread per exchange.
 *
 * <pre>
 * POST /api/agents/{name}/run        {"input": …}                       202 {run_id, status}
 * POST /api/agents/{name}/chat       {"conversation_id", "message",     200 the run, or
 *                                     "policy", "wait_seconds"}          202 {run_id} after the wait
 * GET  /api/agents                                                      the registered agents
 * GET  /api/agents/{name}/runs?status=&amp;limit=&amp;cursor=&amp;conversation_id=   a keyset page
 * GET  /api/runs/{id}?wait=SECONDS                                       the run (long-polls)
 * POST /api/runs/{id}/cancel                                            the run after the cancel
 * GET  /health                                                          store, queues, counts
 * </pre>
 *
 * <p>Every run id a client sees is the id returned by the insert that stored its run, and every
 * count comes from one store snapshot: the seed platforms' bugs (an id read back with
 * {@code MAX(id)}, counters bumped without a lock, two workers on one queued run, a chat that
 * interleaved two messages of one conversation) have no place to happen here.
 *
 * <p>Errors are {@code application/problem+json}: 400 bad input (malformed JSON, an unknown field,
 * a bad cursor), 404 unknown agent, run or path, 405, 409 conflict (a busy conversation under
 * {@code reject}, an idempotency key reused for another request, cancelling a finished run),
 * 413 a body over the limit, 503 shutting down or store unreachable.
 *
 * <p>{@link #close()} stops gracefully: new requests get 503, waiting requests are answered
 * with what they have, the listener closes, then the runner finishes or hands back its runs.
 * The store stays the caller's to close afterwards.
 *
 * <p>Thread-safety: thread-safe.
 */
public final class AgentService implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(AgentService.class);

  /** Serial keys of conversations carry this prefix, so they never clash with other keys. */
  static final String CONVERSATION_PREFIX = "conversation:";

  private static final Pattern CONVERSATION_ID = Pattern.compile("[A-Za-z0-9._~:@-]{1,100}");
  private static final Pattern RUN_ID = Pattern.compile("[0-9]{1,18}");
  /** Bytes of an oversized body read and thrown away so that the client can read its 413. */
  private static final long DRAIN_LIMIT = 16L << 20;

  private final AgentRunner runner;
  private final Map<String, AgentSpec> agents;
  private final HttpServer server;
  private final ExecutorService executor;
  private final int maxBodyBytes;
  private final Duration chatWait;
  private final Duration maxWait;
  private final Duration drainTimeout;

  /** Completed when shutdown starts: releases every request waiting for a run. */
  private final CompletableFuture<Void> stopping = new CompletableFuture<>();
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition idle = lock.newCondition();
  private int inFlight;
  private boolean closing;
  /** Open until the first close has finished, so that a second caller can wait for it. */
  private final CountDownLatch closed = new CountDownLatch(1);

  private AgentService(Builder b, AgentRunner runner, HttpServer server, ExecutorService executor) {
    this.runner = runner;
    this.agents = Map.copyOf(b.specs);
    this.server = server;
    this.executor = executor;
    this.maxBodyBytes = b.maxBodyBytes;
    this.chatWait = b.chatWait;
    this.maxWait = b.maxWait;
    this.drainTimeout = b.drainTimeout;
  }

  /** A builder for a service keeping its runs in {@code store} (which stays the caller's). */
  public static Builder builder(RunStore store) {
    return new Builder(store);
  }

  /** The address the service listens on (with the real port when 0 was asked for). */
  public InetSocketAddress address() {
    return server.getAddress();
  }

  /** The base URI, such as {@code http://127.0.0.1:8080}. */
  public URI uri() {
    InetSocketAddress a = server.getAddress();
    String host = a.getAddress().isAnyLocalAddress()
        ? InetAddress.getLoopbackAddress().getHostAddress() : a.getAddress().getHostAddress();
    if (host.contains(":")) {
      host = "[" + host + "]";
    }
    return URI.create("http://" + host + ":" + a.getPort());
  }

  /** The embedded runner, for the host's own use (a dashboard, a scheduler). */
  public AgentRunner runner() {
    return runner;
  }

  /**
   * The first step of a graceful stop: from now on requests get 503 (except {@code /health},
   * which reports {@code stopping}), and requests waiting for a run are answered at once with
   * its current state. Idempotent.
   */
  public void stopAccepting() {
    stopping.complete(null);
  }

  /**
   * Stops gracefully: {@link #stopAccepting()}, waits up to the drain timeout for requests in
   * progress, closes the listener, then closes the runner, which waits for running agents and
   * gives back runs it claimed but did not start. Idempotent; a second caller waits for the
   * first to finish, so that it can close the store safely afterwards.
   */
  @Override
  public void close() {
    boolean first;
    lock.lock();
    try {
      first = !closing;
      closing = true;
    } finally {
      lock.unlock();
    }
    if (!first) {
      awaitClosed();
      return;
    }
    try {
      stopAccepting();
      awaitIdle();
      server.stop(0);
    } finally {
      try {
        runner.close();
      } finally {
        executor.shutdownNow();
        try {
          executor.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        } finally {
          closed.countDown();
        }
      }
    }
  }

  /** Waits up to the drain timeout for requests in progress to be answered. */
  private void awaitIdle() {
    lock.lock();
    try {
      long remaining = drainTimeout.toNanos();
      while (inFlight > 0 && remaining > 0) {
        remaining = idle.awaitNanos(remaining);
      }
      if (inFlight > 0) {
        log.warn("{} requests still in progress after {}; closing their connections", inFlight,
            drainTimeout);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      lock.unlock();
    }
  }

  private void awaitClosed() {
    try {
      closed.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  // ---- request handling ----

  /** A response about to be written. */
  private record Response(int status, String contentType, byte[] body, Map<String, String> headers) {
    static Response json(int status, JsonNode body) {
      return new Response(status, "application/json", Json.bytes(body), Map.of());
    }

    Response withHeader(String name, String value) {
      Map<String, String> h = new LinkedHashMap<>(headers);
      h.put(name, value);
      return new Response(status, contentType, body, h);
    }
  }

  private void handle(HttpExchange ex) {
    lock.lock();
    try {
      inFlight++;
    } finally {
      lock.unlock();
    }
    try {
      Response response;
      try {
        response = route(ex);
      } catch (Problem p) {
        response = problem(p, ex);
      } catch (RuntimeException e) {
        response = problem(translate(e, ex), ex);
      }
      write(ex, response);
    } catch (IOException | UncheckedIOException e) {
      log.debug("could not answer {} {}: the client went away", ex.getRequestMethod(),
          ex.getRequestURI(), e);
    } finally {
      ex.close();
      lock.lock();
      try {
        if (--inFlight == 0) {
          idle.signalAll();
        }
      } finally {
        lock.unlock();
      }
    }
  }

  /** Maps the library's exceptions to statuses; anything unexpected is a logged 500. */
  private static Problem translate(RuntimeException e, HttpExchange ex) {
    return switch (e) {
      case UnknownAgentException u -> Problem.notFound(u.getMessage());
      case SerialKeyBusyException busy -> Problem.conflict(busy.getMessage())
          .with("active_run_id", busy.activeRunId());
      // The store refuses a key reused for another request, atomically with the insert.
      case IdempotencyConflictException reused -> Problem.conflict(reused.getMessage())
          .with("run_id", reused.storedRunId());
      case RunnerClosedException c ->
          Problem.unavailable("the service is shutting down").header("Retry-After", "5");
      case StoreException s -> Problem.unavailable("the run store is unavailable: "
          + s.getMessage()).header("Retry-After", "5");
      // The library reports bad names, keys and cursors this way, naming the value.
      case IllegalArgumentException bad -> Problem.badRequest(bad.getMessage());
      default -> {
        log.error("{} {} failed", ex.getRequestMethod(), ex.getRequestURI(), e);
        yield new Problem(500, "Internal Server Error", "the request failed unexpectedly; see "
            + "the service log");
      }
    };
  }

  private Response route(HttpExchange ex) throws IOException {
    String method = ex.getRequestMethod();
    List<String> path = segments(ex.getRequestURI().getRawPath());
    if (path.equals(List.of("health"))) {
      expect(method, "GET");
      return health();
    }
    if (stopping.isDone()) {
      throw Problem.unavailable("the service is shutting down").header("Retry-After", "5");
    }
    if (path.size() >= 2 && path.get(0).equals("api")) {
      String kind = path.get(1);
      if (kind.equals("agents") && path.size() == 2) {
        expect(method, "GET");
        return listAgents();
      }
      if (kind.equals("agents") && path.size() == 4) {
        String agent = path.get(2);
        switch (path.get(3)) {
          case "run" -> {
            expect(method, "POST");
            return submitRun(ex, agent);
          }
          case "chat" -> {
            expect(method, "POST");
            return chat(ex, agent);
          }
          case "runs" -> {
            expect(method, "GET");
            return listRuns(ex, agent);
          }
          default -> { }
        }
      }
      if (kind.equals("runs") && path.size() == 3) {
        expect(method, "GET");
        return getRun(ex, runId(path.get(2)));
      }
      if (kind.equals("runs") && path.size() == 4 && path.get(3).equals("cancel")) {
        expect(method, "POST");
        return cancel(runId(path.get(2)));
      }
    }
    throw Problem.notFound("no endpoint at " + ex.getRequestURI().getRawPath()
        + "; see GET /api/agents and GET /health");
  }

  private Response submitRun(HttpExchange ex, String agent) throws IOException {
    requireAgent(agent);
    ObjectNode body = Json.parseObject(readBody(ex));
    Json.onlyFields(body, Set.of("input"));
    String input = Json.write(Json.required(body, "input"));
    checkInputSize(input);
    RunRequest request = withIdempotencyKey(RunRequest.of(agent, input), ex);
    RunHandle handle = runner.submit(request);
    RunRecord run = handle.current();
    ObjectNode out = Json.object();
    out.put("run_id", run.id());
    out.put("status", run.status().name());
    out.put("agent", run.agent());
    return Response.json(202, out).withHeader("Location", "/api/runs/" + run.id());
  }

  private Response chat(HttpExchange ex, String agent) throws IOException {
    requireAgent(agent);
    ObjectNode body = Json.parseObject(readBody(ex));
    Json.onlyFields(body, Set.of("conversation_id", "message", "policy", "wait_seconds"));
    String conversation = Json.text(body, "conversation_id", true);
    if (!CONVERSATION_ID.matcher(conversation).matches()) {
      throw Problem.badRequest("conversation_id must be 1 to 100 of A-Z a-z 0-9 . _ ~ : @ -, "
          + "was \"" + abbreviate(conversation) + "\"");
    }
    String message = Json.text(body, "message", true);
    SerialKeyPolicy policy = policy(Json.text(body, "policy", false));
    Integer waitSeconds = Json.integer(body, "wait_seconds", 0, (int) maxWait.toSeconds());
    Duration wait = waitSeconds == null ? chatWait : Duration.ofSeconds(waitSeconds);

    ObjectNode input = Json.object();
    input.put("conversation_id", conversation);
    input.put("message", message);
    String inputText = Json.write(input);
    checkInputSize(inputText);
    RunRequest request = withIdempotencyKey(RunRequest.of(agent, inputText)
        .withSerialKey(CONVERSATION_PREFIX + conversation, policy), ex);
    RunHandle handle;
    try {
      handle = runner.submit(request);
    } catch (SerialKeyBusyException busy) {
      throw Problem.conflict("conversation \"" + conversation + "\" is busy with run "
              + busy.activeRunId() + "; the message was rejected (policy reject) and not stored")
          .with("conversation_id", conversation)
          .with("active_run_id", busy.activeRunId());
    }
    RunRecord run = handle.current();
    RunRecord done = run.isTerminal() ? run : awaitEnd(handle, wait);
    if (done != null) {
      return Response.json(200, Json.run(done));
    }
    RunRecord now = handle.current();
    ObjectNode out = Json.object();
    out.put("run_id", now.id());
    out.put("status", now.status().name());
    out.put("conversation_id", conversation);
    return Response.json(202, out).withHeader("Location", "/api/runs/" + now.id());
  }

  private Response getRun(HttpExchange ex, long id) {
    Map<String, String> query = query(ex, Set.of("wait"));
    Duration wait = query.containsKey("wait")
        ? Duration.ofSeconds(intParam("wait", query.get("wait"), 0, (int) maxWait.toSeconds()))
        : Duration.ZERO;
    RunRecord run = runner.get(id).orElseThrow(() -> Problem.notFound("no run " + id));
    if (!run.isTerminal() && !wait.isZero()) {
      RunRecord done = awaitEnd(runner.handle(id), wait);
      run = done != null ? done : runner.get(id).orElse(run);
    }
    return Response.json(200, Json.run(run));
  }

  private Response listRuns(HttpExchange ex, String agent) {
    requireAgent(agent);
    Map<String, String> query = query(ex, Set.of("status", "limit", "cursor", "conversation_id"));
    RunQuery q = RunQuery.agent(agent);
    if (query.containsKey("limit")) {
      q = q.limit(intParam("limit", query.get("limit"), 1, RunQuery.MAX_LIMIT));
    }
    String status = query.getOrDefault("status", "");
    if (!status.isBlank()) {
      EnumSet<RunStatus> statuses = EnumSet.noneOf(RunStatus.class);
      for (String s : status.split(",")) {
        statuses.add(status(s.trim()));
      }
      q = new RunQuery(q.agent(), q.serialKey(), statuses, q.limit(), q.cursor());
    }
    String conversation = query.get("conversation_id");
    if (conversation != null) {
      q = q.serialKey(CONVERSATION_PREFIX + conversation);
    }
    String cursor = query.get("cursor");
    if (cursor != null) {
      try {
        q = q.after(cursor);
      } catch (IllegalArgumentException e) {
        throw Problem.badRequest("bad cursor: pass the next_cursor of a previous page unchanged")
            .with("cursor", abbreviate(cursor));
      }
    }
    Page<RunRecord> page = runner.history(q);
    ObjectNode out = Json.object();
    out.put("agent", agent);
    ArrayNode items = out.putArray("items");
    page.items().forEach(r -> items.add(Json.run(r)));
    out.put("next_cursor", page.nextCursor().orElse(null));
    return Response.json(200, out);
  }

  private Response cancel(long id) {
    RunRecord run = runner.cancel(id).orElseThrow(() -> Problem.notFound("no run " + id));
    if (run.status() == RunStatus.CANCELLED) {
      return Response.json(200, Json.run(run));
    }
    if (run.isTerminal()) {
      throw Problem.conflict("run " + id + " already ended " + run.status()
              + "; there is nothing to cancel")
          .with("run_id", id).with("run_status", run.status().name());
    }
    // RUNNING: asked to stop (maybe in another process); it ends CANCELLED shortly.
    return Response.json(202, Json.run(run));
  }

  private Response listAgents() {
    ObjectNode out = Json.object();
    ArrayNode list = out.putArray("agents");
    new TreeMap<>(agents).values().forEach(spec -> {
      ObjectNode a = list.addObject();
      a.put("name", spec.name());
      a.put("max_concurrency",
          spec.maxConcurrency() == Integer.MAX_VALUE ? null : spec.maxConcurrency());
      a.put("timeout_ms", spec.timeoutIfAny().map(Duration::toMillis).orElse(null));
      a.put("max_attempts", spec.retry().maxAttempts());
    });
    return Response.json(200, out);
  }

  private Response health() {
    Health h = runner.health();
    boolean stoppingNow = stopping.isDone() || !h.accepting();
    ObjectNode out = Json.object();
    out.put("status", stoppingNow ? "stopping" : h.storeReachable() ? "ok" : "store_unreachable");
    out.put("accepting", !stoppingNow);
    ObjectNode store = out.putObject("store");
    store.put("reachable", h.storeReachable());
    store.put("error", h.storeError());
    out.put("queue_depth", h.queueDepth());
    RunStats stats = h.storeStats().orElse(null);
    out.put("running", stats == null ? -1 : stats.total().running());
    out.put("executing_here", h.executing());
    // Health lists the keys of runs executing here; conversations are the keys we own.
    ObjectNode conversations = out.putObject("conversation_queues");
    h.serialKeyQueues().forEach((key, depth) -> {
      String c = conversationOf(key);
      if (c != null) {
        conversations.put(c, depth);
      }
    });
    ObjectNode perAgent = out.putObject("agents");
    Map<String, AgentStats> all = new TreeMap<>();
    agents.keySet().forEach(name -> all.put(name, AgentStats.empty(name)));
    if (stats != null) {
      all.putAll(stats.agents());
      out.set("totals", Json.stats(stats.total()));
    } else {
      out.putNull("totals");
    }
    all.forEach((name, s) -> perAgent.set(name, Json.stats(s)));
    return Response.json(stoppingNow || !h.storeReachable() ? 503 : 200, out);
  }

  // ---- helpers ----

  /**
   * Waits for the run's end, at most {@code wait}, and less if the service starts stopping.
   * Returns null if it did not end meanwhile.
   */
  private RunRecord awaitEnd(RunHandle handle, Duration wait) {
    if (wait.isZero() || stopping.isDone()) {
      return null;
    }
    CompletableFuture<RunRecord> done = handle.completion();
    try {
      CompletableFuture.anyOf(done, stopping).get(wait.toNanos(), TimeUnit.NANOSECONDS);
    } catch (TimeoutException | ExecutionException e) {
      return null; // still going, or the runner closed while we waited
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return null;
    }
    return done.isDone() && !done.isCompletedExceptionally() ? done.join() : null;
  }

  private void requireAgent(String agent) {
    if (!agents.containsKey(agent)) {
      throw Problem.notFound("unknown agent \"" + abbreviate(agent) + "\"")
          .with("known_agents", agents.keySet().stream().sorted().toList());
    }
  }

  private static RunRequest withIdempotencyKey(RunRequest request, HttpExchange ex) {
    String key = ex.getRequestHeaders().getFirst("Idempotency-Key");
    if (key == null) {
      return request;
    }
    if (key.isBlank()) {
      throw Problem.badRequest("the Idempotency-Key header is empty");
    }
    return request.withIdempotencyKey(key.strip());
  }

  private void checkInputSize(String input) {
    int bytes = input.getBytes(StandardCharsets.UTF_8).length;
    if (bytes > maxBodyBytes) {
      throw Problem.tooLarge("the input is " + bytes + " bytes; at most " + maxBodyBytes
          + " are accepted").with("max_bytes", maxBodyBytes);
    }
  }

  /**
   * Reads at most {@link #maxBodyBytes}. A larger body is read on and discarded (up to a bound)
   * before the 413, because a client still sending would otherwise see a reset connection
   * instead of the answer.
   */
  private byte[] readBody(HttpExchange ex) throws IOException {
    String declared = ex.getRequestHeaders().getFirst("Content-Length");
    InputStream in = ex.getRequestBody();
    long length = -1;
    if (declared != null) {
      try {
        length = Long.parseLong(declared.trim());
      } catch (NumberFormatException e) {
        throw Problem.badRequest("Content-Length is not a number: " + abbreviate(declared));
      }
    }
    byte[] body = length > maxBodyBytes ? null : in.readNBytes(maxBodyBytes + 1);
    if (body == null || body.length > maxBodyBytes) {
      if (!drain(in, length)) {
        ex.getResponseHeaders().set("Connection", "close");
      }
      throw Problem.tooLarge("the request body is " + (length > 0 ? length + " bytes"
              : "larger than " + maxBodyBytes + " bytes") + "; at most " + maxBodyBytes
              + " are accepted")
          .with("max_bytes", maxBodyBytes);
    }
    return body;
  }

  /** Reads and discards the rest of a body, unless it is too large to bother; true if done. */
  private static boolean drain(InputStream in, long declaredLength) throws IOException {
    if (declaredLength > DRAIN_LIMIT) {
      return false;
    }
    byte[] buffer = new byte[16 * 1024];
    long total = 0;
    for (int n; (n = in.read(buffer)) >= 0; ) {
      total += n;
      if (total > DRAIN_LIMIT) {
        return false;
      }
    }
    return true;
  }

  private static void expect(String method, String allowed) {
    if (!method.equals(allowed)) {
      throw Problem.methodNotAllowed(method, allowed);
    }
  }

  private static long runId(String text) {
    if (!RUN_ID.matcher(text).matches() || Long.parseLong(text) == 0) {
      throw Problem.badRequest("a run id is a positive integer, was \"" + abbreviate(text) + "\"");
    }
    return Long.parseLong(text);
  }

  private static SerialKeyPolicy policy(String text) {
    if (text == null) {
      return SerialKeyPolicy.ENQUEUE;
    }
    return switch (text.toLowerCase(Locale.ROOT)) {
      case "enqueue" -> SerialKeyPolicy.ENQUEUE;
      case "reject" -> SerialKeyPolicy.REJECT;
      case "interrupt" -> SerialKeyPolicy.INTERRUPT;
      default -> throw Problem.badRequest(
          "policy must be enqueue, reject or interrupt, was \"" + abbreviate(text) + "\"");
    };
  }

  private static RunStatus status(String text) {
    try {
      return RunStatus.valueOf(text.toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw Problem.badRequest("status must be one or more (comma-separated) of "
          + Arrays.toString(RunStatus.values()) + ", was \"" + abbreviate(text) + "\"");
    }
  }

  private static int intParam(String name, String text, int min, int max) {
    try {
      int value = Integer.parseInt(text.trim());
      if (value >= min && value <= max) {
        return value;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw Problem.badRequest(name + " must be an integer from " + min + " to " + max
        + ", was \"" + abbreviate(text) + "\"");
  }

  /** Query parameters; unknown or repeated ones are refused rather than silently ignored. */
  private static Map<String, String> query(HttpExchange ex, Set<String> allowed) {
    Map<String, String> params = new HashMap<>();
    String raw = ex.getRequestURI().getRawQuery();
    if (raw == null || raw.isEmpty()) {
      return params;
    }
    for (String pair : raw.split("&")) {
      if (pair.isEmpty()) {
        continue;
      }
      int eq = pair.indexOf('=');
      String name = decode(eq < 0 ? pair : pair.substring(0, eq), false);
      String value = eq < 0 ? "" : decode(pair.substring(eq + 1), false);
      if (!allowed.contains(name)) {
        throw Problem.badRequest("unknown query parameter \"" + abbreviate(name)
            + "\"; this endpoint takes " + String.join(", ", allowed.stream().sorted().toList()));
      }
      if (params.put(name, value) != null) {
        throw Problem.badRequest("query parameter \"" + name + "\" is given twice");
      }
    }
    return params;
  }

  private static List<String> segments(String rawPath) {
    List<String> out = new ArrayList<>();
    for (String s : rawPath.split("/")) {
      if (!s.isEmpty()) {
        out.add(decode(s, true));
      }
    }
    return out;
  }

  /** Percent-decodes; in a path a '+' is a plus, in a query it is a space. */
  private static String decode(String s, boolean path) {
    try {
      return URLDecoder.decode(path ? s.replace("+", "%2B") : s, StandardCharsets.UTF_8);
    } catch (IllegalArgumentException e) {
      throw Problem.badRequest("bad percent-encoding in \"" + abbreviate(s) + "\"");
    }
  }

  /** The conversation id of a serial key this service made, or null for any other key. */
  static String conversationOf(String serialKey) {
    return serialKey != null && serialKey.startsWith(CONVERSATION_PREFIX)
        ? serialKey.substring(CONVERSATION_PREFIX.length()) : null;
  }

  private static String abbreviate(String s) {
    return s.length() <= 60 ? s : s.substring(0, 60) + "…";
  }

  private static Response problem(Problem p, HttpExchange ex) {
    return new Response(p.status(), "application/problem+json",
        Json.bytes(Json.problem(p, ex.getRequestURI().getRawPath())), p.headers());
  }

  private static void write(HttpExchange ex, Response r) throws IOException {
    ex.getResponseHeaders().set("Content-Type", r.contentType());
    r.headers().forEach((k, v) -> ex.getResponseHeaders().set(k, v));
    ex.sendResponseHeaders(r.status(), r.body().length == 0 ? -1 : r.body().length);
    try (OutputStream out = ex.getResponseBody()) {
      out.write(r.body());
    }
  }

  /**
   * Builds an {@link AgentService}.
   *
   * <p>Thread-safety: not thread-safe; configure from one thread.
   */
  public static final class Builder {
    private final RunStore store;
    private final Map<String, AgentSpec> specs = new LinkedHashMap<>();
    private final Map<String, Agent> impls = new LinkedHashMap<>();
    private InetSocketAddress address =
        new InetSocketAddress(InetAddress.getLoopbackAddress(), 8080);
    private int maxBodyBytes = 64 * 1024;
    private Duration chatWait = Duration.ofSeconds(30);
    private Duration maxWait = Duration.ofSeconds(60);
    private Duration drainTimeout = Duration.ofSeconds(10);
    private int backlog = 512;
    private Consumer<AgentRunnerBuilder> runnerOptions = b -> { };

    private Builder(RunStore store) {
      this.store = Objects.requireNonNull(store, "store");
    }

    /** Registers an agent. */
    public Builder agent(AgentSpec spec, Agent agent) {
      Objects.requireNonNull(spec, "spec");
      if (specs.putIfAbsent(spec.name(), spec) != null) {
        throw new IllegalArgumentException("agent \"" + spec.name() + "\" is already registered");
      }
      impls.put(spec.name(), Objects.requireNonNull(agent, "agent"));
      return this;
    }

    /** Where to listen (default 127.0.0.1:8080; port 0 picks a free port). */
    public Builder address(InetSocketAddress address) {
      this.address = Objects.requireNonNull(address, "address");
      return this;
    }

    /** The largest request body and stored input, in bytes (default 64 KiB). */
    public Builder maxBodyBytes(int maxBodyBytes) {
      if (maxBodyBytes < 1) {
        throw new IllegalArgumentException("maxBodyBytes must be positive, was " + maxBodyBytes);
      }
      this.maxBodyBytes = maxBodyBytes;
      return this;
    }

    /** How long a chat waits for its reply when the request does not say (default 30 s). */
    public Builder chatWait(Duration chatWait) {
      this.chatWait = positiveOrZero(chatWait, "chatWait");
      return this;
    }

    /** The longest wait a request may ask for (default 60 s). */
    public Builder maxWait(Duration maxWait) {
      this.maxWait = positiveOrZero(maxWait, "maxWait");
      return this;
    }

    /** How long {@link #close()} waits for requests in progress (default 10 s). */
    public Builder drainTimeout(Duration drainTimeout) {
      this.drainTimeout = positiveOrZero(drainTimeout, "drainTimeout");
      return this;
    }

    /** Further runner settings (limits, poll interval, shutdown timeout). */
    public Builder runner(Consumer<AgentRunnerBuilder> options) {
      this.runnerOptions = Objects.requireNonNull(options, "options");
      return this;
    }

    /**
     * Starts the runner and the server.
     *
     * @throws UncheckedIOException if the address cannot be bound (the runner is closed again)
     */
    public AgentService start() {
      if (specs.isEmpty()) {
        throw new IllegalStateException("register at least one agent");
      }
      if (chatWait.compareTo(maxWait) > 0) {
        throw new IllegalStateException("chatWait " + chatWait + " exceeds maxWait " + maxWait);
      }
      AgentRunnerBuilder rb = AgentRunner.builder().store(store).maxInputBytes(maxBodyBytes);
      specs.forEach((name, spec) -> rb.agent(spec, impls.get(name)));
      runnerOptions.accept(rb);
      AgentRunner runner = rb.build();
      ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();
      HttpServer server;
      try {
        server = HttpServer.create(address, backlog);
      } catch (IOException e) {
        executor.close();
        runner.close();
        throw new UncheckedIOException("cannot listen on " + address + ": " + e.getMessage(), e);
      }
      server.setExecutor(executor);
      AgentService service = new AgentService(this, runner, server, executor);
      server.createContext("/", service::handle);
      server.start();
      return service;
    }

    private static Duration positiveOrZero(Duration d, String name) {
      Objects.requireNonNull(d, name);
      if (d.isNegative()) {
        throw new IllegalArgumentException(name + " must not be negative, was " + d);
      }
      return d;
    }
  }
}
