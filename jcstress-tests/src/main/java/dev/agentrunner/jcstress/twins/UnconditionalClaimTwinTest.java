package dev.agentrunner.jcstress.twins;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIII_Result;

/**
 * Broken twin of {@link dev.agentrunner.jcstress.ClaimRaceTest} (invariant I2): the same one
 * QUEUED run and two claiming workers, over {@link SelectThenUpdateQueue}, which claims with a
 * SELECT and then an UPDATE that does not check the status. The gate requires the bad outcome,
 * both workers winning the run, to be observed.
 */
@JCStressTest
@Outcome(id = {"1, 0, 1, 1", "0, 1, 1, 1"}, expect = Expect.ACCEPTABLE,
    desc = "exactly one worker won the run, and the store names it as the owner")
@Outcome(expect = Expect.ACCEPTABLE_INTERESTING,
    desc = "the bug: both workers selected the run before either updated it")
@State
public class UnconditionalClaimTwinTest {
  private final SelectThenUpdateQueue queue = new SelectThenUpdateQueue();

  /** Worker 1 claims. */
  @Actor
  public void worker1(IIII_Result r) {
    r.r1 = queue.claim("w1");
  }

  /** Worker 2 claims. */
  @Actor
  public void worker2(IIII_Result r) {
    r.r2 = queue.claim("w2");
  }

  /** Reads the run as stored: attempt 1, owned by the winner. */
  @Arbiter
  public void check(IIII_Result r) {
    r.r3 = queue.attempt();
    String winner = r.r1 == 1 ? "w1" : r.r2 == 1 ? "w2" : null;
    r.r4 = "RUNNING".equals(queue.status()) && winner != null && winner.equals(queue.owner())
        ? 1 : 0;
  }
}
