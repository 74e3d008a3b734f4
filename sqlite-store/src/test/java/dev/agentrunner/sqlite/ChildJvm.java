package dev.agentrunner.sqlite;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Starts a test's worker process: a real JVM on the same JDK (>= 21) and class path as the test,
 * whatever {@code java} is first on the PATH.
 */
final class ChildJvm {
  private ChildJvm() {}

  /** Starts {@code main} with {@code args}; its stdout and stderr go to {@code out}. */
  static Process start(Class<?> main, Path out, String... args) throws IOException {
    List<String> command = new ArrayList<>(List.of(
        ProcessHandle.current().info().command().orElse("java"),
        "--enable-native-access=ALL-UNNAMED", "-Xmx256m", "-cp",
        System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
        main.getName()));
    command.addAll(List.of(args));
    return new ProcessBuilder(command)
        .redirectErrorStream(true)
        .redirectOutput(out.toFile())
        .start();
  }
}
