package dev.agentrunner;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;

/**
 * Runs agents concurrently on virtual threads and keeps their run history in a
 * {@link dev.agentrunner.spi.RunStore}.
 *
 * <pre>{@code
 * try (AgentRunner runner = AgentRunner.builder()
 *     .agent("scanner", ctx -> AgentResult.of("3 findings", Usage.of(1200, 340, 4_100)))
 *     .build()) {
 *   RunHandle handle = runner.submit(RunRequest.of("scanner", "{\"repo\":\"acme\"}"));
 *   RunRecord done = handle.await(Duration.ofSeconds(30));
 * }
 * }</pre>
 *
 * <p>A submit writes the run as QUEUED and returns its id from the insert itself; a dispatcher
 * claims queued runs from the store as permits free up (a local submit wakes it at once, runs
 * submitted by other processes are found by polling) and executes each on its own virtual
 * thread, within the global and per-agent concurrency limits.
 *
 * <p>Thread-safety: thread-safe. One runner is meant to be shared by the whole application.
 */
public interface AgentRunner extends AutoCloseable {

  /** A builder for a runner. */
  static AgentRunnerBuilder builder() {
    return new AgentRunnerBuilder();
  }

  /**
   * Stores a run as QUEUED and returns a handle carrying the id of the row written. When this
   * returns, the run is stored; it will be executed by this runner or another one sharing the
   * store. A request whose idempotency key is already stored returns that run's handle and
   * stores nothing.
   *
   * <p>With a serial key, the run waits for the key's earlier runs; the key's
   * {@link SerialKeyPolicy} decides what happens when it is busy.
   *
   * @throws UnknownAgentException if no agent of that name is registered (the message lists the
   *     known agents)
   * @throws SerialKeyBusyException if the key is busy and its policy is {@code REJECT}
   * @throws IllegalArgumentException if the input is larger than the runner's maximum
   * @throws RunnerClosedException if the runner is closing or closed; nothing was stored
   * @throws StoreException if the store failed; nothing was stored
   */
  RunHandle submit(RunRequest request);

  /** The names of the agents this runner can execute, sorted. */
  java.util.SortedSet<String> agents();

  /**
   * A handle on a run already stored (submitted earlier, by this runner or another process),
   * to await it. The id is not checked here: for an unknown id, {@link RunHandle#current()} and
   * {@link RunHandle#await} throw an {@link AgentRunnerException} and
   * {@link RunHandle#completion()} completes exceptionally.
   */
  RunHandle handle(long runId);

  /**
   * The schedules of this runner's store: recurring runs fired by whichever runner sees a fire
   * time first, exactly once per fire time.
   */
  Schedules schedules();

  /** The run with this id as stored now, if it exists. */
  Optional<RunRecord> get(long runId);

  /** A page of run history, newest first (see {@link RunQuery}). */
  Page<RunRecord> history(RunQuery query);

  /** The events of a run in the order they were written; empty for an unknown id. */
  List<RunEvent> events(long runId);

  /**
   * Cancels a run: a QUEUED run becomes CANCELLED at once; a RUNNING one is asked to stop (its
   * context reports {@link AgentContext#isCancelled()} and its thread is interrupted, also when
   * it runs in another process sharing the store) and ends CANCELLED.
   *
   * @return the run as stored after the request, or empty if there is no such run
   */
  Optional<RunRecord> cancel(long runId);

  /**
   * How many runs of {@code serialKey} (a conversation, say) wait QUEUED in the store, over all
   * processes sharing it.
   */
  long queueDepth(String serialKey);

  /** Counts by agent and status over the whole store, in one consistent snapshot. */
  RunStats stats();

  /**
   * Deletes the runs that ended before {@code finishedBefore}, with their events, from the store
   * (for every process sharing it); a QUEUED or RUNNING run is never deleted. The default
   * in-memory store keeps every run until it is purged, so a long-lived host on it should purge
   * now and then, say from a scheduled task.
   *
   * @return how many runs were deleted
   * @throws NullPointerException if {@code finishedBefore} is null
   */
  int purge(Instant finishedBefore);

  /** The runner's state now; never throws, even when the store is unreachable. */
  Health health();

  /**
   * Stops gracefully, waiting up to the builder's {@code shutdownTimeout} (see
   * {@link #close(Duration)}).
   */
  @Override
  void close();

  /**
   * Stops gracefully: new submits throw {@link RunnerClosedException}; the dispatcher stops
   * claiming; running agents get up to {@code timeout} to finish; those still running are then
   * cancelled (and end CANCELLED); claimed runs that never started go back to QUEUED; finally
   * the store is closed if the runner created it (a store given to the builder stays open).
   * Calling it again waits for the first close and has no further effect.
   *
   * @throws IllegalArgumentException if {@code timeout} is negative
   */
  void close(Duration timeout);
}
