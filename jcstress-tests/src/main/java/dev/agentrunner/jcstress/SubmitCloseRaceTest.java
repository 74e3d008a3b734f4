package dev.agentrunner.jcstress;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStatus;
import dev.agentrunner.RunnerClosedException;
import dev.agentrunner.memory.InMemoryRunStore;
import java.lang.ref.Cleaner;
import java.time.Duration;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * Invariant I9: a submit racing shutdown either returns an id whose run is stored, or throws
 * {@link RunnerClosedException} having stored nothing; never a silent loss.
 *
 * <p>Each state is a real {@link AgentRunner} over an {@link InMemoryRunStore} given to its
 * builder (so the runner leaves the store open for the arbiter). One actor submits, the other
 * closes the runner. Result: {@code r1} the submit's outcome (1 an id, 2
 * {@code RunnerClosedException}, 3 any other exception); {@code r2} how many runs the store holds
 * afterwards; {@code r3} the stored status of the returned id's run (0 none, 1 QUEUED,
 * 2 SUCCEEDED, 3 RUNNING, 4 other). After a graceful close the run is QUEUED (claimed runs that
 * never started are released) or SUCCEEDED (it ran), never left RUNNING.
 *
 * <p>Cost: building a runner starts two platform threads (dispatcher and timer), and jcstress
 * builds a whole stride of states before the actors run, then drops the unused ones at the end
 * of an iteration. So the gate runs this harness with small strides, and a {@link Cleaner}
 * closes the runner of a state that became unreachable without being raced, so that threads do
 * not pile up across iterations.
 */
@JCStressTest
@Outcome(id = {"1, 1, 1", "1, 1, 2"}, expect = Expect.ACCEPTABLE,
    desc = "submit won: it returned the id of a stored run")
@Outcome(id = "2, 0, 0", expect = Expect.ACCEPTABLE,
    desc = "close won: submit threw RunnerClosedException and stored nothing")
@Outcome(expect = Expect.FORBIDDEN,
    desc = "a lost, phantom or stuck run, or another exception (I9 broken)")
@State
public class SubmitCloseRaceTest {
  private static final Cleaner CLEANER = Cleaner.create();

  private final InMemoryRunStore store = InMemoryRunStore.create();
  private final AgentRunner runner = AgentRunner.builder()
      .store(store)
      .agent("agent", ctx -> AgentResult.of("done"))
      // Nothing comes from other processes: the dispatcher may sleep between local wake-ups.
      .pollInterval(Duration.ofMinutes(10))
      .leaseDuration(Duration.ofMinutes(10))
      .build();

  /**
   * Reachable only through this state, so it becomes phantom-reachable with it: then the
   * cleaner closes the runner (a no-op if the close actor already did).
   */
  private final Object cleanupToken = new Object();

  /** Registers the runner for closing once this state is dropped. */
  public SubmitCloseRaceTest() {
    CLEANER.register(cleanupToken, runner::close); // captures the runner, not this state
  }

  /** Submits a run. */
  @Actor
  public void submit(III_Result r) {
    try {
      long id = runner.submit(RunRequest.of("agent", "job")).id();
      r.r1 = 1;
      r.r3 = (int) id; // replaced by the run's status code in the arbiter
    } catch (RunnerClosedException e) {
      r.r1 = 2;
    } catch (RuntimeException e) {
      r.r1 = 3;
    }
  }

  /** Closes the runner. */
  @Actor
  public void close() {
    runner.close();
  }

  /** Counts the stored runs and reads the status of the one the submit named. */
  @Arbiter
  public void check(III_Result r) {
    r.r2 = store.query(RunQuery.all().limit(10)).items().size();
    r.r3 = r.r1 == 1 ? store.find(r.r3).map(SubmitCloseRaceTest::code).orElse(0) : 0;
  }

  private static int code(RunRecord run) {
    RunStatus status = run.status();
    return switch (status) {
      case QUEUED -> 1;
      case SUCCEEDED -> 2;
      case RUNNING -> 3;
      default -> 4;
    };
  }
}
