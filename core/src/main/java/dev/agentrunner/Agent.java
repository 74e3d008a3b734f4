package dev.agentrunner;

/**
 * An agent: the work one run performs. Called on a virtual thread, once per attempt.
 *
 * <p>An agent should respond to cancellation and timeouts: both interrupt its thread and make
 * {@link AgentContext#isCancelled()} true. Blocking calls that honour interruption end promptly;
 * long computations should check {@code isCancelled()} now and then. An agent that ignores both
 * is abandoned after a grace period, and whatever it returns later is discarded.
 *
 * <p>Thread-safety: the runner calls one instance from many threads at once (one per running
 * run), so an implementation must be thread-safe; per-run state belongs in local variables.
 */
@FunctionalInterface
public interface Agent {

  /**
   * Performs one attempt of a run.
   *
   * @param context the run's id, input, attempt and deadline, and ways to report back
   * @return the output and usage; the run ends SUCCEEDED with it
   * @throws Exception any failure: the run ends FAILED with the exception's message (or, under a
   *     retry policy, is queued again)
   */
  AgentResult execute(AgentContext context) throws Exception;
}
