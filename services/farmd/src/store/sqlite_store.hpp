#pragma once
// The SQLite store (the embedded default): a writer and a read-only reader
// connection on one WAL database file.
//  sqlite_open.cpp    who may open it (one farmd per file), what it must be
//                     (farmd's, not corrupted); the path checks
//  sqlite_schema.cpp  the versioned schema migrations
//  sqlite_store.cpp   the queries (this class)
#include <memory>
#include <mutex>
#include <string>

#include "farmd/sqlite.hpp"
#include "farmd/store.hpp"

namespace farmd {

// farmd's PRAGMA application_id ("FRMD"); PRAGMA user_version is the schema version.
constexpr int32_t kApplicationId = 0x46524D44;

// One farmd per database. Two farmd processes on one database would both
// schedule every queued job (each has its own in-memory queue), so every job
// would run twice. The lock is flock(LOCK_EX | LOCK_NB) on "<db>.lock", held
// for the life of the store:
//  * it is released by the kernel when the process dies, however it dies
//    (no stale lock to clean up after a SIGKILL or a crash);
//  * it leaves SQLite alone. PRAGMA locking_mode=EXCLUSIVE would also keep a
//    second farmd out, but it would lock out farmd's own read connection (the
//    reader that serves GetJob/ListJobs/WatchJob beside the writer), and
//    operators' read-only `sqlite3 farm.db` queries and online backups too;
//    in WAL mode it also moves the WAL index from shared memory to the heap,
//    so nothing else can read the database at all while farmd runs;
//  * the file names the holder (pid, host, start time) for the refusal message.
// flock is advisory and local: two hosts sharing a database over NFS are not
// covered (SQLite's WAL mode does not support that anyway).
class DbLock {
 public:
  // Throws std::runtime_error: "database P is in use by another farmd (pid N
  // on host H since T; lock file P.lock)" or why the lock file cannot be opened.
  explicit DbLock(const std::string& db_path);
  ~DbLock();
  DbLock(const DbLock&) = delete;
  DbLock& operator=(const DbLock&) = delete;

 private:
  int fd_ = -1;
};

// Before SQLite sees the path: its directory exists and is writable, the path
// is not a directory, an existing file is readable and writable. Throws
// std::runtime_error("cannot open database P: directory D does not exist", ...).
void check_db_path(const std::string& db_path);

// Brings the schema from version `from` (0: empty) to `to`, one transaction
// per version (sqlite_schema.cpp). Throws std::runtime_error naming the step.
void sqlite_migrate(Db& db, const std::string& path, int from, int to);

// Opens the writer connection and makes sure the file is farmd's: an empty
// file gets the schema; a database with farmd's application_id (or one written
// by a farmd from before the id, recognised by its tables) is used, after
// PRAGMA quick_check, and migrated to the current schema; anything else
// (another application's tables, a newer schema, corruption, a file that is
// not a database) is refused with the reason (std::runtime_error). Takes the
// DbLock (into *lock) once the header says the file is farmd's or new, before
// any write.
std::unique_ptr<Db> open_sqlite(const Config& cfg, const StoreOptions& opt, std::unique_ptr<DbLock>* lock);

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const Config& cfg, const StoreOptions& opt);
  ~SqliteStore() override;
  const char* kind() const override { return "sqlite"; }

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
  // The reader connection and its lock (the writer and the writer's lock on ":memory:").
  template <class F>
  auto read(F&& f);

  std::unique_ptr<DbLock> lock_;  // before db_: released last
  std::unique_ptr<Db> db_;        // writer
  std::unique_ptr<Db> rdb_;       // reader (none on ":memory:")
  std::mutex rmu_;
};

}  // namespace farmd
