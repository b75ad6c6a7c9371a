#include "farmd/farm.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "farm/common/names.hpp"
#include "farm/common/select.hpp"
#include "farm/common/util.hpp"

namespace farmd {

using ::farm::now_ms;
using grpc::Status;
using grpc::StatusCode;

namespace {

constexpr int kEvState = 0, kEvProgress = 1, kEvLog = 2;

const char* kSchema = R"sql(
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
)sql";

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '@' || c == ':';
  });
}

bool known_kind(const std::string& k) {
  return k == "native" || k == "qemu-user" || k == "qemu-system" || k == "board";
}

template <class M>
std::string ser(const M& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

}  // namespace

// ------------------------------------------------------------------ setup

Farm::Farm(Config cfg) : cfg_(std::move(cfg)) {
  if (cfg_.lease_ttl_ms < 100) cfg_.lease_ttl_ms = 100;
  if (cfg_.offline_after_ms == 0) cfg_.offline_after_ms = 3 * cfg_.lease_ttl_ms;
  open_db();
  recover();
  bg_ = std::thread([this] { bg_loop(); });
}

Farm::~Farm() {
  stop();
  if (bg_.joinable()) bg_.join();
}

uint32_t Farm::heartbeat_interval_ms() const {
  return cfg_.heartbeat_interval_ms ? cfg_.heartbeat_interval_ms : std::max<uint32_t>(50, cfg_.lease_ttl_ms / 3);
}

