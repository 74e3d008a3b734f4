package dev.agentrunner.jcstress.twins;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.Lock;

/**
 * The scheduler bug of seed VO-335: a check-then-act ("is a run of this serial key RUNNING? if
 * not, start the oldest") meant to be guarded by a lock that the constructor never created. The
 * guard tolerates the missing lock (as the seed's "graceful handling of instances without locks"
 * did), so the check and the act race: two claimers both see the key free and both start a run.
 *
 * <p>The maps are concurrent so that the only bug is the missing mutual exclusion, not a corrupt
 * map.
 *
 * <p>Thread-safety: broken on purpose.
 */
final class NullLockSerialQueue {
  static final String QUEUED = "QUEUED";
  static final String RUNNING = "RUNNING";

  private final List<Long> queueOrder;
  private final Map<Long, String> status = new ConcurrentHashMap<>();
  private final Map<String, Long> runningByKey = new ConcurrentHashMap<>();
  private final String key;
  // Never initialised: the bug.
  private Lock lock;

  /** Queues {@code ids}, oldest first, all of one serial key. */
  NullLockSerialQueue(String key, List<Long> ids) {
    this.key = key;
    this.queueOrder = List.copyOf(ids);
    ids.forEach(id -> status.put(id, QUEUED));
  }

  /** Starts the oldest QUEUED run of the key unless one is RUNNING; returns what it started. */
  List<Long> claim(int limit) {
    List<Long> started = new ArrayList<>();
    withLock(() -> {
      for (long id : queueOrder) {
        if (started.size() >= limit || runningByKey.containsKey(key)) {
          return; // check: the key is busy
        }
        if (QUEUED.equals(status.get(id))) {
          status.put(id, RUNNING); // act: start it
          runningByKey.put(key, id);
          started.add(id);
        }
      }
    });
    return started;
  }

  /** The stored status of a run. */
  String status(long id) {
    return status.get(id);
  }

  private void withLock(Runnable action) {
    if (lock != null) { // "graceful" for instances without a lock: no exclusion at all
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
