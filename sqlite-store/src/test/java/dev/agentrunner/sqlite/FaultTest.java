package dev.agentrunner.sqlite;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.StoreException;
import dev.agentrunner.spi.NewRun;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad files and faults, each made for real: every one must give a {@link StoreException} that
 * names the file and the problem, and lose nothing already accepted.
 *
 * <p>Read-only and full file systems need a mount when the tests run as root (root writes
 * through file permissions); those tests mount a small tmpfs and are skipped where mounting is
 * not allowed.
 */
@Timeout(60)
class FaultTest {
  @TempDir Path dir;
  private final List<Path> mounts = new ArrayList<>();

  @AfterEach
  void unmount() throws Exception {
    for (Path m : mounts) {
      run("umount", "-l", m.toString());
    }
    // a directory made read-only must be writable again for @TempDir to clean up
    try (var paths = Files.walk(dir)) {
      paths.filter(Files::isDirectory).forEach(p -> p.toFile().setWritable(true));
    }
  }

  @Test
  void aFileOfGarbageIsRefusedAndLeftAlone() throws Exception {
    Path file = dir.resolve("garbage.db");
    byte[] garbage = new byte[64 * 1024];
    new Random(7).nextBytes(garbage);
    Files.write(file, garbage);
    assertThatThrownBy(() -> SqliteRunStore.open(file))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining(file.toString())
        .hasMessageContaining("not a SQLite database or is corrupt");
    assertThat(Files.readAllBytes(file)).isEqualTo(garbage);
  }

  @Test
  void aTextFileIsRefused() throws Exception {
    Path file = dir.resolve("notes.db");
    Files.writeString(file, "these are my notes, not a database\n".repeat(200));
    assertThatThrownBy(() -> SqliteRunStore.open(file))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining(file.toString())
        .hasMessageContaining("not a SQLite database");
  }

  @Test
  void aDatabaseWithCorruptPagesIsReportedAsCorrupt() throws Exception {
    Path file = dir.resolve("corrupt.db");
    try (SqliteRunStore store = SqliteRunStore.open(file)) {
      for (int i = 0; i < 200; i++) {
        store.insert(NewRun.of(RunRequest.of("a", "x".repeat(500))));
      }
    }
    byte[] bytes = Files.readAllBytes(file);
    // keep the header (first page) intact, wreck the pages behind it
    Arrays.fill(bytes, 4096, Math.min(bytes.length, 4096 * 6), (byte) 0x5A);
    Files.write(file, bytes);
    StoreException e = catchStoreException(() -> {
      try (SqliteRunStore store = SqliteRunStore.open(file)) {
        store.stats();
        store.query(dev.agentrunner.RunQuery.all().limit(1000));
        store.insert(NewRun.of(RunRequest.of("a", "more")));
      }
    });
    assertThat(e.getMessage()).contains(file.toString()).containsIgnoringCase("corrupt");
  }

  @Test
  void aMissingDirectoryIsNamed() {
    Path file = dir.resolve("nowhere").resolve("runs.db");
    assertThatThrownBy(() -> SqliteRunStore.open(file))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining(file.toString())
        .hasMessageContaining("does not exist");
  }

  @Test
  void aDirectoryIsNotADatabase() {
    assertThatThrownBy(() -> SqliteRunStore.open(dir))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("is a directory");
  }

  @Test
  void aReadOnlyFileIsRefused() throws Exception {
    Path area = readOnlyCapableArea();
    Path file = area.resolve("runs.db");
    RunRecord kept;
    try (SqliteRunStore store = SqliteRunStore.open(file)) {
      kept = store.insert(NewRun.of(RunRequest.of("a", "kept")));
    }
    makeReadOnly(area, file);
    assertThatThrownBy(() -> SqliteRunStore.open(file))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining(file.toString())
        .hasMessageContaining("read-only");
    makeWritable(area, file);
    try (SqliteRunStore store = SqliteRunStore.open(file)) {
      assertThat(store.find(kept.id())).contains(kept);
    }
  }

  @Test
  void aReadOnlyDirectoryIsRefused() throws Exception {
    Path area = readOnlyCapableArea();
    makeReadOnly(area, null);
    Path file = area.resolve("new.db");
    assertThatThrownBy(() -> SqliteRunStore.open(file))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining(file.toString())
        .hasMessageContaining("read-only");
  }

