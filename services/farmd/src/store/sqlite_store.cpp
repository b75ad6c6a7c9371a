// The SQLite store's queries (the Store interface over farmd::Db).
#include "sqlite_store.hpp"

#include <algorithm>

namespace farmd {

namespace {

constexpr int kQueued = 1, kRunning = 2;  // v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING
constexpr int kHandedBack = 7;            // v1::OUTCOME_HANDED_BACK

// What a failed statement says, with the store's name.
[[noreturn]] void fail(const std::string& store, const SqliteError& e) { throw StoreError(store + ": " + e.what()); }

}  // namespace

SqliteStore::SqliteStore(const Config& cfg, const StoreOptions& opt) : Store("database " + cfg.db_path) {
  db_ = open_sqlite(cfg, opt, &lock_);  // the path checked, farmd's schema, not corrupted, one farmd per database
  if (cfg.db_path != ":memory:") rdb_ = std::make_unique<Db>(cfg.db_path, /*readonly=*/true);
}

SqliteStore::~SqliteStore() = default;

template <class F>
auto SqliteStore::read(F&& f) {
  try {
    if (rdb_) {
      std::lock_guard lk(rmu_);
      return f(*rdb_);
    }
    auto lk = writer();
    return f(*db_);
  } catch (const SqliteError& e) {
    fail(name(), e);
  }
}

// Every writer method: the writer's lock, SqliteError named as the store's.
#define WRITE_BEGIN   \
  auto _lk = writer(); \
  try {
#define WRITE_END              \
  }                            \
  catch (const SqliteError& e) { \
    fail(name(), e);           \
  }

void SqliteStore::begin() {
  WRITE_BEGIN
  db_->exec("BEGIN IMMEDIATE");
  WRITE_END
}
void SqliteStore::commit() {
  WRITE_BEGIN
  db_->exec("COMMIT");
  WRITE_END
}
void SqliteStore::rollback() noexcept {
  try {
    db_->exec("ROLLBACK");
  } catch (...) {
  }
}

// ------------------------------------------------------------------ at start

std::vector<WorkerRow> SqliteStore::load_workers() {
  std::vector<WorkerRow> out;
  WRITE_BEGIN
  auto st = db_->prepare(
      "SELECT id, name, capabilities, session, registered_ms, last_seen_ms, infra_failures, quarantined, "
      "quarantine_reason, jobs_done, last_health_ms FROM workers ORDER BY id");
  while (st.step()) {
    WorkerRow w;
    w.id = st.text(0);
    w.name = st.text(1);
    w.capabilities = st.blob(2);
    w.session = st.text(3);
    w.registered_ms = st.i64(4);
    w.last_seen_ms = st.i64(5);
    w.infra_failures = static_cast<uint32_t>(st.i64(6));
    w.quarantined = st.i64(7) != 0;
    w.quarantine_reason = st.text(8);
    w.jobs_done = static_cast<uint64_t>(st.i64(9));
    w.last_health_ms = st.i64(10);
    out.push_back(std::move(w));
  }
  WRITE_END
  return out;
}

std::vector<ActiveJobRow> SqliteStore::load_active_jobs() {
  std::vector<ActiveJobRow> out;
  WRITE_BEGIN
  auto st = db_->prepare(
      "SELECT id, seq, spec, state, priority, attempts, max_attempts, worker_id, cancel_requested, health_for, "
      "(SELECT COUNT(*) FROM attempts a WHERE a.job_id = jobs.id AND a.outcome = ?), lease_expires_ms "
      "FROM jobs WHERE state IN (?, ?) ORDER BY seq");
  st.bind(1, kHandedBack).bind(2, kQueued).bind(3, kRunning);
  while (st.step()) {
    ActiveJobRow j;
    j.id = st.text(0);
    j.seq = st.i64(1);
    j.spec = st.blob(2);
    j.state = static_cast<int>(st.i64(3));
    j.priority = static_cast<int32_t>(st.i64(4));
    j.attempts = static_cast<uint32_t>(st.i64(5));
    j.max_attempts = static_cast<uint32_t>(st.i64(6));
    j.worker_id = st.text(7);
    j.cancel_requested = st.i64(8) != 0;
    j.health_for = st.text(9);
    j.hand_backs = static_cast<uint32_t>(st.i64(10));
    j.lease_expires_ms = st.i64(11);
    out.push_back(std::move(j));
  }
  WRITE_END
  return out;
}

uint64_t SqliteStore::last_event_seq() {
  uint64_t seq = 0;
  WRITE_BEGIN
  auto st = db_->prepare("SELECT COALESCE(MAX(seq), 0) FROM events");
  if (st.step()) seq = static_cast<uint64_t>(st.i64(0));
  WRITE_END
  return seq;
}

// ------------------------------------------------------------------ jobs

int64_t SqliteStore::insert_job(const NewJob& j) {
  WRITE_BEGIN
  auto st = db_->prepare(
      "INSERT INTO jobs(id, name, spec, state, priority, max_attempts, created_ms, message, health_for) "
      "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)");
  st.bind(1, j.id).bind(2, j.name).bind_blob(3, j.spec).bind(4, kQueued).bind(5, j.priority);
  st.bind(6, j.max_attempts).bind(7, j.created_ms).bind(8, j.message).bind(9, j.health_for);
  st.exec();
  return db_->last_insert_rowid();
  WRITE_END
}

bool SqliteStore::claim(const Claim& c) {
  WRITE_BEGIN
  {
    auto st = db_->prepare(
        "UPDATE jobs SET state = ?, attempts = ?, worker_id = ?, "
        "started_ms = CASE WHEN started_ms = 0 THEN ? ELSE started_ms END, message = '', lease_expires_ms = ? "
        "WHERE id = ? AND state = ? AND attempts = ?");
    st.bind(1, kRunning).bind(2, c.attempt).bind(3, c.worker_id).bind(4, c.now_ms).bind(5, c.lease_expires_ms);
    st.bind(6, c.job_id).bind(7, kQueued).bind(8, c.attempt - 1).exec();
    if (db_->changes() == 0) return false;
  }
  auto st = db_->prepare(
      "INSERT OR REPLACE INTO attempts(job_id, attempt, worker_id, outcome, started_ms) VALUES(?, ?, ?, 0, ?)");
  st.bind(1, c.job_id).bind(2, c.attempt).bind(3, c.worker_id).bind(4, c.now_ms).exec();
  return true;
  WRITE_END
}

bool SqliteStore::renew_lease(const std::string& job_id, uint32_t attempt, int64_t expires_ms) {
  WRITE_BEGIN
  auto st = db_->prepare("UPDATE jobs SET lease_expires_ms = ? WHERE id = ? AND state = ? AND attempts = ?");
  st.bind(1, expires_ms).bind(2, job_id).bind(3, kRunning).bind(4, attempt).exec();
  return db_->changes() > 0;
  WRITE_END
}

bool SqliteStore::end_attempt(const AttemptEnd& e) {
  WRITE_BEGIN
  {
    auto st = db_->prepare(
        "UPDATE attempts SET outcome = ?, finished_ms = ?, message = ? WHERE job_id = ? AND attempt = ? AND outcome = 0");
    st.bind(1, e.outcome).bind(2, e.now_ms).bind(3, e.attempt_message).bind(4, e.job_id).bind(5, e.attempt).exec();
    if (db_->changes() == 0) return false;  // ended already (or never started)
  }
  {
    auto st = db_->prepare(
        "INSERT OR REPLACE INTO results(job_id, attempt, outcome, verdict, exit_code, calls, hits, batches, "
        "duration_s, result) VALUES(?,?,?,?,?,?,?,?,?,?)");
    st.bind(1, e.job_id).bind(2, e.attempt).bind(3, e.outcome).bind(4, e.verdict);
    st.bind(5, e.exit_code).bind(6, e.calls).bind(7, e.hits).bind(8, e.batches);
    st.bind(9, e.duration_s).bind_blob(10, e.result).exec();
  }
  if (e.terminal) {
    auto st = db_->prepare(
        "UPDATE jobs SET state = ?, finished_ms = ?, message = ?, result = ?, lease_expires_ms = 0 "
        "WHERE id = ? AND attempts = ?");
    st.bind(1, e.job_state).bind(2, e.now_ms).bind(3, e.job_message).bind_blob(4, e.result).bind(5, e.job_id);
    st.bind(6, e.attempt).exec();
  } else {
    auto st = db_->prepare("UPDATE jobs SET state = ?, message = ?, lease_expires_ms = 0 WHERE id = ? AND attempts = ?");
    st.bind(1, e.job_state).bind(2, e.job_message).bind(3, e.job_id).bind(4, e.attempt).exec();
  }
  if (db_->changes() == 0)
    throw StoreError(name() + ": attempt " + std::to_string(e.attempt) + " of job " + e.job_id +
                     " was running, but the job is at another attempt");
  return true;
  WRITE_END
}

bool SqliteStore::end_queued(const std::string& job_id, int state, int64_t now_ms, const std::string& message,
                             const std::optional<std::string>& result, bool cancel_requested) {
  WRITE_BEGIN
  auto st = db_->prepare(
      "UPDATE jobs SET state = ?, finished_ms = ?, message = ?, "
      "cancel_requested = CASE WHEN ? THEN 1 ELSE cancel_requested END, result = COALESCE(?, result) "
      "WHERE id = ? AND state = ?");
  st.bind(1, state).bind(2, now_ms).bind(3, message).bind(4, cancel_requested ? 1 : 0);
  if (result) st.bind_blob(5, *result);
  else st.bind_null(5);
  st.bind(6, job_id).bind(7, kQueued).exec();
  return db_->changes() > 0;
  WRITE_END
}

bool SqliteStore::request_cancel(const std::string& job_id, const std::string& message) {
  WRITE_BEGIN
  auto st = db_->prepare("UPDATE jobs SET cancel_requested = 1, message = ? WHERE id = ? AND state = ?");
  st.bind(1, message).bind(2, job_id).bind(3, kRunning).exec();
  return db_->changes() > 0;
  WRITE_END
}

std::optional<AttemptRow> SqliteStore::attempt(const std::string& job_id, uint32_t attempt) {
  WRITE_BEGIN
  auto st = db_->prepare(
      "SELECT attempt, worker_id, outcome, started_ms, finished_ms, message FROM attempts "
      "WHERE job_id = ? AND attempt = ?");
  st.bind(1, job_id).bind(2, attempt);
  if (!st.step()) return std::nullopt;
  AttemptRow a;
  a.attempt = static_cast<uint32_t>(st.i64(0));
  a.worker_id = st.text(1);
  a.outcome = static_cast<int>(st.i64(2));
  a.started_ms = st.i64(3);
  a.finished_ms = st.i64(4);
  a.message = st.text(5);
  return a;
  WRITE_END
}

std::optional<int> SqliteStore::job_state(const std::string& job_id) {
  WRITE_BEGIN
  auto st = db_->prepare("SELECT state FROM jobs WHERE id = ?");
  st.bind(1, job_id);
  if (!st.step()) return std::nullopt;
  return static_cast<int>(st.i64(0));
  WRITE_END
}

// ------------------------------------------------------------------ workers

void SqliteStore::put_worker(const WorkerRow& w) {
  WRITE_BEGIN
  auto st = db_->prepare(
      "INSERT INTO workers(id, name, capabilities, session, registered_ms, last_seen_ms, infra_failures, "
      "quarantined, quarantine_reason, jobs_done, last_health_ms) VALUES(?,?,?,?,?,?,?,?,?,?,?) "
      "ON CONFLICT(id) DO UPDATE SET name=excluded.name, capabilities=excluded.capabilities, "
      "session=excluded.session, registered_ms=excluded.registered_ms, last_seen_ms=excluded.last_seen_ms, "
      "infra_failures=excluded.infra_failures, quarantined=excluded.quarantined, "
      "quarantine_reason=excluded.quarantine_reason, jobs_done=excluded.jobs_done, "
      "last_health_ms=excluded.last_health_ms");
  st.bind(1, w.id).bind(2, w.name).bind_blob(3, w.capabilities).bind(4, w.session);
  st.bind(5, w.registered_ms).bind(6, w.last_seen_ms).bind(7, w.infra_failures);
  st.bind(8, w.quarantined ? 1 : 0).bind(9, w.quarantine_reason).bind(10, w.jobs_done);
  st.bind(11, w.last_health_ms);
  st.exec();
  WRITE_END
}

void SqliteStore::delete_worker(const std::string& id) {
  WRITE_BEGIN
  auto st = db_->prepare("DELETE FROM workers WHERE id = ?");
  st.bind(1, id).exec();
  WRITE_END
}

// ------------------------------------------------------------------ events

uint64_t SqliteStore::append_event(const std::string& job_id, EventKind kind, int64_t time_ms,
                                   const std::string& event) {
  WRITE_BEGIN
  auto st = db_->prepare("INSERT INTO events(job_id, kind, time_ms, event) VALUES(?, ?, ?, ?)");
  st.bind(1, job_id).bind(2, static_cast<int>(kind)).bind(3, time_ms).bind_blob(4, event);
  st.exec();
  return static_cast<uint64_t>(db_->last_insert_rowid());
  WRITE_END
}

int64_t SqliteStore::prune_events(int64_t cutoff_ms) {
  WRITE_BEGIN
  auto st = db_->prepare(
      "DELETE FROM events WHERE job_id IN (SELECT id FROM jobs WHERE finished_ms > 0 AND finished_ms < ?)");
  st.bind(1, cutoff_ms).exec();
  return db_->changes();
  WRITE_END
}

std::vector<EventRow> SqliteStore::events_after(const std::string& job_id, uint64_t after, bool include_logs,
                                                size_t limit) {
  return read([&](Db& db) {
    std::vector<EventRow> out;
    auto st = db.prepare(include_logs
                             ? "SELECT seq, event FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?"
                             : "SELECT seq, event FROM events WHERE job_id = ? AND seq > ? AND kind != 2 "
                               "ORDER BY seq LIMIT ?");
    st.bind(1, job_id).bind(2, static_cast<int64_t>(after)).bind(3, static_cast<int64_t>(limit));
    while (st.step()) out.push_back({static_cast<uint64_t>(st.i64(0)), st.blob(1)});
    return out;
  });
}

// ------------------------------------------------------------------ queries

std::optional<JobRow> SqliteStore::job(const std::string& id, bool history) {
  return read([&](Db& db) -> std::optional<JobRow> {
    auto st = db.prepare(
        "SELECT id, spec, state, attempts, worker_id, created_ms, started_ms, finished_ms, message, "
        "cancel_requested, result FROM jobs WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    JobRow j;
    j.id = st.text(0);
    j.spec = st.blob(1);
    j.state = static_cast<int>(st.i64(2));
    j.attempts = static_cast<uint32_t>(st.i64(3));
    j.worker_id = st.text(4);
    j.created_ms = st.i64(5);
    j.started_ms = st.i64(6);
    j.finished_ms = st.i64(7);
    j.message = st.text(8);
    j.cancel_requested = st.i64(9) != 0;
    if (!st.is_null(10)) j.result = st.blob(10);
    if (history) {
      auto a = db.prepare(
          "SELECT attempt, worker_id, outcome, started_ms, finished_ms, message FROM attempts WHERE job_id = ? "
          "ORDER BY attempt");
      a.bind(1, id);
      while (a.step()) {
        AttemptRow h;
        h.attempt = static_cast<uint32_t>(a.i64(0));
        h.worker_id = a.text(1);
        h.outcome = static_cast<int>(a.i64(2));
        h.started_ms = a.i64(3);
        h.finished_ms = a.i64(4);
        h.message = a.text(5);
        j.history.push_back(std::move(h));
      }
    }
    return j;
  });
}

void SqliteStore::scan_jobs(const JobQuery& q,
                            const std::function<bool(const std::string& id, const std::string& spec)>& visit) {
  read([&](Db& db) {
    std::string sql = "SELECT id, spec FROM jobs";
    std::string where;
    auto add = [&](const std::string& c) { where += (where.empty() ? "" : " AND ") + c; };
    if (!q.states.empty()) {
      std::string in;
      for (size_t i = 0; i < q.states.size(); ++i) in += (i ? "," : "") + std::to_string(q.states[i]);
      add("state IN (" + in + ")");
    }
    if (!q.worker_id.empty()) add("worker_id = ?1");
    if (q.created_since_ms != 0) add("created_ms >= ?2");
    if (!where.empty()) sql += " WHERE " + where;
    sql += q.newest_first ? " ORDER BY seq DESC" : " ORDER BY seq";
    auto st = db.prepare(sql);
    if (!q.worker_id.empty()) st.bind(1, q.worker_id);
    if (q.created_since_ms != 0) st.bind(2, q.created_since_ms);
    while (st.step())
      if (!visit(st.text(0), st.blob(1))) break;
    return 0;
  });
}

}  // namespace farmd

namespace farmd {

std::vector<std::pair<int, int64_t>> SqliteStore::count_jobs_by_state() {
  return read([&](Db& db) {
    std::vector<std::pair<int, int64_t>> out;
    auto st = db.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state");
    while (st.step()) out.emplace_back(static_cast<int>(st.i64(0)), st.i64(1));
    return out;
  });
}

std::vector<EventRow> SqliteStore::last_log_events(const std::string& job_id, size_t limit) {
  return read([&](Db& db) {
    std::vector<EventRow> out;
    auto st = db.prepare(
        "SELECT seq, event FROM (SELECT seq, event FROM events WHERE job_id = ? AND kind = 2 "
        "ORDER BY seq DESC LIMIT ?) ORDER BY seq");
    st.bind(1, job_id).bind(2, static_cast<int64_t>(limit));
    while (st.step()) out.push_back({static_cast<uint64_t>(st.i64(0)), st.blob(1)});
    return out;
  });
}

}  // namespace farmd
