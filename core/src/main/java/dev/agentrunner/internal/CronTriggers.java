package dev.agentrunner.internal;

import java.time.Instant;
import java.time.ZoneId;
import java.util.Optional;

/**
 * Cron expressions, through cron-utils (an optional dependency): parsed with the Unix
 * definition. The library is touched only inside {@link Lib}, so applications without cron
 * schedules need not ship it.
 *
 * <p>Thread-safety: thread-safe (stateless; the parser is immutable).
 */
public final class CronTriggers {
  private CronTriggers() {}

  /**
   * Checks a cron expression.
   *
   * @throws IllegalArgumentException naming the expression and the problem
   * @throws IllegalStateException if cron-utils is not on the class path
   */
  public static void validate(String expression) {
    lib().parse(expression);
  }

  /** The first fire time strictly after {@code after}, if the expression has one. */
  public static Optional<Instant> next(String expression, ZoneId zone, Instant after) {
    return lib().next(expression, zone, after);
  }

  private static Lib lib() {
    try {
      return Lib.INSTANCE;
    } catch (NoClassDefFoundError e) {
      throw new IllegalStateException("cron schedules need com.cronutils:cron-utils (9.2.1 or "
          + "newer) on the class path; add it to your application's dependencies", e);
    }
  }

  /** Everything that touches cron-utils; loaded on first use. */
  private static final class Lib {
    static final Lib INSTANCE = new Lib();

    private final com.cronutils.parser.CronParser parser = new com.cronutils.parser.CronParser(
        com.cronutils.model.definition.CronDefinitionBuilder.instanceDefinitionFor(
            com.cronutils.model.CronType.UNIX));

    com.cronutils.model.Cron parse(String expression) {
      try {
        return parser.parse(expression).validate();
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(
            "cron expression \"" + expression + "\" is not valid: " + e.getMessage(), e);
      }
    }

    Optional<Instant> next(String expression, ZoneId zone, Instant after) {
      return com.cronutils.model.time.ExecutionTime.forCron(parse(expression))
          .nextExecution(after.atZone(zone))
          .map(t -> t.toInstant());
    }
  }
}
