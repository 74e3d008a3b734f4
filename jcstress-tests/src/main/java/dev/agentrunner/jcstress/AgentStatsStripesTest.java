package dev.agentrunner.jcstress;

import dev.agentrunner.AgentStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import dev.agentrunner.internal.AgentStatsRecorder;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * Invariant I7 across stripes: the engine counts a run as started from the thread that started
 * it and as finished from the run's own thread, so the two updates land in different stripes of
 * the {@link AgentStatsRecorder}, and a snapshot must still be one moment.
 *
 * <p>One actor is the run: started on the first stripe, finished (SUCCEEDED, 10 input tokens)
 * on the last. The other takes a snapshot. Result: running, succeeded, and runs' worth of
 * usage. A snapshot from one moment is before the run (0, 0, 0), during it (1, 0, 0) or after
 * it (0, 1, 1). A snapshot adding the stripes up one monitor at a time can read the first stripe
 * before the start and the last after the finish: running -1 with one success.
 *
 * <p>The broken twin {@link dev.agentrunner.jcstress.twins.StripeByStripeSumTwinTest} adds the
 * stripes up that way.
 */
@JCStressTest
@Outcome(id = {"0, 0, 0", "1, 0, 0", "0, 1, 1"}, expect = Expect.ACCEPTABLE,
    desc = "the snapshot is one moment: before, during or after the run")
@Outcome(expect = Expect.FORBIDDEN,
    desc = "a snapshot torn across stripes (I7 broken)")
@State
public class AgentStatsStripesTest {
  private static final Usage PER_RUN = Usage.of(10, 0, 0);

  private final AgentStatsRecorder recorder = new AgentStatsRecorder("agent");

  /** The run: started on one stripe, finished on another. */
  @Actor
  public void run() {
    recorder.startedOnStripe(0);
    recorder.finishedOnStripe(AgentStatsRecorder.STRIPES - 1, RunStatus.SUCCEEDED, PER_RUN);
  }

  /** The observer. */
  @Actor
  public void observe(III_Result r) {
    AgentStats s = recorder.snapshot();
    r.r1 = (int) s.running();
    r.r2 = (int) s.succeeded();
    r.r3 = (int) (s.usage().inputTokens() / PER_RUN.inputTokens());
  }
}
