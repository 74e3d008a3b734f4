package dev.agentrunner;

import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * Run counts by agent and status over the whole store (every process sharing it), read in one
 * consistent snapshot.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param agents stats per agent name, sorted by name
 */
public record RunStats(Map<String, AgentStats> agents) {

  /** @throws NullPointerException if {@code agents} is null */
  public RunStats {
    agents = java.util.Collections.unmodifiableMap(new TreeMap<>(Objects.requireNonNull(agents)));
  }

  /** The stats of one agent; all zero if it has no runs. */
  public AgentStats agent(String name) {
    return agents.getOrDefault(name, AgentStats.empty(name));
  }

  /** The counts over all agents, under the name {@code "*"}. */
  public AgentStats total() {
    AgentStats sum = AgentStats.empty("*");
    for (AgentStats a : agents.values()) {
      sum = new AgentStats("*",
          sum.queued() + a.queued(), sum.running() + a.running(),
          sum.succeeded() + a.succeeded(), sum.failed() + a.failed(),
          sum.cancelled() + a.cancelled(), sum.timedOut() + a.timedOut(),
          sum.usage().plus(a.usage()));
    }
    return sum;
  }
}
