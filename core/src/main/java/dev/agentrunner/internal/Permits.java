package dev.agentrunner.internal;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The runner's concurrency limits as counters of permits held: one global pool and one pool per
 * agent. A run holds one permit of each from before its claim until it ends. Permits are taken
 * by compare-and-set before the store is asked for runs (by a submit that may start its run at
 * once, or by the dispatcher for a batch), so two takers can never both get the last permit and
 * the limits hold without a lock; whatever a claim did not use is given back right after it.
 *
 * <p>An agent whose limit is at least the global one is not counted at all: a run holds a global
 * permit before it takes its agent's, so that agent's count could never reach its limit, and
 * skipping it spares every run two writes to a counter all starting and ending threads share.
 *
 * <p>Public only for the jcstress harness {@code PermitsRaceTest}; not part of the API (this
 * package is not exported).
 *
 * <p>Thread-safety: thread-safe and lock-free.
 */
public final class Permits {
  private final int globalLimit;
  private final AtomicInteger global = new AtomicInteger();
  private final Map<String, Pool> agents;

  /** One agent's limit and the permits its runs hold. */
  private record Pool(int limit, AtomicInteger held) {}

  /** The pool of every agent whose limit the global one makes unreachable; never counted. */
  private static final Pool UNBOUNDED = new Pool(Integer.MAX_VALUE, null);

  /** Pools with these limits, all permits free. */
  public Permits(int globalLimit, Map<String, Integer> agentLimits) {
    this.globalLimit = globalLimit;
    Map<String, Pool> pools = new HashMap<>();
    agentLimits.forEach((agent, limit) -> pools.put(agent,
        limit >= globalLimit ? UNBOUNDED : new Pool(limit, new AtomicInteger())));
    this.agents = Map.copyOf(pools);
  }

  /** Takes one global permit and one of {@code agent}'s, or neither; true if taken. */
  public boolean tryTakeOne(String agent) {
    if (takeUpTo(global, globalLimit, 1) == 0) {
      return false;
    }
    Pool pool = agents.get(agent);
    if (pool != UNBOUNDED && takeUpTo(pool.held(), pool.limit(), 1) == 0) {
      global.decrementAndGet();
      return false;
    }
    return true;
  }

  /** Takes up to {@code wanted} global permits; returns how many it took. */
  int takeGlobal(int wanted) {
    return takeUpTo(global, globalLimit, wanted);
  }

  /** Takes up to {@code wanted} of {@code agent}'s permits; returns how many it took. */
  int takeAgent(String agent, int wanted) {
    Pool pool = agents.get(agent);
    return pool == UNBOUNDED ? wanted : takeUpTo(pool.held(), pool.limit(), wanted);
  }

  void giveGlobal(int n) {
    if (n > 0) {
      global.addAndGet(-n);
    }
  }

  void giveAgent(String agent, int n) {
    Pool pool = agents.get(agent);
    if (n > 0 && pool != UNBOUNDED) {
      pool.held().addAndGet(-n);
    }
  }

  /** Gives back the pair of permits one run held. */
  void giveOne(String agent) {
    giveAgent(agent, 1);
    giveGlobal(1);
  }

  /** {@code agent}'s permits free at this moment (a hint: another taker may get them first). */
  public int agentFree(String agent) {
    Pool pool = agents.get(agent);
    return pool == UNBOUNDED ? globalFree() : pool.limit() - pool.held().get();
  }

  /** Global permits free at this moment (a hint: another taker may get them first). */
  public int globalFree() {
    return globalLimit - global.get();
  }

  private static int takeUpTo(AtomicInteger held, int limit, int wanted) {
    while (true) {
      int now = held.get();
      int take = Math.min(wanted, limit - now);
      if (take <= 0) {
        return 0;
      }
      if (held.compareAndSet(now, now + take)) {
        return take;
      }
    }
  }
}
