package dev.agentrunner.examples.service;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import dev.agentrunner.AgentStats;
import dev.agentrunner.RunRecord;
import dev.agentrunner.Usage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.time.Instant;
import java.util.Iterator;
import java.util.Set;

/**
 * The JSON side of the service: one strictly configured Jackson mapper, request-body checks
 * that turn every mistake into a 400 naming it, and the shapes the service answers with.
 *
 * <p>Thread-safety: stateless; the mapper is thread-safe once configured.
 */
final class Json {

  /**
   * Duplicate keys and trailing garbage are errors rather than "last one wins" or "ignored", so
   * a body means exactly one thing.
   */
  static final ObjectMapper MAPPER = JsonMapper.builder()
      .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
      .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
      .build();

  private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

  private Json() {}

  static ObjectNode object() {
    return NODES.objectNode();
  }

  /** Parses a request body that must be one JSON object. */
  static ObjectNode parseObject(byte[] body) {
    if (body.length == 0) {
      throw Problem.badRequest("the request body is empty; expected a JSON object");
    }
    JsonNode node;
    try {
      node = MAPPER.readTree(body);
    } catch (JsonProcessingException e) {
      String where = e.getLocation() == null ? ""
          : " at line " + e.getLocation().getLineNr() + ", column "
              + e.getLocation().getColumnNr();
      throw Problem.badRequest("the request body is not valid JSON" + where + ": "
          + e.getOriginalMessage());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    if (node == null || !node.isObject()) {
      throw Problem.badRequest("the request body must be a JSON object, was "
          + (node == null ? "nothing" : node.getNodeType().name().toLowerCase()));
    }
    return (ObjectNode) node;
  }

  /** Refuses members other than {@code allowed}, so a misspelt field is not silently ignored. */
  static void onlyFields(ObjectNode body, Set<String> allowed) {
    for (Iterator<String> names = body.fieldNames(); names.hasNext(); ) {
      String name = names.next();
      if (!allowed.contains(name)) {
        throw Problem.badRequest("unknown field \"" + name + "\"; this endpoint takes "
            + String.join(", ", allowed.stream().sorted().toList()));
      }
    }
  }

  /** A member that must be present (any JSON value but null). */
  static JsonNode required(ObjectNode body, String name) {
    JsonNode value = body.get(name);
    if (value == null || value.isNull()) {
      throw Problem.badRequest("field \"" + name + "\" is required");
    }
    return value;
  }

  /** A member that must be a string, if present. */
  static String text(ObjectNode body, String name, boolean required) {
    JsonNode value = required ? required(body, name) : body.get(name);
    if (value == null || value.isNull()) {
      return null;
    }
    if (!value.isTextual()) {
      throw Problem.badRequest("field \"" + name + "\" must be a string, was "
          + value.getNodeType().name().toLowerCase());
    }
    return value.asText();
  }

  /** A member that must be an integer in {@code [min, max]}, if present. */
  static Integer integer(ObjectNode body, String name, int min, int max) {
    JsonNode value = body.get(name);
    if (value == null || value.isNull()) {
      return null;
    }
    if (!value.isIntegralNumber() || !value.canConvertToInt()
        || value.intValue() < min || value.intValue() > max) {
      throw Problem.badRequest(
          "field \"" + name + "\" must be an integer from " + min + " to " + max + ", was "
              + value);
    }
    return value.intValue();
  }

  /** Compact JSON text. */
  static String write(JsonNode node) {
    try {
      return MAPPER.writeValueAsString(node);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("a JSON tree could not be written", e);
    }
  }

  /** Compact JSON as UTF-8. */
  static byte[] bytes(JsonNode node) {
    try {
      return MAPPER.writeValueAsBytes(node);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("a JSON tree could not be written", e);
    }
  }

  /**
   * Stored text as a JSON value: the service stores inputs as JSON and its agents answer JSON,
   * so callers get structure back; text that is not JSON (written by another program sharing
   * the store) comes back as a string.
   */
  static JsonNode stored(String text) {
    if (text == null) {
      return NODES.nullNode();
    }
    try {
      return MAPPER.readTree(text);
    } catch (JsonProcessingException e) {
      return TextNode.valueOf(text);
    }
  }

  /** A run as every endpoint shows it. */
  static ObjectNode run(RunRecord r) {
    ObjectNode n = object();
    n.put("run_id", r.id());
    n.put("agent", r.agent());
    n.put("status", r.status().name());
    String conversation = AgentService.conversationOf(r.serialKey());
    if (conversation != null) {
      n.put("conversation_id", conversation);
    } else if (r.serialKey() != null) {
      n.put("serial_key", r.serialKey());
    }
    n.set("input", stored(r.input()));
    n.set("output", stored(r.output()));
    n.put("error", r.error());
    n.put("idempotency_key", r.idempotencyKey());
    n.put("attempt", r.attempt());
    n.put("max_attempts", r.maxAttempts());
    n.put("worker", r.owner());
    n.put("cancel_requested", r.cancelRequested());
    n.put("created_at", instant(r.createdAt()));
    n.put("started_at", instant(r.startedAt()));
    n.put("finished_at", instant(r.finishedAt()));
    n.set("usage", usage(r.usage()));
    return n;
  }

  /** Tokens and cost; the cost both exact in micro-units and as a decimal amount. */
  static ObjectNode usage(Usage u) {
    ObjectNode n = object();
    n.put("input_tokens", u.inputTokens());
    n.put("output_tokens", u.outputTokens());
    n.put("cost_micros", u.costMicros());
    n.put("cost", BigDecimal.valueOf(u.costMicros(), 6));
    return n;
  }

  /** One agent's counts: they add up to {@code total}, being one snapshot. */
  static ObjectNode stats(AgentStats s) {
    ObjectNode n = object();
    n.put("queued", s.queued());
    n.put("running", s.running());
    n.put("succeeded", s.succeeded());
    n.put("failed", s.failed());
    n.put("cancelled", s.cancelled());
    n.put("timed_out", s.timedOut());
    n.put("total", s.total());
    n.set("usage", usage(s.usage()));
    return n;
  }

  /** An RFC 9457 problem body. */
  static ObjectNode problem(Problem p, String instance) {
    ObjectNode n = object();
    n.put("type", "about:blank");
    n.put("title", p.title());
    n.put("status", p.status());
    n.put("detail", p.detail());
    n.put("instance", instance);
    // Extensions never replace the standard members.
    p.extensions().forEach((k, v) -> n.putIfAbsent(k, MAPPER.valueToTree(v)));
    return n;
  }

  private static String instant(Instant at) {
    return at == null ? null : at.toString();
  }
}
