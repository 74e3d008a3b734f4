package dev.agentrunner.jcstress;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIIII_Result;

/**
 * Invariant I10 against the seed's scheduler bug (a trigger racing an update of the same job):
 * firing a due schedule and updating it at once neither throws nor fires twice.
 *
 * <p>Each state is a {@link ScheduleRig}: one fixed-rate schedule, due now, in its own
 * {@code InMemoryRunStore}, driven through the real {@code ScheduleService}. One actor fires it
 * (what a runner's poll does); the other upserts the same schedule with another input and the
 * same timing. Result: {@code r1}, {@code r2} 1 if the fire, the upsert threw; {@code r3} how
 * many runs are stored after the race; {@code r4} 1 if the race left the schedule past its fire
 * time, 0 if the upsert's compare-and-set got in between the fire's read and its write (the
 * fire's advance was then refused, its run stays stored); {@code r5} 1 if one more poll at the
 * fire time settles it: still exactly one run, that of the fire time, and the schedule past it,
 * pointing at that run, with the new input (the update is never lost).
 *
 * <p>The broken twin {@link dev.agentrunner.jcstress.twins.NullLockFireUpdateTwinTest} does the
 * same over a scheduler whose lock was never created.
 */
@JCStressTest
@Outcome(id = "0, 0, 1, 1, 1", expect = Expect.ACCEPTABLE,
    desc = "one run; the fire advanced the schedule, the update kept its next fire time")
@Outcome(id = "0, 0, 1, 0, 1", expect = Expect.ACCEPTABLE,
    desc = "one run; the update won the compare-and-set, the next poll finds the run and advances")
@Outcome(expect = Expect.FORBIDDEN,
    desc = "an exception, two runs for one fire time, or a lost update (I10 broken)")
@State
public class ScheduleFireUpdateTest {
  private final ScheduleRig rig = new ScheduleRig();

  /** A runner's poll at the fire time. */
  @Actor
  public void fire(IIIII_Result r) {
    try {
      rig.fireDue();
    } catch (RuntimeException e) {
      r.r1 = 1;
    }
  }

  /** An update of the schedule's input, same timing. */
  @Actor
  public void update(IIIII_Result r) {
    try {
      rig.upsert("new");
    } catch (RuntimeException e) {
      r.r2 = 1;
    }
  }

  /** Counts the runs, checks where the race left the schedule, then polls once more. */
  @Arbiter
  public void check(IIIII_Result r) {
    r.r3 = rig.runs().size();
    r.r4 = ScheduleRig.FIRE_AT.plus(ScheduleRig.EVERY).equals(rig.schedule().nextFireAt()) ? 1 : 0;
    r.r5 = rig.settlesAfterAnotherPoll("new") ? 1 : 0;
  }
}
