package dev.agentrunner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatNullPointerException;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.agentrunner.memory.InMemoryRunStore;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Every bad argument gets an exception naming the parameter and the value, and stores nothing. */
class BadInputTest {
  private InMemoryRunStore store;
  private AgentRunner runner;

  @BeforeEach
  void start() {
    store = InMemoryRunStore.create();
    runner = AgentRunner.builder().store(store).maxInputBytes(1000)
        .agent("scanner", ctx -> AgentResult.of("ok"))
        .agent("chat", ctx -> AgentResult.of("ok"))
        .build();
  }

  @AfterEach
  void stop() {
    runner.close();
    assertThat(store.stats().total().total()).as("nothing was stored").isZero();
    store.close();
  }

  @Test
  void nullsAreRefusedNamingTheParameter() {
    assertThatNullPointerException().isThrownBy(() -> runner.submit(null))
        .withMessage("request");
    assertThatNullPointerException().isThrownBy(() -> RunRequest.of(null, "x"))
        .withMessage("agent");
    assertThatNullPointerException().isThrownBy(() -> RunRequest.of("scanner", null))
        .withMessage("input");
    assertThatNullPointerException().isThrownBy(() -> runner.history(null)).withMessage("query");
    assertThatNullPointerException().isThrownBy(() -> AgentRunner.builder().store(null))
        .withMessage("store");
    assertThatNullPointerException().isThrownBy(() -> AgentRunner.builder().agent("a", null))
        .withMessage("agent");
    assertThatNullPointerException().isThrownBy(() -> AgentRunner.builder().clock(null))
        .withMessage("clock");
    assertThatNullPointerException().isThrownBy(() -> Usage.ZERO.plus(null)).withMessage("other");
  }

