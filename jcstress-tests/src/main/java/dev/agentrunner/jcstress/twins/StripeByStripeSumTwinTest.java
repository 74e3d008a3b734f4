package dev.agentrunner.jcstress.twins;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * Broken twin of {@link dev.agentrunner.jcstress.AgentStatsStripesTest}: the same run started
 * on the first stripe and finished on the last, observed by a sum that holds one stripe's
 * monitor at a time ({@link StripeByStripeSum}). The gate requires the torn sum (running -1,
 * one success) to be observed.
 */
@JCStressTest
@Outcome(id = {"0, 0", "1, 0", "0, 1"}, expect = Expect.ACCEPTABLE,
    desc = "the sum happens to be one moment")
@Outcome(expect = Expect.ACCEPTABLE_INTERESTING,
    desc = "the bug: the sum saw the finish and not the start")
@State
public class StripeByStripeSumTwinTest {
  private final StripeByStripeSum counts = new StripeByStripeSum();

  /** The run. */
  @Actor
  public void run() {
    counts.started(0);
    counts.succeeded(StripeByStripeSum.STRIPES - 1);
  }

  /** The observer. */
  @Actor
  public void observe(II_Result r) {
    long[] sum = counts.sum();
    r.r1 = (int) sum[0];
    r.r2 = (int) sum[1];
  }
}