  @Test
  void aDatabaseLockedBeyondTheBusyTimeoutFailsClearlyAndRecovers() throws Exception {
    Path file = dir.resolve("locked.db");
    try (SqliteRunStore store =
        SqliteRunStore.builder(file).busyTimeout(Duration.ofMillis(100)).build()) {
      RunRecord kept = store.insert(NewRun.of(RunRequest.of("a", "kept")));
      try (Connection other = DriverManager.getConnection("jdbc:sqlite:" + file.toUri());
          Statement s = other.createStatement()) {
        s.execute("BEGIN IMMEDIATE"); // another process holding the write lock
        long started = System.nanoTime();
        assertThatThrownBy(() -> store.insert(NewRun.of(RunRequest.of("a", "blocked"))))
            .isInstanceOf(StoreException.class)
                .hasMessageContaining(file.toString())
            .hasMessageContaining("locked by another connection")
            .hasMessageContaining("100 ms");
        // waited the busy timeout, and retried, but did not hang
        long waitedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
        assertThat(waitedMs).isBetween(250L, 10_000L);
        // reads go on meanwhile: WAL readers do not wait for writers
        assertThat(store.find(kept.id())).contains(kept);
        // opening another store also needs the lock (for the schema check): refused clearly
        assertThatThrownBy(() ->
            SqliteRunStore.builder(file).busyTimeout(Duration.ofMillis(50)).build())
            .isInstanceOf(StoreException.class)
            .hasMessageContaining("locked");
        s.execute("ROLLBACK");
      }
      // the lock is gone: writing works again, nothing was lost, nothing half-written
      RunRecord later = store.insert(NewRun.of(RunRequest.of("a", "later")));
      assertThat(store.find(kept.id())).contains(kept);
      assertThat(store.stats().agent("a").queued()).isEqualTo(2);
      assertThat(later.id()).isEqualTo(kept.id() + 1);
    }
  }

  @Test
  void aFullDiskFailsTheWriteThatDoesNotFitAndKeepsTheRest() throws Exception {
    Path area = dir.resolve("small");
    Files.createDirectories(area);
    assumeThat(mount(area, "size=600k")).as("can mount a small tmpfs (needs root)").isTrue();
    Path file = area.resolve("runs.db");
    List<RunRecord> accepted = new ArrayList<>();
    StoreException full = null;
    try (SqliteRunStore store = SqliteRunStore.open(file)) {
      String big = "y".repeat(16 * 1024);
      for (int i = 0; i < 200 && full == null; i++) {
        try {
          accepted.add(store.insert(NewRun.of(RunRequest.of("a", i + ":" + big))));
        } catch (StoreException e) {
          full = e;
        }
      }
      assertThat(full).as("the disk filled up").isNotNull();
      assertThat(full.getMessage()).contains(file.toString()).contains("disk is full");
      assertThat(accepted).isNotEmpty();
      // reads still work, and every accepted run is intact
      for (RunRecord r : accepted) {
        assertThat(store.find(r.id())).contains(r);
      }
      assertThat(store.stats().agent("a").queued()).isEqualTo(accepted.size());
    }
    // and still there after reopening
    try (SqliteRunStore store = SqliteRunStore.open(file)) {
      for (RunRecord r : accepted) {
        assertThat(store.find(r.id())).contains(r);
      }
      assertThat(store.stats().agent("a").queued()).isEqualTo(accepted.size());
    }
  }

  // ---- helpers ----

  private interface Action {
    void run() throws Exception;
  }

  private static StoreException catchStoreException(Action action) {
    try {
      action.run();
    } catch (StoreException e) {
      return e;
    } catch (Exception e) {
      throw new AssertionError("expected a StoreException, got " + e, e);
    }
    throw new AssertionError("expected a StoreException, nothing was thrown");
  }

  private static boolean isRoot() {
    return "root".equals(System.getProperty("user.name"));
  }

  /** A directory that can be made read-only: a tmpfs mount for root, a plain one otherwise. */
  private Path readOnlyCapableArea() throws Exception {
    Path area = dir.resolve("area");
    Files.createDirectories(area);
    if (isRoot()) {
      assumeThat(mount(area, "size=4m")).as("can mount a tmpfs as root").isTrue();
    }
    return area;
  }

  private void makeReadOnly(Path area, Path file) throws Exception {
    if (isRoot()) {
      assertThat(run("mount", "-o", "remount,ro", area.toString())).isZero();
    } else {
      if (file != null) {
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("r--r--r--"));
      }
      Files.setPosixFilePermissions(area, PosixFilePermissions.fromString("r-xr-xr-x"));
    }
  }

  private void makeWritable(Path area, Path file) throws Exception {
    if (isRoot()) {
      assertThat(run("mount", "-o", "remount,rw", area.toString())).isZero();
    } else {
      Files.setPosixFilePermissions(area, PosixFilePermissions.fromString("rwxr-xr-x"));
      Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-r--r--"));
    }
  }

  private boolean mount(Path at, String options) throws Exception {
    if (run("mount", "-t", "tmpfs", "-o", options, "tmpfs", at.toString()) != 0) {
      return false;
    }
    mounts.add(at);
    return true;
  }

  private static int run(String... command) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
    if (!p.waitFor(20, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      return -1;
    }
    return p.exitValue();
  }
}
