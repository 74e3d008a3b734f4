package dev.agentrunner;

/**
 * Callbacks on the life of runs executed or submitted by one runner. Every method has an empty
 * default, so implement only what you need.
 *
 * <p>Callbacks run on the runner's threads, right after the store committed the change they
 * report; keep them quick. A listener that throws is logged and otherwise ignored: it never
 * affects the run or the runner.
 *
 * <p>Thread-safety: callbacks arrive concurrently from many threads, so an implementation must
 * be thread-safe.
 */
public interface RunListener {

  /**
   * A run was stored by this runner's {@link AgentRunner#submit(RunRequest)}: QUEUED, or already
   * RUNNING when this runner had a free permit and started it at once ({@link #onStarted}
   * follows right after, on the same thread).
   */
  default void onSubmitted(RunRecord run) {}

  /** This runner claimed a run and is about to call its agent. */
  default void onStarted(RunRecord run) {}

  /** An agent emitted an event (see {@link AgentContext#emit(String, String)}). */
  default void onEvent(RunEvent event) {}

  /** A run executed by this runner reached a terminal status (or was queued again). */
  default void onFinished(RunRecord run) {}
}
