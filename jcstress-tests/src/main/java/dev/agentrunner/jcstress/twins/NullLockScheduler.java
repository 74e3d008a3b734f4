package dev.agentrunner.jcstress.twins;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.locks.Lock;

/**
 * The scheduler of seed VO-335 ({@code SchedulerManager}): firing a due job and updating a job
 * are each a read-modify-write of the job, meant to be guarded by a lock that the constructor
 * never created. The guard tolerates the missing lock (as the seed's callers did once they stopped
 * crashing on it), so nothing excludes anything:
 *
 * <ul>
 *   <li>an update that read the job before a fire advanced it writes the old fire time back, and
 *       the next poll fires that time again; or a fire that read the job before the update writes
 *       the old input back, and the update is lost;
 *   <li>two polls that both read the job before either advanced it both fire it.
 * </ul>
 *
 * <p>Fired runs carry no idempotency key: the lock was all that stood between a fire time and a
 * second run. The maps are concurrent so that the only bug is the missing mutual exclusion, not a
 * corrupt map.
 *
 * <p>Thread-safety: broken on purpose.
 */
final class NullLockScheduler {

  /** A job: what to run and when next. */
  record Job(String input, Instant nextFireAt, Duration every) {}

  /** A run the scheduler enqueued. */
  record FiredRun(String job, Instant fireAt, String input) {}

  private final Map<String, Job> jobs = new ConcurrentHashMap<>();
  private final Queue<FiredRun> runs = new ConcurrentLinkedQueue<>();
  // Never initialised: the bug.
  private Lock lock;

  /** A scheduler with one job. */
  NullLockScheduler(String name, Job job) {
    jobs.put(name, job);
  }

  /** Enqueues a run for every job due at {@code now} and moves the job to its next time. */
  void fireDue(Instant now) {
    withLock(() -> jobs.forEach((name, job) -> {
      if (!job.nextFireAt().isAfter(now)) {
        runs.add(new FiredRun(name, job.nextFireAt(), job.input()));
        jobs.put(name, new Job(job.input(), job.nextFireAt().plus(job.every()), job.every()));
      }
    }));
  }

  /** Replaces a job's input, keeping its timing. */
  void update(String name, String input) {
    withLock(() -> {
      Job job = jobs.get(name);
      jobs.put(name, new Job(input, job.nextFireAt(), job.every()));
    });
  }

  Job job(String name) {
    return jobs.get(name);
  }

  List<FiredRun> runs() {
    return List.copyOf(runs);
  }

  private void withLock(Runnable action) {
    if (lock != null) { // "graceful" for an instance without a lock: no exclusion at all
      lock.lock();
    }
    try {
      action.run();
    } finally {
      if (lock != null) {
        lock.unlock();
      }
    }
  }
}
