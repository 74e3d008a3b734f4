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
 * The concurrency limits: two starters (a submit starting its own run, and the dispatcher, or
 * two submits) never both get the last permit. The runner's {@link Permits} has 2 global
 * permits and 1 for the agent; two actors each try to take one of each at once.
 *
 * <p>Result: {@code r1, r2} 1 when the actor got its permits; {@code r3} the global permits
 * left free afterwards. Exactly one actor wins, and the loser gives back the global permit it
 * took before it found the agent's pool empty, so one global permit stays free.
 *
 * <p>The broken twin {@link dev.agentrunner.jcstress.twins.CheckThenTakePermitsTwinTest}
 * checks the count and then increments it, as a counter guarded by nothing would.
 */
@JCStressTest
@Outcome(id = {"1, 0, 1", "0, 1, 1"}, expect = Expect.ACCEPTABLE,
    desc = "exactly one starter got the agent's last permit; the other's global permit is back")
@Outcome(expect = Expect.FORBIDDEN,
    desc = "both got the last permit (a limit overshot), none did, or a permit leaked")
@State
public class PermitsRaceTest {
  private final Permits permits = new Permits(2, Map.of("agent", 1));

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

  /** The global permits left. */
  @Arbiter
  public void check(III_Result r) {
    r.r3 = permits.globalFree();
  }
}