void Farm::open_db() {
  db_ = std::make_unique<Db>(cfg_.db_path);
  if (cfg_.db_path != ":memory:" && !cfg_.db_path.empty()) {
    db_->exec("PRAGMA journal_mode=WAL");
  }
  db_->exec(cfg_.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  db_->exec("PRAGMA temp_store=MEMORY");
  db_->exec(kSchema);
  if (cfg_.db_path != ":memory:" && !cfg_.db_path.empty()) {
    rdb_ = std::make_unique<Db>(cfg_.db_path, /*readonly=*/true);
  }
}

void Farm::recover() {
  std::lock_guard lk(mu_);
  int64_t now = now_ms();
  {
    auto st = db_->prepare(
        "SELECT id, name, capabilities, session, registered_ms, last_seen_ms, infra_failures, quarantined, "
        "quarantine_reason, jobs_done, last_health_ms FROM workers");
    while (st.step()) {
      WorkerRec w;
      w.w.set_id(st.text(0));
      w.w.set_name(st.text(1));
      w.w.mutable_capabilities()->ParseFromString(st.blob(2));
      w.session = st.text(3);
      w.w.set_registered_ms(st.i64(4));
      w.w.set_last_seen_ms(st.i64(5));
      w.w.set_infra_failures(static_cast<uint32_t>(st.i64(6)));
      w.quarantined = st.i64(7) != 0;
      w.w.set_quarantine_reason(st.text(8));
      w.w.set_jobs_done(static_cast<uint64_t>(st.i64(9)));
      w.last_health_ms = st.i64(10);
      w.last_persist_ms = now;
      workers_.emplace(w.w.id(), std::move(w));
    }
  }
  size_t nq = 0, nr = 0;
  {
    auto st = db_->prepare(
        "SELECT id, seq, spec, state, priority, attempts, max_attempts, worker_id, cancel_requested, health_for "
        "FROM jobs WHERE state IN (?, ?) ORDER BY seq");
    st.bind(1, static_cast<int>(v1::JOB_STATE_QUEUED)).bind(2, static_cast<int>(v1::JOB_STATE_RUNNING));
    while (st.step()) {
      Queued q;
      q.id = st.text(0);
      QueueKey key{-static_cast<int32_t>(st.i64(4)), st.i64(1)};
      q.spec.ParseFromString(st.blob(2));
      q.attempts = static_cast<uint32_t>(st.i64(5));
      q.max_attempts = static_cast<uint32_t>(st.i64(6));
      q.health_for = st.text(9);
      if (!q.health_for.empty()) {
        if (auto it = workers_.find(q.health_for); it != workers_.end()) it->second.health_job = q.id;
      }
      if (st.i64(3) == v1::JOB_STATE_QUEUED) {
        queued_index_[q.id] = key;
        queue_.emplace(key, std::move(q));
        ++nq;
      } else {
        Running r;
        r.job_id = q.id;
        r.attempt = q.attempts;
        r.worker_id = st.text(7);
        r.started_ms = now;
        // Agents keep running across a farmd restart; give them a full lease to reconnect.
        r.expires_ms = now + cfg_.lease_ttl_ms;
        r.cancel_requested = st.i64(8) != 0;
        r.key = key;
        r.job = std::move(q);
        if (auto it = workers_.find(r.worker_id); it != workers_.end()) it->second.running.insert(r.job_id);
        running_.emplace(r.job_id, std::move(r));
        ++nr;
      }
    }
  }
  {
    auto st = db_->prepare("SELECT COALESCE(MAX(seq), 0) FROM events");
    if (st.step()) last_event_seq_ = static_cast<uint64_t>(st.i64(0));
  }
  spdlog::info("farmd: recovered {} workers, {} queued and {} running jobs from {}", workers_.size(), nq, nr,
               cfg_.db_path);
}

void Farm::stop() {
  stopping_ = true;
  {
    std::lock_guard lk(mu_);
    for (auto* w : waiters_) {
      w->woken = true;
      w->cv.notify_one();
    }
  }
  sched_cv_.notify_all();
  {
    std::lock_guard lk(ev_mu_);
  }
  ev_cv_.notify_all();
  {
    std::lock_guard lk(bg_mu_);
  }
  bg_cv_.notify_all();
}

void Farm::bg_loop() {
  auto period = std::chrono::milliseconds(std::clamp<uint32_t>(cfg_.lease_ttl_ms / 10, 20, 500));
  while (!stopping_) {
    {
      std::unique_lock lk(bg_mu_);
      bg_cv_.wait_for(lk, period, [&] { return stopping_.load(); });
    }
    if (stopping_) break;
    try {
      tick();
    } catch (const std::exception& e) {
      spdlog::error("farmd: housekeeping failed: {}", e.what());
    }
  }
}

// ------------------------------------------------------------------ events

void Farm::emit(const v1::JobEvent& ev) {
  int kind = ev.has_state() ? kEvState : ev.has_progress() ? kEvProgress : kEvLog;
  auto st = db_->prepare("INSERT INTO events(job_id, kind, time_ms, event) VALUES(?, ?, ?, ?)");
  st.bind(1, ev.job_id()).bind(2, kind).bind(3, ev.time_ms()).bind_blob(4, ser(ev));
  st.exec();
  pending_notify_.push_back(static_cast<uint64_t>(db_->last_insert_rowid()));
}

void Farm::emit_state(const std::string& job_id, v1::JobState state, uint32_t attempt, const std::string& worker,
                      const std::string& msg) {
  v1::JobEvent ev;
  ev.set_job_id(job_id);
  ev.set_time_ms(now_ms());
  auto* s = ev.mutable_state();
  s->set_state(state);
  s->set_attempt(attempt);
  s->set_worker_id(worker);
  s->set_message(msg);
  emit(ev);
}

// Call after a commit (mu_ held): publishes the events written in it.
void Farm::publish_events() {
  if (pending_notify_.empty()) return;
  uint64_t mx = *std::max_element(pending_notify_.begin(), pending_notify_.end());
  pending_notify_.clear();
  {
    std::lock_guard elk(ev_mu_);
    if (mx > last_event_seq_) last_event_seq_ = mx;
  }
  ev_cv_.notify_all();
}

void Farm::wait_event(uint64_t seen, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lk(ev_mu_);
  ev_cv_.wait_until(lk, deadline, [&] { return stopping_.load() || last_event_seq_.load() > seen; });
}

std::vector<v1::JobEvent> Farm::events_after(const std::string& job_id, uint64_t after, bool include_logs,
                                             size_t limit) {
  std::vector<v1::JobEvent> out;
  auto run = [&](Db& db) {
    auto st = db.prepare(include_logs
                             ? "SELECT seq, event FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?"
                             : "SELECT seq, event FROM events WHERE job_id = ? AND seq > ? AND kind != 2 "
                               "ORDER BY seq LIMIT ?");
    st.bind(1, job_id).bind(2, static_cast<int64_t>(after)).bind(3, static_cast<int64_t>(limit));
    while (st.step()) {
      v1::JobEvent ev;
      ev.ParseFromString(st.blob(1));
      ev.set_seq(static_cast<uint64_t>(st.i64(0)));
      out.push_back(std::move(ev));
    }
  };
  if (rdb_) {
    std::lock_guard lk(rmu_);
    run(*rdb_);
  } else {
    std::lock_guard lk(mu_);
    run(*db_);
  }
  return out;
}

// ------------------------------------------------------------------ validation

Status Farm::validate(const v1::JobSpec& spec) const {
  auto bad = [](std::string m) { return Status(StatusCode::INVALID_ARGUMENT, std::move(m)); };
  const auto& w = spec.workload();
  switch (w.spec_case()) {
    case v1::Workload::SPEC_NOT_SET:
      return bad("job has no workload (set patch_stress, baremetal or command)");
    case v1::Workload::kPatchStress: {
      const auto& p = w.patch_stress();
      if (p.threads() > 4096) return bad("patch_stress.threads must be <= 4096");
      if (p.functions() > 1000000) return bad("patch_stress.functions must be <= 1000000");
      auto one_of = [](const std::string& v, std::initializer_list<const char*> ok) {
        if (v.empty()) return true;
        for (const char* o : ok)
          if (v == o) return true;
        return false;
      };
      if (!one_of(p.writer(), {"mprotect", "procmem", "default"}))
        return bad("patch_stress.writer must be mprotect, procmem or default, not '" + p.writer() + "'");
      if (!one_of(p.sync(), {"membarrier", "flush_icache", "signal", "default"}))
        return bad("patch_stress.sync must be membarrier, flush_icache, signal or default, not '" + p.sync() + "'");
      if (!one_of(p.probe_kind(), {"jump", "trap", "auto"}))
        return bad("patch_stress.probe_kind must be jump, trap or auto, not '" + p.probe_kind() + "'");
      if (!one_of(p.sites(), {"entry", "body"}))
        return bad("patch_stress.sites must be entry or body, not '" + p.sites() + "'");
      if (p.batches() && p.duration_s() > 0) return bad("patch_stress.batches and duration_s are exclusive");
      if (p.duration_s() < 0 || p.duration_s() > 86400) return bad("patch_stress.duration_s must be in (0, 86400]");
      break;
    }
    case v1::Workload::kBaremetal: {
      const auto& b = w.baremetal();
      if (b.image().empty()) return bad("baremetal.image (path of the ELF on the agent) is required");
      if (b.smp() > 512) return bad("baremetal.smp must be <= 512");
      if (!spec.selector().kind().empty() && spec.selector().kind() != "qemu-system" &&
          spec.selector().kind() != "board")
        return bad("a baremetal image runs on qemu-system or board workers, not " + spec.selector().kind());
      break;
    }
    case v1::Workload::kCommand:
      if (w.command().argv().empty() || w.command().argv(0).empty()) return bad("command.argv must not be empty");
      break;
    case v1::Workload::kHealthCheck:
      if (spec.selector().worker_id().empty())
        return bad("a health_check job must be pinned to a worker (selector.worker_id)");
      break;
  }
  if (!spec.selector().kind().empty() && !known_kind(spec.selector().kind()))
    return bad("selector.kind must be native, qemu-user, qemu-system or board, not '" + spec.selector().kind() +
               "'");
  if (spec.timeout_s() > cfg_.max_timeout_s)
    return bad("timeout_s " + std::to_string(spec.timeout_s()) + " exceeds the maximum " +
               std::to_string(cfg_.max_timeout_s));
  if (spec.max_attempts() > cfg_.max_attempts_limit)
    return bad("max_attempts must be <= " + std::to_string(cfg_.max_attempts_limit));
  if (spec.name().size() > 256) return bad("name too long");
  return Status::OK;
}

// ------------------------------------------------------------------ client

std::string Farm::insert_job(const v1::JobSpec& spec, uint32_t max_attempts, const std::string& health_for,
                             const std::string& message, QueueKey* key) {
  std::string id = "j-" + ::farm::random_hex(6);
  int64_t now = now_ms();
  auto st = db_->prepare(
      "INSERT INTO jobs(id, name, spec, state, priority, max_attempts, created_ms, message, health_for) "
      "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)");
  st.bind(1, id).bind(2, spec.name()).bind_blob(3, ser(spec)).bind(4, static_cast<int>(v1::JOB_STATE_QUEUED));
  st.bind(5, spec.priority()).bind(6, max_attempts).bind(7, now).bind(8, message).bind(9, health_for);
  st.exec();
  *key = QueueKey{-spec.priority(), db_->last_insert_rowid()};
  emit_state(id, v1::JOB_STATE_QUEUED, 0, "", message);
  return id;
}

Status Farm::submit(const v1::SubmitJobRequest& req, v1::Job* out) {
  v1::JobSpec spec = req.spec();
  if (auto s = validate(spec); !s.ok()) return s;
  if (spec.timeout_s() == 0) spec.set_timeout_s(cfg_.default_timeout_s);
  uint32_t max_attempts = spec.max_attempts() ? spec.max_attempts() : cfg_.default_max_attempts;
  spec.set_max_attempts(max_attempts);
  std::string health_for;
  if (spec.workload().has_health_check()) {
    health_for = spec.selector().worker_id();
    spec.set_max_attempts(max_attempts = 1);
  }

  std::unique_lock lk(mu_);
  if (stopping_) return Status(StatusCode::UNAVAILABLE, "farmd is shutting down");
  std::string message;
  {
    bool any = false, online = false;
    std::string reasons, offline;
    int64_t now = now_ms();
    for (auto& [id, w] : workers_) {
      std::string why;
      if (::farm::selector_matches(spec, w.w.capabilities(), id, &why)) {
        any = true;
        if (worker_state(w, now) != v1::WORKER_STATE_OFFLINE) {
          online = true;
          break;
        }
        if (offline.size() < 200) offline += (offline.empty() ? "" : ", ") + id;
        continue;
      }
      if (reasons.size() < 400) reasons += (reasons.empty() ? "" : "; ") + id + ": " + why;
    }
    if (any && !online) message = "waiting: every worker that can run this job is offline (" + offline + ")";
    if (!any) {
      std::string m = "no registered worker can run this job (" + std::string(::farm::workload_type(spec.workload())) +
                      " on " + ::farm::describe_selector(spec.selector()) + ")";
      if (workers_.empty()) m += "; no workers are registered";
      else m += "; " + reasons;
      if (!req.allow_unmatched()) return Status(StatusCode::FAILED_PRECONDITION, m);
      message = "waiting: " + m;
    }
  }
  QueueKey key{};
  std::string id;
  try {
    Txn t(*db_);
    id = insert_job(spec, max_attempts, health_for, message, &key);
    t.commit();
  } catch (const std::exception& e) {
    pending_notify_.clear();
    return Status(StatusCode::INTERNAL, std::string("store: ") + e.what());
  }
  publish_events();
  Queued q;
  q.id = id;
  q.spec = spec;
  q.max_attempts = max_attempts;
  q.health_for = health_for;
  queued_index_[id] = key;
  wake_one_for(queue_.emplace(key, std::move(q)).first->second);
  if (!health_for.empty()) {
    if (auto it = workers_.find(health_for); it != workers_.end()) it->second.health_job = id;
  }
  lk.unlock();

  out->set_id(id);
  *out->mutable_spec() = spec;
  out->set_state(v1::JOB_STATE_QUEUED);
  out->set_created_ms(now_ms());
  out->set_message(message);
  return Status::OK;
}

bool Farm::load_job(const std::string& id, bool history, v1::Job* out) {
  auto run = [&](Db& db) {
    auto st = db.prepare(
        "SELECT id, spec, state, attempts, worker_id, created_ms, started_ms, finished_ms, message, "
        "cancel_requested, result FROM jobs WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) return false;
    out->set_id(st.text(0));
    out->mutable_spec()->ParseFromString(st.blob(1));
    out->set_state(static_cast<v1::JobState>(st.i64(2)));
    out->set_attempts(static_cast<uint32_t>(st.i64(3)));
    out->set_worker_id(st.text(4));
    out->set_created_ms(st.i64(5));
    out->set_started_ms(st.i64(6));
    out->set_finished_ms(st.i64(7));
    out->set_message(st.text(8));
    out->set_cancel_requested(st.i64(9) != 0);
    if (!st.is_null(10)) out->mutable_result()->ParseFromString(st.blob(10));
    if (history) {
      auto a = db.prepare(
          "SELECT attempt, worker_id, outcome, started_ms, finished_ms, message FROM attempts WHERE job_id = ? "
          "ORDER BY attempt");
      a.bind(1, id);
      while (a.step()) {
        auto* h = out->add_attempt_history();
        h->set_attempt(static_cast<uint32_t>(a.i64(0)));
        h->set_worker_id(a.text(1));
        h->set_outcome(static_cast<v1::Outcome>(a.i64(2)));
        h->set_started_ms(a.i64(3));
        h->set_finished_ms(a.i64(4));
        h->set_message(a.text(5));
      }
    }
    return true;
  };
  bool found;
  if (rdb_) {
    std::lock_guard lk(rmu_);
    found = run(*rdb_);
  } else {
    std::lock_guard lk(mu_);
    found = run(*db_);
  }
  if (found && out->state() == v1::JOB_STATE_RUNNING) {
    std::lock_guard lk(mu_);
    if (auto it = running_.find(id); it != running_.end()) *out->mutable_progress() = it->second.progress;
  }
  return found;
}

Status Farm::get_job(const std::string& id, bool history, v1::Job* out) {
  if (id.empty()) return Status(StatusCode::INVALID_ARGUMENT, "job_id is required");
  try {
    if (!load_job(id, history, out)) return Status(StatusCode::NOT_FOUND, "no job " + id);
  } catch (const std::exception& e) {
    return Status(StatusCode::INTERNAL, e.what());
  }
  return Status::OK;
}

static bool tags_match(const v1::JobSpec& spec, const google::protobuf::Map<std::string, std::string>& want) {
  for (const auto& [k, v] : want) {
    auto it = spec.tags().find(k);
    if (it == spec.tags().end() || it->second != v) return false;
  }
  return true;
}

Status Farm::list_jobs(const v1::ListJobsRequest& req, v1::ListJobsResponse* out) {
  uint32_t limit = req.limit() ? std::min<uint32_t>(req.limit(), 100000) : 100;
  std::vector<std::string> ids;
  auto run = [&](Db& db) {
    std::string sql = "SELECT id, spec, state, worker_id FROM jobs";
    std::string where;
    if (!req.states().empty()) {
      where += "state IN (";
      for (int i = 0; i < req.states_size(); ++i) where += (i ? "," : "") + std::to_string(req.states(i));
      where += ")";
    }
    if (!req.worker_id().empty()) where += std::string(where.empty() ? "" : " AND ") + "worker_id = ?";
    if (!where.empty()) sql += " WHERE " + where;
    sql += req.newest_first() ? " ORDER BY seq DESC" : " ORDER BY seq";
    auto st = db.prepare(sql);
    if (!req.worker_id().empty()) st.bind(1, req.worker_id());
    while (ids.size() < limit && st.step()) {
      if (!req.tags().empty()) {
        v1::JobSpec spec;
        spec.ParseFromString(st.blob(1));
        if (!tags_match(spec, req.tags())) continue;
      }
      ids.push_back(st.text(0));
    }
  };
  try {
    if (rdb_) {
      std::lock_guard lk(rmu_);
      run(*rdb_);
    } else {
      std::lock_guard lk(mu_);
      run(*db_);
    }
    for (const auto& id : ids) {
      v1::Job j;
      if (load_job(id, false, &j)) *out->add_jobs() = std::move(j);
    }
  } catch (const std::exception& e) {
    return Status(StatusCode::INTERNAL, e.what());
  }
  return Status::OK;
}

Status Farm::cancel(const std::string& id, const std::string& reason, v1::Job* out) {
  if (id.empty()) return Status(StatusCode::INVALID_ARGUMENT, "job_id is required");
  std::string msg = "cancelled" + (reason.empty() ? std::string() : ": " + reason);
  {
    std::lock_guard lk(mu_);
    try {
      if (auto qi = queued_index_.find(id); qi != queued_index_.end()) {
        v1::JobResult res;
        res.set_outcome(v1::OUTCOME_CANCELLED);
        res.set_message(msg);
        Txn t(*db_);
        auto st = db_->prepare(
            "UPDATE jobs SET state = ?, finished_ms = ?, message = ?, cancel_requested = 1, result = ? WHERE id = ?");
        st.bind(1, static_cast<int>(v1::JOB_STATE_CANCELLED)).bind(2, now_ms()).bind(3, msg).bind_blob(4, ser(res));
        st.bind(5, id).exec();
        emit_state(id, v1::JOB_STATE_CANCELLED, 0, "", msg);
        t.commit();
        publish_events();
        auto& q = queue_.at(qi->second);
        if (!q.health_for.empty())
          if (auto w = workers_.find(q.health_for); w != workers_.end() && w->second.health_job == id)
            w->second.health_job.clear();
        queue_.erase(qi->second);
        queued_index_.erase(qi);
      } else if (auto ri = running_.find(id); ri != running_.end()) {
        if (!ri->second.cancel_requested) {
          Txn t(*db_);
          auto st = db_->prepare("UPDATE jobs SET cancel_requested = 1, message = ? WHERE id = ?");
          st.bind(1, "cancel requested" + (reason.empty() ? std::string() : ": " + reason)).bind(2, id).exec();
          emit_state(id, v1::JOB_STATE_RUNNING, ri->second.attempt, ri->second.worker_id,
                     "cancel requested" + (reason.empty() ? std::string() : ": " + reason));
          t.commit();
          publish_events();
          ri->second.cancel_requested = true;
        }
      }
      // otherwise: finished or unknown, reported below (outside the lock)
    } catch (const std::exception& e) {
      pending_notify_.clear();
      return Status(StatusCode::INTERNAL, e.what());
    }
  }
  if (!load_job(id, false, out)) return Status(StatusCode::NOT_FOUND, "no job " + id);
  if (::farm::is_terminal(out->state()) && out->state() != v1::JOB_STATE_CANCELLED)
    return Status(StatusCode::FAILED_PRECONDITION,
                  "job " + id + " already finished (" + std::string(::farm::job_state_name(out->state())) + ")");
  return Status::OK;
}

v1::WorkerState Farm::worker_state(const WorkerRec& w, int64_t now) const {
  if (now - w.w.last_seen_ms() > static_cast<int64_t>(cfg_.offline_after_ms) && w.running.empty())
    return v1::WORKER_STATE_OFFLINE;
  if (w.quarantined) return v1::WORKER_STATE_QUARANTINED;
  return w.running.empty() ? v1::WORKER_STATE_IDLE : v1::WORKER_STATE_BUSY;
}

void Farm::list_workers(v1::ListWorkersResponse* out) {
  std::lock_guard lk(mu_);
  int64_t now = now_ms();
  for (auto& [id, w] : workers_) {
    auto* o = out->add_workers();
    *o = w.w;
    o->set_state(worker_state(w, now));
    o->set_running(static_cast<uint32_t>(w.running.size()));
  }
}

Status Farm::remove_worker(const std::string& id, bool force) {
  std::lock_guard lk(mu_);
  auto it = workers_.find(id);
  if (it == workers_.end()) return Status(StatusCode::NOT_FOUND, "no worker " + id);
  WorkerRec& w = it->second;
  if (!w.running.empty() && !force)
    return Status(StatusCode::FAILED_PRECONDITION,
                  "worker " + id + " is running " + std::to_string(w.running.size()) + " job(s); use force");
  try {
    Txn t(*db_);
    std::vector<std::string> stale(w.running.begin(), w.running.end());
    for (const auto& jid : stale) {
      auto ri = running_.find(jid);
      if (ri == running_.end()) continue;
      v1::JobResult res;
      res.set_outcome(v1::OUTCOME_LOST);
      res.set_message("worker " + id + " was removed");
      Running r = ri->second;
      finish_attempt(std::move(r), std::move(res));
    }
    if (!w.health_job.empty() && queued_index_.count(w.health_job)) {
      auto st = db_->prepare("UPDATE jobs SET state = ?, finished_ms = ?, message = ? WHERE id = ?");
      st.bind(1, static_cast<int>(v1::JOB_STATE_CANCELLED)).bind(2, now_ms()).bind(3, "worker removed");
      st.bind(4, w.health_job).exec();
      emit_state(w.health_job, v1::JOB_STATE_CANCELLED, 0, "", "worker removed");
      queue_.erase(queued_index_.at(w.health_job));
      queued_index_.erase(w.health_job);
    }
    auto st = db_->prepare("DELETE FROM workers WHERE id = ?");
    st.bind(1, id).exec();
    t.commit();
  } catch (const std::exception& e) {
    pending_notify_.clear();
    return Status(StatusCode::INTERNAL, e.what());
  }
  publish_events();
  for (auto* wt : waiters_)
    if (wt->worker_id == id) {
      wt->woken = true;
      wt->cv.notify_one();
    }
  workers_.erase(it);
  spdlog::info("farmd: worker {} removed", id);
  return Status::OK;
}

Status Farm::report(const v1::GetReportRequest& req, v1::Report* out) {
  std::vector<std::string> ids;
  std::set<std::string> want_ids(req.job_ids().begin(), req.job_ids().end());
  auto run = [&](Db& db) {
    auto st = db.prepare("SELECT id, spec FROM jobs WHERE created_ms >= ? ORDER BY seq");
    st.bind(1, req.since_ms());
    while (st.step()) {
      std::string id = st.text(0);
      if (!want_ids.empty() && !want_ids.count(id)) continue;
      if (!req.tags().empty()) {
        v1::JobSpec spec;
        spec.ParseFromString(st.blob(1));
        if (!tags_match(spec, req.tags())) continue;
      }
      ids.push_back(std::move(id));
    }
  };
  std::map<std::string, v1::Capabilities> caps;
  try {
    if (rdb_) {
      std::lock_guard lk(rmu_);
      run(*rdb_);
    } else {
      std::lock_guard lk(mu_);
      run(*db_);
    }
    {
      std::lock_guard lk(mu_);
      for (auto& [id, w] : workers_) caps[id] = w.w.capabilities();
    }
    for (auto& [id, c] : caps) (*out->mutable_worker_targets())[id] = ::farm::target_name(c);
    std::map<std::string, v1::TargetSummary> targets;
    out->set_generated_ms(now_ms());
    for (const auto& id : ids) {
      v1::Job j;
      if (!load_job(id, true, &j)) continue;
      std::string target;
      if (auto c = caps.find(j.worker_id()); c != caps.end()) target = ::farm::target_name(c->second);
      else target = ::farm::target_name(j.spec().selector());
      auto& t = targets[target];
      t.set_target(target);
      out->set_total(out->total() + 1);
      t.set_total(t.total() + 1);
      switch (j.state()) {
        case v1::JOB_STATE_PASSED: out->set_passed(out->passed() + 1); t.set_passed(t.passed() + 1); break;
        case v1::JOB_STATE_FAILED: out->set_failed(out->failed() + 1); t.set_failed(t.failed() + 1); break;
        case v1::JOB_STATE_TIMED_OUT:
          out->set_timed_out(out->timed_out() + 1); t.set_timed_out(t.timed_out() + 1); break;
        case v1::JOB_STATE_ERROR: out->set_errors(out->errors() + 1); t.set_errors(t.errors() + 1); break;
        case v1::JOB_STATE_CANCELLED:
          out->set_cancelled(out->cancelled() + 1); t.set_cancelled(t.cancelled() + 1); break;
        default: out->set_pending(out->pending() + 1); t.set_pending(t.pending() + 1); break;
      }
      t.set_duration_s(t.duration_s() + j.result().duration_s());
      out->set_total_calls(out->total_calls() + j.result().calls());
      out->set_total_hits(out->total_hits() + j.result().hits());
      out->set_total_batches(out->total_batches() + j.result().batches());
      *out->add_jobs() = std::move(j);
    }
    for (auto& [_, t] : targets) *out->add_targets() = t;
  } catch (const std::exception& e) {
    return Status(StatusCode::INTERNAL, e.what());
  }
  return Status::OK;
}

// ------------------------------------------------------------------ agents

void Farm::persist_worker(WorkerRec& w) {
  auto st = db_->prepare(
      "INSERT INTO workers(id, name, capabilities, session, registered_ms, last_seen_ms, infra_failures, "
      "quarantined, quarantine_reason, jobs_done, last_health_ms) VALUES(?,?,?,?,?,?,?,?,?,?,?) "
      "ON CONFLICT(id) DO UPDATE SET name=excluded.name, capabilities=excluded.capabilities, "
      "session=excluded.session, registered_ms=excluded.registered_ms, last_seen_ms=excluded.last_seen_ms, "
      "infra_failures=excluded.infra_failures, quarantined=excluded.quarantined, "
      "quarantine_reason=excluded.quarantine_reason, jobs_done=excluded.jobs_done, "
      "last_health_ms=excluded.last_health_ms");
  st.bind(1, w.w.id()).bind(2, w.w.name()).bind_blob(3, ser(w.w.capabilities())).bind(4, w.session);
  st.bind(5, w.w.registered_ms()).bind(6, w.w.last_seen_ms()).bind(7, w.w.infra_failures());
  st.bind(8, w.quarantined ? 1 : 0).bind(9, w.w.quarantine_reason()).bind(10, w.w.jobs_done());
  st.bind(11, w.last_health_ms);
  st.exec();
  w.last_persist_ms = now_ms();
}

Status Farm::register_worker(const v1::RegisterRequest& req, v1::RegisterResponse* out) {
  const auto& caps = req.capabilities();
  if (!valid_name(req.name()))
    return Status(StatusCode::INVALID_ARGUMENT, "worker name must be 1-128 chars of [A-Za-z0-9._@:-]");
  if (caps.arch().empty()) return Status(StatusCode::INVALID_ARGUMENT, "capabilities.arch is required");
  if (!known_kind(caps.kind()))
    return Status(StatusCode::INVALID_ARGUMENT, "capabilities.kind must be native, qemu-user, qemu-system or board");
  if (caps.slots() > 1024) return Status(StatusCode::INVALID_ARGUMENT, "capabilities.slots must be <= 1024");
  std::unique_lock lk(mu_);
  int64_t now = now_ms();
  auto [it, fresh] = workers_.try_emplace(req.name());
  WorkerRec& w = it->second;
  try {
    Txn t(*db_);
    // A new registration under the same name is a new incarnation of the agent:
    // whatever the previous one was running is gone.
    std::vector<std::string> stale(w.running.begin(), w.running.end());
    for (const auto& jid : stale) {
      auto ri = running_.find(jid);
      if (ri == running_.end()) continue;
      v1::JobResult res;
      res.set_outcome(v1::OUTCOME_LOST);
      res.set_message("worker " + w.w.id() + " re-registered (agent restarted) while running attempt " +
                      std::to_string(ri->second.attempt));
      Running r = ri->second;
      finish_attempt(std::move(r), std::move(res));
    }
    w.w.set_id(req.name());
    w.w.set_name(req.name());
    *w.w.mutable_capabilities() = caps;
    if (w.w.capabilities().slots() == 0) w.w.mutable_capabilities()->set_slots(1);
    w.session = ::farm::random_hex(8);
    w.w.set_registered_ms(now);
    w.w.set_last_seen_ms(now);
    persist_worker(w);
    t.commit();
  } catch (const std::exception& e) {
    pending_notify_.clear();
    return Status(StatusCode::INTERNAL, e.what());
  }
  publish_events();
  spdlog::info("farmd: worker {} registered ({}, {} slot(s){})", w.w.id(), ::farm::target_name(caps),
               w.w.capabilities().slots(), w.quarantined ? ", quarantined" : "");
  out->set_worker_id(w.w.id());
  out->set_session(w.session);
  out->set_heartbeat_interval_ms(heartbeat_interval_ms());
  out->set_lease_ttl_ms(cfg_.lease_ttl_ms);
  lk.unlock();
  sched_cv_.notify_all();
  return Status::OK;
}

Status Farm::check_session(const std::string& worker_id, const std::string& session, WorkerRec** out) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return Status(StatusCode::NOT_FOUND, "unknown worker " + worker_id + "; register first");
  if (it->second.session != session)
    return Status(StatusCode::FAILED_PRECONDITION, "stale session for worker " + worker_id + "; register again");
  *out = &it->second;
  return Status::OK;
}

bool Farm::worker_can_take(const WorkerRec& w, const Queued& q) const {
  if (!q.health_for.empty()) return q.health_for == w.w.id();
  if (w.quarantined) return false;
  return ::farm::selector_matches(q.spec, w.w.capabilities(), w.w.id());
}

bool Farm::try_pick(WorkerRec& w, v1::Lease* lease) {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    Queued& q = it->second;
    if (!worker_can_take(w, q)) continue;
    int64_t now = now_ms();
    uint32_t attempt = q.attempts + 1;
    Txn t(*db_);
    {
      auto st = db_->prepare(
          "UPDATE jobs SET state = ?, attempts = ?, worker_id = ?, "
          "started_ms = CASE WHEN started_ms = 0 THEN ? ELSE started_ms END, message = '' WHERE id = ?");
      st.bind(1, static_cast<int>(v1::JOB_STATE_RUNNING)).bind(2, attempt).bind(3, w.w.id()).bind(4, now);
      st.bind(5, q.id).exec();
    }
    {
      auto st = db_->prepare(
          "INSERT OR REPLACE INTO attempts(job_id, attempt, worker_id, outcome, started_ms) VALUES(?, ?, ?, 0, ?)");
      st.bind(1, q.id).bind(2, attempt).bind(3, w.w.id()).bind(4, now).exec();
    }
    emit_state(q.id, v1::JOB_STATE_RUNNING, attempt, w.w.id(), "");
    t.commit();
    publish_events();

    Running r;
    r.job_id = q.id;
    r.attempt = attempt;
    r.worker_id = w.w.id();
    r.started_ms = now;
    r.expires_ms = now + cfg_.lease_ttl_ms;
    r.key = it->first;
    q.attempts = attempt;
    r.job = std::move(q);
    queued_index_.erase(r.job_id);
    queue_.erase(it);
    lease->set_job_id(r.job_id);
    lease->set_attempt(attempt);
    *lease->mutable_spec() = r.job.spec;
    lease->set_expires_ms(r.expires_ms);
    w.running.insert(r.job_id);
    running_.emplace(r.job_id, std::move(r));
    return true;
  }
  return false;
}

