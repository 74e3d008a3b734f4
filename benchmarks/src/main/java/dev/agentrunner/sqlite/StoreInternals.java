package dev.agentrunner.sqlite;

/**
 * The SQLite store's own statements and writer counters, for the benchmarks' raw baselines and
 * diagnostics. This class sits in the store's package inside the benchmarks module (the
 * benchmarks run on the class path, where a package may span two jars), so that a raw
 * baseline runs exactly the statements the store runs: if the store's SQL changes, the
 * baseline changes with it.
 *
 * <p>Thread-safety: stateless.
 */
public final class StoreInternals {
  private StoreInternals() {}

  // The queue path: a run inserted QUEUED, claimed later, finished.
  public static final String INSERT_RUN = Sql.INSERT_RUN;
  public static final String INSERT_EVENT = Sql.INSERT_EVENT;
  public static final String CLAIM_CANDIDATES = Sql.CLAIM_CANDIDATES;
  public static final String CLAIM_RUN = Sql.CLAIM_RUN;
  public static final String FINISH_TERMINAL = Sql.FINISH_TERMINAL;

  // The path of a submit that claims its own run (RunStore.insertAndClaim).
  public static final String CLAIMABLE_AT_OR_ABOVE = Sql.CLAIMABLE_AT_OR_ABOVE;
  public static final String INSERT_RUNNING_RUN = Sql.INSERT_RUNNING_RUN;
  public static final String INSERT_QUEUED_AND_STARTED_EVENTS =
      Sql.INSERT_QUEUED_AND_STARTED_EVENTS;

  /** The writer's counters: transactions committed, operations in them, the largest batch. */
  public record WriterCounters(long commits, long ops, long largestBatch) {}

  /** A snapshot of {@code store}'s writer counters. */
  public static WriterCounters writerCounters(SqliteRunStore store) {
    Writer w = store.writer();
    return new WriterCounters(w.commits(), w.committedOps(), w.largestBatch());
  }
}
