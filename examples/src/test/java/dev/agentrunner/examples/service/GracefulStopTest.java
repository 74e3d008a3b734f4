package dev.agentrunner.examples.service;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStatus;
import dev.agentrunner.sqlite.SqliteRunStore;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link ServiceMain} in its own JVM, stopped with SIGTERM while its demo agents work: it exits
 * by itself, and every run it accepted is in the file, none left RUNNING and none cancelled
 * (running agents finished; claimed ones went back to the queue).
 */
@Timeout(120)
class GracefulStopTest {
  private static final Pattern URL = Pattern.compile("listening on (http://\\S+)");
  private static final int RUNS = 12;

  @Test
  void sigtermFinishesOrHandsBackEveryAcceptedRun(@TempDir Path dir) throws Exception {
    Path db = dir.resolve("service.db");
    Process service = new ProcessBuilder(
        ProcessHandle.current().info().command().orElseThrow(),
        "--enable-native-access=ALL-UNNAMED",
        "-cp", System.getProperty("java.class.path"),
        ServiceMain.class.getName(), "--port", "0", "--db", db.toString())
        .redirectErrorStream(true)
        .start();
    List<String> output = Collections.synchronizedList(new ArrayList<>());
    URI base;
    try {
      BufferedReader lines = new BufferedReader(
          new InputStreamReader(service.getInputStream(), StandardCharsets.UTF_8));
      String first = lines.readLine();
      Matcher m = URL.matcher(String.valueOf(first));
      assertThat(m.find()).as("first line: " + first).isTrue();
      base = URI.create(m.group(1));
      Thread reader = Thread.ofVirtual().start(() -> lines.lines().forEach(output::add));

      List<Long> accepted = new ArrayList<>();
      try (HttpClient client = ServiceFixture.newClient()) {
        for (int i = 0; i < RUNS; i++) {
          HttpResponse<String> r = client.send(java.net.http.HttpRequest.newBuilder(
                  base.resolve("/api/agents/summarize/run"))
              .POST(java.net.http.HttpRequest.BodyPublishers.ofString(
                  "{\"input\":\"document " + i + "\"}")).build(),
              HttpResponse.BodyHandlers.ofString());
          assertThat(r.statusCode()).as(r.body()).isEqualTo(202);
          accepted.add(ServiceFixture.json(r).get("run_id").asLong());
        }
      }

      // SIGTERM. Through the handle: Process.destroy() would also close our end of its output.
      assertThat(service.toHandle().destroy()).isTrue();
      assertThat(service.waitFor(90, TimeUnit.SECONDS)).as("exited").isTrue();
      reader.join();
      assertThat(service.exitValue()).isIn(0, 143);
      assertThat(output).anyMatch(l -> l.startsWith("stopped; the run history is in"));

      try (SqliteRunStore store = SqliteRunStore.open(db)) {
        List<RunRecord> runs = store.query(RunQuery.agent("summarize").limit(100)).items();
        assertThat(runs).extracting(RunRecord::id).containsExactlyInAnyOrderElementsOf(accepted);
        assertThat(runs).extracting(RunRecord::status)
            .doesNotContain(RunStatus.RUNNING, RunStatus.CANCELLED);
      }
    } finally {
      service.destroyForcibly();
    }
  }
}
