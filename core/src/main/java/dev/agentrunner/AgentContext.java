package dev.agentrunner;

import java.time.Instant;
import java.util.Optional;

/**
 * What an agent knows about the run it performs, and how it reports back.
 *
 * <p>Thread-safety: thread-safe; an agent may hand its context to threads it starts. The context
 * is valid only while the attempt runs: after the attempt ended, {@link #emit} and
 * {@link #reportUsage} are ignored.
 */
public interface AgentContext {

  /** The run's id, as returned by {@link RunHandle#id()}. */
  long runId();

  /** The agent's name. */
  String agent();

  /** The input the run was submitted with. */
  String input();

  /** The attempt number, from 1. */
  int attempt();

  /** The run's serial key, if it has one. */
  Optional<String> serialKey();

  /** When the attempt times out, if the agent has a timeout. */
  Optional<Instant> deadline();

  /**
   * Whether the run was cancelled, timed out or the runner is stopping. The agent should end
   * its work soon after this turns true; its thread is also interrupted.
   */
  boolean isCancelled();

  /**
   * Records an event of this run (progress, a tool call, a partial answer). Events are stored
   * with the run and visible through {@link AgentRunner#events(long)}.
   *
   * @param type a short name for the kind of event: 1 to 128 characters, no control characters
   * @param data the event's payload (often JSON); never null
   * @throws IllegalArgumentException if {@code type} is not a valid name
   */
  void emit(String type, String data);

  /**
   * Adds usage consumed so far (for example, per model call). It is summed with the usage of the
   * returned {@link AgentResult} and stored with the run, also when the run fails.
   */
  void reportUsage(Usage usage);
}
