// The PostgreSQL store's queries (the Store interface over farmd::Pg). The
// same statements as sqlite_store.cpp, in PostgreSQL's dialect ($n
// parameters, ON CONFLICT for SQLite's INSERT OR REPLACE, RETURNING for
// last_insert_rowid). Every compare-and-set is a single UPDATE ... WHERE on
// the expected state: under READ COMMITTED a concurrent writer of the same
// row waits for this one to commit, re-checks the WHERE clause and matches
// nothing, so exactly one of them wins.
#include "postgres_store.hpp"

#include <spdlog/spdlog.h>

#include <limits>

#include "farm/common/util.hpp"

namespace farmd {

namespace {

constexpr int kQueued = 1, kRunning = 2;  // v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING
constexpr int kHandedBack = 7;            // v1::OUTCOME_HANDED_BACK
constexpr int kPage = 500;                // rows per page of scan_jobs

[[noreturn]] void fail(const std::string& store, const PgError& e) { throw StoreError(store + ": " + e.what()); }

}  // namespace

PostgresStore::PostgresStore(const Config& cfg, const StoreOptions& opt)
    : Store("database " + redact_url(cfg.db_path)), url_(cfg.db_path), sync_full_(cfg.sync_full) {
  w_ = open_postgres(url_, name(), sync_full_, opt);
  r_ = pg_connect(url_, name(), sync_full_);
  spdlog::info("farmd: {} (PostgreSQL {}), schema version {}", name(), PQserverVersion(w_->raw()) / 10000,
               std::min(opt.schema_version, kSchemaVersion));
}

PostgresStore::~PostgresStore() = default;

Pg& PostgresStore::w() {
  if (lock_lost_)
    throw StoreError(name() + ": the connection dropped and another farmd has the database now; restart this farmd");
  if (!w_->ok()) {
    if (in_transaction()) throw StoreError(name() + ": the connection dropped in a transaction");
    spdlog::warn("farmd: {}: the writer's connection dropped; reconnecting", name());
    if (!w_->reconnect()) throw StoreError(name() + ": cannot reconnect: " + pg_message(PQerrorMessage(w_->raw())));
    try {
      pg_prepare_session(*w_, sync_full_);
      pg_lock(*w_, name());
    } catch (const std::runtime_error& e) {
      if (std::string(e.what()).find("is in use by another farmd") != std::string::npos) lock_lost_ = true;
      throw StoreError(e.what());
    }
  }
  return *w_;
}

template <class F>
auto PostgresStore::read(F&& f) {
  std::lock_guard lk(rmu_);
  for (int round = 0;; ++round) {
    try {
      if (!r_->ok()) {
        if (!r_->reconnect()) throw PgError("cannot reconnect: " + pg_message(PQerrorMessage(r_->raw())));
        pg_prepare_session(*r_, sync_full_);
      }
      return f(*r_);
    } catch (const PgError& e) {
      if (round == 0 && !r_->ok()) continue;  // the connection dropped: once more on a new one
      fail(name(), e);
    }
  }
}

// Every writer method: the writer's lock, PgError named as the store's.
#define WRITE_BEGIN    \
  auto _lk = writer(); \
  try {
#define WRITE_END                \
  }                              \
  catch (const PgError& e) {     \
    fail(name(), e);             \
  }

void PostgresStore::begin() {
  WRITE_BEGIN
  w().exec("BEGIN");
  WRITE_END
}
void PostgresStore::commit() {
  WRITE_BEGIN
  w_->exec("COMMIT");
  WRITE_END
}
void PostgresStore::rollback() noexcept {
  try {
    if (w_->ok()) w_->exec("ROLLBACK");
  } catch (...) {
  }
}

// ------------------------------------------------------------------ at start

std::vector<WorkerRow> PostgresStore::load_workers() {
  std::vector<WorkerRow> out;
  WRITE_BEGIN
  auto r = w().query(
      "SELECT id, name, capabilities, session, registered_ms, last_seen_ms, infra_failures, quarantined, "
      "quarantine_reason, jobs_done, last_health_ms FROM workers ORDER BY id");
  for (int i = 0; i < r.rows(); ++i) {
    WorkerRow w;
    w.id = r.text(i, 0);
    w.name = r.text(i, 1);
    w.capabilities = r.blob(i, 2);
    w.session = r.text(i, 3);
    w.registered_ms = r.i64(i, 4);
    w.last_seen_ms = r.i64(i, 5);
    w.infra_failures = static_cast<uint32_t>(r.i64(i, 6));
    w.quarantined = r.i64(i, 7) != 0;
    w.quarantine_reason = r.text(i, 8);
    w.jobs_done = static_cast<uint64_t>(r.i64(i, 9));
    w.last_health_ms = r.i64(i, 10);
    out.push_back(std::move(w));
  }
  WRITE_END
  return out;
}

std::vector<ActiveJobRow> PostgresStore::load_active_jobs() {
  std::vector<ActiveJobRow> out;
  WRITE_BEGIN
  PgParams p;
  p.add(kHandedBack).add(kQueued).add(kRunning);
  auto r = w().query(
      "SELECT id, seq, spec, state, priority, attempts, max_attempts, worker_id, cancel_requested, health_for, "
      "(SELECT COUNT(*) FROM attempts a WHERE a.job_id = jobs.id AND a.outcome = $1::int), lease_expires_ms "
      "FROM jobs WHERE state IN ($2::int, $3::int) ORDER BY seq",
      p);
  for (int i = 0; i < r.rows(); ++i) {
    ActiveJobRow j;
    j.id = r.text(i, 0);
    j.seq = r.i64(i, 1);
    j.spec = r.blob(i, 2);
    j.state = static_cast<int>(r.i64(i, 3));
    j.priority = static_cast<int32_t>(r.i64(i, 4));
    j.attempts = static_cast<uint32_t>(r.i64(i, 5));
    j.max_attempts = static_cast<uint32_t>(r.i64(i, 6));
    j.worker_id = r.text(i, 7);
    j.cancel_requested = r.i64(i, 8) != 0;
    j.health_for = r.text(i, 9);
    j.hand_backs = static_cast<uint32_t>(r.i64(i, 10));
    j.lease_expires_ms = r.i64(i, 11);
    out.push_back(std::move(j));
  }
  WRITE_END
  return out;
}

uint64_t PostgresStore::last_event_seq() {
  WRITE_BEGIN
  auto r = w().query("SELECT COALESCE(MAX(seq), 0) FROM events");
  return static_cast<uint64_t>(r.i64(0, 0));
  WRITE_END
}

// ------------------------------------------------------------------ jobs

int64_t PostgresStore::insert_job(const NewJob& j) {
  WRITE_BEGIN
  PgParams p;
  p.add(j.id).add(j.name).add_blob(j.spec).add(kQueued).add(j.priority);
  p.add(j.max_attempts).add(j.created_ms).add(j.message).add(j.health_for);
  auto r = w().query(
      "INSERT INTO jobs(id, name, spec, state, priority, max_attempts, created_ms, message, health_for) "
      "VALUES($1, $2, $3, $4::int, $5::int, $6::int, $7::bigint, $8, $9) RETURNING seq",
      p);
  return r.i64(0, 0);
  WRITE_END
}

bool PostgresStore::claim(const Claim& c) {
  WRITE_BEGIN
  {
    PgParams p;
    p.add(kRunning).add(c.attempt).add(c.worker_id).add(c.now_ms).add(c.lease_expires_ms);
    p.add(c.job_id).add(kQueued).add(c.attempt - 1);
    auto r = w().query(
        "UPDATE jobs SET state = $1::int, attempts = $2::int, worker_id = $3, "
        "started_ms = CASE WHEN started_ms = 0 THEN $4::bigint ELSE started_ms END, message = '', "
        "lease_expires_ms = $5::bigint WHERE id = $6 AND state = $7::int AND attempts = $8::int",
        p);
    if (r.affected() == 0) return false;
  }
  PgParams p;
  p.add(c.job_id).add(c.attempt).add(c.worker_id).add(c.now_ms);
  w().query(
      "INSERT INTO attempts(job_id, attempt, worker_id, outcome, started_ms) VALUES($1, $2::int, $3, 0, $4::bigint) "
      "ON CONFLICT (job_id, attempt) DO UPDATE SET worker_id = EXCLUDED.worker_id, outcome = 0, "
      "started_ms = EXCLUDED.started_ms, finished_ms = 0, message = ''",
      p);
  return true;
  WRITE_END
}

bool PostgresStore::renew_lease(const std::string& job_id, uint32_t attempt, int64_t expires_ms) {
  WRITE_BEGIN
  PgParams p;
  p.add(expires_ms).add(job_id).add(kRunning).add(attempt);
  auto r = w().query(
      "UPDATE jobs SET lease_expires_ms = $1::bigint WHERE id = $2 AND state = $3::int AND attempts = $4::int", p);
  return r.affected() > 0;
  WRITE_END
}

bool PostgresStore::end_attempt(const AttemptEnd& e) {
  WRITE_BEGIN
  {
    PgParams p;
    p.add(e.outcome).add(e.now_ms).add(e.attempt_message).add(e.job_id).add(e.attempt);
    auto r = w().query(
        "UPDATE attempts SET outcome = $1::int, finished_ms = $2::bigint, message = $3 "
        "WHERE job_id = $4 AND attempt = $5::int AND outcome = 0",
        p);
    if (r.affected() == 0) return false;  // ended already (or never started)
  }
  {
    PgParams p;
    p.add(e.job_id).add(e.attempt).add(e.outcome).add(e.verdict).add(e.exit_code).add(e.calls).add(e.hits);
    p.add(e.batches).add(e.duration_s).add_blob(e.result);
    w().query(
        "INSERT INTO results(job_id, attempt, outcome, verdict, exit_code, calls, hits, batches, duration_s, result) "
        "VALUES($1, $2::int, $3::int, $4, $5::bigint, $6::bigint, $7::bigint, $8::bigint, $9::float8, $10) "
        "ON CONFLICT (job_id, attempt) DO UPDATE SET outcome = EXCLUDED.outcome, verdict = EXCLUDED.verdict, "
        "exit_code = EXCLUDED.exit_code, calls = EXCLUDED.calls, hits = EXCLUDED.hits, batches = EXCLUDED.batches, "
        "duration_s = EXCLUDED.duration_s, result = EXCLUDED.result",
        p);
  }
  PgResult r;
  if (e.terminal) {
    PgParams p;
    p.add(e.job_state).add(e.now_ms).add(e.job_message).add_blob(e.result).add(e.job_id).add(e.attempt);
    r = w().query(
        "UPDATE jobs SET state = $1::int, finished_ms = $2::bigint, message = $3, result = $4, lease_expires_ms = 0 "
        "WHERE id = $5 AND attempts = $6::int",
        p);
  } else {
    PgParams p;
    p.add(e.job_state).add(e.job_message).add(e.job_id).add(e.attempt);
    r = w().query(
        "UPDATE jobs SET state = $1::int, message = $2, lease_expires_ms = 0 WHERE id = $3 AND attempts = $4::int", p);
  }
  if (r.affected() == 0)
    throw StoreError(name() + ": attempt " + std::to_string(e.attempt) + " of job " + e.job_id +
                     " was running, but the job is at another attempt");
  return true;
  WRITE_END
}

bool PostgresStore::end_queued(const std::string& job_id, int state, int64_t now_ms, const std::string& message,
                               const std::optional<std::string>& result, bool cancel_requested) {
  WRITE_BEGIN
  PgParams p;
  p.add(state).add(now_ms).add(message).add(cancel_requested ? 1 : 0);
  if (result) p.add_blob(*result);
  else p.add_null();
  p.add(job_id).add(kQueued);
  auto r = w().query(
      "UPDATE jobs SET state = $1::int, finished_ms = $2::bigint, message = $3, "
      "cancel_requested = CASE WHEN $4::int = 1 THEN 1 ELSE cancel_requested END, "
      "result = COALESCE($5::bytea, result) WHERE id = $6 AND state = $7::int",
      p);
  return r.affected() > 0;
  WRITE_END
}

bool PostgresStore::request_cancel(const std::string& job_id, const std::string& message) {
  WRITE_BEGIN
  PgParams p;
  p.add(message).add(job_id).add(kRunning);
  auto r = w().query("UPDATE jobs SET cancel_requested = 1, message = $1 WHERE id = $2 AND state = $3::int", p);
  return r.affected() > 0;
  WRITE_END
}

std::optional<AttemptRow> PostgresStore::attempt(const std::string& job_id, uint32_t attempt) {
  WRITE_BEGIN
  PgParams p;
  p.add(job_id).add(attempt);
  auto r = w().query(
      "SELECT attempt, worker_id, outcome, started_ms, finished_ms, message FROM attempts "
      "WHERE job_id = $1 AND attempt = $2::int",
      p);
  if (r.rows() == 0) return std::nullopt;
  AttemptRow a;
  a.attempt = static_cast<uint32_t>(r.i64(0, 0));
  a.worker_id = r.text(0, 1);
  a.outcome = static_cast<int>(r.i64(0, 2));
  a.started_ms = r.i64(0, 3);
  a.finished_ms = r.i64(0, 4);
  a.message = r.text(0, 5);
  return a;
  WRITE_END
}

std::optional<int> PostgresStore::job_state(const std::string& job_id) {
  WRITE_BEGIN
  PgParams p;
  p.add(job_id);
  auto r = w().query("SELECT state FROM jobs WHERE id = $1", p);
  if (r.rows() == 0) return std::nullopt;
  return static_cast<int>(r.i64(0, 0));
  WRITE_END
}

// ------------------------------------------------------------------ workers

void PostgresStore::put_worker(const WorkerRow& w) {
  WRITE_BEGIN
  PgParams p;
  p.add(w.id).add(w.name).add_blob(w.capabilities).add(w.session).add(w.registered_ms).add(w.last_seen_ms);
  p.add(w.infra_failures).add(w.quarantined ? 1 : 0).add(w.quarantine_reason).add(w.jobs_done).add(w.last_health_ms);
  this->w().query(
      "INSERT INTO workers(id, name, capabilities, session, registered_ms, last_seen_ms, infra_failures, "
      "quarantined, quarantine_reason, jobs_done, last_health_ms) "
      "VALUES($1, $2, $3, $4, $5::bigint, $6::bigint, $7::int, $8::int, $9, $10::bigint, $11::bigint) "
      "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, capabilities = EXCLUDED.capabilities, "
      "session = EXCLUDED.session, registered_ms = EXCLUDED.registered_ms, last_seen_ms = EXCLUDED.last_seen_ms, "
      "infra_failures = EXCLUDED.infra_failures, quarantined = EXCLUDED.quarantined, "
      "quarantine_reason = EXCLUDED.quarantine_reason, jobs_done = EXCLUDED.jobs_done, "
      "last_health_ms = EXCLUDED.last_health_ms",
      p);
  WRITE_END
}

void PostgresStore::delete_worker(const std::string& id) {
  WRITE_BEGIN
  PgParams p;
  p.add(id);
  w().query("DELETE FROM workers WHERE id = $1", p);
  WRITE_END
}

// ------------------------------------------------------------------ events

uint64_t PostgresStore::append_event(const std::string& job_id, EventKind kind, int64_t time_ms,
                                     const std::string& event) {
  WRITE_BEGIN
  PgParams p;
  p.add(job_id).add(static_cast<int>(kind)).add(time_ms).add_blob(event);
  auto r = w().query("INSERT INTO events(job_id, kind, time_ms, event) VALUES($1, $2::int, $3::bigint, $4) RETURNING seq",
                     p);
  return static_cast<uint64_t>(r.i64(0, 0));
  WRITE_END
}

int64_t PostgresStore::prune_events(int64_t cutoff_ms) {
  WRITE_BEGIN
  PgParams p;
  p.add(cutoff_ms);
  auto r = w().query(
      "DELETE FROM events WHERE job_id IN (SELECT id FROM jobs WHERE finished_ms > 0 AND finished_ms < $1::bigint)", p);
  return r.affected();
  WRITE_END
}

std::vector<EventRow> PostgresStore::events_after(const std::string& job_id, uint64_t after, bool include_logs,
                                                  size_t limit) {
  return read([&](Pg& pg) {
    std::vector<EventRow> out;
    PgParams p;
    p.add(job_id).add(static_cast<int64_t>(after)).add(static_cast<int64_t>(limit));
    auto r = pg.query(include_logs ? "SELECT seq, event FROM events WHERE job_id = $1 AND seq > $2::bigint "
                                     "ORDER BY seq LIMIT $3::bigint"
                                   : "SELECT seq, event FROM events WHERE job_id = $1 AND seq > $2::bigint "
                                     "AND kind <> 2 ORDER BY seq LIMIT $3::bigint",
                      p);
    for (int i = 0; i < r.rows(); ++i) out.push_back({static_cast<uint64_t>(r.i64(i, 0)), r.blob(i, 1)});
    return out;
  });
}

// ------------------------------------------------------------------ queries

std::optional<JobRow> PostgresStore::job(const std::string& id, bool history) {
  return read([&](Pg& pg) -> std::optional<JobRow> {
    PgParams p;
    p.add(id);
    auto r = pg.query(
        "SELECT id, spec, state, attempts, worker_id, created_ms, started_ms, finished_ms, message, "
        "cancel_requested, result FROM jobs WHERE id = $1",
        p);
    if (r.rows() == 0) return std::nullopt;
    JobRow j;
    j.id = r.text(0, 0);
    j.spec = r.blob(0, 1);
    j.state = static_cast<int>(r.i64(0, 2));
    j.attempts = static_cast<uint32_t>(r.i64(0, 3));
    j.worker_id = r.text(0, 4);
    j.created_ms = r.i64(0, 5);
    j.started_ms = r.i64(0, 6);
    j.finished_ms = r.i64(0, 7);
    j.message = r.text(0, 8);
    j.cancel_requested = r.i64(0, 9) != 0;
    if (!r.is_null(0, 10)) j.result = r.blob(0, 10);
    if (history) {
      auto a = pg.query(
          "SELECT attempt, worker_id, outcome, started_ms, finished_ms, message FROM attempts WHERE job_id = $1 "
          "ORDER BY attempt",
          p);
      for (int i = 0; i < a.rows(); ++i) {
        AttemptRow h;
        h.attempt = static_cast<uint32_t>(a.i64(i, 0));
        h.worker_id = a.text(i, 1);
        h.outcome = static_cast<int>(a.i64(i, 2));
        h.started_ms = a.i64(i, 3);
        h.finished_ms = a.i64(i, 4);
        h.message = a.text(i, 5);
        j.history.push_back(std::move(h));
      }
    }
    return j;
  });
}

void PostgresStore::scan_jobs(const JobQuery& q,
                              const std::function<bool(const std::string& id, const std::string& spec)>& visit) {
  // Keyset pages by seq (no cursor held open between pages; each page sees
  // what is committed by then).
  std::string sql = "SELECT seq, id, spec FROM jobs WHERE ";
  sql += q.newest_first ? "seq < $1::bigint" : "seq > $1::bigint";
  int n = 1;
  std::string states;
  if (!q.states.empty()) {
    for (size_t i = 0; i < q.states.size(); ++i) states += (i ? "," : "") + std::to_string(q.states[i]);
    sql += " AND state = ANY($" + std::to_string(++n) + "::int[])";
  }
  if (!q.worker_id.empty()) sql += " AND worker_id = $" + std::to_string(++n);
  if (q.created_since_ms != 0) sql += " AND created_ms >= $" + std::to_string(++n) + "::bigint";
  sql += q.newest_first ? " ORDER BY seq DESC" : " ORDER BY seq";
  sql += " LIMIT " + std::to_string(kPage);
  int64_t from = q.newest_first ? std::numeric_limits<int64_t>::max() : 0;
  read([&](Pg& pg) {
    for (;;) {
      PgParams p;
      p.add(from);
      if (!q.states.empty()) p.add("{" + states + "}");
      if (!q.worker_id.empty()) p.add(q.worker_id);
      if (q.created_since_ms != 0) p.add(q.created_since_ms);
      auto r = pg.query(sql, p);
      for (int i = 0; i < r.rows(); ++i) {
        from = r.i64(i, 0);
        if (!visit(r.text(i, 1), r.blob(i, 2))) return 0;
      }
      if (r.rows() < kPage) return 0;
    }
  });
}

}  // namespace farmd

namespace farmd {

std::vector<std::pair<int, int64_t>> PostgresStore::count_jobs_by_state() {
  return read([&](Pg& pg) {
    std::vector<std::pair<int, int64_t>> out;
    PgParams p;
    auto r = pg.query("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state", p);
    for (int i = 0; i < r.rows(); ++i) out.emplace_back(static_cast<int>(r.i64(i, 0)), r.i64(i, 1));
    return out;
  });
}

std::vector<EventRow> PostgresStore::last_log_events(const std::string& job_id, size_t limit) {
  return read([&](Pg& pg) {
    std::vector<EventRow> out;
    PgParams p;
    p.add(job_id).add(static_cast<int64_t>(limit));
    auto r = pg.query(
        "SELECT seq, event FROM (SELECT seq, event FROM events WHERE job_id = $1 AND kind = 2 "
        "ORDER BY seq DESC LIMIT $2::bigint) t ORDER BY seq",
        p);
    for (int i = 0; i < r.rows(); ++i) out.push_back({static_cast<uint64_t>(r.i64(i, 0)), r.blob(i, 1)});
    return out;
  });
}

}  // namespace farmd
