package dev.agentrunner.jcstress;

import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.memory.InMemoryRunStore;
import dev.agentrunner.spi.NewRun;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIII_Result;

/**
 * Invariant I1: every insert gets a unique id, and it is the id of the row that insert wrote.
 *
 * <p>Two actors insert into one {@link InMemoryRunStore} at once, each with its own input. The
 * arbiter reads each returned id back with {@code find} and checks that the row holds that
 * actor's input. Result: {@code r1, r2} the ids the actors got; {@code r3, r4} 1 when the row
 * behind the id holds the actor's own input, else 0.
 *
 * <p>The broken twin {@link dev.agentrunner.jcstress.twins.MaxIdReadBackTwinTest} runs the same
 * shape over a store that reads its id back with {@code MAX(id)} (seed VO-335).
 */
@JCStressTest
@Outcome(id = {"1, 2, 1, 1", "2, 1, 1, 1"}, expect = Expect.ACCEPTABLE,
    desc = "distinct ids, each naming the row its own insert wrote")
@Outcome(expect = Expect.FORBIDDEN,
    desc = "an insert got a shared id or the id of another row (I1 broken)")
@State
public class RunIdRaceTest {
  private final InMemoryRunStore store = InMemoryRunStore.create();

  /** Inserts the first run. */
  @Actor
  public void first(IIII_Result r) {
    r.r1 = (int) store.insert(NewRun.of(RunRequest.of("agent", "first"))).id();
  }

  /** Inserts the second run. */
  @Actor
  public void second(IIII_Result r) {
    r.r2 = (int) store.insert(NewRun.of(RunRequest.of("agent", "second"))).id();
  }

  /** Reads each id back: the row must hold the input of the actor that got the id. */
  @Arbiter
  public void check(IIII_Result r) {
    r.r3 = holds(r.r1, "first");
    r.r4 = holds(r.r2, "second");
  }

  private int holds(long id, String input) {
    return store.find(id).map(RunRecord::input).filter(input::equals).isPresent() ? 1 : 0;
  }
}
