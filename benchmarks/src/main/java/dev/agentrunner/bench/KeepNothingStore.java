package dev.agentrunner.bench;

import dev.agentrunner.Page;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStats;
import dev.agentrunner.RunStatus;
import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.Heartbeat;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A "store" that keeps nothing, for figure 1's decomposition only: every insert-and-claim comes
 * back claimed by whoever asked, with a fresh id, and every finish comes back applied; there is
 * no history, no lock. It holds only each running run's input, to hand it back with the
 * finished record (the harness's listener reads the submit time from it), and the few runs a
 * submit stores unclaimed (when the dispatcher holds the free permits for a moment), for the
 * next claim. An engine on it does all of its own work (permits, executions,
 * timers, local stats, listeners, threads) and none of a store's, so the gap between it and the
 * raw executor is the engine's, and the gap between it and the in-memory store is the cost of
 * keeping the history. Not a {@link RunStore} anyone could use: it breaks the contract on
 * purpose (nothing is found, nothing is queued, nothing is counted).
 *
 * <p>Thread-safety: thread-safe.
 */
final class KeepNothingStore implements RunStore {
  private final AtomicLong ids = new AtomicLong();
  private final Map<Long, String> inputs = new ConcurrentHashMap<>();
  private final java.util.Queue<RunRecord> waiting =
      new java.util.concurrent.ConcurrentLinkedQueue<>();
  private final Instant epoch = Instant.now();

  @Override
  public RunRecord insert(NewRun run) {
    long id = ids.incrementAndGet();
    RunRecord queued = new RunRecord(id, run.agent(), RunStatus.QUEUED, run.input(), null, null,
        null, null, 0, 0, run.maxAttempts(), epoch, epoch, null, null, null, null, false,
        dev.agentrunner.Usage.ZERO);
    waiting.add(queued);
    return queued;
  }

  @Override
  public RunRecord insertAndClaim(NewRun run, ClaimRequest claim) {
    long id = ids.incrementAndGet();
    inputs.put(id, run.input());
    return new RunRecord(id, run.agent(), RunStatus.RUNNING, run.input(),
        null, null, null, null, 0, 1, run.maxAttempts(), epoch, epoch, epoch, null,
        claim.owner(), epoch, false, dev.agentrunner.Usage.ZERO);
  }

  @Override
  public Optional<RunRecord> finish(Finish finish) {
    String input = inputs.remove(finish.runId());
    return Optional.of(new RunRecord(finish.runId(), "noop", finish.status(), input,
        finish.output(),
        finish.error(), null, null, 0, finish.attempt(), 1, epoch, epoch, epoch, epoch,
        finish.owner(), null, false, finish.usage()));
  }

  @Override
  public List<RunRecord> claim(ClaimRequest request) {
    List<RunRecord> claimed = new java.util.ArrayList<>();
    RunRecord next;
    while (claimed.size() < request.limit() && (next = waiting.poll()) != null) {
      inputs.put(next.id(), next.input());
      claimed.add(new RunRecord(next.id(), next.agent(), RunStatus.RUNNING, next.input(), null,
          null, null, null, 0, 1, next.maxAttempts(), epoch, epoch, epoch, null, request.owner(),
          epoch, false, dev.agentrunner.Usage.ZERO));
    }
    return claimed;
  }

  @Override
  public Heartbeat heartbeat(String owner, Set<Long> runIds, Duration lease) {
    return new Heartbeat(0, Set.of());
  }

  @Override
  public int release(String owner, List<RunRecord> claimed) {
    return 0;
  }

  @Override
  public Optional<RunRecord> cancel(long runId) {
    return Optional.empty();
  }

  @Override
  public List<RunRecord> recoverExpiredLeases() {
    return List.of();
  }

  @Override
  public Optional<RunEvent> appendEvent(long runId, int attempt, String type, String data) {
    return Optional.empty();
  }

  @Override
  public Optional<RunRecord> find(long runId) {
    return Optional.empty();
  }

  @Override
  public Page<RunRecord> query(RunQuery query) {
    return query.toPage(List.of());
  }

  @Override
  public List<RunEvent> events(long runId) {
    return List.of();
  }

  @Override
  public RunStats stats() {
    return new RunStats(Map.of());
  }

  @Override
  public int purge(Instant finishedBefore) {
    return 0;
  }

  @Override
  public void close() {}
}
