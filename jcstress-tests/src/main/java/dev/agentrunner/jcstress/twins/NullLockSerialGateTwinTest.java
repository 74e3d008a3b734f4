package dev.agentrunner.jcstress.twins;

import java.util.List;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIII_Result;

/**
 * Broken twin of {@link dev.agentrunner.jcstress.SerialKeyClaimTest} (invariant I6): the same
 * two runs of one serial key and two claimers, over {@link NullLockSerialQueue}, whose lock was
 * never created (seed VO-335, {@code SchedulerManager._lock}). The gate requires the bad outcome,
 * both claimers starting a run, to be observed.
 */
@JCStressTest
@Outcome(id = {"1, 0, 1, 1", "0, 1, 1, 1"}, expect = Expect.ACCEPTABLE,
    desc = "one worker got the older run of the key; the other got nothing")
@Outcome(expect = Expect.ACCEPTABLE_INTERESTING,
    desc = "the bug: without the lock both claimers passed the check")
@State
public class NullLockSerialGateTwinTest {
  private static final long OLDER = 1;
  private static final long NEWER = 2;

  private final NullLockSerialQueue queue =
      new NullLockSerialQueue("key", List.of(OLDER, NEWER));

  /** Worker 1 claims up to two runs. */
  @Actor
  public void worker1(IIII_Result r) {
    r.r1 = queue.claim(2).size();
  }

  /** Worker 2 claims up to two runs. */
  @Actor
  public void worker2(IIII_Result r) {
    r.r2 = queue.claim(2).size();
  }

  /** Counts the key's RUNNING runs, and checks the older one is the one running. */
  @Arbiter
  public void check(IIII_Result r) {
    boolean olderRunning = NullLockSerialQueue.RUNNING.equals(queue.status(OLDER));
    boolean newerRunning = NullLockSerialQueue.RUNNING.equals(queue.status(NEWER));
    r.r3 = (olderRunning ? 1 : 0) + (newerRunning ? 1 : 0);
    r.r4 = olderRunning ? 1 : 0;
  }
}
