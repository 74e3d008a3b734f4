package dev.agentrunner.jcstress;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIIII_Result;

/**
 * Invariant I10: a fire time enqueues exactly one run however many runners fire it at once.
 *
 * <p>Each state is a {@link ScheduleRig}: one fixed-rate schedule, due now, in its own
 * {@code InMemoryRunStore}. Two actors fire it at the same instant through the real
 * {@code ScheduleService}, as two runners polling one store do. Result: {@code r1}, {@code r2} 1
 * if that actor's fire threw; {@code r3} how many runs are stored; {@code r4} how many fires
 * reached the store's insert (2: both read the schedule before either advanced it, and the fire
 * time's idempotency key made their inserts one run); {@code r5} 1 if the schedule ends past the
 * fire time, pointing at that one run, and one more poll changes nothing.
 *
 * <p>The broken twin {@link dev.agentrunner.jcstress.twins.NullLockDoubleFireTwinTest} fires
 * the same way through a scheduler whose lock was never created.
 */
@JCStressTest
@Outcome(id = "0, 0, 1, 1, 1", expect = Expect.ACCEPTABLE,
    desc = "one fired; the other saw the schedule already advanced")
@Outcome(id = "0, 0, 1, 2, 1", expect = Expect.ACCEPTABLE,
    desc = "both fired the fire time; its idempotency key made them one run")
@Outcome(expect = Expect.FORBIDDEN,
    desc = "an exception, or not exactly one run for the fire time (I10 broken)")
@State
public class ScheduleDoubleFireTest {
  private final ScheduleRig rig = new ScheduleRig();

  /** The first runner's poll at the fire time. */
  @Actor
  public void fire1(IIIII_Result r) {
    try {
      rig.fireDue();
    } catch (RuntimeException e) {
      r.r1 = 1;
    }
  }

  /** The second runner's poll at the same instant. */
  @Actor
  public void fire2(IIIII_Result r) {
    try {
      rig.fireDue();
    } catch (RuntimeException e) {
      r.r2 = 1;
    }
  }

  /** Counts runs and inserts, then checks the schedule settles on the one run. */
  @Arbiter
  public void check(IIIII_Result r) {
    r.r3 = rig.runs().size();
    r.r4 = rig.inserts();
    r.r5 = rig.settlesAfterAnotherPoll("old") ? 1 : 0;
  }
}
