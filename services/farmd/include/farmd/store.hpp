#pragma once
// farmd's store: everything farmd persists (jobs, attempts, results, workers,
// events), behind one interface with two implementations:
//
//   SQLite      the embedded default: --db FILE (src/store/sqlite_*.cpp)
//   PostgreSQL  --db postgresql://... (src/store/postgres_*.cpp)
//
// All of farmd's SQL lives in src/store/. The interface speaks in rows and
// serialized protobufs (spec, capabilities, result, event blobs); the farm
// (farm.hpp) parses them and keeps the rules.
//
// The state a job's life depends on is claimed in the store, atomically,
// with the expected previous state in the WHERE clause (compare-and-set),
// so that two writers on one database (replicas of farmd on one PostgreSQL,
// issue 17) cannot both win:
//  * claim(): a queued job becomes one attempt of one worker only if it is
//    still queued with the attempt count the caller saw;
//  * end_attempt(): an attempt ends once (outcome 0 -> its outcome): a second
//    completion, expiry or timeout of the same (job, attempt) changes nothing
//    and says so (false);
//  * the lease deadline of a running attempt (jobs.lease_expires_ms) is in the
//    store, renewed by heartbeats, so any process can tell an expired lease.
//
// Threads: the writer (every method not marked "reader") is used by one
// thread at a time, the farm's (Farm::mu_ held) - a Txn keeps other threads'
// writes out until it ends. Reader methods may be called from any thread at
// any time; they see committed data only (their own connection), except on
// an SQLite ":memory:" store, which has a single connection.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "farmd/config.hpp"

namespace farmd {

// farmd's schema version: both stores migrate to it at start, one
// versioned step at a time (see docs/farm.md, "The store").
//   1  jobs, attempts, results, workers, events, meta
//   2  jobs.lease_expires_ms: the lease deadline of a running attempt
constexpr int kSchemaVersion = 2;

// An operation the store cannot carry out (the database said no, or the
// connection is gone); the message names the store and the reason.
struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Kinds of events (events.kind).
enum class EventKind : int { state = 0, progress = 1, log = 2 };

struct WorkerRow {
  std::string id, name;
  std::string capabilities;  // serialized v1::Capabilities
  std::string session;       // "" after the agent left
  int64_t registered_ms = 0, last_seen_ms = 0;
  uint32_t infra_failures = 0;
  bool quarantined = false;
  std::string quarantine_reason;
  uint64_t jobs_done = 0;
  int64_t last_health_ms = 0;
};

// A job that is queued or running (what a farmd rebuilds its indexes from).
struct ActiveJobRow {
  std::string id;
  int64_t seq = 0;    // submission order
  std::string spec;   // serialized v1::JobSpec
  int state = 0;      // v1::JobState: QUEUED or RUNNING
  int32_t priority = 0;
  uint32_t attempts = 0, max_attempts = 0;
  std::string worker_id;  // running: the worker holding the lease
  bool cancel_requested = false;
  std::string health_for;
  uint32_t hand_backs = 0;   // attempts that ended HANDED_BACK
  int64_t lease_expires_ms = 0;
};

struct AttemptRow {
  uint32_t attempt = 0;
  std::string worker_id;
  int outcome = 0;  // v1::Outcome; 0 while running
  int64_t started_ms = 0, finished_ms = 0;
  std::string message;
};

struct JobRow {
  std::string id;
  std::string spec;  // serialized v1::JobSpec
  int state = 0;
  uint32_t attempts = 0;
  std::string worker_id;
  int64_t created_ms = 0, started_ms = 0, finished_ms = 0;
  std::string message;
  bool cancel_requested = false;
  std::optional<std::string> result;  // serialized v1::JobResult of a finished job
  std::vector<AttemptRow> history;    // when asked for
};

struct NewJob {
  std::string id, name;
  std::string spec;  // serialized v1::JobSpec
  int32_t priority = 0;
  uint32_t max_attempts = 1;
  int64_t created_ms = 0;
  std::string message;
  std::string health_for;
};

// A queued job becoming attempt `attempt` (= attempts seen + 1) of `worker_id`.
struct Claim {
  std::string job_id;
  uint32_t attempt = 0;
  std::string worker_id;
  int64_t now_ms = 0;
  int64_t lease_expires_ms = 0;
};

// The end of a running attempt: its outcome, its result row and the job's
// next state (QUEUED again, or terminal with finished_ms and the result).
struct AttemptEnd {
  std::string job_id;
  uint32_t attempt = 0;
  int outcome = 0;            // v1::Outcome, not 0
  int64_t now_ms = 0;
  std::string attempt_message;
  // the result
  std::string verdict;
  int64_t exit_code = 0;
  uint64_t calls = 0, hits = 0, batches = 0;
  double duration_s = 0;
  std::string result;         // serialized v1::JobResult
  // the job
  int job_state = 0;          // v1::JobState
  bool terminal = false;      // sets finished_ms and result
  std::string job_message;
};

struct EventRow {
  uint64_t seq = 0;
  std::string event;  // serialized v1::JobEvent (without its seq)
};

struct JobQuery {
  std::vector<int> states;   // any of these (empty: all)
  std::string worker_id;     // "" : any
  int64_t created_since_ms = 0;
  bool newest_first = false;
};

class Store {
 public:
  virtual ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // What messages call it: "database farm.db", "database
  // postgresql://farm@db.lab/farm" (never with a password).
  const std::string& name() const { return name_; }
  virtual const char* kind() const = 0;  // "sqlite" or "postgresql"

