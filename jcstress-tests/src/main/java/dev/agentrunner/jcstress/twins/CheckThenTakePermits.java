package dev.agentrunner.jcstress.twins;

/**
 * Concurrency limits kept the naive way: plain counters, checked against the limit and then
 * incremented in separate steps. Two starters can both pass the check before either increments.
 *
 * <p>Thread-safety: not thread-safe, on purpose.
 */
final class CheckThenTakePermits {
  private final int globalLimit;
  private final int agentLimit;
  private int global;
  private int agent;

  CheckThenTakePermits(int globalLimit, int agentLimit) {
    this.globalLimit = globalLimit;
    this.agentLimit = agentLimit;
  }

  boolean tryTakeOne() {
    if (global >= globalLimit) {
      return false;
    }
    global++;
    if (agent >= agentLimit) {
      global--;
      return false;
    }
    agent++;
    return true;
  }

  int globalFree() {
    return globalLimit - global;
  }
}
