package dev.agentrunner.tck;

import dev.agentrunner.StoreException;
import dev.agentrunner.memory.InMemoryRunStore;
import dev.agentrunner.spi.RunStore;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Runs the contract suite against the reference {@link InMemoryRunStore}. The fault is injected
 * through the store's {@code beforeEventWrite} hook, which runs inside the store's lock before a
 * change commits, so a throw there abandons the whole operation like a failing SQL trigger.
 *
 * <p>Thread-safety: one instance per test, as JUnit creates them.
 */
final class InMemoryRunStoreContractTest extends RunStoreContractTest {

  private final AtomicBoolean failing = new AtomicBoolean();

  @Override
  protected RunStore newStore(TestClock clock) {
    return InMemoryRunStore.builder()
        .clock(clock)
        .beforeEventWrite(event -> {
          if (failing.get()) {
            throw new StoreException("injected fault");
          }
        })
        .build();
  }

  @Override
  protected AutoCloseable failEventWrites(RunStore store) {
    if (!failing.compareAndSet(false, true)) {
      throw new IllegalStateException("event writes already fail");
    }
    return () -> failing.set(false);
  }

  @Override
  protected boolean claimsAtInsert() {
    return true;
  }
}
