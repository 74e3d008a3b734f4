package dev.agentrunner.jcstress.twins;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIII_Result;

/**
 * Broken twin of {@link dev.agentrunner.jcstress.AgentStatsSnapshotTest} (invariant I7): the same
 * two runs, each observing mid-run, over {@link PlainFieldsAgentState}, whose counts are
 * unsynchronised fields (seed VO-335, {@code BaseAgent.run()}). The gate requires a bad outcome,
 * a lost increment or a torn snapshot, to be observed.
 */
@JCStressTest
@Outcome(id = {"100, 200, 2, 0", "200, 100, 2, 0", "200, 200, 2, 0", "100, 111, 2, 0",
    "111, 100, 2, 0", "200, 111, 2, 0", "111, 200, 2, 0"}, expect = Expect.ACCEPTABLE,
    desc = "every snapshot is one moment; both runs counted once at the end")
@Outcome(expect = Expect.ACCEPTABLE_INTERESTING,
    desc = "the bug: a torn snapshot or a lost count from unsynchronised fields")
@State
public class PlainFieldsAgentStatsTwinTest {
  private static final long PER_RUN = 10;

  private final PlainFieldsAgentState state = new PlainFieldsAgentState();

  /** The first run: starts, is observed mid-run, succeeds. */
  @Actor
  public void run1(IIII_Result r) {
    r.r1 = runAndObserve("one");
  }

  /** The second run, the same way. */
  @Actor
  public void run2(IIII_Result r) {
    r.r2 = runAndObserve("two");
  }

  /** The final counts. */
  @Arbiter
  public void check(IIII_Result r) {
    r.r3 = state.succeeded;
    r.r4 = state.running;
  }

  private int runAndObserve(String result) {
    state.started();
    // The seed had no snapshot: a reader read the fields one by one.
    int running = state.running;
    int succeeded = state.succeeded;
    long usageRuns = state.inputTokens / PER_RUN;
    state.finished(result, PER_RUN);
    return (int) (running * 100 + succeeded * 10 + usageRuns);
  }
}
