package dev.agentrunner.jcstress.twins;

import java.util.ArrayList;
import java.util.List;

/**
 * The VO-335 bug: a run table whose insert appends a row and then, in a separate statement,
 * reads the new id back with {@code SELECT MAX(id)}. Each statement is atomic on its own (as in
 * a database), but another insert can land between them, and then both callers get its id.
 *
 * <p>Thread-safety: each method is atomic; the pair in {@link #insert} is not. That is the bug.
 */
final class MaxIdRunTable {
  private final List<String> inputs = new ArrayList<>();

  /** {@code INSERT} then {@code SELECT MAX(id)}: the broken way to learn the new row's id. */
  long insert(String input) {
    append(input);
    return maxId();
  }

  /** The input of the row with this id, or null. */
  synchronized String find(long id) {
    return id >= 1 && id <= inputs.size() ? inputs.get((int) id - 1) : null;
  }

  private synchronized void append(String input) {
    inputs.add(input);
  }

  private synchronized long maxId() {
    return inputs.size();
  }
}
