package dev.agentrunner.internal;

import dev.agentrunner.AgentStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The exact counts of one agent's runs executed by this process. The whole snapshot is one
 * immutable value swapped by compare-and-set, so a reader can never see a half-applied update:
 * the counts by status always add up to the runs started, and every finished run is counted
 * exactly once (invariant I7; the jcstress harness {@code AgentStatsSnapshotTest} proves it, and
 * its broken twin with plain fields shows what happens without it).
 *
 * <p>Thread-safety: thread-safe and lock-free.
 */
public final class AgentStatsRecorder {
  private final AtomicReference<AgentStats> snapshot;

  /** A recorder for {@code agent} with all counts zero. */
  public AgentStatsRecorder(String agent) {
    this.snapshot = new AtomicReference<>(AgentStats.empty(agent));
  }

  /** Counts a run that started executing. */
  public void started() {
    snapshot.updateAndGet(s -> s.plus(RunStatus.RUNNING, Usage.ZERO));
  }

  /**
   * Moves one run from running to {@code status} and adds its usage. A status of QUEUED counts
   * the run as no longer running (it went back to the queue, or its outcome was not stored)
   * without counting it as finished.
   */
  public void finished(RunStatus status, Usage usage) {
    snapshot.updateAndGet(s -> {
      AgentStats moved = new AgentStats(s.agent(), s.queued(), s.running() - 1, s.succeeded(),
          s.failed(), s.cancelled(), s.timedOut(), s.usage().plus(usage));
      return status == RunStatus.QUEUED ? moved : moved.plus(status, Usage.ZERO);
    });
  }

  /**
   * Counts a run that already stopped running (see {@link #finished}) as ended in
   * {@code status}, once its outcome was finally stored.
   */
  public void storedLater(RunStatus status, Usage usage) {
    snapshot.updateAndGet(s -> s.plus(status, usage));
  }

  /** The current counts, one consistent snapshot. */
  public AgentStats snapshot() {
    return snapshot.get();
  }
}
