package dev.agentrunner.examples.service;

import dev.agentrunner.StoreException;
import dev.agentrunner.sqlite.SqliteRunStore;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

/**
 * Runs the agent HTTP service with the {@link DemoAgents} on a SQLite file until SIGTERM or
 * Ctrl+C, then stops gracefully: no new requests, running agents finish (up to 20 s), runs
 * claimed but not started go back to the queue, the file is closed.
 *
 * <pre>
 * java ... dev.agentrunner.examples.service.ServiceMain [--port 8080] [--db agentrunner-service.db]
 *     [--host 127.0.0.1]
 * </pre>
 *
 * <p>Arguments win over the system properties {@code agentrunner.port}, {@code agentrunner.db}
 * and {@code agentrunner.host}; port 0 picks a free port. The first line printed names the URL.
 */
public final class ServiceMain {
  private ServiceMain() {}

  /** Starts the service and blocks until the JVM is asked to stop. */
  public static void main(String[] args) throws InterruptedException {
    Map<String, String> opts = parse(args);
    int port = Integer.parseInt(
        opts.getOrDefault("port", System.getProperty("agentrunner.port", "8080")));
    String host = opts.getOrDefault("host", System.getProperty("agentrunner.host", "127.0.0.1"));
    Path db = Path.of(opts.getOrDefault("db",
        System.getProperty("agentrunner.db", "agentrunner-service.db"))).toAbsolutePath();

    SqliteRunStore store;
    try {
      store = SqliteRunStore.open(db);
    } catch (StoreException e) {
      System.err.println("cannot open the run store: " + e.getMessage());
      System.exit(1);
      return;
    }
    AgentService service;
    try {
      service = DemoAgents.register(AgentService.builder(store), store)
          .address(new InetSocketAddress(host, port))
          .runner(r -> r.maxConcurrency(64).shutdownTimeout(Duration.ofSeconds(20))
              // Names this process in each run's "worker" field, also when several share a file.
              .workerId("service-" + ProcessHandle.current().pid()))
          .start();
    } catch (UncheckedIOException e) {
      store.close();
      System.err.println(e.getMessage() + " (is another service on that port? try --port 0)");
      System.exit(1);
      return;
    }

    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      System.out.println("stopping: refusing new requests, letting running agents finish...");
      try {
        service.close();
      } finally {
        store.close();
        System.out.println("stopped; the run history is in " + db);
        stopped.countDown();
      }
    }, "service-shutdown"));

    System.out.println("agentrunner service listening on " + service.uri() + " (store " + db + ")");
    System.out.println("  agents: summarize, classify, chat; try:");
    System.out.println("  curl -s -X POST " + service.uri() + "/api/agents/summarize/run"
        + " -d '{\"input\":\"a long text\"}'");
    System.out.println("  curl -s " + service.uri() + "/health");
    System.out.println("Ctrl+C (or SIGTERM) stops it gracefully.");
    stopped.await();
  }

  private static Map<String, String> parse(String[] args) {
    Map<String, String> opts = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (!a.startsWith("--")) {
        throw new IllegalArgumentException("unexpected argument \"" + a
            + "\"; usage: [--port N] [--db FILE] [--host ADDRESS]");
      }
      int eq = a.indexOf('=');
      if (eq > 0) {
        opts.put(a.substring(2, eq), a.substring(eq + 1));
      } else if (i + 1 < args.length) {
        opts.put(a.substring(2), args[++i]);
      } else {
        throw new IllegalArgumentException("option " + a + " needs a value");
      }
    }
    return opts;
  }
}
