/**
 * The multi-machine run store for agentrunner: one PostgreSQL schema shared by any number of
 * runners, see {@link dev.agentrunner.postgres.PostgresRunStore}.
 */
module dev.agentrunner.postgres {
  requires transitive dev.agentrunner.core;
  requires transitive java.sql;
  requires com.zaxxer.hikari;
  requires org.postgresql.jdbc;
  requires org.slf4j;

  exports dev.agentrunner.postgres;
}
