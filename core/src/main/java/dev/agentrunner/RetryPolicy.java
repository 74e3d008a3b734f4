package dev.agentrunner;

import dev.agentrunner.internal.Checks;
import java.time.Duration;
import java.util.Objects;
import java.util.function.Predicate;
import java.util.random.RandomGenerator;

/**
 * When a failed attempt is tried again, and after how long. A retried run goes back to QUEUED
 * with {@code notBefore} set to the end of its backoff, so any runner sharing the store may
 * take the next attempt; each attempt's error is kept as a {@code requeued} event.
 *
 * <pre>{@code
 * RetryPolicy.exponential(3, Duration.ofSeconds(1))          // 3 attempts: wait ~1 s, then ~2 s
 *     .withMaxDelay(Duration.ofSeconds(30))
 *     .retryOn(e -> e instanceof java.io.IOException)         // only these failures
 *     .retryTimeouts(true)                                    // a timed-out attempt too
 * }</pre>
 *
 * <p>The delay before attempt {@code n + 1} is {@code initialDelay × multiplier^(n-1)}, capped at
 * {@code maxDelay}, then spread by ±{@code jitter} (a fraction) so that runs failing together do
 * not come back together. Cancelled runs are never retried.
 *
 * <p>Thread-safety: immutable, provided the {@code retryOn} predicate is thread-safe.
 */
public final class RetryPolicy {
  private static final RetryPolicy NONE =
      new RetryPolicy(1, Duration.ZERO, 1.0, Duration.ZERO, 0.0, e -> false, false);

  /** The longest delay a policy may have: about a century (every store can add it to now). */
  public static final Duration MAX_DELAY = Duration.ofDays(36_500);

  private final int maxAttempts;
  private final Duration initialDelay;
  private final double multiplier;
  private final Duration maxDelay;
  private final double jitter;
  private final Predicate<? super Throwable> retryOn;
  private final boolean retryTimeouts;

  private RetryPolicy(int maxAttempts, Duration initialDelay, double multiplier,
      Duration maxDelay, double jitter, Predicate<? super Throwable> retryOn,
      boolean retryTimeouts) {
    this.maxAttempts = maxAttempts;
    this.initialDelay = initialDelay;
    this.multiplier = multiplier;
    this.maxDelay = maxDelay;
    this.jitter = jitter;
    this.retryOn = retryOn;
    this.retryTimeouts = retryTimeouts;
  }

  /** One attempt, no retry (the default of every agent). */
  public static RetryPolicy none() {
    return NONE;
  }

  /**
   * Up to {@code maxAttempts} attempts in all, the delay doubling from {@code initialDelay}, with
   * 20% jitter, at most 5 minutes apart; every exception is retried, timeouts are not.
   *
   * @throws IllegalArgumentException if {@code maxAttempts} is below 1 or the delay is negative
   */
  public static RetryPolicy exponential(int maxAttempts, Duration initialDelay) {
    Checks.positive(maxAttempts, "maxAttempts");
    Objects.requireNonNull(initialDelay, "initialDelay");
    if (initialDelay.isNegative()) {
      throw new IllegalArgumentException("initialDelay must not be negative, was " + initialDelay);
    }
    if (initialDelay.compareTo(MAX_DELAY) > 0) {
      throw new IllegalArgumentException("initialDelay must be at most " + MAX_DELAY + ", was "
          + initialDelay);
    }
    Duration cap = Duration.ofMinutes(5);
    return new RetryPolicy(maxAttempts, initialDelay, 2.0,
        initialDelay.compareTo(cap) > 0 ? initialDelay : cap, 0.2, e -> true, false);
  }

  /** This policy with another growth factor per attempt (at least 1). */
  public RetryPolicy withMultiplier(double multiplier) {
    if (!(multiplier >= 1.0) || Double.isInfinite(multiplier)) {
      throw new IllegalArgumentException("multiplier must be a finite number >= 1, was "
          + multiplier);
    }
    return new RetryPolicy(maxAttempts, initialDelay, multiplier, maxDelay, jitter, retryOn,
        retryTimeouts);
  }

  /** This policy with the delay capped at {@code maxDelay} (not below the initial delay). */
  public RetryPolicy withMaxDelay(Duration maxDelay) {
    Objects.requireNonNull(maxDelay, "maxDelay");
    if (maxDelay.compareTo(initialDelay) < 0) {
      throw new IllegalArgumentException("maxDelay must be at least the initial delay ("
          + initialDelay + "), was " + maxDelay);
    }
    if (maxDelay.compareTo(MAX_DELAY) > 0) {
      throw new IllegalArgumentException("maxDelay must be at most " + MAX_DELAY + ", was "
          + maxDelay);
    }
    return new RetryPolicy(maxAttempts, initialDelay, multiplier, maxDelay, jitter, retryOn,
        retryTimeouts);
  }

  /** This policy with another jitter, a fraction from 0 (none) to 1 (±100%). */
  public RetryPolicy withJitter(double jitter) {
    if (!(jitter >= 0.0 && jitter <= 1.0)) {
      throw new IllegalArgumentException("jitter must be between 0 and 1, was " + jitter);
    }
    return new RetryPolicy(maxAttempts, initialDelay, multiplier, maxDelay, jitter, retryOn,
        retryTimeouts);
  }

  /** This policy retrying only failures that {@code retryOn} accepts. */
  public RetryPolicy retryOn(Predicate<? super Throwable> retryOn) {
    return new RetryPolicy(maxAttempts, initialDelay, multiplier, maxDelay, jitter,
        Objects.requireNonNull(retryOn, "retryOn"), retryTimeouts);
  }

  /** This policy retrying (or not) attempts that timed out. */
  public RetryPolicy retryTimeouts(boolean retryTimeouts) {
    return new RetryPolicy(maxAttempts, initialDelay, multiplier, maxDelay, jitter, retryOn,
        retryTimeouts);
  }

  /** The most attempts a run may use, the first included. */
  public int maxAttempts() {
    return maxAttempts;
  }

  /**
   * Whether the failure that ended attempt {@code attempt} of a run allowed
   * {@code maxAttemptsOfRun} attempts is retried: {@code failure} is the agent's exception, or
   * null for a timeout.
   */
  public boolean shouldRetry(int attempt, int maxAttemptsOfRun, Throwable failure) {
    if (attempt >= maxAttemptsOfRun) {
      return false;
    }
    return failure == null ? retryTimeouts : retryOn.test(failure);
  }

  /** The backoff after attempt {@code attempt} failed, with jitter drawn from {@code random}. */
  public Duration delayAfter(int attempt, RandomGenerator random) {
    Checks.positive(attempt, "attempt");
    double base = initialDelay.toNanos() * Math.pow(multiplier, attempt - 1.0);
    double capped = Math.min(base, (double) maxDelay.toNanos());
    double spread = jitter == 0 ? 1.0 : 1.0 + jitter * (2 * random.nextDouble() - 1);
    long nanos = (long) Math.max(0, capped * spread); // saturates at Long.MAX_VALUE
    return nanos > MAX_DELAY.toNanos() ? MAX_DELAY : Duration.ofNanos(nanos);
  }

  @Override
  public String toString() {
    return maxAttempts == 1 ? "RetryPolicy[none]"
        : "RetryPolicy[maxAttempts=" + maxAttempts + ", initialDelay=" + initialDelay
            + ", multiplier=" + multiplier + ", maxDelay=" + maxDelay + ", jitter=" + jitter
            + ", retryTimeouts=" + retryTimeouts + "]";
  }
}
