package dev.agentrunner.postgres;

import dev.agentrunner.StoreException;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Tells the other nodes, through {@code NOTIFY} on the schema's channel, that runs may have
 * become claimable: called after a write that queued a due run has committed.
 *
 * <p>Why not {@code NOTIFY} inside the write's own transaction: PostgreSQL serialises the
 * commits of all notifying transactions of a cluster on one lock, held through the commit's
 * flush to disk. Measured on this project's machine with 16 concurrent submitters, inserts that
 * notified in their transaction ran at 300 to 540 per second, the same inserts without it at
 * 2,100 to 4,200 per second. A transaction that only notifies writes nothing to flush, so one
 * thread sending them costs inserts nothing, and concurrent signals arriving while it sends are
 * folded into the next notification.
 *
 * <p>The order of events is the same as with an in-transaction notify: the run is committed,
 * hence visible, before any listener hears of it. If the process dies between the commit and
 * the notification, other nodes find the run at their next poll, as they do whenever a
 * notification is missed.
 *
 * <p>Each notification carries this store's id, so that its own listener can ignore it: the
 * local runner was already woken by its own submit.
 *
 * <p>Thread-safety: thread-safe.
 */
final class Notifier implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(Notifier.class);

  private final Db db;
  private final String channel;
  private final String senderId;
  private final String name;
  private final AtomicBoolean pending = new AtomicBoolean();
  private final Object startLock = new Object();
  private volatile Thread thread;
  private volatile boolean closed;

  Notifier(Db db, String channel, String senderId, String name) {
    this.db = db;
    this.channel = channel;
    this.senderId = senderId;
    this.name = name;
  }

  /** Asks for one notification soon; cheap, and folded with concurrent requests. */
  void signal() {
    if (pending.compareAndSet(false, true)) {
      LockSupport.unpark(thread());
    }
  }

  private Thread thread() {
    Thread t = thread;
    if (t != null) {
      return t;
    }
    synchronized (startLock) {
      if (thread == null && !closed) {
        thread = Thread.ofPlatform().daemon().name("agentrunner-pg-notify-" + name)
            .start(this::run);
      }
      return thread;
    }
  }

  private void run() {
    while (!closed) {
      if (!pending.getAndSet(false)) {
        LockSupport.park(this);
        continue;
      }
      try {
        db.autocommit("notify", true, c -> {
          try (PreparedStatement ps = c.prepareStatement("SELECT pg_notify(?, ?)")) {
            ps.setString(1, channel);
            ps.setString(2, senderId);
            try (ResultSet rs = ps.executeQuery()) {
              return rs.next();
            }
          }
        });
      } catch (StoreException e) {
        // Other nodes will poll; a notification is only a shortcut.
        log.debug("notification on {} failed", channel, e);
        LockSupport.parkNanos(100_000_000L);
      }
    }
  }

  @Override
  public void close() {
    closed = true;
    Thread t = thread;
    if (t != null) {
      LockSupport.unpark(t);
      try {
        t.join(2_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