void Farm::wake_one_for(const Queued& q) {
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    Waiter* w = *it;
    if (w->woken) continue;
    auto wi = workers_.find(w->worker_id);
    if (wi == workers_.end()) continue;
    const WorkerRec& rec = wi->second;
    if (rec.running.size() >= std::max<uint32_t>(1, rec.w.capabilities().slots())) continue;
    if (!worker_can_take(rec, q)) continue;
    w->woken = true;
    w->cv.notify_one();
    return;
  }
}

Status Farm::acquire(const v1::AcquireJobRequest& req, v1::AcquireJobResponse* out,
                     const std::function<bool()>& cancelled) {
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(std::min(req.wait_ms(), cfg_.max_acquire_wait_ms));
  std::unique_lock lk(mu_);
  for (;;) {
    if (stopping_) return Status::OK;
    WorkerRec* w = nullptr;
    if (auto s = check_session(req.worker_id(), req.session(), &w); !s.ok()) return s;
    w->w.set_last_seen_ms(now_ms());
    if (w->running.size() < std::max<uint32_t>(1, w->w.capabilities().slots())) {
      try {
        v1::Lease lease;
        if (try_pick(*w, &lease)) {
          *out->mutable_lease() = std::move(lease);
          return Status::OK;
        }
      } catch (const std::exception& e) {
        pending_notify_.clear();
        return Status(StatusCode::INTERNAL, e.what());
      }
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline || (cancelled && cancelled())) return Status::OK;
    Waiter me;
    me.worker_id = req.worker_id();
    waiters_.push_back(&me);
    auto it = std::prev(waiters_.end());
    // Woken for a job this worker can take; the timeout bounds the time to
    // notice a cancelled call or a job freed by other means.
    me.cv.wait_until(lk, std::min(deadline, now + std::chrono::milliseconds(500)), [&] { return me.woken; });
    waiters_.erase(it);
  }
}

