package dev.agentrunner.postgres;

import dev.agentrunner.spi.RunStore;
import dev.agentrunner.tck.RunStoreContractTest;
import dev.agentrunner.tck.TestClock;
import org.junit.jupiter.api.AfterAll;

/**
 * The store contract suite on the real PostgreSQL server, each test on a freshly created schema.
 * Time comes from the suite's {@link TestClock}, bound into each statement (the store's
 * test-only clock option); {@link DatabaseClockTest} covers the production clock.
 *
 * <p>Event-write faults are real: a trigger on the events table, created from a separate
 * connection, raises an exception on every event insert inside the store's own statement until
 * it is dropped.
 *
 * <p>Thread-safety: one instance per test, as JUnit creates them.
 */
class PostgresRunStoreContractTest extends RunStoreContractTest {
  private static final String SCHEMA = PgTestDatabase.schemaName("contract");
  private static final String S = "\"" + SCHEMA + "\"";

  @Override
  protected RunStore newStore(TestClock clock) throws Exception {
    String url = PgTestDatabase.url();
    PgTestDatabase.dropSchema(SCHEMA);
    return PostgresRunStore.builder(url).schema(SCHEMA).poolSize(16).clock(clock).build();
  }

  @Override
  protected AutoCloseable failEventWrites(RunStore store) throws Exception {
    PgTestDatabase.execute("CREATE FUNCTION " + S + ".tck_fail() RETURNS trigger"
        + " LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$");
    PgTestDatabase.execute("CREATE TRIGGER tck_fail_event_writes BEFORE INSERT ON " + S
        + ".events FOR EACH ROW EXECUTE FUNCTION " + S + ".tck_fail()");
    return () -> {
      PgTestDatabase.execute("DROP TRIGGER tck_fail_event_writes ON " + S + ".events");
      PgTestDatabase.execute("DROP FUNCTION " + S + ".tck_fail()");
    };
  }

  @AfterAll
  static void dropSchema() throws Exception {
    PgTestDatabase.dropSchema(SCHEMA);
  }
}
