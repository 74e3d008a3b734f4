package dev.agentrunner;

import java.util.Collection;
import java.util.stream.Collectors;

/**
 * A run was submitted for an agent this runner does not know. Nothing was stored.
 *
 * <p>Thread-safety: see {@link AgentRunnerException}.
 */
public class UnknownAgentException extends AgentRunnerException {
  private static final long serialVersionUID = 1L;

  private final String agent;

  /** An exception for {@code agent}, naming the agents that are registered. */
  public UnknownAgentException(String agent, Collection<String> known) {
    super("unknown agent \"" + agent + "\"; registered agents: "
        + (known.isEmpty() ? "(none)"
            : known.stream().sorted().map(k -> "\"" + k + "\"").collect(Collectors.joining(", "))));
    this.agent = agent;
  }

  /** The name that was not found. */
  public String agent() {
    return agent;
  }

}