Status Farm::heartbeat(const v1::HeartbeatRequest& req, v1::HeartbeatResponse* out) {
  std::lock_guard lk(mu_);
  WorkerRec* w = nullptr;
  if (auto s = check_session(req.worker_id(), req.session(), &w); !s.ok()) return s;
  int64_t now = now_ms();
  w->w.set_last_seen_ms(now);
  for (const auto& l : req.leases()) {
    auto it = running_.find(l.job_id());
    if (it == running_.end() || it->second.attempt != l.attempt() || it->second.worker_id != w->w.id()) {
      *out->add_lost() = l;
      continue;
    }
    it->second.expires_ms = now + cfg_.lease_ttl_ms;
    if (it->second.cancel_requested) *out->add_cancel() = l;
  }
  out->set_quarantined(w->quarantined);
  if (now - w->last_persist_ms > 5000) {
    try {
      persist_worker(*w);
    } catch (const std::exception& e) {
      spdlog::warn("farmd: cannot persist worker {}: {}", w->w.id(), e.what());
    }
  }
  return Status::OK;
}

Status Farm::progress(const v1::ReportProgressRequest& req, v1::ReportProgressResponse* out) {
  std::lock_guard lk(mu_);
  WorkerRec* w = nullptr;
  if (auto s = check_session(req.worker_id(), req.session(), &w); !s.ok()) return s;
  int64_t now = now_ms();
  w->w.set_last_seen_ms(now);
  auto it = running_.find(req.lease().job_id());
  if (it == running_.end() || it->second.attempt != req.lease().attempt() || it->second.worker_id != w->w.id()) {
    out->set_lost(true);
    return Status::OK;
  }
  Running& r = it->second;
  r.expires_ms = now + cfg_.lease_ttl_ms;
  out->set_cancel(r.cancel_requested);
  try {
    Txn t(*db_);
    if (req.has_progress()) {
      r.progress = req.progress();
    }
    // Progress is kept in memory on every report; it is written as an event
    // at most once a second per job (watchers, history).
    if (req.has_progress() && now - r.last_progress_event_ms >= 1000) {
      r.last_progress_event_ms = now;
      v1::JobEvent ev;
      ev.set_job_id(r.job_id);
      ev.set_time_ms(now);
      *ev.mutable_progress() = req.progress();
      emit(ev);
    }
    for (const auto& chunk : req.logs()) {
      if (r.log_truncated) break;
      v1::JobEvent ev;
      ev.set_job_id(r.job_id);
      ev.set_time_ms(now);
      *ev.mutable_log() = chunk;
      ev.mutable_log()->set_attempt(r.attempt);
      r.log_bytes += chunk.data().size();
      if (r.log_bytes > cfg_.max_log_bytes_per_attempt) {
        r.log_truncated = true;
        ev.mutable_log()->set_stream("agent");
        ev.mutable_log()->set_data("[farmd: log limit of " + std::to_string(cfg_.max_log_bytes_per_attempt) +
                                   " bytes reached; further output is not stored]\n");
      }
      emit(ev);
    }
    t.commit();
  } catch (const std::exception& e) {
    pending_notify_.clear();
    return Status(StatusCode::INTERNAL, e.what());
  }
  publish_events();
  return Status::OK;
}

