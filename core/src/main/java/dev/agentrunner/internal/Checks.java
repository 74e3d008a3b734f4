package dev.agentrunner.internal;

import java.time.Duration;
import java.util.Objects;

/** Argument checks shared by the API types; every message names the parameter and the value. */
public final class Checks {
  /** The longest agent name, serial key or idempotency key accepted. */
  public static final int MAX_NAME_LENGTH = 128;

  private Checks() {}

  public static long notNegative(long value, String name) {
    if (value < 0) {
      throw new IllegalArgumentException(name + " must not be negative, was " + value);
    }
    return value;
  }

  public static int positive(int value, String name) {
    if (value <= 0) {
      throw new IllegalArgumentException(name + " must be positive, was " + value);
    }
    return value;
  }

  public static Duration positive(Duration value, String name) {
    Objects.requireNonNull(value, name);
    if (value.isNegative() || value.isZero()) {
      throw new IllegalArgumentException(name + " must be positive, was " + value);
    }
    return value;
  }

  /**
   * A name (agent, serial key, idempotency key): 1 to 128 characters, not blank, no control
   * characters, since it ends up in logs, URLs and unique indexes.
   */
  public static String name(String value, String name) {
    Objects.requireNonNull(value, name);
    if (value.isBlank()) {
      throw new IllegalArgumentException(name + " must not be blank, was \"" + value + "\"");
    }
    if (value.length() > MAX_NAME_LENGTH) {
      throw new IllegalArgumentException(
          name + " must be at most " + MAX_NAME_LENGTH + " characters, was " + value.length()
              + " (\"" + value.substring(0, 32) + "…\")");
    }
    for (int i = 0; i < value.length(); i++) {
      if (Character.isISOControl(value.charAt(i))) {
        throw new IllegalArgumentException(
            name + " must not contain control characters, found U+"
                + String.format("%04X", (int) value.charAt(i)) + " at index " + i);
      }
    }
    return value;
  }
}
