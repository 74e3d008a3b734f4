package dev.agentrunner.internal;

import dev.agentrunner.AgentRunnerException;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunnerClosedException;
import dev.agentrunner.spi.RunStore;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Futures for runs someone waits on. Runs finished by this process complete their future at
 * once; runs finished elsewhere are found by {@link #pollStore}, which the dispatcher calls
 * every poll interval. Only awaited runs have an entry, so idle runs cost nothing.
 *
 * <p>Thread-safety: thread-safe.
 */
final class Completions {
  private static final Logger log = LoggerFactory.getLogger(Completions.class);

  private final Map<Long, CompletableFuture<RunRecord>> waiting = new ConcurrentHashMap<>();

  /** The future of run {@code id}, completed at once if the run is already terminal. */
  CompletableFuture<RunRecord> register(long id, Supplier<Optional<RunRecord>> read) {
    CompletableFuture<RunRecord> future =
        waiting.computeIfAbsent(id, k -> new CompletableFuture<>());
    // Read after registering, so a run that finished in between is not missed.
    Optional<RunRecord> current = read.get();
    if (current.isPresent()) {
      complete(current.get());
    } else if (waiting.remove(id, future)) {
      future.completeExceptionally(new AgentRunnerException(
          "there is no run " + id + " in the store (never submitted, or purged)"));
    }
    return future;
  }

  /** Completes the future of {@code run} if it is terminal and someone waits for it. */
  void complete(RunRecord run) {
    if (run.isTerminal() && !waiting.isEmpty()) {
      CompletableFuture<RunRecord> future = waiting.remove(run.id());
      if (future != null) {
        future.complete(run);
      }
    }
  }

  /** Completes futures of runs that other processes finished. */
  void pollStore(RunStore store) {
    for (Long id : waiting.keySet()) {
      store.find(id).ifPresent(this::complete);
    }
  }

  /** Ends every wait when the runner closes: with the final record, or an exception. */
  void closeAll(RunStore store) {
    for (Long id : waiting.keySet()) {
      try {
        store.find(id).ifPresent(this::complete);
      } catch (RuntimeException e) {
        log.debug("could not read run {} while closing", id, e);
      }
      CompletableFuture<RunRecord> future = waiting.remove(id);
      if (future != null) {
        future.completeExceptionally(new RunnerClosedException(
            "the runner closed before run " + id + " finished; it is still in the store"));
      }
    }
  }
}
