package dev.agentrunner.examples;

import dev.agentrunner.AgentResult;
import dev.agentrunner.AgentRunner;
import dev.agentrunner.AgentSpec;
import dev.agentrunner.AgentStats;
import dev.agentrunner.RunHandle;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.RunStats;
import dev.agentrunner.Usage;
import dev.agentrunner.sqlite.SqliteRunStore;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The quick start: two demo agents that behave like model calls (latency, tokens, cost, the
 * odd failure), a mixed batch of runs submitted from several threads at once, live progress,
 * then a summary read back from the run store: an embedded SQLite file, so running it again shows
 * the history growing.
 */
public final class QuickStart {
  private static final int RUNS = 60;

  private QuickStart() {}

  /** Runs the demo; the optional argument is the database file (default in the current folder). */
  public static void main(String[] args) throws Exception {
    Path db = Path.of(args.length > 0 ? args[0] : "agentrunner-quickstart.db").toAbsolutePath();
    try (SqliteRunStore store = SqliteRunStore.open(db);
        AgentRunner runner = AgentRunner.builder()
        .store(store)
        .agent(AgentSpec.named("summarize").maxConcurrency(8), ctx -> {
          Thread.sleep(ThreadLocalRandom.current().nextInt(40, 200)); // the model thinks
          long in = ctx.input().length() * 4L;
          long out = ThreadLocalRandom.current().nextLong(50, 400);
          return AgentResult.of("summary of " + ctx.input(), Usage.of(in, out, in + 3 * out));
        })
        .agent(AgentSpec.named("classify").maxConcurrency(4).timeout(Duration.ofSeconds(5)),
            ctx -> {
              Thread.sleep(ThreadLocalRandom.current().nextInt(20, 120));
              if (ThreadLocalRandom.current().nextInt(10) == 0) {
                throw new IllegalStateException("model returned malformed JSON");
              }
              ctx.emit("label", "{\"label\":\"ok\"}");
              return AgentResult.of("{\"label\":\"ok\"}", Usage.of(120, 8, 150));
            })
        .build()) {

      long earlier = runner.stats().total().finished();
      System.out.printf("Opened %s: %d finished runs from earlier sessions.%n", db, earlier);
      System.out.printf("Submitting %d runs to 2 agents from 4 threads...%n", RUNS);
      List<RunHandle> handles = new ArrayList<>();
      try (ExecutorService submitters = Executors.newFixedThreadPool(4)) {
        List<Future<RunHandle>> futures = new ArrayList<>();
        for (int i = 0; i < RUNS; i++) {
          String agent = i % 3 == 0 ? "classify" : "summarize";
          String input = "{\"doc\":" + i + "}";
          futures.add(submitters.submit(() -> runner.submit(RunRequest.of(agent, input))));
        }
        for (Future<RunHandle> f : futures) {
          handles.add(f.get());
        }
      }

      while (true) {
        RunStats stats = runner.stats();
        AgentStats all = stats.total();
        long done = all.finished() - earlier;
        System.out.printf("  queued %3d  running %2d  done %3d/%d%n",
            all.queued(), all.running(), done, RUNS);
        if (done >= RUNS) {
          break;
        }
        Thread.sleep(250);
      }
      for (RunHandle h : handles) {
        h.await(Duration.ofSeconds(30));
      }

      System.out.println();
      System.out.println("All runs in the store, per agent:");
      System.out.printf("%-10s %9s %6s %9s %13s %10s%n",
          "agent", "succeeded", "failed", "timed out", "tokens in/out", "cost");
      for (AgentStats a : runner.stats().agents().values()) {
        System.out.printf(Locale.ROOT, "%-10s %9d %6d %9d %6d/%-6d %10.6f%n", a.agent(),
            a.succeeded(), a.failed(), a.timedOut(), a.usage().inputTokens(),
            a.usage().outputTokens(), a.usage().costMicros() / 1_000_000.0);
      }
      System.out.println();
      System.out.println("Last 5 runs:");
      for (RunRecord r : runner.history(RunQuery.all().limit(5)).items()) {
        System.out.printf("  #%-4d %-10s %-9s %s%n", r.id(), r.agent(), r.status(),
            r.output() != null ? r.output() : r.error());
      }
      System.out.println();
      System.out.println("Store: " + db + " (run again to see the history kept)");
    }
  }
}
