package dev.agentrunner.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The permit pools, one thread: an agent limited below the global limit is counted on its own;
 * one at or above it is bound by the global pool alone (its own count is skipped).
 */
class PermitsTest {

  @Test
  void anAgentBelowTheGlobalLimitIsHeldToItsOwn() {
    Permits permits = new Permits(3, Map.of("small", 1, "big", 3));
    assertThat(permits.tryTakeOne("small")).isTrue();
    assertThat(permits.tryTakeOne("small")).as("small's only permit is held").isFalse();
    assertThat(permits.globalFree()).as("the refused take gave its global permit back")
        .isEqualTo(2);
    assertThat(permits.agentFree("small")).isZero();
    permits.giveOne("small");
    assertThat(permits.agentFree("small")).isEqualTo(1);
    assertThat(permits.globalFree()).isEqualTo(3);
  }

  @Test
  void anAgentAtOrAboveTheGlobalLimitIsBoundByTheGlobalPool() {
    Permits permits = new Permits(2, Map.of("big", 2, "huge", Integer.MAX_VALUE));
    assertThat(permits.tryTakeOne("big")).isTrue();
    assertThat(permits.agentFree("huge")).as("what the global pool has left").isEqualTo(1);
    assertThat(permits.tryTakeOne("huge")).isTrue();
    assertThat(permits.tryTakeOne("big")).isFalse();
    assertThat(permits.tryTakeOne("huge")).isFalse();
    assertThat(permits.agentFree("big")).isZero();
    assertThat(permits.takeGlobal(5)).isZero();
    permits.giveOne("big");
    assertThat(permits.takeGlobal(5)).isEqualTo(1);
    assertThat(permits.takeAgent("huge", 1)).isEqualTo(1);
    permits.giveAgent("huge", 1);
    permits.giveGlobal(1);
    permits.giveOne("huge");
    assertThat(permits.globalFree()).isEqualTo(2);
    assertThat(permits.agentFree("big")).isEqualTo(2);
  }

  @Test
  void aRunKeepsItsPlaceUntilItsOutcomeIsStoredAndThePlacesAreTwiceTheLimit() {
    Permits permits = new Permits(1, Map.of("a", 1));
    assertThat(permits.tryTakeOne("a")).isTrue();
    permits.executionEnded("a");
    assertThat(permits.globalFree()).isEqualTo(1);
    assertThat(permits.agentFree("a")).isEqualTo(1);
    assertThat(permits.claimable()).as("one place of two held").isEqualTo(1);
    assertThat(permits.tryTakeOne("a")).as("a second run takes the free permit").isTrue();
    permits.executionEnded("a");
    assertThat(permits.claimable()).as("both places held by outcomes being written").isZero();
    assertThat(permits.tryTakeOne("a")).isFalse();
    assertThat(permits.takeGlobal(3)).isZero();
    assertThat(permits.agentFree("a")).as("the refused takes gave back what they took")
        .isEqualTo(1);
    permits.outcomeStored();
    assertThat(permits.claimable()).isEqualTo(1);
    assertThat(permits.takeGlobal(3)).as("one permit, with the one free place").isEqualTo(1);
    permits.giveGlobal(1);
    permits.outcomeStored();
    assertThat(permits.claimable()).isEqualTo(1);
    assertThat(permits.takeGlobal(3)).isEqualTo(1);
    permits.giveGlobal(1);
    assertThat(permits.globalFree()).isEqualTo(1);
    assertThat(permits.claimable()).isEqualTo(1);
  }

  @Test
  void aLimitBeyondTheLargestIsRefused() {
    org.assertj.core.api.Assertions.assertThatThrownBy(() -> new Permits((1 << 30) + 1, Map.of()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("globalLimit must be in 1..1073741824, was 1073741825");
  }
}
