package dev.agentrunner.jcstress.twins;

/**
 * The seed's {@code BaseAgent} state: status, last result and counts in plain fields that
 * concurrent runs update with read-modify-write and no lock. Increments get lost, and a reader
 * sees some fields from before an update and some from after it.
 *
 * <p>Thread-safety: none. That is the bug.
 */
final class PlainFieldsAgentState {
  String status = "idle";
  String lastResult;
  int runCount;
  int running;
  int succeeded;
  long inputTokens;

  /** A run starts: the seed set the status and counted it as running. */
  void started() {
    status = "running";
    running++;
  }

  /** A run succeeded: each field updated on its own, as the seed did. */
  void finished(String result, long tokens) {
    inputTokens += tokens;
    running--;
    succeeded++;
    runCount++;
    lastResult = result;
    status = "idle";
  }
}
