package dev.agentrunner.bench;

import dev.agentrunner.sqlite.SqliteRunStore;
import dev.agentrunner.sqlite.StoreInternals;

/**
 * The group-commit writer's counters (commits, committed operations, largest batch) of a
 * {@link SqliteRunStore}, read through {@link StoreInternals}.
 */
final class WriterStats {
  private WriterStats() {}

  /** A snapshot of the counters. */
  record Snapshot(long commits, long ops, long largestBatch) {
    Snapshot minus(Snapshot before) {
      return new Snapshot(commits - before.commits, ops - before.ops, largestBatch);
    }
  }

  static Snapshot of(SqliteRunStore store) {
    StoreInternals.WriterCounters c = StoreInternals.writerCounters(store);
    return new Snapshot(c.commits(), c.ops(), c.largestBatch());
  }
}
