package dev.agentrunner.postgres;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Holds one dedicated connection that {@code LISTEN}s on the schema's channel and calls the
 * registered wake-ups whenever a notification arrives (another process inserted, released or
 * recovered runs). Started by the first {@link #add}, so a store nobody waits on holds no extra
 * connection.
 *
 * <p>When the connection drops (server restart, network, {@code pg_terminate_backend}) the
 * thread reconnects with a growing pause (up to {@link #MAX_BACKOFF_MILLIS}); meanwhile runners
 * find remote work by polling, as they always do. After each (re)connection it calls the
 * wake-ups once, since notifications sent while it was away are lost. Every
 * {@link #PING_MILLIS} it sends a query, so that a connection that died silently (no reset
 * from the peer) is noticed and replaced too.
 *
 * <p>Thread-safety: thread-safe. The wake-ups run on the listener thread and must be quick.
 */
final class Listener implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(Listener.class);

  static final long MAX_BACKOFF_MILLIS = 5_000;
  private static final int WAIT_MILLIS = 250;
  private static final long PING_MILLIS = 10_000;

  /** Opens the dedicated connection. */
  @FunctionalInterface
  interface Connector {
    Connection open() throws SQLException;
  }

  private final Connector connector;
  private final String channel;
  private final String ownSenderId;
  private final String name;
  private final List<Runnable> wakeUps = new CopyOnWriteArrayList<>();
  private final Object startLock = new Object();
  private Thread thread; // guarded by startLock
  private volatile boolean closed;
  private volatile int backendPid;
  private volatile long connections;

  Listener(Connector connector, String channel, String ownSenderId, String name) {
    this.connector = connector;
    this.channel = channel;
    this.ownSenderId = ownSenderId;
    this.name = name;
  }

  /** Registers a wake-up and starts listening if this is the first. */
  void add(Runnable wakeUp) {
    wakeUps.add(wakeUp);
    synchronized (startLock) {
      if (thread == null && !closed) {
        thread = Thread.ofPlatform().daemon().name("agentrunner-pg-listener-" + name)
            .start(this::run);
      }
    }
  }

  /** Stops calling {@code wakeUp} (its runner closed); the connection stays for the others. */
  void remove(Runnable wakeUp) {
    wakeUps.remove(wakeUp);
  }

  /** The server process id of the current listening connection, 0 while not connected. */
  int backendPid() {
    return backendPid;
  }

  /** How many times a listening connection was established. */
  long connections() {
    return connections;
  }

  private void run() {
    long backoff = 50;
    boolean warned = false;
    while (!closed) {
      try (Connection c = connector.open()) {
        c.setAutoCommit(true); // notifications are delivered only between transactions
        PGConnection pg = c.unwrap(PGConnection.class);
        try (Statement s = c.createStatement()) {
          // The channel is made of the validated schema name and [a-z0-9_:] only.
          s.execute("LISTEN \"" + channel + "\"");
        }
        backendPid = pg.getBackendPID();
        connections++;
        if (warned) {
          log.info("listener for {} reconnected", name);
          warned = false;
        }
        backoff = 50;
        fire(); // whatever was notified while we were away
        listen(c, pg);
      } catch (SQLException | RuntimeException e) {
        backendPid = 0;
        if (closed) {
          break;
        }
        if (!warned) {
          log.warn("listener for {} lost its connection; runners poll until it is back"
              + " (retrying every {} ms at most)", name, MAX_BACKOFF_MILLIS, e);
          warned = true;
        }
        sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MILLIS);
      }
    }
    backendPid = 0;
  }

  private void listen(Connection c, PGConnection pg) throws SQLException {
    long nextPing = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(PING_MILLIS);
    while (!closed) {
      PGNotification[] got = pg.getNotifications(WAIT_MILLIS);
      if (got != null) {
        for (PGNotification n : got) {
          // Our own store's runner was already woken by the write itself.
          if (!ownSenderId.equals(n.getParameter())) {
            fire();
            break;
          }
        }
      }
      if (System.nanoTime() - nextPing >= 0) {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 1")) {
          rs.next();
        }
        nextPing = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(PING_MILLIS);
      }
    }
  }

  private void fire() {
    for (Runnable r : wakeUps) {
      try {
        r.run();
      } catch (RuntimeException e) {
        log.warn("a wake-up registered with the store for {} failed", name, e);
      }
    }
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Stops listening and waits briefly for the thread, which notices within a quarter second. */
  @Override
  public void close() {
    Thread t;
    synchronized (startLock) {
      closed = true;
      t = thread;
    }
    if (t != null) {
      t.interrupt();
      try {
        t.join(2_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
