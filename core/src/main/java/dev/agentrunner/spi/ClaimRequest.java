package dev.agentrunner.spi;

import java.time.Duration;
import java.util.Map;
import java.util.Objects;

/**
 * What a worker asks of {@link RunStore#claim(ClaimRequest)}: up to {@code limit} due QUEUED
 * runs in all, at most {@code quotas.get(agent)} of each agent, leased to {@code owner}.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param owner the worker id written into the claimed rows
 * @param quotas for each agent the worker can run, how many of its runs it may take now;
 *     agents not in the map are not claimed
 * @param limit the most runs to claim in all, at least 1
 * @param lease how long the claim holds without a heartbeat
 */
public record ClaimRequest(String owner, Map<String, Integer> quotas, int limit, Duration lease) {

  /** @throws IllegalArgumentException if a limit is not positive or the lease is not positive */
  public ClaimRequest {
    Objects.requireNonNull(owner, "owner");
    quotas = Map.copyOf(Objects.requireNonNull(quotas, "quotas"));
    quotas.forEach((agent, quota) -> {
      if (quota < 1) {
        throw new IllegalArgumentException(
            "quota of agent \"" + agent + "\" must be positive, was " + quota);
      }
    });
    if (limit < 1) {
      throw new IllegalArgumentException("limit must be positive, was " + limit);
    }
    Objects.requireNonNull(lease, "lease");
    if (lease.isNegative() || lease.isZero()) {
      throw new IllegalArgumentException("lease must be positive, was " + lease);
    }
  }
}
