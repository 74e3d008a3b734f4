package dev.agentrunner;

import dev.agentrunner.internal.Checks;
import java.time.Duration;
import java.time.Instant;
import java.util.Objects;

/**
 * A request to run an agent once. Build one with {@link #of(String, String)} and refine it with
 * the {@code with…} methods, each of which returns a new request.
 *
 * <pre>{@code
 * RunRequest.of("chat", "{\"message\":\"hi\"}").withSerialKey("conversation-42").withPriority(5)
 * }</pre>
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param agent the registered agent's name: 1 to 128 characters, not blank, no control characters
 * @param input the agent's input (often JSON); its UTF-8 size is limited by the runner
 * @param serialKey runs sharing a serial key run one at a time in submission order; null for none
 * @param serialKeyPolicy what to do when the serial key is busy (ignored without a serial key)
 * @param idempotencyKey a submit with a key already stored returns the stored run; null for none
 * @param priority higher priority runs are claimed first
 * @param notBefore the run is not started before this instant; null to start as soon as possible
 */
public record RunRequest(
    String agent,
    String input,
    String serialKey,
    SerialKeyPolicy serialKeyPolicy,
    String idempotencyKey,
    int priority,
    Instant notBefore) {

  /**
   * @throws NullPointerException if {@code agent} or {@code input} is null
   * @throws IllegalArgumentException if a name is blank, longer than 128 characters or holds a
   *     control character
   */
  public RunRequest {
    Checks.name(agent, "agent");
    Objects.requireNonNull(input, "input");
    Objects.requireNonNull(serialKeyPolicy, "serialKeyPolicy");
    if (serialKey != null) {
      Checks.name(serialKey, "serialKey");
    }
    if (idempotencyKey != null) {
      Checks.name(idempotencyKey, "idempotencyKey");
    }
  }

  /** A request to run {@code agent} on {@code input}, with priority 0 and no keys. */
  public static RunRequest of(String agent, String input) {
    return new RunRequest(agent, input, null, SerialKeyPolicy.ENQUEUE, null, 0, null);
  }

  /** This request with the given serial key and the {@code ENQUEUE} policy. */
  public RunRequest withSerialKey(String serialKey) {
    return withSerialKey(serialKey, SerialKeyPolicy.ENQUEUE);
  }

  /** This request with the given serial key and what to do when the key is busy. */
  public RunRequest withSerialKey(String serialKey, SerialKeyPolicy policy) {
    return new RunRequest(agent, input, Objects.requireNonNull(serialKey, "serialKey"),
        Objects.requireNonNull(policy, "policy"), idempotencyKey, priority, notBefore);
  }

  /** This request with the given idempotency key (see {@link #idempotencyKey()}). */
  public RunRequest withIdempotencyKey(String idempotencyKey) {
    return new RunRequest(agent, input, serialKey, serialKeyPolicy,
        Objects.requireNonNull(idempotencyKey, "idempotencyKey"), priority, notBefore);
  }

  /** This request with the given priority (higher first). */
  public RunRequest withPriority(int priority) {
    return new RunRequest(
        agent, input, serialKey, serialKeyPolicy, idempotencyKey, priority, notBefore);
  }

  /** This request, not to be started before {@code delay} from now (by {@code clock}). */
  public RunRequest withDelay(Duration delay, java.time.Clock clock) {
    if (Objects.requireNonNull(delay, "delay").isNegative()) {
      throw new IllegalArgumentException("delay must not be negative, was " + delay);
    }
    return withNotBefore(Objects.requireNonNull(clock, "clock").instant().plus(delay));
  }

  /** This request, not to be started before {@code notBefore}. */
  public RunRequest withNotBefore(Instant notBefore) {
    return new RunRequest(agent, input, serialKey, serialKeyPolicy, idempotencyKey, priority,
        Objects.requireNonNull(notBefore, "notBefore"));
  }
}
