package dev.agentrunner.internal;

import dev.agentrunner.RunEvent;
import dev.agentrunner.RunListener;
import dev.agentrunner.RunRecord;
import java.util.List;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Calls the host's listeners so that none of them can harm the runner: a listener that throws
 * is logged and the others are still called.
 *
 * <p>Thread-safety: thread-safe (immutable).
 */
final class Listeners {
  private static final Logger log = LoggerFactory.getLogger(Listeners.class);

  private final List<RunListener> listeners;

  Listeners(List<RunListener> listeners) {
    this.listeners = List.copyOf(listeners);
  }

  void submitted(RunRecord run) {
    each("onSubmitted", RunListener::onSubmitted, run);
  }

  void started(RunRecord run) {
    each("onStarted", RunListener::onStarted, run);
  }

  void finished(RunRecord run) {
    each("onFinished", RunListener::onFinished, run);
  }

  void event(RunEvent event) {
    each("onEvent", RunListener::onEvent, event);
  }

  private <T> void each(String callback, BiConsumer<RunListener, T> call, T arg) {
    for (RunListener listener : listeners) {
      try {
        call.accept(listener, arg);
      } catch (Throwable t) {
        log.warn("RunListener {}.{} threw; ignored", listener.getClass().getName(), callback, t);
      }
    }
  }
}
