package dev.agentrunner.jcstress.twins;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * Broken twin of {@link dev.agentrunner.jcstress.PermitsRaceTest}: the same two starters over
 * counters that are read, compared with the limit and then incremented, with nothing making
 * the three one step (the seed's "running < max_concurrent" check before a start). The gate
 * requires the bad outcome, both starters past the limit, to be observed.
 */
@JCStressTest
@Outcome(id = {"1, 0, 1", "0, 1, 1"}, expect = Expect.ACCEPTABLE,
    desc = "exactly one starter got the agent's last permit")
@Outcome(expect = Expect.ACCEPTABLE_INTERESTING,
    desc = "the bug: both starters got the last permit, or a count was lost")
@State
public class CheckThenTakePermitsTwinTest {
  private final CheckThenTakePermits permits = new CheckThenTakePermits(2, 1);

  /** The first starter. */
  @Actor
  public void starter1(III_Result r) {
    r.r1 = permits.tryTakeOne() ? 1 : 0;
  }

  /** The second starter. */
  @Actor
  public void starter2(III_Result r) {
    r.r2 = permits.tryTakeOne() ? 1 : 0;
  }

  /** The global permits left. */
  @Arbiter
  public void check(III_Result r) {
    r.r3 = permits.globalFree();
  }
}