  @Test
  void badAgentNamesAreRefused() {
    assertThatThrownBy(() -> RunRequest.of("  ", "x"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("agent must not be blank");
    assertThatThrownBy(() -> RunRequest.of("a".repeat(129), "x"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("agent must be at most 128 characters, was 129");
    assertThatThrownBy(() -> RunRequest.of("bad\nname", "x"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("agent must not contain control characters, found U+000A at index 3");
    assertThatThrownBy(() -> RunRequest.of("a", "x").withSerialKey("k\u0000"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("serialKey");
    assertThatThrownBy(() -> AgentSpec.named(""))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("name");
    assertThat(RunRequest.of("a".repeat(128), "x").agent()).hasSize(128);
  }

  @Test
  void unknownAgentListsTheKnownOnes() {
    assertThatThrownBy(() -> runner.submit(RunRequest.of("scannr", "x")))
        .isInstanceOf(UnknownAgentException.class)
        .hasMessage("unknown agent \"scannr\"; registered agents: \"chat\", \"scanner\"");
  }

  @Test
  void oversizedInputIsRefusedWithItsSize() {
    String accepted = "é".repeat(500); // exactly 1000 bytes of UTF-8
    assertThat(runner.submit(RunRequest.of("scanner", accepted)).await(Duration.ofSeconds(10))
        .status()).isEqualTo(RunStatus.SUCCEEDED);
    store.purge(java.time.Instant.now().plusSeconds(3600)); // keep the "nothing stored" check
    assertThatThrownBy(() -> runner.submit(RunRequest.of("scanner", accepted + "x")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("input is 1001 bytes of UTF-8, more than maxInputBytes (1000)");
  }

  @Test
  void negativeZeroOrTooLargeLimitsAndDurationsAreRefused() {
    AgentRunnerBuilder b = AgentRunner.builder();
    assertThatThrownBy(() -> b.maxConcurrency(0))
        .hasMessage("maxConcurrency must be positive, was 0");
    assertThatThrownBy(() -> b.maxConcurrency(-3))
        .hasMessage("maxConcurrency must be positive, was -3");
    assertThatThrownBy(() -> b.maxConcurrency(AgentRunnerBuilder.MAX_CONCURRENCY + 1))
        .hasMessage("maxConcurrency must be at most 1073741824, was 1073741825");
    assertThatThrownBy(() -> b.maxInputBytes(-1))
        .hasMessage("maxInputBytes must be positive, was -1");
    assertThatThrownBy(() -> b.pollInterval(Duration.ofMillis(-5)))
        .hasMessage("pollInterval must be positive, was PT-0.005S");
    assertThatThrownBy(() -> b.leaseDuration(Duration.ZERO))
        .hasMessage("leaseDuration must be positive, was PT0S");
    assertThatThrownBy(() -> b.shutdownTimeout(Duration.ofSeconds(-1)))
        .hasMessageContaining("shutdownTimeout must not be negative");
    assertThatThrownBy(() -> AgentSpec.named("a").maxConcurrency(0))
        .hasMessage("maxConcurrency must be positive, was 0");
    assertThatThrownBy(() -> AgentSpec.named("a").timeout(Duration.ofSeconds(-1)))
        .hasMessage("timeout must be positive, was PT-1S");
    assertThatThrownBy(() -> Usage.of(-1, 0, 0))
        .hasMessage("inputTokens must not be negative, was -1");
    assertThatThrownBy(() -> RunQuery.all().limit(0))
        .hasMessage("limit must be between 1 and 1000, was 0");
    assertThatThrownBy(() -> runner.close(Duration.ofSeconds(-1)))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("timeout");
    assertThatThrownBy(() -> AgentRunner.builder().build())
        .isInstanceOf(IllegalStateException.class).hasMessageContaining("at least one agent");
    assertThatThrownBy(() -> AgentRunner.builder().agent("a", c -> null).agent("a", c -> null))
        .hasMessage("agent \"a\" is already registered");
  }

  @Test
  void aRetryDelayNeverExceedsTheLongestAStoreTakes() {
    RetryPolicy longest = RetryPolicy.exponential(80, RetryPolicy.MAX_DELAY).withJitter(1.0)
        .withMultiplier(10);
    java.util.Random random = new java.util.Random(7);
    for (int attempt = 1; attempt < 80; attempt++) {
      Duration delay = longest.delayAfter(attempt, random);
      assertThat(delay).isBetween(Duration.ZERO, RetryPolicy.MAX_DELAY);
      // and every such delay makes a valid retry
      assertThat(dev.agentrunner.spi.Finish.retry(1, 1, "w", "x", Usage.ZERO, delay).retryAfter())
          .isEqualTo(delay);
    }
  }

  @Test
  void badRetryPoliciesAndDelaysAreRefused() {
    assertThatThrownBy(() -> RetryPolicy.exponential(0, Duration.ofSeconds(1)))
        .hasMessage("maxAttempts must be positive, was 0");
    assertThatThrownBy(() -> RetryPolicy.exponential(3, Duration.ofSeconds(-1)))
        .hasMessage("initialDelay must not be negative, was PT-1S");
    assertThatThrownBy(() -> RetryPolicy.exponential(3, Duration.ofSeconds(1)).withJitter(1.5))
        .hasMessage("jitter must be between 0 and 1, was 1.5");
    assertThatThrownBy(() -> RetryPolicy.exponential(3, Duration.ofSeconds(1)).withMultiplier(0.5))
        .hasMessage("multiplier must be a finite number >= 1, was 0.5");
    assertThatThrownBy(() -> RetryPolicy.exponential(3, Duration.ofSeconds(2))
        .withMaxDelay(Duration.ofSeconds(1)))
        .hasMessageContaining("maxDelay must be at least the initial delay");
    assertThatThrownBy(() -> RetryPolicy.exponential(3, Duration.ofDays(36_501)))
        .hasMessage("initialDelay must be at most PT876000H, was PT876024H");
    assertThatThrownBy(() -> RetryPolicy.exponential(3, Duration.ofSeconds(1))
        .withMaxDelay(Duration.ofDays(40_000)))
        .hasMessage("maxDelay must be at most PT876000H, was PT960000H");
    assertThatThrownBy(() -> RunRequest.of("a", "x")
        .withDelay(Duration.ofSeconds(-1), java.time.Clock.systemUTC()))
        .hasMessage("delay must not be negative, was PT-1S");
    assertThatNullPointerException()
        .isThrownBy(() -> RunRequest.of("a", "x").withSerialKey("k", null)).withMessage("policy");
    assertThatThrownBy(() -> runner.submit(RunRequest.of("nobody", "x")
        .withSerialKey("k", SerialKeyPolicy.REJECT)))
        .isInstanceOf(UnknownAgentException.class);
  }

  @Test
  void aForgedCursorIsRefused() {
    assertThatThrownBy(() -> RunQuery.all().after("not-a-cursor"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("cursor is not one this library produced");
  }
}