Status Farm::complete(const v1::CompleteJobRequest& req, v1::CompleteJobResponse* out) {
  std::unique_lock lk(mu_);
  auto wi = workers_.find(req.worker_id());
  if (wi == workers_.end()) return Status(StatusCode::NOT_FOUND, "unknown worker " + req.worker_id());
  wi->second.w.set_last_seen_ms(now_ms());
  const auto& l = req.lease();
  auto it = running_.find(l.job_id());
  if (it != running_.end() && it->second.attempt == l.attempt()) {
    if (it->second.worker_id != req.worker_id())
      return Status(StatusCode::PERMISSION_DENIED, "attempt is leased to another worker");
    Running r = it->second;
    try {
      out->set_job_state(finish_attempt(std::move(r), req.result()));
      if (req.acquire_next() && !stopping_) {
        WorkerRec* w = nullptr;
        if (check_session(req.worker_id(), req.session(), &w).ok() &&
            w->running.size() < std::max<uint32_t>(1, w->w.capabilities().slots())) {
          v1::Lease next;
          if (try_pick(*w, &next)) *out->mutable_next() = std::move(next);
        }
      }
    } catch (const std::exception& e) {
      pending_notify_.clear();
      return Status(StatusCode::INTERNAL, e.what());
    }
    return Status::OK;
  }
  // Not running: a retry of a completion that already landed, or a lease that expired.
  try {
    auto st = db_->prepare("SELECT worker_id, outcome FROM attempts WHERE job_id = ? AND attempt = ?");
    st.bind(1, l.job_id()).bind(2, l.attempt());
    if (!st.step())
      return Status(StatusCode::NOT_FOUND, "no attempt " + std::to_string(l.attempt()) + " of job " + l.job_id());
    std::string worker = st.text(0);
    auto outcome = static_cast<v1::Outcome>(st.i64(1));
    if (worker != req.worker_id()) return Status(StatusCode::PERMISSION_DENIED, "attempt belongs to another worker");
    if (outcome == v1::OUTCOME_LOST)
      return Status(StatusCode::ABORTED, "lease of attempt " + std::to_string(l.attempt()) + " of " + l.job_id() +
                                             " expired; the job was requeued");
    auto js = db_->prepare("SELECT state FROM jobs WHERE id = ?");
    js.bind(1, l.job_id());
    if (js.step()) out->set_job_state(static_cast<v1::JobState>(js.i64(0)));
    out->set_duplicate(true);
  } catch (const std::exception& e) {
    return Status(StatusCode::INTERNAL, e.what());
  }
  return Status::OK;
}

