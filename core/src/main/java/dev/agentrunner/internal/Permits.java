package dev.agentrunner.internal;

import dev.agentrunner.AgentRunnerBuilder;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The runner's concurrency limits as counters of permits held: one global pool and one pool per
 * agent. A run holds one permit of each from before its claim until its agent returns. Permits
 * are taken by compare-and-set before the store is asked for runs (by a submit that may start its
 * run at once, or by the dispatcher for a batch), so two takers can never both get the last
 * permit and the limits hold without a lock; whatever a claim did not use is given back right
 * after it.
 *
 * <p>With its global permit a run also takes a place: the runner holds it in the store (claimed,
 * RUNNING) until its outcome is stored. The agent's permits go back as soon as it returns
 * ({@link #executionEnded}), so the next claim need not wait for the outcome's write, which on a
 * SQL store is a batch of finishes in one transaction; the place goes back once the write is done
 * ({@link #outcomeStored}). There are twice as many places as global permits: the runner holds at
 * most {@code 2 × limit} runs in the store, at most {@code limit} of them executing and the rest
 * being written. (An outcome the store failed to take gives its place back too; it waits for a
 * retry uncounted, as before.)
 *
 * <p>An agent whose limit is at least the global one is not counted at all: a run holds a global
 * permit before it takes its agent's, so that agent's count could never reach its limit, and
 * skipping it spares every run two writes to a counter all starting and ending threads share.
 * For the same reason the global permits and the places are one {@code long} (permits in the low
 * half, places in the high): taking both is one compare-and-set.
 *
 * <p>Public only for the jcstress harnesses {@code PermitsRaceTest} and
 * {@code PermitPlacesRaceTest}; not part of the API (this package is not exported).
 *
 * <p>Thread-safety: thread-safe and lock-free.
 */
public final class Permits {
  private final int globalLimit;
  private final int placeLimit;
  /** Global permits held (low 32 bits) and places held (high 32 bits). */
  private final AtomicLong global = new AtomicLong();
  private final Map<String, Pool> agents;

  /** One agent's limit and the permits its runs hold. */
  private record Pool(int limit, AtomicInteger held) {}

  /** The pool of every agent whose limit the global one makes unreachable; never counted. */
  private static final Pool UNBOUNDED = new Pool(Integer.MAX_VALUE, null);

  /** Pools with these limits, all permits free. */
  public Permits(int globalLimit, Map<String, Integer> agentLimits) {
    if (globalLimit <= 0 || globalLimit > AgentRunnerBuilder.MAX_CONCURRENCY) {
      throw new IllegalArgumentException("globalLimit must be in 1.."
          + AgentRunnerBuilder.MAX_CONCURRENCY + ", was " + globalLimit);
    }
    this.globalLimit = globalLimit;
    this.placeLimit = 2 * globalLimit;
    Map<String, Pool> pools = new HashMap<>();
    agentLimits.forEach((agent, limit) -> pools.put(agent,
        limit >= globalLimit ? UNBOUNDED : new Pool(limit, new AtomicInteger())));
    this.agents = Map.copyOf(pools);
  }

  /**
   * Takes one global permit with its place and one of {@code agent}'s permits, or none; true if
   * taken.
   */
  public boolean tryTakeOne(String agent) {
    if (takeGlobal(1) == 0) {
      return false;
    }
    Pool pool = agents.get(agent);
    if (pool != UNBOUNDED && takeUpTo(pool.held(), pool.limit(), 1) == 0) {
      giveGlobal(1);
      return false;
    }
    return true;
  }

  /** Takes up to {@code wanted} global permits, each with a place; returns how many it took. */
  int takeGlobal(int wanted) {
    while (true) {
      long now = global.get();
      int take = Math.min(wanted,
          Math.min(globalLimit - permitsIn(now), placeLimit - placesIn(now)));
      if (take <= 0) {
        return 0;
      }
      if (global.compareAndSet(now, now + both(take))) {
        return take;
      }
    }
  }

  /** Takes up to {@code wanted} of {@code agent}'s permits; returns how many it took. */
  int takeAgent(String agent, int wanted) {
    Pool pool = agents.get(agent);
    return pool == UNBOUNDED ? wanted : takeUpTo(pool.held(), pool.limit(), wanted);
  }

  /** Gives back {@code n} global permits with their places (taken and not used). */
  void giveGlobal(int n) {
    if (n > 0) {
      global.addAndGet(-both(n));
    }
  }

  void giveAgent(String agent, int n) {
    Pool pool = agents.get(agent);
    if (n > 0 && pool != UNBOUNDED) {
      pool.held().addAndGet(-n);
    }
  }

  /** Gives back the permits and the place of a run that did not start, or whose end is stored. */
  void giveOne(String agent) {
    giveAgent(agent, 1);
    giveGlobal(1);
  }

  /** A run's agent returned: gives back its permits, not its place ({@link #outcomeStored}). */
  public void executionEnded(String agent) {
    giveAgent(agent, 1);
    global.decrementAndGet();
  }

  /** Gives back the place of a run whose permits {@link #executionEnded} gave back. */
  public void outcomeStored() {
    global.addAndGet(-(1L << 32));
  }

  /** {@code agent}'s permits free at this moment (a hint: another taker may get them first). */
  public int agentFree(String agent) {
    Pool pool = agents.get(agent);
    return pool == UNBOUNDED ? globalFree() : pool.limit() - pool.held().get();
  }

  /** Global permits free at this moment (a hint: another taker may get them first). */
  public int globalFree() {
    return globalLimit - permitsIn(global.get());
  }

  /**
   * How many runs could be claimed at this moment: global permits free, and no more than places
   * free (a hint, like {@link #globalFree}).
   */
  public int claimable() {
    long now = global.get();
    return Math.min(globalLimit - permitsIn(now), placeLimit - placesIn(now));
  }

  private static int permitsIn(long held) {
    return (int) held;
  }

  private static int placesIn(long held) {
    return (int) (held >>> 32);
  }

  /** {@code n} permits and {@code n} places, as one addend of {@link #global}. */
  private static long both(int n) {
    return ((long) n << 32) + n;
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
