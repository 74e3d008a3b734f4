package dev.agentrunner.internal;

import dev.agentrunner.AgentStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;

/**
 * The exact counts of one agent's runs executed by this process, kept in stripes: an update
 * holds the monitor of one stripe (picked by the updating thread), a snapshot holds the monitors
 * of all of them at once and adds them up. So a reader can never see a half-applied update: the
 * counts by status always add up to the runs started, and every finished run is counted exactly
 * once (invariant I7; the jcstress harness {@code AgentStatsSnapshotTest} proves it, and its
 * broken twin with plain unguarded fields shows what happens without it).
 *
 * <p>Why stripes: every run updates its agent's recorder twice, once from the thread that
 * started it and once from its own virtual thread, and with one monitor those updates from
 * every thread of the runner queued behind each other (with nothing else changed, taking them
 * away lifted the engine's rate on a store that keeps nothing by a third). A run's two updates
 * may land in different stripes, so one stripe's count of running runs can go below zero; only
 * the sum means anything. Nothing blocks while a monitor is held.
 *
 * <p>Thread-safety: thread-safe.
 */
public final class AgentStatsRecorder {
  /** How many stripes: a power of two, a few more than a small machine's busiest threads. */
  public static final int STRIPES = 16;

  private static final int RUNNING = RunStatus.RUNNING.ordinal();

  private final String agent;
  private final Stripe[] stripes = new Stripe[STRIPES];

  /** One stripe's share of the counts; guarded by its own monitor. */
  private static final class Stripe {
    final long[] byStatus = new long[RunStatus.values().length];
    long inputTokens;
    long outputTokens;
    long costMicros;
    // Padding, so that two stripes allocated side by side do not share a cache line.
    @SuppressWarnings("unused")
    long p1;
    @SuppressWarnings("unused")
    long p2;
    @SuppressWarnings("unused")
    long p3;
    @SuppressWarnings("unused")
    long p4;
    @SuppressWarnings("unused")
    long p5;

    void add(Usage usage) {
      inputTokens += usage.inputTokens();
      outputTokens += usage.outputTokens();
      costMicros += usage.costMicros();
    }
  }

  /** A recorder for {@code agent} with all counts zero. */
  public AgentStatsRecorder(String agent) {
    this.agent = agent;
    for (int i = 0; i < STRIPES; i++) {
      stripes[i] = new Stripe();
    }
  }

  /** The calling thread's stripe: thread ids are handed out in order, so threads spread. */
  private static int mine() {
    return (int) Thread.currentThread().threadId() & (STRIPES - 1);
  }

  /** Counts a run that started executing. */
  public void started() {
    startedOnStripe(mine());
  }

  /**
   * {@link #started} on a chosen stripe (0 to {@link #STRIPES} - 1), so that the jcstress harness
   * {@code AgentStatsStripesTest} can start a run on one stripe and end it on another, as two
   * threads of the engine do.
   */
  public void startedOnStripe(int stripe) {
    Stripe s = stripes[stripe];
    synchronized (s) {
      s.byStatus[RUNNING]++;
    }
  }

  /**
   * Moves one run from running to {@code status} and adds its usage. A status of QUEUED counts
   * the run as no longer running (it went back to the queue, or its outcome was not stored)
   * without counting it as finished.
   */
  public void finished(RunStatus status, Usage usage) {
    finishedOnStripe(mine(), status, usage);
  }

  /** {@link #finished} on a chosen stripe; see {@link #startedOnStripe}. */
  public void finishedOnStripe(int stripe, RunStatus status, Usage usage) {
    Stripe s = stripes[stripe];
    synchronized (s) {
      s.byStatus[RUNNING]--;
      if (status != RunStatus.QUEUED) {
        s.byStatus[status.ordinal()]++;
      }
      s.add(usage);
    }
  }

  /**
   * Counts a run that already stopped running (see {@link #finished}) as ended in
   * {@code status}, once its outcome was finally stored.
   */
  public void storedLater(RunStatus status, Usage usage) {
    Stripe s = stripes[mine()];
    synchronized (s) {
      s.byStatus[status.ordinal()]++;
      s.add(usage);
    }
  }

  /** The current counts, one consistent snapshot: every stripe's monitor is held at once. */
  public AgentStats snapshot() {
    return snapshotFrom(0, new long[RunStatus.values().length + 3]);
  }

  /** Holds stripe {@code i}'s monitor and the later ones', in order, and adds them into sums. */
  private AgentStats snapshotFrom(int i, long[] sums) {
    if (i == STRIPES) {
      int u = RunStatus.values().length;
      return new AgentStats(agent, sums[RunStatus.QUEUED.ordinal()], sums[RUNNING],
          sums[RunStatus.SUCCEEDED.ordinal()], sums[RunStatus.FAILED.ordinal()],
          sums[RunStatus.CANCELLED.ordinal()], sums[RunStatus.TIMED_OUT.ordinal()],
          new Usage(sums[u], sums[u + 1], sums[u + 2]));
    }
    Stripe s = stripes[i];
    synchronized (s) {
      for (int status = 0; status < s.byStatus.length; status++) {
        sums[status] += s.byStatus[status];
      }
      int u = s.byStatus.length;
      sums[u] += s.inputTokens;
      sums[u + 1] += s.outputTokens;
      sums[u + 2] += s.costMicros;
      return snapshotFrom(i + 1, sums);
    }
  }
}
