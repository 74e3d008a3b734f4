package dev.agentrunner.sqlite;

import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.spi.RunStore;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * A test's worker processes: real JVMs on the same JDK (>= 21) and class path as the test,
 * whatever {@code java} is first on the PATH. Register one per test class with
 * {@code @RegisterExtension}; every process it started is killed after each test, whatever the
 * test did.
 *
 * <p>Thread-safety: not thread-safe; the test's thread starts the processes.
 */
final class ChildJvm implements AfterEachCallback, Iterable<Process> {
  private final List<Process> processes = new ArrayList<>();

  /**
   * Starts {@code main} with {@code args}; its stdout and stderr go to {@code out}. The n-th
   * process started is {@link #get get(n)}.
   */
  Process start(Class<?> main, Path out, String... args) throws IOException {
    List<String> command = new ArrayList<>(List.of(
        ProcessHandle.current().info().command().orElse("java"),
        "--enable-native-access=ALL-UNNAMED", "-Xmx256m", "-cp",
        System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
        main.getName()));
    command.addAll(List.of(args));
    Process process = new ProcessBuilder(command)
        .redirectErrorStream(true)
        .redirectOutput(out.toFile())
        .start();
    processes.add(process);
    return process;
  }

  Process get(int index) {
    return processes.get(index);
  }

  @Override
  public Iterator<Process> iterator() {
    return processes.iterator();
  }

  @Override
  public void afterEach(ExtensionContext context) {
    processes.forEach(Process::destroyForcibly);
  }

  /** Every run {@code query} matches, page after page (the workers' tests read all they wrote). */
  static List<RunRecord> allRuns(RunStore store, RunQuery query) {
    List<RunRecord> all = new ArrayList<>();
    Optional<String> cursor = Optional.empty();
    do {
      var page = store.query(cursor.map(query::after).orElse(query));
      all.addAll(page.items());
      cursor = page.nextCursor();
    } while (cursor.isPresent());
    return all;
  }
}
