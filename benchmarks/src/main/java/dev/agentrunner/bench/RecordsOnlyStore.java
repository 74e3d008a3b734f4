package dev.agentrunner.bench;

import dev.agentrunner.Page;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.Usage;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.Heartbeat;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * The least history a store could keep, for figure 1m only: ids from one counter and each run's
 * latest record in its own slot of an array indexed by id (chunks of 65,536 slots, made on first
 * use), set by the insert and replaced by a compare-and-set of the record its finish fenced
 * (attempt and owner). No hashing, no lock, no events, no counts, no lease list, no queue, no
 * reads consistent across runs. It answers only the two calls a run started at its submit makes
 * ({@link #insertAndClaim}, {@link #finish}) and {@link #find}; everything else throws. The gap
 * between it and the in-memory store (1h) is what the rest of the store's contract costs.
 *
 * <p>Thread-safety: thread-safe.
 */
final class RecordsOnlyStore implements RunStore {
  /** Slots per chunk, as a power of two; chunks are made on first use. */
  private static final int CHUNK_BITS = 16;
  private static final int CHUNK_MASK = (1 << CHUNK_BITS) - 1;
  /** Enough chunks for 2^30 runs, far more than a round of figure 1 makes. */
  private static final int CHUNKS = 1 << 14;

  private final AtomicLong ids = new AtomicLong();
  private final AtomicReferenceArray<AtomicReferenceArray<RunRecord>> chunks =
      new AtomicReferenceArray<>(CHUNKS);
  private final Clock clock = Clock.systemUTC();

  /** The chunk holding run {@code id}'s slot, made if it is the first of its chunk. */
  private AtomicReferenceArray<RunRecord> chunkOf(long id) {
    long c = id >>> CHUNK_BITS;
    if (c >= CHUNKS) {
      throw new IllegalStateException("RecordsOnlyStore holds at most " + ((long) CHUNKS
          << CHUNK_BITS) + " runs; run " + id + " is beyond");
    }
    AtomicReferenceArray<RunRecord> chunk = chunks.get((int) c);
    if (chunk == null) {
      chunks.compareAndSet((int) c, null, new AtomicReferenceArray<>(1 << CHUNK_BITS));
      chunk = chunks.get((int) c);
    }
    return chunk;
  }

  @Override
  public RunRecord insertAndClaim(NewRun run, ClaimRequest claim) {
    Instant now = clock.instant();
    RunRecord claimed = new RunRecord(ids.incrementAndGet(), run.agent(), RunStatus.RUNNING,
        run.input(), null, null, null, null, run.request().priority(), 1, run.maxAttempts(), now,
        now, now, null, claim.owner(), now.plus(claim.lease()), false, Usage.ZERO);
    chunkOf(claimed.id()).set((int) (claimed.id() & CHUNK_MASK), claimed);
    return claimed;
  }

  @Override
  public Optional<RunRecord> finish(Finish finish) {
    RunRecord run = find(finish.runId()).orElse(null);
    if (run == null || run.status() != RunStatus.RUNNING || run.attempt() != finish.attempt()
        || !finish.owner().equals(run.owner()) || finish.status() == RunStatus.QUEUED) {
      return Optional.empty();
    }
    RunRecord done = new RunRecord(run.id(), run.agent(), finish.status(), run.input(),
        finish.output(), finish.error(), null, null, run.priority(), run.attempt(),
        run.maxAttempts(), run.createdAt(), run.notBefore(), run.startedAt(), clock.instant(),
        run.owner(), null, false, run.usage().plus(finish.usage()));
    return chunkOf(run.id()).compareAndSet((int) (run.id() & CHUNK_MASK), run, done)
        ? Optional.of(done) : Optional.empty();
  }

  @Override
  public Optional<RunRecord> find(long runId) {
    return runId < 1 || runId > ids.get() ? Optional.empty()
        : Optional.ofNullable(chunkOf(runId).get((int) (runId & CHUNK_MASK)));
  }

  private static UnsupportedOperationException notHere() {
    return new UnsupportedOperationException(
        "RecordsOnlyStore answers only insertAndClaim, finish and find (figure 1m)");
  }

  @Override
  public RunRecord insert(NewRun run) {
    throw notHere();
  }

  @Override
  public List<RunRecord> claim(ClaimRequest request) {
    throw notHere();
  }

  @Override
  public Heartbeat heartbeat(String owner, Set<Long> runIds, Duration lease) {
    throw notHere();
  }

  @Override
  public int release(String owner, List<RunRecord> claimed) {
    throw notHere();
  }

  @Override
  public Optional<RunRecord> cancel(long runId) {
    throw notHere();
  }

  @Override
  public List<RunRecord> recoverExpiredLeases() {
    throw notHere();
  }

  @Override
  public Optional<RunEvent> appendEvent(long runId, int attempt, String type, String data) {
    throw notHere();
  }

  @Override
  public Page<RunRecord> query(RunQuery query) {
    throw notHere();
  }

  @Override
  public List<RunEvent> events(long runId) {
    throw notHere();
  }

  @Override
  public RunStats stats() {
    throw notHere();
  }

  @Override
  public int purge(Instant finishedBefore) {
    throw notHere();
  }

  @Override
  public void close() {}
}