void Farm::set_worker_failures(WorkerRec& w, uint32_t failures, const std::string& last_error) {
  w.w.set_infra_failures(failures);
  if (!w.quarantined && cfg_.quarantine_threshold > 0 && failures >= cfg_.quarantine_threshold) {
    w.quarantined = true;
    w.w.set_quarantine_reason(std::to_string(failures) + " consecutive infrastructure failures; last: " + last_error);
    spdlog::warn("farmd: worker {} quarantined: {}", w.w.id(), w.w.quarantine_reason());
    enqueue_health_check(w);
  }
}

void Farm::enqueue_health_check(WorkerRec& w) {
  if (!w.health_job.empty()) return;
  v1::JobSpec spec;
  spec.set_name("health-check " + w.w.id());
  spec.mutable_selector()->set_worker_id(w.w.id());
  spec.mutable_workload()->mutable_health_check();
  spec.set_timeout_s(cfg_.health_timeout_s);
  spec.set_max_attempts(1);
  spec.set_priority(1000000);
  (*spec.mutable_tags())["farm"] = "health-check";
  QueueKey key{};
  std::string id = insert_job(spec, 1, w.w.id(), "health check of quarantined worker " + w.w.id(), &key);
  Queued q;
  q.id = id;
  q.spec = spec;
  q.max_attempts = 1;
  q.health_for = w.w.id();
  queued_index_[id] = key;
  wake_one_for(queue_.emplace(key, std::move(q)).first->second);
  w.health_job = id;
  w.last_health_ms = now_ms();
}

