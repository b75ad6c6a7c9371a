// Workers: registration and sessions (one live agent per name), their state
// as ListWorkers shows it, removal, and quarantine with its health checks.
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

#include "blob.hpp"
#include "farm/common/names.hpp"
#include "farm/common/select.hpp"
#include "farm/common/util.hpp"
#include "farmd/farm.hpp"
#include "farmd/store.hpp"
#include "validation.hpp"

namespace farmd {

using ::farm::now_ms;
using grpc::Status;
using grpc::StatusCode;

namespace {

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

void Farm::persist_worker(WorkerRec& w) {
  WorkerRow row;
  row.id = w.w.id();
  row.name = w.w.name();
  row.capabilities = ser(w.w.capabilities());
  row.session = w.session;
  row.registered_ms = w.w.registered_ms();
  row.last_seen_ms = w.w.last_seen_ms();
  row.infra_failures = w.w.infra_failures();
  row.quarantined = w.quarantined;
  row.quarantine_reason = w.w.quarantine_reason();
  row.jobs_done = w.w.jobs_done();
  row.last_health_ms = w.last_health_ms;
  store_->put_worker(row);
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
    Store::Txn t(*store_);
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
    Store::Txn t(*store_);
    lose_running(w, "worker " + id + " was removed while running attempt");
    if (!w.health_job.empty() && queued_index_.count(w.health_job)) {
      if (store_->end_queued(w.health_job, v1::JOB_STATE_CANCELLED, now_ms(), "worker removed", std::nullopt, false))
        emit_state(w.health_job, v1::JOB_STATE_CANCELLED, 0, "", "worker removed");
      queue_.erase(queued_index_.at(w.health_job));
      queued_index_.erase(w.health_job);
    }
    store_->delete_worker(id);
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

// ------------------------------------------------------------------ quarantine

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
  q.queued_ms = now_ms();
  queued_index_[id] = key;
  wake_one_for(queue_.emplace(key, std::move(q)).first->second);
  w.health_job = id;
  w.last_health_ms = now_ms();
}

// (tick) A quarantined worker that is online and has no health check
// pending gets one again once health_recheck_ms passed since the last.
void Farm::schedule_health_checks(int64_t now) {
  for (auto& [id, w] : workers_) {
    if (!w.quarantined || !w.health_job.empty()) continue;
    if (now - w.w.last_seen_ms() > static_cast<int64_t>(cfg_.offline_after_ms)) continue;
    if (now - w.last_health_ms < static_cast<int64_t>(cfg_.health_recheck_ms)) continue;
    try {
      Store::Txn t(*store_);
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
