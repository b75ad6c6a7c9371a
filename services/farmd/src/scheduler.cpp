// The queue: which queued job a worker can take (priority, then FIFO; the
// job's selector against the worker's capabilities), claiming it in the
// store, and the long polls of agents waiting for work (AcquireJob).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "farm/common/select.hpp"
#include "farm/common/util.hpp"
#include "farmd/farm.hpp"
#include "farmd/store.hpp"

namespace farmd {

using ::farm::now_ms;
using grpc::Status;
using grpc::StatusCode;

bool Farm::worker_can_take(const WorkerRec& w, const Queued& q) const {
  if (!q.health_for.empty()) return q.health_for == w.w.id();
  if (w.quarantined) return false;
  return ::farm::selector_matches(q.spec, w.w.capabilities(), w.w.id());
}

bool Farm::try_pick(WorkerRec& w, v1::Lease* lease) {
  for (auto it = queue_.begin(); it != queue_.end();) {
    Queued& q = it->second;
    if (!worker_can_take(w, q)) {
      ++it;
      continue;
    }
    int64_t now = now_ms();
    uint32_t attempt = q.attempts + 1;
    int64_t expires = now + cfg_.lease_ttl_ms;
    {
      Store::Txn t(*store_);
      // The store decides: the job becomes this attempt only if it is still
      // queued at the attempt count this farmd saw.
      if (!store_->claim({q.id, attempt, w.w.id(), now, expires})) {
        spdlog::warn("farmd: job {} is no longer queued in {} (another farmd took it?); dropped from the queue", q.id,
                     store_->name());
        if (auto wi = workers_.find(q.health_for); wi != workers_.end() && wi->second.health_job == q.id)
          wi->second.health_job.clear();
        queued_index_.erase(q.id);
        it = queue_.erase(it);
        continue;
      }
      emit_state(q.id, v1::JOB_STATE_RUNNING, attempt, w.w.id(), "");
      t.commit();
    }
    publish_events();
    metrics_->job_leased(q.queued_ms > 0 && now > q.queued_ms ? double(now - q.queued_ms) / 1000.0 : 0.0);

    Running r;
    r.job_id = q.id;
    r.attempt = attempt;
    r.worker_id = w.w.id();
    r.started_ms = now;
    r.expires_ms = expires;
    r.stored_expires_ms = expires;
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

}  // namespace farmd
