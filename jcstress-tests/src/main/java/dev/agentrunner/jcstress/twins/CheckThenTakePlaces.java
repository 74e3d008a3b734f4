package dev.agentrunner.jcstress.twins;

/**
 * Permits and places kept the naive way: plain counters, both checked against their limits and
 * then incremented in separate steps. Two starters can both pass the check before either
 * increments.
 *
 * <p>Thread-safety: not thread-safe, on purpose.
 */
final class CheckThenTakePlaces {
  private final int permitLimit;
  private final int placeLimit;
  private int permits;
  private int places;

  /** {@code limit} permits and twice as many places, {@code ended} runs holding a place. */
  CheckThenTakePlaces(int limit, int ended) {
    this.permitLimit = limit;
    this.placeLimit = 2 * limit;
    this.places = ended;
  }

  boolean tryTakeOne() {
    if (permits >= permitLimit || places >= placeLimit) {
      return false;
    }
    permits++;
    places++;
    return true;
  }

  int claimable() {
    return Math.min(permitLimit - permits, placeLimit - places);
  }
}
