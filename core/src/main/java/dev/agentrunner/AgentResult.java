package dev.agentrunner;

import java.util.Objects;

/**
 * What an agent returns: its output and what the work consumed. Usage reported here is added to
 * any usage reported through {@link AgentContext#reportUsage(Usage)} during the run.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param output the output to store with the run (often JSON); never null, may be empty
 * @param usage tokens and cost consumed
 */
public record AgentResult(String output, Usage usage) {

  /** @throws NullPointerException if {@code output} or {@code usage} is null */
  public AgentResult {
    Objects.requireNonNull(output, "output");
    Objects.requireNonNull(usage, "usage");
  }

  /** A result with no usage. */
  public static AgentResult of(String output) {
    return new AgentResult(output, Usage.ZERO);
  }

  /** A result with the given usage. */
  public static AgentResult of(String output, Usage usage) {
    return new AgentResult(output, usage);
  }
}
