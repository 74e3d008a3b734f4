package dev.agentrunner.spi;

import java.util.Set;

/**
 * The answer to {@link RunStore#heartbeat(String, Set, java.time.Duration)}.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param extended how many leases were extended
 * @param cancelRequested ids of the extended runs on which a cancel was requested (from
 *     any process); the owner should stop them and finish them CANCELLED
 */
public record Heartbeat(int extended, Set<Long> cancelRequested) {

  /** @throws NullPointerException if {@code cancelRequested} is null */
  public Heartbeat {
    cancelRequested = Set.copyOf(cancelRequested);
  }
}
