package dev.agentrunner.bench;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * CPU time spent over one round of figure 5a by the worker JVMs and by the server processes
 * (backends) serving their connections, read from the operating system (on Linux,
 * {@code /proc}) through {@link ProcessHandle}. It says where a round's time goes on a machine
 * whose cores both sides share: in the JVMs, or in the database. A diagnostic only: where the
 * CPU times cannot be read, the figures that use it say so instead of failing.
 *
 * <p>Backends are found by their {@code application_name} in {@code pg_stat_activity}, at the
 * start and at the end of the round; one that connected during the round counts whole.
 *
 * <p>Thread-safety: not thread-safe; used by the harness's main thread.
 */
final class CpuUse {
  private final List<PgChild> workers;
  private final List<String> applicationNames;
  private final long jvmStart;
  private final long jitStart;
  private final Map<Long, Long> backendStart;

  /**
   * CPU used over a round, in nanoseconds (negative when it could not be read): all of the
   * worker JVMs', the part of it their JIT compiler threads used, and the server backends'; and
   * how many of the backends connected during the round.
   */
  record Used(long jvmNanos, long jitNanos, long serverNanos, int newBackends) {
    boolean known() {
      return jvmNanos >= 0 && serverNanos >= 0;
    }
  }

  private CpuUse(List<PgChild> workers, List<String> applicationNames, long jvmStart,
      long jitStart, Map<Long, Long> backendStart) {
    this.workers = workers;
    this.applicationNames = applicationNames;
    this.jvmStart = jvmStart;
    this.jitStart = jitStart;
    this.backendStart = backendStart;
  }

  /**
   * Starts counting for {@code workers} and the backends whose application name matches one of
   * {@code applicationNames} (SQL LIKE patterns).
   */
  static CpuUse start(Connection admin, List<PgChild> workers, List<String> applicationNames)
      throws SQLException {
    return new CpuUse(workers, applicationNames, jvms(workers), compilers(workers),
        backends(admin, applicationNames));
  }

  /** The CPU used since {@link #start}; call before the round's connections close. */
  Used stop(Connection admin) throws SQLException {
    long jvm = jvms(workers);
    long jit = compilers(workers);
    Map<Long, Long> now = backends(admin, applicationNames);
    long server = 0;
    int added = 0;
    for (Map.Entry<Long, Long> b : now.entrySet()) {
      if (!backendStart.containsKey(b.getKey())) {
        added++;
      }
      if (b.getValue() < 0) {
        server = -1;
        break;
      }
      server += b.getValue() - backendStart.getOrDefault(b.getKey(), 0L);
    }
    return new Used(jvm < 0 || jvmStart < 0 ? -1 : jvm - jvmStart,
        jit < 0 || jitStart < 0 ? -1 : jit - jitStart, now.isEmpty() ? -1 : server, added);
  }

  private static long jvms(List<PgChild> workers) {
    long sum = 0;
    for (PgChild w : workers) {
      long cpu = cpu(w.pid());
      if (cpu < 0) {
        return -1;
      }
      sum += cpu;
    }
    return sum;
  }

  /**
   * CPU time of the JIT compiler threads of the workers, from {@code /proc/<pid>/task} (Linux;
   * -1 elsewhere). Compiler threads live as long as their JVM, so the difference of two
   * readings is what they used in between.
   */
  private static long compilers(List<PgChild> workers) {
    long sum = 0;
    for (PgChild w : workers) {
      Path tasks = Path.of("/proc", Long.toString(w.pid()), "task");
      try (DirectoryStream<Path> threads = Files.newDirectoryStream(tasks)) {
        for (Path t : threads) {
          try {
            String name = Files.readString(t.resolve("comm")).strip();
            if (name.contains("CompilerThre")) {
              sum += threadCpu(Files.readString(t.resolve("stat")));
            }
          } catch (IOException gone) {
            // a thread that ended while we looked: not a compiler thread, which never ends
          }
        }
      } catch (IOException | RuntimeException e) {
        return -1;
      }
    }
    return sum;
  }

  /** utime + stime of a {@code /proc/.../stat} line, in nanoseconds (clock ticks of 10 ms). */
  private static long threadCpu(String stat) {
    String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
    long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]);
    return ticks * 10_000_000L;
  }

  private static Map<Long, Long> backends(Connection admin, List<String> applicationNames)
      throws SQLException {
    Map<Long, Long> cpu = new HashMap<>();
    try (PreparedStatement ps = admin.prepareStatement("SELECT pid FROM pg_stat_activity"
        + " WHERE application_name LIKE ANY (?)")) {
      ps.setArray(1, admin.createArrayOf("text", applicationNames.toArray()));
      List<Long> pids = new ArrayList<>();
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          pids.add(rs.getLong(1));
        }
      }
      for (long pid : pids) {
        cpu.put(pid, cpu(pid));
      }
    }
    return cpu;
  }

  private static long cpu(long pid) {
    return ProcessHandle.of(pid).flatMap(h -> h.info().totalCpuDuration())
        .map(Duration::toNanos).orElse(-1L);
  }
}
