package dev.agentrunner.internal;

import dev.agentrunner.Agent;
import dev.agentrunner.AgentSpec;
import dev.agentrunner.RunListener;
import dev.agentrunner.spi.RunStore;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * A runner's configuration, copied out of the builder: immutable once built.
 *
 * @param store where runs live
 * @param ownsStore whether the runner created the store and so closes it
 * @param clock the clock for deadlines
 * @param agents registered agents by name
 * @param listeners listeners in registration order
 * @param maxConcurrency the global limit of executing runs
 * @param pollInterval how often to look for work from other processes and expired leases
 * @param leaseDuration how long a claim holds without a heartbeat
 * @param maxInputBytes the largest input in UTF-8 bytes
 * @param shutdownTimeout how long close() waits for running agents
 * @param abandonAfter how long an interrupted agent may take before it is abandoned
 * @param workerId the owner id written into claimed runs
 */
public record RunnerConfig(
    RunStore store,
    boolean ownsStore,
    Clock clock,
    Map<String, AgentRegistration> agents,
    List<RunListener> listeners,
    int maxConcurrency,
    Duration pollInterval,
    Duration leaseDuration,
    int maxInputBytes,
    Duration shutdownTimeout,
    Duration abandonAfter,
    String workerId) {

  /**
   * One registered agent.
   *
   * @param spec its name and limits
   * @param agent the code to run
   */
  public record AgentRegistration(AgentSpec spec, Agent agent) {}
}
