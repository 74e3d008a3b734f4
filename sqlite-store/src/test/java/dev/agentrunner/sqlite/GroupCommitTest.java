package dev.agentrunner.sqlite;

import static org.assertj.core.api.Assertions.assertThat;

import dev.agentrunner.RunRecord;
import dev.agentrunner.RunRequest;
import dev.agentrunner.StoreException;
import dev.agentrunner.spi.NewRun;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The writer commits concurrent operations in shared transactions, yet every caller gets its own
 * result or its own error.
 */
@Timeout(60)
class GroupCommitTest {
  @TempDir Path dir;
  SqliteRunStore store;
  ExecutorService pool;

  @BeforeEach
  void open() {
    store = SqliteRunStore.builder(dir.resolve("group.db")).maxBatchSize(512).build();
    pool = Executors.newFixedThreadPool(64);
  }

  @AfterEach
  void close() throws InterruptedException {
    pool.shutdownNow();
    pool.awaitTermination(10, TimeUnit.SECONDS);
    store.close();
  }

  /** Holds the writer busy until released, so that the next operations queue up together. */
  private CountDownLatch blockWriter() throws InterruptedException {
    CountDownLatch release = new CountDownLatch(1);
    CountDownLatch entered = new CountDownLatch(1);
    pool.submit(() -> store.writer().submit("gate", tx -> {
      entered.countDown();
      try {
        release.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      return null;
    }));
    assertThat(entered.await(10, TimeUnit.SECONDS)).isTrue();
    return release;
  }

  private void awaitQueued(int n) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (store.writer().queued() < n) {
      assertThat(System.nanoTime()).as("%s operations queued", n).isLessThan(deadline);
      Thread.sleep(5);
    }
  }