v1::JobState Farm::finish_attempt(Running r, v1::JobResult result) {
  // mu_ held; starts and commits its own transaction unless one is open.
  int64_t now = now_ms();
  v1::Outcome outcome = result.outcome();
  if (outcome == v1::OUTCOME_UNSPECIFIED) outcome = v1::OUTCOME_INFRA_ERROR;
  result.set_outcome(outcome);
  result.set_worker_id(r.worker_id);
  result.set_attempt(r.attempt);
  const bool health = !r.job.health_for.empty();
  const bool infra = outcome == v1::OUTCOME_INFRA_ERROR || outcome == v1::OUTCOME_LOST;

  v1::JobState state;
  std::string msg = result.message();
  if (health) {
    state = outcome == v1::OUTCOME_PASS ? v1::JOB_STATE_PASSED
            : outcome == v1::OUTCOME_CANCELLED ? v1::JOB_STATE_CANCELLED
                                               : v1::JOB_STATE_FAILED;
  } else if (infra) {
    if (r.cancel_requested) state = v1::JOB_STATE_CANCELLED;
    else if (r.attempt < r.job.max_attempts) state = v1::JOB_STATE_QUEUED;
    else state = v1::JOB_STATE_ERROR;
  } else {
    state = ::farm::state_for_outcome(outcome);
  }
  if (state == v1::JOB_STATE_QUEUED)
    msg = "attempt " + std::to_string(r.attempt) + " " + std::string(::farm::outcome_name(outcome)) + " on " +
          r.worker_id + ": " + result.message() + "; requeued";
  else if (state == v1::JOB_STATE_ERROR)
    msg = "gave up after " + std::to_string(r.attempt) + " attempt(s); last: " + result.message();
  const bool terminal = ::farm::is_terminal(state);

  bool own_txn = sqlite3_get_autocommit(db_->raw()) != 0;
  std::optional<Txn> t;
  if (own_txn) t.emplace(*db_);
  {
    auto st = db_->prepare("UPDATE attempts SET outcome = ?, finished_ms = ?, message = ? WHERE job_id = ? AND attempt = ?");
    st.bind(1, static_cast<int>(outcome)).bind(2, now).bind(3, result.message()).bind(4, r.job_id).bind(5, r.attempt);
    st.exec();
  }
  {
    auto st = db_->prepare(
        "INSERT OR REPLACE INTO results(job_id, attempt, outcome, verdict, exit_code, calls, hits, batches, "
        "duration_s, result) VALUES(?,?,?,?,?,?,?,?,?,?)");
    st.bind(1, r.job_id).bind(2, r.attempt).bind(3, static_cast<int>(outcome)).bind(4, result.verdict());
    st.bind(5, result.exit_code()).bind(6, result.calls()).bind(7, result.hits()).bind(8, result.batches());
    st.bind(9, result.duration_s()).bind_blob(10, ser(result)).exec();
  }
  if (terminal) {
    auto st = db_->prepare("UPDATE jobs SET state = ?, finished_ms = ?, message = ?, result = ? WHERE id = ?");
    st.bind(1, static_cast<int>(state)).bind(2, now).bind(3, msg).bind_blob(4, ser(result)).bind(5, r.job_id).exec();
  } else {
    auto st = db_->prepare("UPDATE jobs SET state = ?, message = ? WHERE id = ?");
    st.bind(1, static_cast<int>(state)).bind(2, msg).bind(3, r.job_id).exec();
  }
  emit_state(r.job_id, state, r.attempt, r.worker_id, msg);

  auto wi = workers_.find(r.worker_id);
  if (wi != workers_.end()) {
    WorkerRec& w = wi->second;
    w.running.erase(r.job_id);
    if (health) {
      w.health_job.clear();
      w.last_health_ms = now;
      if (outcome == v1::OUTCOME_PASS) {
        if (w.quarantined) spdlog::info("farmd: worker {} passed its health check; back in service", w.w.id());
        w.quarantined = false;
        w.w.set_quarantine_reason("");
        w.w.set_infra_failures(0);
      } else {
        spdlog::warn("farmd: worker {} failed its health check: {}", w.w.id(), result.message());
      }
    } else if (infra) {
      set_worker_failures(w, w.w.infra_failures() + 1, result.message());
    } else if (outcome != v1::OUTCOME_CANCELLED) {
      if (outcome != v1::OUTCOME_TIMEOUT) w.w.set_infra_failures(0);
      w.w.set_jobs_done(w.w.jobs_done() + 1);
    }
    persist_worker(w);
  }
  if (t) {
    t->commit();
    publish_events();
  }

  running_.erase(r.job_id);
  // A slot of this worker is free: wake its own waiting long polls.
  for (auto* wt : waiters_)
    if (wt->worker_id == r.worker_id && !wt->woken) {
      wt->woken = true;
      wt->cv.notify_one();
    }
  if (state == v1::JOB_STATE_QUEUED) {
    r.job.attempts = r.attempt;
    queued_index_[r.job_id] = r.key;
    // keeps its place in the FIFO
    wake_one_for(queue_.emplace(r.key, std::move(r.job)).first->second);
  }
  return state;
}

