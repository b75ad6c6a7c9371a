// The agent side of the farm: registration and sessions, leases (acquire,
// heartbeat, progress), completion, attempts ending (finish_attempt) and the
// housekeeping that expires leases and schedules health checks.
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

#include "farm/common/names.hpp"
#include "farm/common/select.hpp"
#include "farm/common/util.hpp"
#include "farmd/farm.hpp"
#include "validation.hpp"

namespace farmd {

using ::farm::now_ms;
using grpc::Status;
using grpc::StatusCode;

namespace {

template <class M>
std::string ser(const M& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

// A session is the secret that lets an agent act for its worker: from the
// OS's CSPRNG (farm::random_hex is a seeded mt19937, fine for unique ids but
// predictable from enough of its output, e.g. the job ids clients see).
std::string new_session() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("cannot draw a session token (RAND_bytes failed)");
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

}  // namespace

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

// Validates the request, then refuses a name another agent holds a live
// session under (ALREADY_EXISTS): two agents sharing a --name would otherwise
// take the session from each other at every re-registration, each time
// losing the other's running attempts, until every job ends in error.
Status Farm::register_worker(const v1::RegisterRequest& req, const Caller& who, v1::RegisterResponse* out) {
  const auto& caps = req.capabilities();
  if (auto s = check::worker_id("name", req.name()); !s.ok()) return s;
  if (auto s = check::capabilities(caps); !s.ok()) return s;
  std::unique_lock lk(mu_);
  if (stopping_) return Status(StatusCode::UNAVAILABLE, "farmd is shutting down");
  int64_t now = now_ms();
  if (auto it = workers_.find(req.name()); it != workers_.end() && session_alive(it->second, now)) {
    const WorkerRec& o = it->second;
    return Status(StatusCode::ALREADY_EXISTS,
                  "worker name '" + req.name() + "' is in use by a live agent (registered by " +
                      (o.holder.empty() ? std::string("an agent before farmd restarted") : o.holder) + ", last heard " +
                      std::to_string(now - o.contact_ms) + " ms ago); a second agent with the same --name is refused " +
                      "until that session ends (the agent stops, or nothing is heard from it for the lease TTL of " +
                      std::to_string(cfg_.lease_ttl_ms) + " ms)");
  }
  auto [it, fresh] = workers_.try_emplace(req.name());
  WorkerRec& w = it->second;
  try {
    Txn t(*db_);
    // The previous session under this name has ended (expired or left):
    // whatever it was still running is gone.
    lose_running(w, "worker " + w.w.id() + " registered a new session (agent restarted) while running attempt");
    w.w.set_id(req.name());
    w.w.set_name(req.name());
    *w.w.mutable_capabilities() = caps;
    if (w.w.capabilities().slots() == 0) w.w.mutable_capabilities()->set_slots(1);
    w.session = new_session();
    w.w.set_registered_ms(now);
    w.w.set_last_seen_ms(now);
    w.contact_ms = now;
    w.holder = who.describe();
    persist_worker(w);
    t.commit();
  } catch (const std::exception& e) {
    pending_notify_.clear();
    if (fresh) workers_.erase(it);
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

bool Farm::session_alive(const WorkerRec& w, int64_t now) const {
  return !w.session.empty() && w.contact_ms != 0 && now - w.contact_ms <= static_cast<int64_t>(cfg_.lease_ttl_ms);
}

Status Farm::check_session(const std::string& worker_id, const std::string& session, WorkerRec** out) {
  if (auto s = check::worker_id("worker_id", worker_id); !s.ok()) return s;
  if (auto s = check::session(session); !s.ok()) return s;
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return Status(StatusCode::NOT_FOUND, "unknown worker " + worker_id + "; register first");
  // An empty stored session is a worker that left: "" never matches.
  if (it->second.session.empty() || it->second.session != session)
    return Status(StatusCode::FAILED_PRECONDITION, "stale session for worker " + worker_id + "; register again");
  int64_t now = now_ms();
  it->second.contact_ms = now;
  it->second.w.set_last_seen_ms(now);
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
  if (req.leases_size() > 4096) return Status(StatusCode::INVALID_ARGUMENT, "leases has more than 4096 entries");
  std::lock_guard lk(mu_);
  WorkerRec* w = nullptr;
  if (auto s = check_session(req.worker_id(), req.session(), &w); !s.ok()) return s;
  int64_t now = now_ms();
  if (req.leaving()) {
    // The agent is stopping: hand back whatever it still holds and end the
    // session, so its name is free for the next agent at once.
    try {
      Txn t(*db_);
      std::vector<std::string> held(w->running.begin(), w->running.end());
      for (const auto& jid : held) {
        auto ri = running_.find(jid);
        if (ri == running_.end()) continue;
        v1::JobResult res;
        res.set_outcome(v1::OUTCOME_HANDED_BACK);
        res.set_message("worker " + w->w.id() + " left with the attempt unreported");
        Running r = ri->second;
        finish_attempt(std::move(r), std::move(res));
      }
      w->session.clear();
      w->contact_ms = 0;
      persist_worker(*w);
      t.commit();
    } catch (const std::exception& e) {
      pending_notify_.clear();
      return Status(StatusCode::INTERNAL, e.what());
    }
    publish_events();
    for (const auto& l : req.leases()) *out->add_lost() = l;
    return Status::OK;
  }
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
  if (auto s = check::job_id("lease.job_id", req.lease().job_id()); !s.ok()) return s;
  if (req.logs_size() > 1024) return Status(StatusCode::INVALID_ARGUMENT, "logs has more than 1024 chunks");
  for (const auto& c : req.logs())
    if (c.stream().size() > 32) return Status(StatusCode::INVALID_ARGUMENT, "logs: a stream name is longer than 32 chars");
  std::lock_guard lk(mu_);
  WorkerRec* w = nullptr;
  if (auto s = check_session(req.worker_id(), req.session(), &w); !s.ok()) return s;
  int64_t now = now_ms();
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

// Only the worker holding the lease, in its current session, completes an
// attempt, with an outcome an agent may report (check::result): any other
// agent token used to be able to complete anyone's job with a forged result.
Status Farm::complete(const v1::CompleteJobRequest& req, v1::CompleteJobResponse* out) {
  const auto& l = req.lease();
  if (auto s = check::job_id("lease.job_id", l.job_id()); !s.ok()) return s;
  if (auto s = check::result(req.result()); !s.ok()) return s;
  std::unique_lock lk(mu_);
  WorkerRec* w = nullptr;
  if (auto s = check_session(req.worker_id(), req.session(), &w); !s.ok()) return s;
  auto it = running_.find(l.job_id());
  if (it != running_.end() && it->second.attempt == l.attempt()) {
    if (it->second.worker_id != req.worker_id())
      return Status(StatusCode::PERMISSION_DENIED, "attempt " + std::to_string(l.attempt()) + " of job " + l.job_id() +
                                                       " is leased to another worker");
    if (req.result().outcome() == v1::OUTCOME_CANCELLED && !it->second.cancel_requested)
      return Status(StatusCode::INVALID_ARGUMENT,
                    "result.outcome CANCELLED, but job " + l.job_id() +
                        " has no cancel request (an agent that stops reports HANDED_BACK)");
    Running r = it->second;
    try {
      out->set_job_state(finish_attempt(std::move(r), req.result()));
      if (req.acquire_next() && !stopping_ && w->running.size() < std::max<uint32_t>(1, w->w.capabilities().slots())) {
        v1::Lease next;
        if (try_pick(*w, &next)) *out->mutable_next() = std::move(next);
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
    if (worker != req.worker_id())
      return Status(StatusCode::PERMISSION_DENIED, "attempt " + std::to_string(l.attempt()) + " of job " + l.job_id() +
                                                       " belongs to another worker");
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

void Farm::lose_running(WorkerRec& w, const std::string& why) {
  std::vector<std::string> stale(w.running.begin(), w.running.end());  // finish_attempt edits w.running
  for (const auto& jid : stale) {
    auto ri = running_.find(jid);
    if (ri == running_.end()) continue;
    v1::JobResult res;
    res.set_outcome(v1::OUTCOME_LOST);
    res.set_message(why + " " + std::to_string(ri->second.attempt));
    Running r = ri->second;
    finish_attempt(std::move(r), std::move(res));
  }
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
  // A hand-back (the agent stopped before the workload ended) is requeued
  // without using up an attempt and without counting toward the worker's
  // quarantine, up to max_hand_backs per job; beyond that it is an
  // infrastructure failure like any other (bounds an agent handing back
  // everything it is given).
  const bool handed_back = outcome == v1::OUTCOME_HANDED_BACK;
  const bool free_hand_back = handed_back && r.job.free_attempts < cfg_.max_hand_backs;
  const bool infra = outcome == v1::OUTCOME_INFRA_ERROR || outcome == v1::OUTCOME_LOST || (handed_back && !free_hand_back);
  // attempts that count against max_attempts, this one included
  const uint32_t counted = r.attempt - std::min(r.attempt, r.job.free_attempts) - (free_hand_back ? 1 : 0);

  v1::JobState state;
  std::string msg = result.message();
  if ((infra || handed_back) && r.cancel_requested) {
    state = v1::JOB_STATE_CANCELLED;
  } else if (free_hand_back) {
    state = v1::JOB_STATE_QUEUED;
  } else if (health) {
    state = outcome == v1::OUTCOME_PASS ? v1::JOB_STATE_PASSED
            : outcome == v1::OUTCOME_CANCELLED ? v1::JOB_STATE_CANCELLED
                                               : v1::JOB_STATE_FAILED;
  } else if (infra) {
    state = counted < r.job.max_attempts ? v1::JOB_STATE_QUEUED : v1::JOB_STATE_ERROR;
  } else {
    state = ::farm::state_for_outcome(outcome);
  }
  if (state == v1::JOB_STATE_QUEUED && free_hand_back)
    msg = "attempt " + std::to_string(r.attempt) + " handed back by " + r.worker_id + ": " + result.message() +
          "; requeued (not counted as an attempt)";
  else if (state == v1::JOB_STATE_QUEUED)
    msg = "attempt " + std::to_string(r.attempt) + " " + std::string(::farm::outcome_name(outcome)) + " on " +
          r.worker_id + ": " + result.message() + "; requeued";
  else if (state == v1::JOB_STATE_ERROR)
    msg = "gave up after " + std::to_string(counted) + " attempt(s); last: " + result.message();
  if (free_hand_back) ++r.job.free_attempts;
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
    if (health && state == v1::JOB_STATE_QUEUED) {
      // a handed-back health check: requeued, still this worker's pending one
    } else if (health) {
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
    } else if (outcome != v1::OUTCOME_CANCELLED && outcome != v1::OUTCOME_REFUSED && !handed_back) {
      // (a refusal says nothing of the worker's health either way: its
      // failure count and jobs_done stay as they are)
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
