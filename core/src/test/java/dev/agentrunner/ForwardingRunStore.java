package dev.agentrunner;

import dev.agentrunner.spi.ClaimRequest;
import dev.agentrunner.spi.Finish;
import dev.agentrunner.spi.Heartbeat;
import dev.agentrunner.spi.NewRun;
import dev.agentrunner.spi.RunStore;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/** A store that forwards every call, for tests that make one operation misbehave. */
class ForwardingRunStore implements RunStore {
  private final RunStore delegate;

  ForwardingRunStore(RunStore delegate) {
    this.delegate = delegate;
  }

  @Override
  public RunRecord insert(NewRun run) {
    return delegate.insert(run);
  }

  @Override
  public List<RunRecord> claim(ClaimRequest request) {
    return delegate.claim(request);
  }

  @Override
  public Heartbeat heartbeat(String owner, Set<Long> runIds, Duration lease) {
    return delegate.heartbeat(owner, runIds, lease);
  }

  @Override
  public Optional<RunRecord> finish(Finish finish) {
    return delegate.finish(finish);
  }

  @Override
  public int release(String owner, List<RunRecord> claimed) {
    return delegate.release(owner, claimed);
  }

  @Override
  public Optional<RunRecord> cancel(long runId) {
    return delegate.cancel(runId);
  }

  @Override
  public List<RunRecord> recoverExpiredLeases() {
    return delegate.recoverExpiredLeases();
  }

  @Override
  public Optional<RunEvent> appendEvent(long runId, int attempt, String type, String data) {
    return delegate.appendEvent(runId, attempt, type, data);
  }

  @Override
  public Optional<RunRecord> find(long runId) {
    return delegate.find(runId);
  }

  @Override
  public Page<RunRecord> query(RunQuery query) {
    return delegate.query(query);
  }

  @Override
  public List<RunEvent> events(long runId) {
    return delegate.events(runId);
  }

  @Override
  public RunStats stats() {
    return delegate.stats();
  }

  @Override
  public int purge(Instant finishedBefore) {
    return delegate.purge(finishedBefore);
  }

  @Override
  public void close() {
    delegate.close();
  }
}
