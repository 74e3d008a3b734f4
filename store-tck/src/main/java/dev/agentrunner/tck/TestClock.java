package dev.agentrunner.tck;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A clock that stands still until a test moves it, so that leases, {@code notBefore} and
 * timestamps can be asserted exactly and no test waits on the wall clock.
 *
 * <p>It starts at {@link #START}, a whole second, and the suite only moves it in whole
 * milliseconds, so a store that keeps millisecond precision round-trips every instant exactly.
 *
 * <p>Thread-safety: thread-safe. Clocks derived with {@link #withZone(ZoneId)} share this clock's
 * time, so moving one moves all of them.
 */
public final class TestClock extends Clock {

  /** Where every new clock starts: 2025-01-01T00:00:00Z. */
  public static final Instant START = Instant.parse("2025-01-01T00:00:00Z");

  private final AtomicReference<Instant> now;
  private final ZoneId zone;

  /** A clock at {@link #START} in UTC. */
  public TestClock() {
    this(START);
  }

  /** A clock at {@code start} in UTC. */
  public TestClock(Instant start) {
    this(new AtomicReference<>(Objects.requireNonNull(start, "start")), ZoneOffset.UTC);
  }

  private TestClock(AtomicReference<Instant> now, ZoneId zone) {
    this.now = now;
    this.zone = zone;
  }

  @Override
  public ZoneId getZone() {
    return zone;
  }

  @Override
  public Clock withZone(ZoneId zone) {
    return new TestClock(now, Objects.requireNonNull(zone, "zone"));
  }

  @Override
  public Instant instant() {
    return now.get();
  }

  @Override
  public long millis() {
    return now.get().toEpochMilli();
  }

  /**
   * Moves the clock forward by {@code step}.
   *
   * @return the new instant
   * @throws IllegalArgumentException if {@code step} is negative (time only moves forward here;
   *     use {@link #set(Instant)} to go back on purpose)
   */
  public Instant advance(Duration step) {
    Objects.requireNonNull(step, "step");
    if (step.isNegative()) {
      throw new IllegalArgumentException("step must not be negative, was " + step);
    }
    return now.updateAndGet(t -> t.plus(step));
  }

  /** Sets the clock to {@code instant}. */
  public void set(Instant instant) {
    now.set(Objects.requireNonNull(instant, "instant"));
  }

  @Override
  public boolean equals(Object o) {
    // Two clocks are equal when they share their time source and zone, as Clock asks.
    return o instanceof TestClock other && other.now == now && other.zone.equals(zone);
  }

  @Override
  public int hashCode() {
    return System.identityHashCode(now) * 31 + zone.hashCode();
  }

  @Override
  public String toString() {
    return "TestClock[" + now.get() + ", " + zone + "]";
  }
}
