package dev.agentrunner.bench;

import dev.agentrunner.AgentContext;
import dev.agentrunner.Usage;
import java.time.Instant;
import java.util.Optional;

/**
 * The minimal context a raw baseline hands the same agent: no store, no events, attempt 1.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param runId the id the baseline made up
 * @param agent the agent's name
 * @param input the input
 */
public record BareContext(long runId, String agent, String input) implements AgentContext {
  @Override
  public int attempt() {
    return 1;
  }

  @Override
  public Optional<String> serialKey() {
    return Optional.empty();
  }

  @Override
  public Optional<Instant> deadline() {
    return Optional.empty();
  }

  @Override
  public boolean isCancelled() {
    return false;
  }

  @Override
  public void emit(String type, String data) {}

  @Override
  public void reportUsage(Usage usage) {}
}
