package dev.agentrunner;

import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * One page of a keyset-paginated listing. Pass {@link #nextCursor()} to the next query to get
 * the page after this one; runs inserted meanwhile never shift or repeat items.
 *
 * <p>Thread-safety: an immutable value (the list is an unmodifiable copy).
 *
 * @param items the items of this page, newest first
 * @param nextCursor the opaque cursor of the next page, or empty on the last page
 * @param <T> the item type
 */
public record Page<T>(List<T> items, Optional<String> nextCursor) {

  /** @throws NullPointerException if {@code items} (or an item) or {@code nextCursor} is null */
  public Page {
    items = List.copyOf(items);
    Objects.requireNonNull(nextCursor, "nextCursor");
  }

  /** Whether there is a page after this one. */
  public boolean hasNext() {
    return nextCursor.isPresent();
  }
}
