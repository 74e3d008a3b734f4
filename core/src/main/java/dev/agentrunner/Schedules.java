package dev.agentrunner;

import java.util.List;
import java.util.Optional;

/**
 * The named schedules of the store a runner uses: shared by every runner on that store, fired
 * by whichever runner sees a fire time first, exactly once per fire time.
 *
 * <p>Every method is safe to call concurrently with the others and with firing, from any
 * runner: each change is a compare-and-set on the stored schedule, retried on conflict, so a
 * trigger racing an update neither throws nor fires twice.
 *
 * <p>Thread-safety: thread-safe.
 */
public interface Schedules {

  /**
   * Creates the schedule, or replaces the spec of the one with that name. A new schedule's first
   * fire time is computed from now; an update keeps the next fire time when the timing did not
   * change (only the input or agent did), and recomputes it from now when it did. A paused
   * schedule stays paused.
   *
   * @throws UnknownAgentException if this runner has no agent of the spec's name
   */
  Schedule upsert(ScheduleSpec spec);

  /**
   * Runs the schedule's agent now, once, outside its timing (the next fire time is unchanged).
   *
   * @throws UnknownScheduleException if there is no schedule of that name
   */
  RunHandle trigger(String name);

  /**
   * Stops firing until {@link #resume}.
   *
   * @throws UnknownScheduleException if there is no schedule of that name
   */
  Schedule pause(String name);

  /**
   * Fires again, from the first fire time after now (fire times during the pause are skipped).
   *
   * @throws UnknownScheduleException if there is no schedule of that name
   */
  Schedule resume(String name);

  /** Deletes the schedule; runs it already enqueued stay. Returns whether it existed. */
  boolean delete(String name);

  /** The schedule of that name, if any. */
  Optional<Schedule> get(String name);

  /** Every schedule, by name. */
  List<Schedule> list();
}