  // BEGIN ... COMMIT on the writer, rolled back unless committed. Holds the
  // writer for its life (other threads' writes wait). Nests: an inner Txn
  // joins the outer one (its commit is the outer's).
  class Txn {
   public:
    explicit Txn(Store& s);
    ~Txn();
    Txn(const Txn&) = delete;
    Txn& operator=(const Txn&) = delete;
    void commit();

   private:
    Store& s_;
    std::unique_lock<std::recursive_mutex> lk_;
    bool outer_ = false, done_ = false;
  };
  bool in_transaction() const { return depth_ > 0; }

  // ---- at start: what the farm rebuilds its indexes from
  virtual std::vector<WorkerRow> load_workers() = 0;
  virtual std::vector<ActiveJobRow> load_active_jobs() = 0;  // queued and running, by seq
  virtual uint64_t last_event_seq() = 0;

  // ---- jobs (writer)
  // Inserts a queued job; returns its seq (the queue's FIFO order).
  virtual int64_t insert_job(const NewJob& j) = 0;
  // QUEUED with attempts == c.attempt - 1  ->  RUNNING, attempt row started.
  // False (nothing written) if the job is not in that state any more.
  virtual bool claim(const Claim& c) = 0;
  // A heartbeat: the lease of a running attempt lasts until `expires_ms`.
  // False if the attempt is not the job's running one.
  virtual bool renew_lease(const std::string& job_id, uint32_t attempt, int64_t expires_ms) = 0;
  // Ends a running attempt once: false (nothing written) if it already ended.
  virtual bool end_attempt(const AttemptEnd& e) = 0;
  // A queued job ends without running (cancelled; a removed worker's health
  // check): state, finished_ms, message, and when given the result and the
  // cancel flag. False if the job is not queued.
  virtual bool end_queued(const std::string& job_id, int state, int64_t now_ms, const std::string& message,
                          const std::optional<std::string>& result, bool cancel_requested) = 0;
  // Sets cancel_requested and the message of a running job; false if not running.
  virtual bool request_cancel(const std::string& job_id, const std::string& message) = 0;
  // (writer) The worker and outcome of one attempt; the state of a job.
  virtual std::optional<AttemptRow> attempt(const std::string& job_id, uint32_t attempt) = 0;
  virtual std::optional<int> job_state(const std::string& job_id) = 0;

  // ---- workers (writer)
  virtual void put_worker(const WorkerRow& w) = 0;  // insert or replace
  virtual void delete_worker(const std::string& id) = 0;

  // ---- events
  // (writer) Appends an event; returns its seq (increasing).
  virtual uint64_t append_event(const std::string& job_id, EventKind kind, int64_t time_ms,
                                const std::string& event) = 0;
  // (writer) Drops the events of jobs finished before cutoff_ms; returns how many.
  virtual int64_t prune_events(int64_t cutoff_ms) = 0;
  // (reader) A job's events with seq > after, in order, at most `limit`.
  virtual std::vector<EventRow> events_after(const std::string& job_id, uint64_t after, bool include_logs,
                                             size_t limit) = 0;

  // ---- queries (reader)
  virtual std::optional<JobRow> job(const std::string& id, bool history) = 0;
  // Calls visit(id, spec) for each matching job in seq order until it returns false.
  virtual void scan_jobs(const JobQuery& q,
                         const std::function<bool(const std::string& id, const std::string& spec)>& visit) = 0;
  // (reader) How many jobs are in each state (v1::JobState -> count; states
  // without jobs are absent). Metrics: farm_jobs{state}.
  virtual std::vector<std::pair<int, int64_t>> count_jobs_by_state() = 0;
  // (reader) The last `limit` log events of a job, oldest first (the live
  // page's log tails).
  virtual std::vector<EventRow> last_log_events(const std::string& job_id, size_t limit) = 0;

 protected:
  explicit Store(std::string name) : name_(std::move(name)) {}
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
  // The writer's lock: every writer method holds it (a Txn for its whole life).
  std::unique_lock<std::recursive_mutex> writer() { return std::unique_lock(wmu_); }

 private:
  std::string name_;
  std::recursive_mutex wmu_;
  int depth_ = 0;
};

struct StoreOptions {
  // Tests: migrate a new database only up to this schema version (an older
  // farmd's database). farmd itself always migrates to kSchemaVersion.
  int schema_version = kSchemaVersion;
};

// Opens cfg.db_path: a postgresql:// (or postgres://) URL opens the
// PostgreSQL store, anything else is an SQLite file (":memory:" a throwaway
// one). Checks the database is farmd's (or empty), takes the one-farmd-per-
// database lock, and migrates the schema to the current version. Throws
// std::runtime_error naming the database and the reason.
std::unique_ptr<Store> open_store(const Config& cfg, const StoreOptions& opt = {});

// True if `db` is a URL (scheme://...) rather than an SQLite file path.
bool is_database_url(const std::string& db);
// `url` with its password (in the user info or a password= parameter) replaced by "***".
std::string redact_url(const std::string& url);

}  // namespace farmd
