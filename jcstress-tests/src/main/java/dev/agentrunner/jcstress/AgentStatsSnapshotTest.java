package dev.agentrunner.jcstress;

import dev.agentrunner.AgentStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import dev.agentrunner.internal.AgentStatsRecorder;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIII_Result;

/**
 * Invariant I7: agent stats count every finished run exactly once, and a snapshot is never torn.
 *
 * <p>Two actors are two concurrent runs of one agent on one {@link AgentStatsRecorder}, as in the
 * engine: each calls {@code started()}, takes a {@code snapshot()} while its own run is going
 * (so each snapshot races the other actor's updates), then {@code finished(SUCCEEDED, 10 input
 * tokens)}. The observer lives inside the actors because jcstress 0.16 cannot schedule a third
 * actor on a 2-CPU machine (it skips such tests).
 *
 * <p>Result: {@code r1, r2} each actor's snapshot as {@code running*100 + succeeded*10 + runs'
 * worth of usage}; {@code r3} succeeded and {@code r4} running in the final snapshot. A whole
 * snapshot taken during its own run is 100 (the other run not started), 200 (both running) or
 * 111 (the other run finished); 100/100 and 111/111 cannot both happen in one linearizable
 * order. Anything else (usage without its count, a negative or lost count) is torn.
 *
 * <p>The broken twin {@link dev.agentrunner.jcstress.twins.PlainFieldsAgentStatsTwinTest} keeps
 * the same counts in plain fields, as the seed's {@code BaseAgent} did.
 */
@JCStressTest
@Outcome(id = {"100, 200, 2, 0", "200, 100, 2, 0", "200, 200, 2, 0", "100, 111, 2, 0",
    "111, 100, 2, 0", "200, 111, 2, 0", "111, 200, 2, 0"}, expect = Expect.ACCEPTABLE,
    desc = "every snapshot is one moment; both runs counted once at the end")
@Outcome(expect = Expect.FORBIDDEN,
    desc = "a torn snapshot or a lost or doubled count (I7 broken)")
@State
public class AgentStatsSnapshotTest {
  private static final Usage PER_RUN = Usage.of(10, 0, 0);

  private final AgentStatsRecorder recorder = new AgentStatsRecorder("agent");

  /** The first run: starts, is observed mid-run, succeeds. */
  @Actor
  public void run1(IIII_Result r) {
    r.r1 = runAndObserve();
  }

  /** The second run, the same way. */
  @Actor
  public void run2(IIII_Result r) {
    r.r2 = runAndObserve();
  }

  /** The final counts. */
  @Arbiter
  public void check(IIII_Result r) {
    AgentStats s = recorder.snapshot();
    r.r3 = (int) s.succeeded();
    r.r4 = (int) s.running();
  }

  private int runAndObserve() {
    recorder.started();
    AgentStats s = recorder.snapshot();
    recorder.finished(RunStatus.SUCCEEDED, PER_RUN);
    // Other statuses must stay 0: fold any of them in so they cannot hide.
    long other = s.queued() + s.failed() + s.cancelled() + s.timedOut();
    return (int) (s.running() * 100 + s.succeeded() * 10
        + s.usage().inputTokens() / PER_RUN.inputTokens() + other * 1000);
  }
}
