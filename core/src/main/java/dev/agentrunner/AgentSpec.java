package dev.agentrunner;

import dev.agentrunner.internal.Checks;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;

/**
 * How one agent is run: its name, how many of its runs may execute at once in one runner, and
 * how long one attempt may take.
 *
 * <pre>{@code
 * AgentSpec.named("chat").maxConcurrency(4).timeout(Duration.ofMinutes(2))
 *     .retry(RetryPolicy.exponential(3, Duration.ofSeconds(1)))
 * }</pre>
 *
 * <p>Thread-safety: an immutable value; each {@code with}-style method returns a new spec.
 *
 * @param name the agent's name: 1 to 128 characters, not blank, no control characters
 * @param maxConcurrency at most this many runs of the agent execute at once in one runner
 *     ({@link Integer#MAX_VALUE} for no limit beyond the runner's own)
 * @param timeout how long one attempt may run before it is interrupted and ends TIMED_OUT;
 *     null for no timeout
 * @param retry when failed attempts are tried again
 */
public record AgentSpec(String name, int maxConcurrency, Duration timeout, RetryPolicy retry) {

  /** @throws IllegalArgumentException if the name is invalid or a limit is not positive */
  public AgentSpec {
    Checks.name(name, "name");
    Checks.positive(maxConcurrency, "maxConcurrency");
    if (timeout != null) {
      Checks.positive(timeout, "timeout");
    }
    Objects.requireNonNull(retry, "retry");
  }

  /** A spec with no per-agent concurrency limit, no timeout and no retry. */
  public static AgentSpec named(String name) {
    return new AgentSpec(name, Integer.MAX_VALUE, null, RetryPolicy.none());
  }

  /** This spec with at most {@code maxConcurrency} concurrent runs per runner. */
  public AgentSpec maxConcurrency(int maxConcurrency) {
    return new AgentSpec(name, maxConcurrency, timeout, retry);
  }

  /** This spec with a timeout per attempt. */
  public AgentSpec timeout(Duration timeout) {
    return new AgentSpec(name, maxConcurrency, Objects.requireNonNull(timeout, "timeout"), retry);
  }

  /** This spec with a retry policy for failed attempts. */
  public AgentSpec retry(RetryPolicy retry) {
    return new AgentSpec(name, maxConcurrency, timeout, Objects.requireNonNull(retry, "retry"));
  }

  /** The timeout per attempt, if any. */
  public Optional<Duration> timeoutIfAny() {
    return Optional.ofNullable(timeout);
  }
}