void Farm::prune_events(int64_t now) {
  // Jobs and results are kept; the bulky per-job event stream (logs,
  // progress) of long finished jobs is dropped. Runs at most hourly.
  last_prune_ms_ = now;
  if (cfg_.event_retention_days == 0) return;
  int64_t cutoff = now - static_cast<int64_t>(cfg_.event_retention_days) * 86'400'000;
  auto st = db_->prepare(
      "DELETE FROM events WHERE job_id IN (SELECT id FROM jobs WHERE finished_ms > 0 AND finished_ms < ?)");
  st.bind(1, cutoff).exec();
  if (int n = db_->changes(); n > 0) spdlog::info("farmd: pruned {} events of jobs finished before the retention window", n);
}

void Farm::tick() {
  std::unique_lock lk(mu_);
  if (stopping_) return;
  int64_t now = now_ms();
  if (now - last_prune_ms_ > 3'600'000) {
    try {
      prune_events(now);
    } catch (const std::exception& e) {
      spdlog::error("farmd: pruning events failed: {}", e.what());
    }
  }
  std::vector<std::string> expired, overdue;
  for (auto& [id, r] : running_) {
    if (r.expires_ms < now) expired.push_back(id);
    else if (now > r.started_ms + (static_cast<int64_t>(r.job.spec.timeout_s()) + cfg_.timeout_grace_s) * 1000)
      overdue.push_back(id);
  }
  for (const auto& id : overdue) {
    // The agent is alive but its workload never ended: farmd times the
    // attempt out itself; the agent learns at its next heartbeat (lease lost).
    Running r = running_.at(id);
    v1::JobResult res;
    res.set_outcome(v1::OUTCOME_TIMEOUT);
    res.set_message("farmd: no result " + std::to_string(cfg_.timeout_grace_s) + " s after the job's timeout of " +
                    std::to_string(r.job.spec.timeout_s()) + " s on " + r.worker_id);
    spdlog::warn("farmd: job {} attempt {}: {}", id, r.attempt, res.message());
    try {
      finish_attempt(std::move(r), std::move(res));
    } catch (const std::exception& e) {
      pending_notify_.clear();
      spdlog::error("farmd: cannot time out {}: {}", id, e.what());
    }
  }
  for (const auto& id : expired) {
    Running r = running_.at(id);
    v1::JobResult res;
    res.set_outcome(v1::OUTCOME_LOST);
    res.set_message("lease expired: no heartbeat from " + r.worker_id + " for " +
                    std::to_string(now - (r.expires_ms - cfg_.lease_ttl_ms)) + " ms");
    spdlog::warn("farmd: job {} attempt {}: {}", id, r.attempt, res.message());
    try {
      finish_attempt(std::move(r), std::move(res));
    } catch (const std::exception& e) {
      pending_notify_.clear();
      spdlog::error("farmd: cannot expire lease of {}: {}", id, e.what());
    }
  }
  for (auto& [id, w] : workers_) {
    if (!w.quarantined || !w.health_job.empty()) continue;
    if (now - w.w.last_seen_ms() > static_cast<int64_t>(cfg_.offline_after_ms)) continue;
    if (now - w.last_health_ms < static_cast<int64_t>(cfg_.health_recheck_ms)) continue;
    try {
      Txn t(*db_);
      enqueue_health_check(w);
      t.commit();
      publish_events();
    } catch (const std::exception& e) {
      pending_notify_.clear();
      spdlog::error("farmd: cannot schedule a health check for {}: {}", id, e.what());
    }
  }
}

}  // namespace farmd
