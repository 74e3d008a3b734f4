package dev.agentrunner.spi;

import dev.agentrunner.Page;
import dev.agentrunner.RunEvent;
import dev.agentrunner.RunQuery;
import dev.agentrunner.RunRecord;
import dev.agentrunner.RunStats;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Where runs and their events live. A runner talks to its store only through this interface;
 * several runners, in several processes, may share one store.
 *
 * <h2>The contract</h2>
 *
 * <ul>
 *   <li>Every method is atomic on its own and safe to call from any number of threads and
 *       processes at once: no caller holds a lock around it.
 *   <li>Every status change writes its event row (see {@link RunEvent}) in the same transaction:
 *       both commit or neither does.
 *   <li>Transitions follow {@link dev.agentrunner.RunStatus#canTransitionTo}; a terminal run never
 *       changes again.
 *   <li>Ids come from the insert itself, are unique, and increase in the order the store assigns
 *       them (for a database, concurrent transactions may commit out of id order).
 *   <li>Time comes from the store's own clock (an injected {@link java.time.Clock}, or the
 *       database's), so that leases mean the same to every node.
 *   <li>A failure is reported as a {@link dev.agentrunner.StoreException} and leaves the store as
 *       it was before the call.
 * </ul>
 *
 * <p>The suite in {@code agentrunner-store-tck} checks all of this; extend it for a new store.
 *
 * <p>Thread-safety: implementations must be thread-safe.
 */
public interface RunStore extends AutoCloseable {

  /**
   * Stores a new QUEUED run and returns it as stored, with the id the insert produced and a
   * {@code queued} event. If the request has an idempotency key that is already stored, nothing
   * is written and the stored run is returned, provided it was submitted for the same agent and
   * input; otherwise an {@link dev.agentrunner.IdempotencyConflictException} is thrown
   * ({@link NewRun#requireSameRequest} does that check). If the request has a serial key with the policy
   * {@link dev.agentrunner.SerialKeyPolicy#REJECT} and a run of that key is QUEUED or RUNNING,
   * nothing is written and a {@link dev.agentrunner.SerialKeyBusyException} names the oldest
   * such run; the check and the insert are one atomic step.
   */
  RunRecord insert(NewRun run);

  /**
   * Stores a new run as {@link #insert} does and, in the same atomic step, claims it for
   * {@code claim.owner()} if it is the run that {@link #claim claim(claim)} would pick first:
   * it is due ({@code notBefore} not after now), its agent has a quota in {@code claim}, no run
   * of its serial key is QUEUED or RUNNING, and no other run that {@code claim} could take comes
   * before it in claim order (a QUEUED, due run of an agent in the quotas, allowed by its serial
   * key, with a priority at least as high). A claimed run is returned RUNNING as {@code claim}
   * would leave it (attempt 1, the owner, a lease until now + {@code claim.lease()}), with its
   * {@code queued} and then its {@code started} event; any other run is returned QUEUED, exactly
   * as {@code insert} stores it. A request whose idempotency key is taken returns the stored run
   * unchanged, and REJECT behaves as in {@code insert}.
   *
   * <p>A runner calls this for a local submit when it has a free permit, so that the run starts
   * without waiting for a second commit and a hand-off to its dispatcher. A store may always
   * return the run QUEUED (it then runs through a later {@code claim}); a store may also give up
   * early and return it QUEUED when proving that nothing comes first would cost too much (a
   * long walk past runs that are not due). Claiming a run that something else should precede is
   * never allowed. The default never claims: it calls {@code insert}.
   *
   * @param run the run to store
   * @param claim who would claim it, with the quotas and lease of that claim
   */
  default RunRecord insertAndClaim(NewRun run, ClaimRequest claim) {
    java.util.Objects.requireNonNull(claim, "claim");
    return insert(run);
  }

  /**
   * Atomically moves due QUEUED runs to RUNNING for {@code request.owner()}: highest priority
   * first, then lowest id, within the request's limit and per-agent quotas. A run with a serial
   * key is claimed only if no run of that key is RUNNING and it is the oldest QUEUED run of its
   * key; at most one run per serial key is claimed. Each claimed run gets attempt + 1, the owner,
   * {@code startedAt = now}, a lease until {@code now + lease}, and a {@code started} event.
   *
   * @return the claimed runs as stored; empty if none is due. No run is ever returned to two
   *     claims for the same attempt.
   */
  List<RunRecord> claim(ClaimRequest request);

  /**
   * Extends to {@code now + lease} the lease of each run in {@code runIds} that is RUNNING under
   * {@code owner}, in one operation, and reports which of them have a cancel request. Ids that
   * are not RUNNING under that owner (ended, recovered, unknown) are skipped. A lease that
   * expired but was not yet recovered is renewed too: until another node recovers the run, the
   * owner still holds it.
   *
   * <p>Only the listed runs are extended, not every run the store holds for the owner: a run
   * whose claim committed but whose reply never reached the owner (a connection lost at the
   * wrong moment) is unknown to it, and must expire and be recovered rather than be kept alive
   * by the owner's heartbeats for as long as the owner lives.
   *
   * @param runIds the runs the owner is executing or still finishing; may be empty
   */
  Heartbeat heartbeat(String owner, Set<Long> runIds, Duration lease);

  /**
   * Ends an attempt, fenced by {@link Finish#attempt()} and {@link Finish#owner()}: applied only
   * while the run is RUNNING under that attempt and owner, writing the status change, the
   * output or error, the usage, {@code finishedAt} (for a terminal status) and the matching
   * event. A retry (status QUEUED) clears the owner and lease and sets {@code notBefore}; a
   * retry of a run with a pending cancel request ends it CANCELLED instead.
   *
   * @return the run as stored after the change, or empty if the fence did not match (the run
   *     was finished, recovered or cancelled meanwhile); then nothing changed
   */
  Optional<RunRecord> finish(Finish finish);

  /**
   * Gives claimed runs that never started back to the queue: each run still RUNNING under
   * {@code owner} with the given attempt returns to QUEUED with its attempt decreased by one
   * and a {@code released} event; a run with a pending cancel request ends CANCELLED instead.
   *
   * @return how many runs were released
   */
  int release(String owner, List<RunRecord> claimed);

  /**
   * Requests cancellation. A QUEUED run becomes CANCELLED at once (with an event); a RUNNING run
   * gets {@code cancelRequested = true} and a {@code cancel_requested} event, and its owner
   * learns of it at its next heartbeat; a terminal run is left as it is.
   *
   * @return the run as stored after the call, or empty if there is no run with that id
   */
  Optional<RunRecord> cancel(long runId);

  /**
   * Returns every RUNNING run whose lease has expired (its worker is presumed dead) to QUEUED,
   * with a {@code recovered} event, or ends it FAILED (with a {@code failed} event) with an error
   * saying the worker was lost when it has used all its attempts, or CANCELLED (with a
   * {@code cancelled} event) when a cancel was requested.
   *
   * @return the recovered runs as stored afterwards
   */
  List<RunRecord> recoverExpiredLeases();

  /**
   * Appends an agent's event to a run, fenced like {@link #finish}: only while the run is
   * RUNNING under {@code attempt}.
   *
   * @return the stored event, or empty if the fence did not match
   */
  Optional<RunEvent> appendEvent(long runId, int attempt, String type, String data);

  /** The run with this id, if any. */
  Optional<RunRecord> find(long runId);

  /**
   * A page of runs matching the query, newest (highest id) first, starting below
   * {@link RunQuery#beforeId()}; the next cursor is {@link RunQuery#cursorAfter(long)} of the
   * page's last id, present when more matching runs may follow.
   */
  Page<RunRecord> query(RunQuery query);

  /**
   * How many runs match the query's filters (its cursor and limit are ignored), counted in one
   * consistent snapshot. The default pages through {@link #query}; stores override it with a
   * real count.
   */
  default long count(RunQuery query) {
    RunQuery page = query.limit(RunQuery.MAX_LIMIT);
    page = new RunQuery(page.agent(), page.serialKey(), page.statuses(), page.limit(), null);
    long n = 0;
    while (true) {
      Page<RunRecord> result = query(page);
      n += result.items().size();
      if (result.nextCursor().isEmpty()) {
        return n;
      }
      page = page.after(result.nextCursor().get());
    }
  }

  /** A run's events in the order they were written; empty if the run does not exist. */
  List<RunEvent> events(long runId);

  /** Counts by agent and status, and usage sums, read in one consistent snapshot. */
  RunStats stats();

  /**
   * Deletes terminal runs finished before {@code finishedBefore}, with their events.
   *
   * @return how many runs were deleted
   */
  int purge(Instant finishedBefore);

  /**
   * The schedule of that name, if stored. The default, for stores without schedule support,
   * finds none.
   */
  default Optional<dev.agentrunner.Schedule> findSchedule(String name) {
    return Optional.empty();
  }

  /** Every stored schedule, by name. The default, for stores without schedules, is empty. */
  default List<dev.agentrunner.Schedule> schedules() {
    return List.of();
  }

  /**
   * Stores {@code schedule} if the stored version still equals {@code schedule.version()} (0:
   * no schedule of that name exists), as one atomic compare-and-set, and returns it as stored
   * with the version increased by one; returns empty, changing nothing, when the version does
   * not match (another node changed or deleted it first). A name's versions never repeat: a
   * schedule created (version 0) where one of that name was deleted is stored at the deleted
   * one's last version plus one, not at 1, so that a put prepared against the deleted schedule,
   * by a node that read it before the delete, cannot match the new one (the ABA problem of a
   * compare-and-set). Stores remember each deleted name's last version for that.
   *
   * @throws UnsupportedOperationException if the store has no schedule support (the default)
   */
  default Optional<dev.agentrunner.Schedule> putSchedule(dev.agentrunner.Schedule schedule) {
    throw new UnsupportedOperationException(getClass().getName() + " does not store schedules");
  }

  /**
   * Deletes the schedule of that name; runs it enqueued stay. Its last version is kept, for a
   * schedule created again under the name (see {@link #putSchedule}).
   *
   * @return whether it existed
   * @throws UnsupportedOperationException if the store has no schedule support (the default)
   */
  default boolean deleteSchedule(String name) {
    throw new UnsupportedOperationException(getClass().getName() + " does not store schedules");
  }

  /**
   * Asks the store to call {@code wakeUp} whenever another process may have made runs
   * claimable (for example through PostgreSQL's {@code LISTEN/NOTIFY}), so that a runner claims
   * them without waiting for its next poll. Stores without such a channel keep the default,
   * which does nothing: runners then find remote work by polling. {@code wakeUp} is cheap and
   * thread-safe; a store may call it spuriously.
   *
   * @return a handle whose {@code close()} stops the calls (a runner closes it when it stops,
   *     so a store that outlives the runner does not keep it reachable)
   */
  default AutoCloseable onRemoteWork(Runnable wakeUp) {
    java.util.Objects.requireNonNull(wakeUp, "wakeUp");
    return () -> { };
  }

  /**
   * Releases the store's resources. Later calls of other methods fail with a
   * {@link dev.agentrunner.StoreException}; a second {@code close()} does nothing.
   */
  @Override
  void close();
}
