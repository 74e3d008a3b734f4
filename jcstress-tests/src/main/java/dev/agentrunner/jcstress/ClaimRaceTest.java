package dev.agentrunner.jcstress;

import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.memory.InMemoryRunStore;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.NewRun;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIII_Result;

/**
 * Invariant I2: a run is executed by at most one worker per attempt, because the store's claim
 * moves it {@code QUEUED → RUNNING} atomically.
 *
 * <p>One QUEUED run in an {@link InMemoryRunStore}; two workers claim at once. Result:
 * {@code r1, r2} how many runs each worker got; {@code r3} the stored attempt after both claims
 * (a run claimed twice would be at attempt 2, or be handed out twice at attempt 1);
 * {@code r4} 1 when the stored owner is the worker that got the run.
 *
 * <p>The broken twin {@link dev.agentrunner.jcstress.twins.UnconditionalClaimTwinTest} claims
 * with a SELECT, then an UPDATE that does not check the status.
 */
@JCStressTest
@Outcome(id = {"1, 0, 1, 1", "0, 1, 1, 1"}, expect = Expect.ACCEPTABLE,
    desc = "exactly one worker won the run, and the store names it as the owner")
@Outcome(expect = Expect.FORBIDDEN,
    desc = "both workers, or none, got the run, or the stored claim disagrees (I2 broken)")
@State
public class ClaimRaceTest {
  private static final Map<String, Integer> QUOTAS = Map.of("agent", 1);
  private static final Duration LEASE = Duration.ofMinutes(5);

  private final InMemoryRunStore store = InMemoryRunStore.create();
  private final long runId = store.insert(NewRun.of(RunRequest.of("agent", "job"))).id();

  /** Worker 1 claims. */
  @Actor
  public void worker1(IIII_Result r) {
    r.r1 = claim("w1").size();
  }

  /** Worker 2 claims. */
  @Actor
  public void worker2(IIII_Result r) {
    r.r2 = claim("w2").size();
  }

  /** Reads the run as stored: attempt 1, owned by the winner. */
  @Arbiter
  public void check(IIII_Result r) {
    RunRecord run = store.find(runId).orElseThrow();
    r.r3 = run.attempt();
    String winner = r.r1 == 1 ? "w1" : r.r2 == 1 ? "w2" : null;
    r.r4 = run.status() == RunStatus.RUNNING && winner != null && winner.equals(run.owner())
        ? 1 : 0;
  }

  private List<RunRecord> claim(String owner) {
    return store.claim(new ClaimRequest(owner, QUOTAS, 1, LEASE));
  }
}
