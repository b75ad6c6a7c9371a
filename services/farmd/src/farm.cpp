#include "farmd/farm.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "farm/common/names.hpp"
#include "farm/common/select.hpp"
#include "farm/common/util.hpp"
#include "store.hpp"
#include "validation.hpp"

namespace farmd {

using ::farm::now_ms;
using grpc::Status;
using grpc::StatusCode;

namespace {

constexpr int kEvState = 0, kEvProgress = 1, kEvLog = 2;

template <class M>
std::string ser(const M& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

}  // namespace

// ------------------------------------------------------------------ setup

Farm::Farm(Config cfg) : cfg_(std::move(cfg)) {
  validate_config(cfg_);  // refuses out-of-range settings; nothing is clamped
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
  // The path checked, farmd's schema, not corrupted, and one farmd per database.
  db_ = open_store(cfg_, &lock_);
  if (cfg_.db_path != ":memory:") rdb_ = std::make_unique<Db>(cfg_.db_path, /*readonly=*/true);
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
      if (!w.w.mutable_capabilities()->ParseFromString(st.blob(2)))
        throw std::runtime_error("database " + cfg_.db_path + " is corrupted: the capabilities of worker " +
                                 ::farm::clip(w.w.id()) + " do not parse");
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
      if (!q.spec.ParseFromString(st.blob(2)))
        throw std::runtime_error("database " + cfg_.db_path + " is corrupted: the spec of job " + ::farm::clip(q.id) +
                                 " does not parse");
      q.attempts = static_cast<uint32_t>(st.i64(5));
      q.max_attempts = static_cast<uint32_t>(st.i64(6));
      q.health_for = st.text(9);
      {
        // Attempts handed back by stopping agents did not count (up to the cap).
        auto hb = db_->prepare("SELECT COUNT(*) FROM attempts WHERE job_id = ? AND outcome = ?");
        hb.bind(1, q.id).bind(2, static_cast<int>(v1::OUTCOME_HANDED_BACK));
        if (hb.step()) q.free_attempts = static_cast<uint32_t>(std::min<int64_t>(hb.i64(0), cfg_.max_hand_backs));
      }
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
  // A session recovered from the database is not alive until its agent is
  // heard from again, except for workers holding leases: they were given a
  // full lease to reconnect above, and their name stays theirs meanwhile.
  for (auto& [id, w] : workers_) w.contact_ms = w.running.empty() ? 0 : now;
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
  if (auto s = check::spec(spec, cfg_); !s.ok()) return s;
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
  if (auto s = check::job_id("job_id", id); !s.ok()) return s;
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
  if (req.limit() > 100000)
    return Status(StatusCode::INVALID_ARGUMENT, "limit is " + std::to_string(req.limit()) + "; at most 100000 (0: 100)");
  if (req.states_size() > 16) return Status(StatusCode::INVALID_ARGUMENT, "states has more than 16 entries");
  for (int st : req.states())
    if (!v1::JobState_IsValid(st) || st == v1::JOB_STATE_UNSPECIFIED)
      return Status(StatusCode::INVALID_ARGUMENT, "states: " + std::to_string(st) + " is not a job state");
  if (auto s = check::worker_id("worker_id", req.worker_id(), false); !s.ok()) return s;
  if (auto s = check::tags("tags", req.tags()); !s.ok()) return s;
  uint32_t limit = req.limit() ? req.limit() : 100;
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
  if (auto s = check::job_id("job_id", id); !s.ok()) return s;
  if (auto s = check::text("reason", reason, 1024); !s.ok()) return s;
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
  if ((w.session.empty() || now - w.w.last_seen_ms() > static_cast<int64_t>(cfg_.offline_after_ms)) &&
      w.running.empty())
    return v1::WORKER_STATE_OFFLINE;  // gone quiet, or left (Heartbeat leaving)
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
  if (auto s = check::worker_id("worker_id", id); !s.ok()) return s;
  std::lock_guard lk(mu_);
  auto it = workers_.find(id);
  if (it == workers_.end()) return Status(StatusCode::NOT_FOUND, "no worker " + id);
  WorkerRec& w = it->second;
  if (!w.running.empty() && !force)
    return Status(StatusCode::FAILED_PRECONDITION,
                  "worker " + id + " is running " + std::to_string(w.running.size()) + " job(s); use force");
  try {
    Txn t(*db_);
    lose_running(w, "worker " + id + " was removed while running attempt");
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
  if (req.job_ids_size() > 10000)
    return Status(StatusCode::INVALID_ARGUMENT,
                  "job_ids has " + std::to_string(req.job_ids_size()) + " entries; at most 10000");
  for (const auto& id : req.job_ids())
    if (auto s = check::job_id("job_ids entry", id); !s.ok()) return s;
  if (auto s = check::tags("tags", req.tags()); !s.ok()) return s;
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

}  // namespace farmd
