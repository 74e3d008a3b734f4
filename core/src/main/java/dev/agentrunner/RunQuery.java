package dev.agentrunner;

import dev.agentrunner.internal.Checks;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.EnumSet;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.Set;

/**
 * A filter over run history, newest first, read in pages of {@link #limit()} runs.
 *
 * <pre>{@code
 * Page<RunRecord> page = runner.history(RunQuery.agent("scanner").status(RunStatus.FAILED).limit(50));
 * Page<RunRecord> next = runner.history(RunQuery.agent("scanner").status(RunStatus.FAILED).limit(50)
 *     .after(page.nextCursor().orElseThrow()));
 * }</pre>
 *
 * <p>Paging is by keyset (run id), not offset: rows inserted while a client pages never shift a
 * page, and every row that existed when paging started is seen exactly once.
 *
 * <p>Thread-safety: an immutable value.
 *
 * @param agent only runs of this agent; null for every agent
 * @param serialKey only runs with this serial key; null for any
 * @param statuses only runs in one of these statuses; empty for every status
 * @param limit the page size, 1 to {@value #MAX_LIMIT}
 * @param cursor the cursor from the previous page, or null for the first page
 */
public record RunQuery(
    String agent, String serialKey, Set<RunStatus> statuses, int limit, String cursor) {

  /** The default page size. */
  public static final int DEFAULT_LIMIT = 50;

  /** The largest page size. */
  public static final int MAX_LIMIT = 1000;

  private static final String CURSOR_PREFIX = "r1:";

  /**
   * @throws IllegalArgumentException if the limit is out of range, a name is invalid, or the
   *     cursor was not produced by a store
   */
  public RunQuery {
    if (agent != null) {
      Checks.name(agent, "agent");
    }
    if (serialKey != null) {
      Checks.name(serialKey, "serialKey");
    }
    statuses = statuses == null || statuses.isEmpty()
        ? Set.of()
        : Set.copyOf(EnumSet.copyOf(statuses));
    if (limit < 1 || limit > MAX_LIMIT) {
      throw new IllegalArgumentException(
          "limit must be between 1 and " + MAX_LIMIT + ", was " + limit);
    }
    if (cursor != null) {
      decodeCursor(cursor);
    }
  }

  /** Every run, {@value #DEFAULT_LIMIT} per page. */
  public static RunQuery all() {
    return new RunQuery(null, null, Set.of(), DEFAULT_LIMIT, null);
  }

  /** The runs of one agent, {@value #DEFAULT_LIMIT} per page. */
  public static RunQuery agent(String agent) {
    return new RunQuery(
        Objects.requireNonNull(agent, "agent"), null, Set.of(), DEFAULT_LIMIT, null);
  }

  /** This query restricted to the given statuses. */
  public RunQuery status(RunStatus first, RunStatus... more) {
    EnumSet<RunStatus> set = EnumSet.of(Objects.requireNonNull(first, "status"));
    for (RunStatus s : Objects.requireNonNull(more, "more")) {
      set.add(Objects.requireNonNull(s, "status"));
    }
    return new RunQuery(agent, serialKey, set, limit, cursor);
  }

  /** This query restricted to runs with the given serial key (a conversation, say). */
  public RunQuery serialKey(String serialKey) {
    return new RunQuery(
        agent, Objects.requireNonNull(serialKey, "serialKey"), statuses, limit, cursor);
  }

  /** This query with another page size. */
  public RunQuery limit(int limit) {
    return new RunQuery(agent, serialKey, statuses, limit, cursor);
  }

  /** This query starting after the page whose {@link Page#nextCursor()} is {@code cursor}. */
  public RunQuery after(String cursor) {
    return new RunQuery(
        agent, serialKey, statuses, limit, Objects.requireNonNull(cursor, "cursor"));
  }

  /** Whether {@code run} passes this query's filters (the cursor and limit aside). */
  public boolean matches(RunRecord run) {
    return matches(run.agent(), run.serialKey(), run.status());
  }

  /**
   * For store implementations: whether a run of {@code agent}, {@code serialKey} (or null) and
   * {@code status} passes this query's filters, without a {@link RunRecord} built to ask.
   */
  public boolean matches(String agent, String serialKey, RunStatus status) {
    return (this.agent == null || this.agent.equals(agent))
        && (this.serialKey == null || this.serialKey.equals(serialKey))
        && (statuses.isEmpty() || statuses.contains(status));
  }

  /**
   * For store implementations: the id the cursor points past. The page holds runs with a
   * smaller id, newest first. Empty on the first page.
   */
  public OptionalLong beforeId() {
    return cursor == null ? OptionalLong.empty() : OptionalLong.of(decodeCursor(cursor));
  }

  /**
   * For store implementations: the cursor of the page that follows a page whose last (oldest)
   * run has id {@code lastId}.
   */
  public static String cursorAfter(long lastId) {
    return Base64.getUrlEncoder().withoutPadding()
        .encodeToString((CURSOR_PREFIX + lastId).getBytes(StandardCharsets.US_ASCII));
  }

  /**
   * For store implementations: the page made of {@code fetched}, the matching runs below the
   * cursor, newest first, as many as {@code limit() + 1}. Fetching one more than a page tells
   * whether another page follows without a second query.
   */
  public Page<RunRecord> toPage(java.util.List<RunRecord> fetched) {
    if (fetched.size() <= limit) {
      return new Page<>(fetched, java.util.Optional.empty());
    }
    java.util.List<RunRecord> items = fetched.subList(0, limit);
    return new Page<>(items,
        java.util.Optional.of(cursorAfter(items.get(items.size() - 1).id())));
  }

  private static long decodeCursor(String cursor) {
    try {
      String text = new String(Base64.getUrlDecoder().decode(cursor), StandardCharsets.US_ASCII);
      if (text.startsWith(CURSOR_PREFIX)) {
        long id = Long.parseLong(text.substring(CURSOR_PREFIX.length()));
        if (id > 0) {
          return id;
        }
      }
    } catch (IllegalArgumentException ignored) {
      // reported below, with the cursor itself
    }
    throw new IllegalArgumentException(
        "cursor is not one this library produced: \"" + abbreviate(cursor) + "\"");
  }

  private static String abbreviate(String s) {
    return s.length() <= 40 ? s : s.substring(0, 40) + "…";
  }
}