  private void execute(String sql) throws SQLException {
    try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + store.path().toUri());
        Statement s = c.createStatement()) {
      s.execute("PRAGMA busy_timeout = 10000");
      s.execute(sql);
    }
  }

  private int count(String sql) throws SQLException {
    try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + store.path().toUri());
        Statement s = c.createStatement();
        var rs = s.executeQuery(sql)) {
      rs.next();
      return rs.getInt(1);
    }
  }

  @Test
  void concurrentInsertsShareTransactions() throws Exception {
    int threads = 64;
    int each = 40;
    List<Future<List<RunRecord>>> futures = new ArrayList<>();
    CountDownLatch start = new CountDownLatch(1);
    for (int t = 0; t < threads; t++) {
      int thread = t;
      futures.add(pool.submit(() -> {
        start.await();
        List<RunRecord> mine = new ArrayList<>();
        for (int i = 0; i < each; i++) {
          mine.add(store.insert(NewRun.of(RunRequest.of("a", thread + ":" + i))));
        }
        return mine;
      }));
    }
    long commitsBefore = store.writer().commits();
    start.countDown();
    for (int t = 0; t < threads; t++) {
      List<RunRecord> mine = futures.get(t).get();
      for (int i = 0; i < each; i++) {
        assertThat(mine.get(i).input()).isEqualTo(t + ":" + i);
      }
    }
    long commits = store.writer().commits() - commitsBefore;
    assertThat(commits).as("transactions for %s inserts", threads * each)
        .isLessThan(threads * each / 4);
    assertThat(store.writer().largestBatch()).isGreaterThan(8);
  }

  @Test
  void aBadOperationInABatchFailsAloneAndTheOthersCommit() throws Exception {
    // A real fault inside the shared transaction: the database itself rejects some inserts.
    execute("CREATE TRIGGER poison BEFORE INSERT ON runs WHEN NEW.input LIKE 'poison%'"
        + " BEGIN SELECT RAISE(ABORT, 'poisoned input'); END");
    CountDownLatch release = blockWriter();
    long commitsBefore = store.writer().commits();

    int n = 40;
    List<Future<RunRecord>> futures = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      String input = (i % 4 == 1 ? "poison-" : "good-") + i;
      futures.add(pool.submit(() -> store.insert(NewRun.of(RunRequest.of("a", input)))));
    }
    awaitQueued(n);
    release.countDown();

    int good = 0;
    for (int i = 0; i < n; i++) {
      if (i % 4 == 1) {
        Future<RunRecord> f = futures.get(i);
        assertThat(f).failsWithin(10, TimeUnit.SECONDS)
            .withThrowableOfType(java.util.concurrent.ExecutionException.class)
            .havingCause()
            .isInstanceOf(StoreException.class)
            .withMessageContaining("poisoned input")
            .withMessageContaining(store.path().toString());
      } else {
        RunRecord r = futures.get(i).get(10, TimeUnit.SECONDS);
        assertThat(r.input()).isEqualTo("good-" + i);
        assertThat(store.find(r.id())).contains(r);
        assertThat(store.events(r.id())).hasSize(1);
        good++;
      }
    }
    // One transaction: the forty queued while the gate's ran joined it, and the poisoned ones
    // failing sent it round again isolated, not into one transaction each.
    assertThat(store.writer().commits() - commitsBefore).isEqualTo(1);
    assertThat(count("SELECT count(*) FROM runs")).isEqualTo(good);
    assertThat(count("SELECT count(*) FROM events")).isEqualTo(good);
    assertThat(count("SELECT count(*) FROM runs WHERE input LIKE 'poison%'")).isZero();
    assertThat(store.stats().agent("a").queued()).isEqualTo(good);
  }

  @Test
  void aLostTransactionIsReplayedOneOperationAtATime() throws Exception {
    CountDownLatch release = blockWriter();
    long commitsBefore = store.writer().commits();
    List<Future<RunRecord>> before = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      String input = "before-" + i;
      before.add(pool.submit(() -> store.insert(NewRun.of(RunRequest.of("a", input)))));
    }
    awaitQueued(5);
    // Like SQLite after an I/O error: the whole transaction is gone, not just this savepoint.
    Future<Object> wrecker = pool.submit(() -> store.writer().submit("wrecker", tx -> {
      tx.execute("ROLLBACK");
      throw new SQLException("disk I/O error", "HY000", 10);
    }));
    awaitQueued(6);
    List<Future<RunRecord>> after = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      String input = "after-" + i;
      after.add(pool.submit(() -> store.insert(NewRun.of(RunRequest.of("a", input)))));
    }
    awaitQueued(11);
    release.countDown();

    assertThat(wrecker).failsWithin(10, TimeUnit.SECONDS)
        .withThrowableOfType(java.util.concurrent.ExecutionException.class)
        .havingCause().isInstanceOf(StoreException.class)
        .withMessageContaining("I/O error");
    List<Future<RunRecord>> all = new ArrayList<>(before);
    all.addAll(after);
    for (Future<RunRecord> f : all) {
      RunRecord r = f.get(10, TimeUnit.SECONDS);
      assertThat(store.find(r.id())).contains(r);
    }
    assertThat(count("SELECT count(*) FROM runs")).isEqualTo(10);
    assertThat(count("SELECT count(*) FROM events")).isEqualTo(10);
    // the gate, then each of the ten alone
    assertThat(store.writer().commits() - commitsBefore).isEqualTo(11);
  }

  /**
   * After SQLite dropped a transaction, the writer's own ROLLBACK and ROLLBACK TO fail (there is
   * nothing to roll back), and sqlite-jdbc leaves a statement whose execute() failed unusable.
   * The writer must not keep such statements: later batches still need to roll back.
   */
  @Test
  void theWriterStillRollsBackAfterATransactionWasLost() throws Exception {
    Future<Object> wrecker = pool.submit(() -> store.writer().submit("wrecker", tx -> {
      try (Statement s = tx.connection().createStatement()) {
        s.execute("ROLLBACK"); // as SQLite does itself after some I/O errors
      }
      throw new SQLException("disk I/O error", "HY000", 10);
    }));
    assertThat(wrecker).failsWithin(10, TimeUnit.SECONDS)
        .withThrowableOfType(java.util.concurrent.ExecutionException.class)
        .havingCause().isInstanceOf(StoreException.class).withMessageContaining("I/O error");

    // A batch that needs a rollback: one poisoned insert among good ones.
    execute("CREATE TRIGGER poison BEFORE INSERT ON runs WHEN NEW.input = 'poison'"
        + " BEGIN SELECT RAISE(ABORT, 'poisoned input'); END");
    CountDownLatch release = blockWriter();
    List<Future<RunRecord>> good = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      String input = "good-" + i;
      good.add(pool.submit(() -> store.insert(NewRun.of(RunRequest.of("a", input)))));
    }
    Future<RunRecord> poisoned =
        pool.submit(() -> store.insert(NewRun.of(RunRequest.of("a", "poison"))));
    awaitQueued(5);
    release.countDown();
    assertThat(poisoned).failsWithin(10, TimeUnit.SECONDS)
        .withThrowableOfType(java.util.concurrent.ExecutionException.class)
        .havingCause().withMessageContaining("poisoned input");
    for (Future<RunRecord> f : good) {
      RunRecord r = f.get(10, TimeUnit.SECONDS);
      assertThat(store.find(r.id())).contains(r);
    }
    // and the writer goes on as if nothing happened
    RunRecord later = store.insert(NewRun.of(RunRequest.of("a", "later")));
    assertThat(store.find(later.id())).contains(later);
    assertThat(count("SELECT count(*) FROM runs")).isEqualTo(5);
  }

  @Test
  void anOperationThatThrowsFailsWithAStoreExceptionAndLeavesNothing() throws Exception {
    RunRecord kept = store.insert(NewRun.of(RunRequest.of("a", "kept")));
    Future<Object> f = pool.submit(() -> store.writer().submit("half-done", tx -> {
      tx.execute("DELETE FROM runs");
      throw new IllegalStateException("bug");
    }));
    assertThat(f).failsWithin(10, TimeUnit.SECONDS)
        .withThrowableOfType(java.util.concurrent.ExecutionException.class)
        .havingCause().isInstanceOf(StoreException.class)
        .withMessageContaining("half-done failed");
    assertThat(store.find(kept.id())).contains(kept);
  }
}
