package dev.agentrunner.internal;

import dev.agentrunner.Schedules;
import java.time.Instant;

/**
 * Lets the jcstress harnesses call {@link ScheduleService#fireDue}, which core keeps
 * package-private (only a runner's dispatcher fires). It lives in core's package on purpose: in
 * the harness jar everything is on the class path, so the split package is one runtime package
 * and this bridge needs no change to core.
 *
 * <p>Thread-safety: stateless; as thread-safe as {@code fireDue}.
 */
public final class ScheduleFiring {
  private ScheduleFiring() {}

  /**
   * Fires every schedule of {@code schedules}' store that is due at {@code now}, as a runner's
   * poll does; returns the earliest fire time still ahead, or null.
   *
   * @param schedules the schedules of a runner ({@link dev.agentrunner.AgentRunner#schedules()})
   */
  public static Instant fireDue(Schedules schedules, Instant now) {
    return ((ScheduleService) schedules).fireDue(now);
  }
}
