/**
 * The embedded default run store for agentrunner: one SQLite file, see
 * {@link dev.agentrunner.sqlite.SqliteRunStore}.
 */
module dev.agentrunner.sqlite {
  requires transitive dev.agentrunner.core;
  requires java.sql;
  requires com.zaxxer.hikari;
  requires org.xerial.sqlitejdbc;

  exports dev.agentrunner.sqlite;
}
