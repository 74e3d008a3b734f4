package dev.agentrunner.jcstress.twins;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIII_Result;

/**
 * Broken twin of {@link dev.agentrunner.jcstress.RunIdRaceTest} (invariant I1): the same two
 * inserts and the same arbiter, over {@link MaxIdRunTable}, which reads its id back with
 * {@code MAX(id)} after the insert (seed VO-335). The gate requires the bad outcome, both
 * actors holding one id so that one of them names the other's row, to be observed.
 */
@JCStressTest
@Outcome(id = {"1, 2, 1, 1", "2, 1, 1, 1"}, expect = Expect.ACCEPTABLE,
    desc = "distinct ids, each naming the row its own insert wrote")
@Outcome(expect = Expect.ACCEPTABLE_INTERESTING,
    desc = "the bug: MAX(id) handed one actor the other's id")
@State
public class MaxIdReadBackTwinTest {
  private final MaxIdRunTable table = new MaxIdRunTable();

  /** Inserts the first run. */
  @Actor
  public void first(IIII_Result r) {
    r.r1 = (int) table.insert("first");
  }

  /** Inserts the second run. */
  @Actor
  public void second(IIII_Result r) {
    r.r2 = (int) table.insert("second");
  }

  /** Reads each id back: the row must hold the input of the actor that got the id. */
  @Arbiter
  public void check(IIII_Result r) {
    r.r3 = "first".equals(table.find(r.r1)) ? 1 : 0;
    r.r4 = "second".equals(table.find(r.r2)) ? 1 : 0;
  }
}
