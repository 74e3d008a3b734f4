package dev.agentrunner.jcstress.twins;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIIII_Result;

/**
 * Broken twin of {@link dev.agentrunner.jcstress.ScheduleFireUpdateTest} (invariant I10): the
 * same fire racing an update of the job's input, the same results and acceptable outcomes, over
 * {@link NullLockScheduler}, whose lock was never created (seed VO-335,
 * {@code SchedulerManager._lock}). The gate requires a bad outcome to be observed: the update
 * wrote the old fire time back so the next poll fired it a second time (r5 = 0 with r4 = 0), or
 * the fire wrote the old input back over the update (r5 = 0 with r4 = 1).
 */
@JCStressTest
@Outcome(id = "0, 0, 1, 1, 1", expect = Expect.ACCEPTABLE,
    desc = "one run; the fire advanced the schedule, the update kept its next fire time")
@Outcome(id = "0, 0, 1, 0, 1", expect = Expect.ACCEPTABLE,
    desc = "one run; the update won the compare-and-set, the next poll finds the run and advances")
@Outcome(expect = Expect.ACCEPTABLE_INTERESTING,
    desc = "the bug: without the lock the fire time fired twice or the update was lost")
@State
public class NullLockFireUpdateTwinTest {
  private static final String NAME = "report";
  private static final Instant FIRE_AT = Instant.parse("2026-01-05T10:00:00Z");
  private static final Duration EVERY = Duration.ofSeconds(1);

  private final NullLockScheduler scheduler =
      new NullLockScheduler(NAME, new NullLockScheduler.Job("old", FIRE_AT, EVERY));

  /** A poll at the fire time. */
  @Actor
  public void fire(IIIII_Result r) {
    try {
      scheduler.fireDue(FIRE_AT);
    } catch (RuntimeException e) {
      r.r1 = 1;
    }
  }

  /** An update of the job's input, same timing. */
  @Actor
  public void update(IIIII_Result r) {
    try {
      scheduler.update(NAME, "new");
    } catch (RuntimeException e) {
      r.r2 = 1;
    }
  }

  /** Counts the runs, checks where the race left the job, then polls once more. */
  @Arbiter
  public void check(IIIII_Result r) {
    r.r3 = scheduler.runs().size();
    r.r4 = FIRE_AT.plus(EVERY).equals(scheduler.job(NAME).nextFireAt()) ? 1 : 0;
    scheduler.fireDue(FIRE_AT);
    List<NullLockScheduler.FiredRun> runs = scheduler.runs();
    NullLockScheduler.Job job = scheduler.job(NAME);
    r.r5 = runs.size() == 1 && FIRE_AT.equals(runs.get(0).fireAt())
        && FIRE_AT.plus(EVERY).equals(job.nextFireAt()) && "new".equals(job.input()) ? 1 : 0;
  }
}
