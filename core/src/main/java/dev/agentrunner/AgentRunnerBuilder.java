package dev.agentrunner;

import dev.agentrunner.internal.Checks;
import dev.agentrunner.internal.Engine;
import dev.agentrunner.internal.RunnerConfig;
import dev.agentrunner.memory.InMemoryRunStore;
import dev.agentrunner.spi.RunStore;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;

/**
 * Configures an {@link AgentRunner}. Every setter checks its argument at once and names the bad
 * value; {@link #build()} copies the configuration, so a built runner never changes when the
 * builder does.
 *
 * <p>Defaults: an {@link InMemoryRunStore}, the UTC system clock, 256 concurrent runs, a poll
 * interval of 1 s for work from other processes, leases of 30 s (renewed every 10 s), inputs up
 * to 1 MiB, a 30 s shutdown wait and a 5 s grace for agents that ignore interruption.
 *
 * <p>Thread-safety: not thread-safe; configure from one thread.
 */
public final class AgentRunnerBuilder {

  /** The default maximum input size: 1 MiB of UTF-8. */
  public static final int DEFAULT_MAX_INPUT_BYTES = 1 << 20;

  /** The largest {@link #maxConcurrency}: 2<sup>30</sup>. */
  public static final int MAX_CONCURRENCY = 1 << 30;

  private RunStore store;
  private Clock clock = Clock.systemUTC();
  private final Map<String, RunnerConfig.AgentRegistration> agents = new LinkedHashMap<>();
  private final List<RunListener> listeners = new ArrayList<>();
  private int maxConcurrency = 256;
  private Duration pollInterval = Duration.ofSeconds(1);
  private Duration leaseDuration = Duration.ofSeconds(30);
  private int maxInputBytes = DEFAULT_MAX_INPUT_BYTES;
  private Duration shutdownTimeout = Duration.ofSeconds(30);
  private Duration abandonAfter = Duration.ofSeconds(5);
  private String workerId;

  AgentRunnerBuilder() {}

  /**
   * The store to keep runs in (default: a new {@link InMemoryRunStore}, which the runner closes
   * with itself). A store passed here stays the caller's: close it after the runner, for example
   * by opening both in one try-with-resources statement, store first.
   */
  public AgentRunnerBuilder store(RunStore store) {
    this.store = Objects.requireNonNull(store, "store");
    return this;
  }

  /** The clock for deadlines (default: the UTC system clock). */
  public AgentRunnerBuilder clock(Clock clock) {
    this.clock = Objects.requireNonNull(clock, "clock");
    return this;
  }

  /**
   * Registers an agent with no per-agent limit and no timeout.
   *
   * @throws IllegalArgumentException if the name is invalid or already registered
   */
  public AgentRunnerBuilder agent(String name, Agent agent) {
    return agent(AgentSpec.named(name), agent);
  }

  /**
   * Registers an agent with its spec.
   *
   * @throws IllegalArgumentException if an agent of that name is already registered
   */
  public AgentRunnerBuilder agent(AgentSpec spec, Agent agent) {
    Objects.requireNonNull(spec, "spec");
    Objects.requireNonNull(agent, "agent");
    if (agents.containsKey(spec.name())) {
      throw new IllegalArgumentException("agent \"" + spec.name() + "\" is already registered");
    }
    agents.put(spec.name(), new RunnerConfig.AgentRegistration(spec, agent));
    return this;
  }

  /** Adds a listener; listeners are called in the order they were added. */
  public AgentRunnerBuilder listener(RunListener listener) {
    listeners.add(Objects.requireNonNull(listener, "listener"));
    return this;
  }

  /**
   * At most this many runs execute at once in this runner (default 256, at most
   * {@value #MAX_CONCURRENCY}). A run counts from its claim until its agent returns; while its
   * outcome is being written to the store the next run may take its place, so the runner holds at
   * most twice this many runs RUNNING in the store: up to this many executing, the others waiting
   * for their outcome's write (not counting outcomes the store failed to take, which wait for a
   * retry).
   */
  public AgentRunnerBuilder maxConcurrency(int maxConcurrency) {
    Checks.positive(maxConcurrency, "maxConcurrency");
    if (maxConcurrency > MAX_CONCURRENCY) {
      throw new IllegalArgumentException("maxConcurrency must be at most " + MAX_CONCURRENCY
          + ", was " + maxConcurrency);
    }
    this.maxConcurrency = maxConcurrency;
    return this;
  }

  /**
   * How often to look for runs submitted by other processes and for expired leases (default
   * 1 s). Runs submitted through this runner start without waiting for it.
   */
  public AgentRunnerBuilder pollInterval(Duration pollInterval) {
    this.pollInterval = Checks.positive(pollInterval, "pollInterval");
    return this;
  }

  /**
   * How long a claim holds without a heartbeat (default 30 s); heartbeats come every third of
   * it. A process that dies leaves its runs to be recovered by others once this has passed.
   */
  public AgentRunnerBuilder leaseDuration(Duration leaseDuration) {
    this.leaseDuration = Checks.positive(leaseDuration, "leaseDuration");
    return this;
  }

  /** The largest input accepted, in UTF-8 bytes (default 1 MiB). */
  public AgentRunnerBuilder maxInputBytes(int maxInputBytes) {
    this.maxInputBytes = Checks.positive(maxInputBytes, "maxInputBytes");
    return this;
  }

  /** How long {@link AgentRunner#close()} waits for running agents (default 30 s). */
  public AgentRunnerBuilder shutdownTimeout(Duration shutdownTimeout) {
    Objects.requireNonNull(shutdownTimeout, "shutdownTimeout");
    Checks.notNegative(shutdownTimeout.toMillis(), "shutdownTimeout");
    this.shutdownTimeout = shutdownTimeout;
    return this;
  }

  /**
   * How long an interrupted agent (timed out, cancelled or stopped) may take to return before
   * the runner ends its run without it and discards its late result (default 5 s).
   */
  public AgentRunnerBuilder abandonAfter(Duration abandonAfter) {
    this.abandonAfter = Checks.positive(abandonAfter, "abandonAfter");
    return this;
  }

  /**
   * The id this runner writes as the owner of the runs it claims (default: a random UUID).
   * Must be unique among the runners sharing a store.
   */
  public AgentRunnerBuilder workerId(String workerId) {
    this.workerId = Checks.name(workerId, "workerId");
    return this;
  }

  /**
   * Builds and starts the runner.
   *
   * @throws IllegalStateException if no agent is registered
   */
  public AgentRunner build() {
    if (agents.isEmpty()) {
      throw new IllegalStateException("register at least one agent before build()");
    }
    RunnerConfig config = new RunnerConfig(
        store == null ? InMemoryRunStore.create() : store,
        store == null,
        clock,
        Map.copyOf(agents),
        List.copyOf(listeners),
        maxConcurrency,
        pollInterval,
        leaseDuration,
        maxInputBytes,
        shutdownTimeout,
        abandonAfter,
        workerId == null ? "worker-" + UUID.randomUUID() : workerId);
    return Engine.start(config);
  }
}
