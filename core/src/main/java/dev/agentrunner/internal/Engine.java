package dev.agentrunner.internal;

import dev.agentrunner.AgentRunner;

/** The runner engine. */
public final class Engine {
  private Engine() {}

  /** Starts a runner. */
  public static AgentRunner start(RunnerConfig config) {
    throw new UnsupportedOperationException("engine under construction");
  }
}
