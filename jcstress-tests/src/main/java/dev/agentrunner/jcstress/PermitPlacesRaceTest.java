package dev.agentrunner.jcstress;

import dev.agentrunner.internal.Permits;
import java.util.Map;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * The bound on what a runner holds in the store: a run gives its permits back when its agent
 * returns but keeps its place until its outcome is stored, and there are twice as many places
 * as permits. Here the limit is 2 (4 places) and three runs have ended with their outcomes
 * still being written: both permits are free, one place is. Two starters try at once.
 *
 * <p>Result: {@code r1, r2} 1 when the starter got a permit and a place; {@code r3} how many
 * runs could still be claimed afterwards. Exactly one starter wins and nothing is claimable:
 * the last place is taken, though a permit is still free.
 *
 * <p>The broken twin {@link dev.agentrunner.jcstress.twins.CheckThenTakePlacesTwinTest} checks
 * both counts and then increments them, so both starters pass the check.
 */
@JCStressTest
@Outcome(id = {"1, 0, 0", "0, 1, 0"}, expect = Expect.ACCEPTABLE,
    desc = "exactly one starter got the last place; a permit stays free but nothing is claimable")
@Outcome(expect = Expect.FORBIDDEN,
    desc = "both got the last place (more than twice the limit held), none did, or a count leaked")
@State
public class PermitPlacesRaceTest {
  private final Permits permits = new Permits(2, Map.of("agent", 2));

  /** Three runs started and ended, their outcomes not yet stored. */
  public PermitPlacesRaceTest() {
    for (int i = 0; i < 3; i++) {
      if (!permits.tryTakeOne("agent")) {
        throw new IllegalStateException("set-up: run " + i + " found no permit");
      }
      permits.executionEnded("agent");
    }
  }

  /** The first starter. */
  @Actor
  public void starter1(III_Result r) {
    r.r1 = permits.tryTakeOne("agent") ? 1 : 0;
  }

  /** The second starter. */
  @Actor
  public void starter2(III_Result r) {
    r.r2 = permits.tryTakeOne("agent") ? 1 : 0;
  }

  /** What could still be claimed. */
  @Arbiter
  public void check(III_Result r) {
    r.r3 = permits.claimable();
  }
}
