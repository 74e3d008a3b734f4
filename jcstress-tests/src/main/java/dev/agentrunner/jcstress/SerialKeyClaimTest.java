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
 * Invariant I6 (the in-process part): at most one RUNNING run per serial key, and the oldest
 * QUEUED run of the key goes first.
 *
 * <p>Two QUEUED runs share one serial key in an {@link InMemoryRunStore}; two workers claim at
 * once, each asking for up to two runs (so that a store giving both runs to one worker is caught
 * as well). Result: {@code r1, r2} how many runs each worker got; {@code r3} how many runs of the
 * key are RUNNING afterwards; {@code r4} 1 when the RUNNING one is the older run (FIFO).
 *
 * <p>The broken twin {@link dev.agentrunner.jcstress.twins.NullLockSerialGateTwinTest} guards
 * the same check-then-act with a lock that was never created.
 */
@JCStressTest
@Outcome(id = {"1, 0, 1, 1", "0, 1, 1, 1"}, expect = Expect.ACCEPTABLE,
    desc = "one worker got the older run of the key; the other got nothing")
@Outcome(expect = Expect.FORBIDDEN,
    desc = "two runs of one serial key RUNNING, or the newer one first (I6 broken)")
@State
public class SerialKeyClaimTest {
  private static final Map<String, Integer> QUOTAS = Map.of("agent", 2);
  private static final Duration LEASE = Duration.ofMinutes(5);

  private final InMemoryRunStore store = InMemoryRunStore.create();
  private final long older = insert("older");
  private final long newer = insert("newer");

  /** Worker 1 claims up to two runs. */
  @Actor
  public void worker1(IIII_Result r) {
    r.r1 = claim("w1").size();
  }

  /** Worker 2 claims up to two runs. */
  @Actor
  public void worker2(IIII_Result r) {
    r.r2 = claim("w2").size();
  }

  /** Counts the key's RUNNING runs as stored, and checks the older one is the one running. */
  @Arbiter
  public void check(IIII_Result r) {
    boolean olderRunning = running(older);
    r.r3 = (olderRunning ? 1 : 0) + (running(newer) ? 1 : 0);
    r.r4 = olderRunning ? 1 : 0;
  }

  private long insert(String input) {
    return store.insert(NewRun.of(RunRequest.of("agent", input).withSerialKey("key"))).id();
  }

  private boolean running(long id) {
    return store.find(id).map(RunRecord::status).orElseThrow() == RunStatus.RUNNING;
  }

  private List<RunRecord> claim(String owner) {
    return store.claim(new ClaimRequest(owner, QUOTAS, 2, LEASE));
  }
}
