package dev.agentrunner.bench;

import dev.agentrunner.sqlite.SqliteRunStore;
import java.lang.reflect.Method;

/**
 * Reads the group-commit writer's diagnostic counters (commits, committed operations, largest
 * batch) out of a {@link SqliteRunStore}. They are package-private in the store, so this uses
 * reflection; it works because the harness runs on the class path. It is only a diagnostic: if
 * the store's internals change, the figures that need it say "n/a" instead of failing.
 */
final class WriterStats {
  private WriterStats() {}

  /** A snapshot of the counters; all -1 if they could not be read. */
  record Snapshot(long commits, long ops, long largestBatch) {
    boolean known() {
      return commits >= 0;
    }

    Snapshot minus(Snapshot before) {
      return new Snapshot(commits - before.commits, ops - before.ops, largestBatch);
    }
  }

  static Snapshot of(SqliteRunStore store) {
    try {
      Method writerMethod = SqliteRunStore.class.getDeclaredMethod("writer");
      writerMethod.setAccessible(true);
      Object writer = writerMethod.invoke(store);
      return new Snapshot(counter(writer, "commits"), counter(writer, "committedOps"),
          counter(writer, "largestBatch"));
    } catch (ReflectiveOperationException | RuntimeException e) {
      return new Snapshot(-1, -1, -1);
    }
  }

  private static long counter(Object writer, String name) throws ReflectiveOperationException {
    Method m = writer.getClass().getDeclaredMethod(name);
    m.setAccessible(true);
    return (long) m.invoke(writer);
  }
}
