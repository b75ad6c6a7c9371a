#pragma once
// The PostgreSQL store (--db postgresql://...): a writer and a reader
// connection (libpq) to one database.
//  postgres_open.cpp    the URL, connecting, is the database farmd's (or
//                       empty), the one-farmd-per-database lock
//  postgres_schema.cpp  the versioned schema migrations
//  postgres_store.cpp   the queries (this class)
//
// One farmd per database (for now): the writer connection holds the session
// advisory lock (kLockClass, kLockObject) of the database while farmd runs.
// PostgreSQL drops it when the connection ends, however farmd ends.
#include <memory>
#include <mutex>
#include <string>

#include "farmd/postgres.hpp"
#include "farmd/store.hpp"

namespace farmd {

constexpr int32_t kLockClass = 0x46524D44;  // "FRMD", as SQLite's application_id
constexpr int32_t kLockObject = 1;          // the farm's writer

// What a connection of farmd's needs before its first statement (encoding,
// a statement timeout unless the database sets one; synchronous_commit off
// unless sync_full, the counterpart of SQLite's synchronous=NORMAL).
void pg_prepare_session(Pg& pg, bool sync_full);

// Connects the writer and makes sure the database is farmd's or empty (its
// tables in the current schema), at a schema version this farmd knows, not
// in use by another farmd (takes the advisory lock before any write); then
// migrates it to opt.schema_version. Throws std::runtime_error naming the
// database (`name`, password redacted) and the reason.
std::unique_ptr<Pg> open_postgres(const std::string& url, const std::string& name, bool sync_full,
                                  const StoreOptions& opt);

// Connects one more connection (the reader, or the writer again after it
// dropped): "cannot connect to NAME: libpq's reason".
std::unique_ptr<Pg> pg_connect(const std::string& url, const std::string& name, bool sync_full);

// Brings the schema from version `from` (0: empty) to `to`, one transaction
// per version (postgres_schema.cpp).
void pg_migrate(Pg& pg, const std::string& name, int from, int to);

// Takes the one-farmd lock on `pg`'s session; throws "NAME is in use by
// another farmd (...)" if another session holds it.
void pg_lock(Pg& pg, const std::string& name);

class PostgresStore final : public Store {
 public:
  PostgresStore(const Config& cfg, const StoreOptions& opt);
  ~PostgresStore() override;
  const char* kind() const override { return "postgresql"; }

  std::vector<WorkerRow> load_workers() override;
  std::vector<ActiveJobRow> load_active_jobs() override;
  uint64_t last_event_seq() override;

  int64_t insert_job(const NewJob& j) override;
  bool claim(const Claim& c) override;
  bool renew_lease(const std::string& job_id, uint32_t attempt, int64_t expires_ms) override;
  bool end_attempt(const AttemptEnd& e) override;
  bool end_queued(const std::string& job_id, int state, int64_t now_ms, const std::string& message,
                  const std::optional<std::string>& result, bool cancel_requested) override;
  bool request_cancel(const std::string& job_id, const std::string& message) override;
  std::optional<AttemptRow> attempt(const std::string& job_id, uint32_t attempt) override;
  std::optional<int> job_state(const std::string& job_id) override;

  void put_worker(const WorkerRow& w) override;
  void delete_worker(const std::string& id) override;

  uint64_t append_event(const std::string& job_id, EventKind kind, int64_t time_ms, const std::string& event) override;
  int64_t prune_events(int64_t cutoff_ms) override;
  std::vector<EventRow> events_after(const std::string& job_id, uint64_t after, bool include_logs,
                                     size_t limit) override;

  std::optional<JobRow> job(const std::string& id, bool history) override;
  void scan_jobs(const JobQuery& q,
                 const std::function<bool(const std::string& id, const std::string& spec)>& visit) override;
  std::vector<std::pair<int, int64_t>> count_jobs_by_state() override;
  std::vector<EventRow> last_log_events(const std::string& job_id, size_t limit) override;

 protected:
  void begin() override;
  void commit() override;
  void rollback() noexcept override;

 private:
  // The writer, reconnected (and its lock taken again) if it dropped while
  // no transaction was open. Throws StoreError.
  Pg& w();
  // Runs f(reader) under the reader's lock; once more on a new connection
  // if the first one had dropped.
  template <class F>
  auto read(F&& f);

  std::string url_;
  bool sync_full_ = false;
  std::unique_ptr<Pg> w_;  // holds the lock
  std::unique_ptr<Pg> r_;
  std::mutex rmu_;
  bool lock_lost_ = false;
};

}  // namespace farmd
