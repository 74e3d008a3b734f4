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
 * Broken twin of {@link dev.agentrunner.jcstress.ScheduleDoubleFireTest} (invariant I10): two
 * polls fire the same due job at once, the same results and acceptable outcomes, over
 * {@link NullLockScheduler}, whose lock was never created and whose runs carry no idempotency
 * key (seed VO-335). The gate requires the bad outcome, two runs for one fire time, to be
 * observed.
 */
@JCStressTest
@Outcome(id = "0, 0, 1, 1, 1", expect = Expect.ACCEPTABLE,
    desc = "one fired; the other saw the schedule already advanced")
@Outcome(id = "0, 0, 1, 2, 1", expect = Expect.ACCEPTABLE,
    desc = "both fired the fire time; its idempotency key made them one run")
@Outcome(expect = Expect.ACCEPTABLE_INTERESTING,
    desc = "the bug: without the lock both polls fired the fire time, two runs")
@State
public class NullLockDoubleFireTwinTest {
  private static final String NAME = "report";
  private static final Instant FIRE_AT = Instant.parse("2026-01-05T10:00:00Z");
  private static final Duration EVERY = Duration.ofSeconds(1);

  private final NullLockScheduler scheduler =
      new NullLockScheduler(NAME, new NullLockScheduler.Job("old", FIRE_AT, EVERY));

  /** The first poll at the fire time. */
  @Actor
  public void fire1(IIIII_Result r) {
    try {
      scheduler.fireDue(FIRE_AT);
    } catch (RuntimeException e) {
      r.r1 = 1;
    }
  }

  /** The second poll at the same instant. */
  @Actor
  public void fire2(IIIII_Result r) {
    try {
      scheduler.fireDue(FIRE_AT);
    } catch (RuntimeException e) {
      r.r2 = 1;
    }
  }

  /** Counts runs and fires, then checks the job settles on one run. */
  @Arbiter
  public void check(IIIII_Result r) {
    List<NullLockScheduler.FiredRun> runs = scheduler.runs();
    r.r3 = runs.size();
    r.r4 = runs.size(); // every fire that got past the check inserted a run
    scheduler.fireDue(FIRE_AT);
    r.r5 = scheduler.runs().size() == 1
        && FIRE_AT.plus(EVERY).equals(scheduler.job(NAME).nextFireAt()) ? 1 : 0;
  }
}
