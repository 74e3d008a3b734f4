package dev.agentrunner.jcstress.twins;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * Broken twin of {@link dev.agentrunner.jcstress.PermitPlacesRaceTest}: the same two starters,
 * limit 2 and three ended runs holding places, over counters read, compared with their limits
 * and then incremented, with nothing making that one step. The gate requires the bad outcome,
 * both starters in the last place, to be observed.
 */
@JCStressTest
@Outcome(id = {"1, 0, 0", "0, 1, 0"}, expect = Expect.ACCEPTABLE,
    desc = "exactly one starter got the last place")
@Outcome(expect = Expect.ACCEPTABLE_INTERESTING,
    desc = "the bug: both starters got the last place, or a count was lost")
@State
public class CheckThenTakePlacesTwinTest {
  private final CheckThenTakePlaces permits = new CheckThenTakePlaces(2, 3);

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

  /** What could still be claimed. */
  @Arbiter
  public void check(III_Result r) {
    r.r3 = permits.claimable();
  }
}
