package dev.agentrunner.bench;

import com.sun.management.OperatingSystemMXBean;
import dev.agentrunner.sqlite.SqliteRunStore;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Stream;

/**
 * The end-to-end load harness: runs every figure of issue 10, each against its baseline in the
 * same process and, where it is a rate, in interleaved rounds, then prints one Markdown table.
 *
 * <pre>
 * java -cp ... dev.agentrunner.bench.LoadHarness quick|full [figure ...]
 * </pre>
 *
 * <p>Figures: {@code 1} engine overhead, {@code 1b} the same by JMH, {@code 2} SQLite end to end
 * (FULL and NORMAL), {@code 3} submit-to-start latency, {@code 4} scale, {@code 5} PostgreSQL
 * (5a four worker JVMs vs raw SKIP LOCKED, 5b cross-JVM start latency; each may be named
 * alone). Without figure names, all run. Progress goes to stderr, the table to stdout.
 * Database files live in a temporary directory under {@code -Dbench.dir} (default:
 * {@code java.io.tmpdir}), deleted at the end; it should sit on the disk you want measured (a
 * tmpfs makes every fsync free). PostgreSQL figures use the server of {@code -Dbench.pgUrl}
 * (default: 127.0.0.1:5432, database {@code test}).
 */
public final class LoadHarness {
  private LoadHarness() {}

  /** Entry point; see the class comment for the arguments. */
  public static void main(String[] args) throws Exception {
    if (args.length >= 1 && args[0].equals("scale-child")) {
      Scale.childMain(args[1], Integer.parseInt(args[2]), Scale.dir(args[3]));
      return;
    }
    if (args.length >= 1 && args[0].equals("pg-worker")) {
      PgWorker.childMain(args[1]);
      return;
    }
    Mode mode = args.length == 0 || args[0].equals("quick") ? Mode.quick()
        : args[0].equals("full") ? Mode.full() : null;
    if (mode == null) {
      System.err.println("usage: LoadHarness quick|full [1 1b 2 3 4 5 ...]");
      System.exit(2);
      return;
    }
    Set<String> only = new HashSet<>(List.of(args).subList(Math.min(1, args.length),
        args.length));
    Path base = Path.of(System.getProperty("bench.dir", System.getProperty("java.io.tmpdir")));
    Path dir = Files.createTempDirectory(Files.createDirectories(base), "agentrunner-bench-");
    long started = System.nanoTime();
    double loadBefore = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
    Report report = new Report();
    try {
      if (wanted(only, "1")) {
        EngineOverhead.run(mode, report);
      }
      if (wanted(only, "1b")) {
        JmhFigure.run(mode, report);
      }
      if (wanted(only, "2")) {
        SqliteEndToEnd.run(mode, report, dir, SqliteRunStore.Durability.FULL);
        SqliteEndToEnd.run(mode, report, dir, SqliteRunStore.Durability.NORMAL);
      }
      if (wanted(only, "3")) {
        StartLatency.run(mode, report, dir, SqliteRunStore.Durability.FULL);
        StartLatency.run(mode, report, dir, SqliteRunStore.Durability.NORMAL);
      }
      if (wanted(only, "4")) {
        Scale.run(mode, report, dir);
      }
      boolean pgThroughput = wanted(only, "5") || only.contains("5a");
      boolean pgLatency = wanted(only, "5") || only.contains("5b");
      if (pgThroughput || pgLatency) {
        PostgresFigure.run(mode, report, pgThroughput, pgLatency);
      }
    } finally {
      deleteTree(dir);
    }
    double minutes = (System.nanoTime() - started) / 60e9;
    System.out.println();
    System.out.println(machine(mode, minutes, dir, loadBefore));
    System.out.println();
    System.out.print(report.markdown());
    System.out.flush();
  }

  /**
   * Starts this harness in a child JVM, on the same JDK and class path, with {@code maxHeap}
   * and the options of {@code -Dbench.childJvmArgs} (e.g. JFR), running {@code args}; its
   * standard error goes to ours.
   */
  static Process startChild(String maxHeap, String... args) throws IOException {
    String java = ProcessHandle.current().info().command().orElse("java");
    List<String> command = new ArrayList<>(List.of(java, "-Xmx" + maxHeap,
        "--enable-native-access=ALL-UNNAMED"));
    String extra = System.getProperty("bench.childJvmArgs", "").strip();
    if (!extra.isEmpty()) {
      command.addAll(List.of(extra.split("\\s+")));
    }
    command.addAll(List.of("-cp", System.getProperty("java.class.path"),
        LoadHarness.class.getName()));
    command.addAll(List.of(args));
    return new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
  }

  private static boolean wanted(Set<String> only, String figure) {
    return only.isEmpty() || only.contains(figure);
  }

  private static String machine(Mode mode, double minutes, Path dir, double loadBefore) {
    OperatingSystemMXBean os =
        (OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    String fs;
    try {
      fs = Files.getFileStore(dir.getParent()).type();
    } catch (IOException e) {
      fs = "unknown";
    }
    return String.format(Locale.ROOT, "agentrunner benchmarks, %s mode, %s: %d CPUs, %.1f GiB"
            + " RAM, %s %s (%s), %s %s; data on %s (%s); took %.1f min; system load average"
            + " %.1f at the start, %.1f at the end (the machine is shared: above the CPU count,"
            + " other work competed)",
        mode.name(), LocalDateTime.now().format(DateTimeFormatter.ISO_LOCAL_DATE_TIME),
        Runtime.getRuntime().availableProcessors(), os.getTotalMemorySize() / (double) (1L << 30),
        System.getProperty("java.vm.name"), Runtime.version(), System.getProperty("java.vendor"),
        System.getProperty("os.name"), System.getProperty("os.version"), dir.getParent(), fs,
        minutes, loadBefore, os.getSystemLoadAverage());
  }

  private static void deleteTree(Path dir) throws IOException {
    try (Stream<Path> paths = Files.walk(dir)) {
      for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }
}
