package dev.agentrunner;

import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * A runner's state at one moment, for health endpoints and dashboards.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param accepting whether the runner accepts submits (false once closing)
 * @param storeReachable whether the last store call made for this report succeeded
 * @param storeError why the store was unreachable, or null
 * @param executing runs this runner is executing now
 * @param store counts over the whole store (every process), or null when it was unreachable
 * @param local per-agent counts of the runs this runner executed since it started (the
 *     {@code queued} count is always zero)
 * @param serialKeyQueues for each serial key of a run this runner is executing, how many runs
 *     of that key wait QUEUED in the store
 */
public record Health(
    boolean accepting,
    boolean storeReachable,
    String storeError,
    int executing,
    RunStats store,
    Map<String, AgentStats> local,
    Map<String, Long> serialKeyQueues) {

  /** @throws NullPointerException if {@code local} or {@code serialKeyQueues} is null */
  public Health {
    local = Map.copyOf(Objects.requireNonNull(local, "local"));
    serialKeyQueues = Map.copyOf(Objects.requireNonNull(serialKeyQueues, "serialKeyQueues"));
  }

  /** The store-wide counts, if the store answered. */
  public Optional<RunStats> storeStats() {
    return Optional.ofNullable(store);
  }

  /** Runs waiting in the store over all agents, or -1 when the store was unreachable. */
  public long queueDepth() {
    return store == null ? -1 : store.total().queued();
  }
}
