package dev.agentrunner.jcstress.twins;

/**
 * Counts in stripes, as the runner's stats recorder keeps them, but read by taking each
 * stripe's monitor in turn: every stripe is read whole, yet the sum mixes moments, so a run
 * started on an early stripe and finished on a later one can be seen finished and never started.
 *
 * <p>Thread-safety: each stripe is guarded; the sum is not one moment. That is the bug.
 */
final class StripeByStripeSum {
  static final int STRIPES = 16;

  private static final class Stripe {
    long running;
    long succeeded;
  }

  private final Stripe[] stripes = new Stripe[STRIPES];

  StripeByStripeSum() {
    for (int i = 0; i < STRIPES; i++) {
      stripes[i] = new Stripe();
    }
  }

  void started(int stripe) {
    Stripe s = stripes[stripe];
    synchronized (s) {
      s.running++;
    }
  }

  void succeeded(int stripe) {
    Stripe s = stripes[stripe];
    synchronized (s) {
      s.running--;
      s.succeeded++;
    }
  }

  /** Running and succeeded, each stripe read under its own monitor, one after the other. */
  long[] sum() {
    long running = 0;
    long succeeded = 0;
    for (Stripe s : stripes) {
      synchronized (s) {
        running += s.running;
        succeeded += s.succeeded;
      }
    }
    return new long[] {running, succeeded};
  }
}
