// The SQLite store's schema, as versioned migrations: kMigrations[v - 1]
// brings a database from version v - 1 to v. A database records its version
// in PRAGMA user_version (and in meta 'schema'); each step runs in its own
// transaction with the version bump, so a failed step leaves the database
// at the last version that completed. Never edit a released step: add one.
// (postgres_schema.cpp holds the same steps for PostgreSQL.)
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <string>

#include "sqlite_store.hpp"

namespace farmd {

namespace {

struct Migration {
  const char* what;
  const char* sql;
};

const Migration kMigrations[] = {
    {"jobs, attempts, results, workers, events", R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS jobs(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL DEFAULT '',
  spec BLOB NOT NULL,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  worker_id TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  started_ms INTEGER NOT NULL DEFAULT 0,
  finished_ms INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  health_for TEXT NOT NULL DEFAULT '',
  result BLOB);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_ms);
CREATE TABLE IF NOT EXISTS attempts(
  job_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  worker_id TEXT NOT NULL,
  outcome INTEGER NOT NULL DEFAULT 0,
  started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(job_id, attempt));
CREATE TABLE IF NOT EXISTS results(
  job_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  outcome INTEGER NOT NULL,
  verdict TEXT NOT NULL DEFAULT '',
  exit_code INTEGER NOT NULL DEFAULT 0,
  calls INTEGER NOT NULL DEFAULT 0,
  hits INTEGER NOT NULL DEFAULT 0,
  batches INTEGER NOT NULL DEFAULT 0,
  duration_s REAL NOT NULL DEFAULT 0,
  result BLOB NOT NULL,
  PRIMARY KEY(job_id, attempt));
CREATE TABLE IF NOT EXISTS workers(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  capabilities BLOB NOT NULL,
  session TEXT NOT NULL,
  registered_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  infra_failures INTEGER NOT NULL DEFAULT 0,
  quarantined INTEGER NOT NULL DEFAULT 0,
  quarantine_reason TEXT NOT NULL DEFAULT '',
  jobs_done INTEGER NOT NULL DEFAULT 0,
  last_health_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  kind INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  event BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '1');
)sql"},
    // The lease deadline of a running attempt moves into the store (it was
    // only in farmd's memory): any process on the database can tell an
    // expired lease, and a restarted farmd knows when each lease ran out.
    {"jobs.lease_expires_ms (the lease deadline of a running attempt)", R"sql(
ALTER TABLE jobs ADD COLUMN lease_expires_ms INTEGER NOT NULL DEFAULT 0;
)sql"},
};

static_assert(sizeof kMigrations / sizeof kMigrations[0] == kSchemaVersion,
              "one migration per schema version");

}  // namespace

void sqlite_migrate(Db& db, const std::string& path, int from, int to) {
  for (int v = from + 1; v <= to; ++v) {
    const Migration& m = kMigrations[v - 1];
    try {
      Txn t(db);
      db.exec(m.sql);
      db.exec("PRAGMA application_id = " + std::to_string(kApplicationId));
      db.exec("PRAGMA user_version = " + std::to_string(v));
      auto st = db.prepare("INSERT INTO meta(key, value) VALUES('schema', ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
      st.bind(1, std::to_string(v)).exec();
      t.commit();
    } catch (const SqliteError& e) {
      throw std::runtime_error("database " + path + ": migrating the schema from version " + std::to_string(v - 1) +
                               " to " + std::to_string(v) + " (" + m.what + ") failed: " + e.what());
    }
    if (from > 0) spdlog::info("farmd: database {} migrated to schema version {}: {}", path, v, m.what);
  }
}

}  // namespace farmd
