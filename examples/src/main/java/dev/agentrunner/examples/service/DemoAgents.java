package dev.agentrunner.examples.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.agentrunner.AgentContext;
import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentSpec;
import dev.agentrunner.RetryPolicy;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.RunStore;
import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Agents that behave like calls to a language model, so that the service has something real to
 * show: they take a while, report tokens and cost (priced like a mid-size model: 3 micro-units
 * per input token, 15 per output token), and now and then fail or hang.
 *
 * <ul>
 *   <li>{@code summarize}: 0.3 to 1.5 s; 8% fail as "overloaded" and are retried up to 3
 *       attempts, the failed attempts' tokens still billed.
 *   <li>{@code classify}: 50 to 400 ms, 2 s timeout; 10% return malformed output (FAILED), 3%
 *       hang until the timeout (TIMED_OUT).
 *   <li>{@code chat}: 0.4 to 1.5 s; replies with the turn number of its conversation, read from
 *       the store. That count is exact only because the runs of one conversation never
 *       overlap: the bug of the seed's {@code /chat} endpoint, made impossible by serial keys.
 * </ul>
 *
 * <p>Thread-safety: the agents keep no state between runs; safe to run concurrently.
 */
public final class DemoAgents {
  private static final long MICROS_PER_INPUT_TOKEN = 3;
  private static final long MICROS_PER_OUTPUT_TOKEN = 15;

  private DemoAgents() {}

  /** Registers the three demo agents; {@code store} is the one the service runs on. */
  public static AgentService.Builder register(AgentService.Builder service, RunStore store) {
    return service
        .agent(AgentSpec.named("summarize").maxConcurrency(8).timeout(Duration.ofSeconds(10))
            .retry(RetryPolicy.exponential(3, Duration.ofMillis(500))), DemoAgents::summarize)
        .agent(AgentSpec.named("classify").maxConcurrency(4).timeout(Duration.ofSeconds(2)),
            DemoAgents::classify)
        .agent(AgentSpec.named("chat").maxConcurrency(16).timeout(Duration.ofSeconds(30)),
            ctx -> chat(ctx, store));
  }

  private static AgentResult summarize(AgentContext ctx) throws InterruptedException {
    ThreadLocalRandom rnd = ThreadLocalRandom.current();
    long in = promptTokens(ctx.input()) + 200; // the system prompt
    Thread.sleep(rnd.nextLong(300, 1500));
    if (rnd.nextInt(100) < 8) {
      ctx.reportUsage(usage(in, 0)); // the provider bills the prompt of a failed call too
      throw new IllegalStateException("upstream model overloaded (HTTP 529); attempt "
          + ctx.attempt());
    }
    String text = text(ctx.input());
    long out = rnd.nextLong(60, 300);
    ObjectNode result = Json.object();
    result.put("summary", "A " + words(text) + "-word text"
        + (text.isEmpty() ? "" : " beginning \"" + head(text, 40) + "\"") + ".");
    result.put("words", words(text));
    return AgentResult.of(Json.write(result), usage(in, out));
  }

  private static AgentResult classify(AgentContext ctx) throws InterruptedException {
    ThreadLocalRandom rnd = ThreadLocalRandom.current();
    int roll = rnd.nextInt(100);
    if (roll < 3) {
      Thread.sleep(Duration.ofSeconds(5)); // a stuck call: the 2 s timeout ends it
    }
    Thread.sleep(rnd.nextLong(50, 400));
    long in = promptTokens(ctx.input()) + 80;
    if (roll < 13) {
      ctx.reportUsage(usage(in, 12));
      throw new IllegalStateException("model returned malformed JSON: {\"label\": posit");
    }
    String[] labels = {"positive", "negative", "neutral"};
    ObjectNode result = Json.object();
    result.put("label", labels[Math.floorMod(text(ctx.input()).hashCode(), labels.length)]);
    result.put("confidence", Math.round(rnd.nextDouble(0.55, 0.99) * 100) / 100.0);
    return AgentResult.of(Json.write(result), usage(in, 9));
  }

  private static AgentResult chat(AgentContext ctx, RunStore store) throws InterruptedException {
    ThreadLocalRandom rnd = ThreadLocalRandom.current();
    String message = text(ctx.input());
    long turn = 1 + ctx.serialKey()
        .map(key -> store.count(RunQuery.all().serialKey(key).status(RunStatus.SUCCEEDED)))
        .orElse(0L);
    ctx.emit("thinking", "{\"turn\":" + turn + "}");
    Thread.sleep(rnd.nextLong(400, 1500));
    long in = promptTokens(ctx.input()) + 150 * turn; // the history is sent again each turn
    long out = rnd.nextLong(20, 120);
    ObjectNode result = Json.object();
    result.put("reply", "You said \"" + head(message, 80) + "\". Noted, that's turn " + turn
        + " of this conversation.");
    result.put("turn", turn);
    return AgentResult.of(Json.write(result), usage(in, out));
  }

  /** The text of an input: its {@code message}, its string value, or the JSON itself. */
  private static String text(String input) {
    JsonNode node = Json.stored(input);
    if (node.has("message") && node.get("message").isTextual()) {
      return node.get("message").asText();
    }
    return node.isTextual() ? node.asText() : input;
  }

  private static long promptTokens(String input) {
    return Math.max(1, input.length() / 4); // roughly four characters per token
  }

  private static int words(String text) {
    return text.isBlank() ? 0 : text.strip().split("\\s+").length;
  }

  private static String head(String s, int n) {
    return s.length() <= n ? s : s.substring(0, n) + "…";
  }

  private static Usage usage(long in, long out) {
    return Usage.of(in, out, in * MICROS_PER_INPUT_TOKEN + out * MICROS_PER_OUTPUT_TOKEN);
  }
}
