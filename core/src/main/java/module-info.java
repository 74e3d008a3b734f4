/**
 * agentrunner: runs AI agents concurrently with a run history that stays true under concurrency.
 * The API a host uses is {@code dev.agentrunner}; store authors implement
 * {@code dev.agentrunner.spi}; {@code dev.agentrunner.memory} holds the in-memory store.
 * Everything in {@code dev.agentrunner.internal} may change without notice.
 */
module dev.agentrunner.core {
  requires org.slf4j;
  requires static com.cronutils; // optional: only cron schedules need it

  exports dev.agentrunner;
  exports dev.agentrunner.spi;
  exports dev.agentrunner.memory;
}
