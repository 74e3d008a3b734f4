package dev.agentrunner.jcstress.twins;

/**
 * The task-claim bug of the seeds: a claim written as {@code SELECT id WHERE status = 'QUEUED'}
 * and then {@code UPDATE ... SET status = 'RUNNING', owner = ?, attempt = attempt + 1 WHERE id = ?}
 * with no condition on the status. Each statement is atomic, but two workers can both select
 * the run before either updates it, and then both "win".
 *
 * <p>Thread-safety: each method is atomic; the claim as a whole is not. That is the bug.
 */
final class SelectThenUpdateQueue {
  private static final long RUN_ID = 1;

  private String status = "QUEUED";
  private String owner;
  private int attempt;

  /** SELECT, then UPDATE without re-checking the status; returns 1 if it claimed the run. */
  int claim(String worker) {
    Long id = selectQueued();
    if (id == null) {
      return 0;
    }
    update(id, worker);
    return 1;
  }

  /** The stored status. */
  synchronized String status() {
    return status;
  }

  /** The stored owner, or null. */
  synchronized String owner() {
    return owner;
  }

  /** The stored attempt: how many claims updated the row. */
  synchronized int attempt() {
    return attempt;
  }

  private synchronized Long selectQueued() {
    return "QUEUED".equals(status) ? RUN_ID : null;
  }

  private synchronized void update(long id, String worker) {
    if (id != RUN_ID) {
      return;
    }
    // WHERE id = ? only: the missing "AND status = 'QUEUED'" is the bug
    status = "RUNNING";
    owner = worker;
    attempt++;
  }
}
