// At start: the in-memory indexes (workers, queue, running attempts) rebuilt
// from the store. Nothing here decides anything: the store has every job's
// state; a running attempt gets a full lease from now so that its agent,
// which kept running while farmd was down, can heartbeat and complete it.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "farm/common/util.hpp"
#include "farmd/farm.hpp"
#include "farmd/store.hpp"

namespace farmd {

using ::farm::now_ms;

void Farm::recover() {
  std::lock_guard lk(mu_);
  int64_t now = now_ms();
  for (auto& row : store_->load_workers()) {
    WorkerRec w;
    w.w.set_id(row.id);
    w.w.set_name(row.name);
    if (!w.w.mutable_capabilities()->ParseFromString(row.capabilities))
      throw std::runtime_error(store_->name() + " is corrupted: the capabilities of worker " + ::farm::clip(row.id) +
                               " do not parse");
    w.session = row.session;
    w.w.set_registered_ms(row.registered_ms);
    w.w.set_last_seen_ms(row.last_seen_ms);
    w.w.set_infra_failures(row.infra_failures);
    w.quarantined = row.quarantined;
    w.w.set_quarantine_reason(row.quarantine_reason);
    w.w.set_jobs_done(row.jobs_done);
    w.last_health_ms = row.last_health_ms;
    w.last_persist_ms = now;
    workers_.emplace(w.w.id(), std::move(w));
  }
  size_t nq = 0, nr = 0;
  for (auto& row : store_->load_active_jobs()) {
    Queued q;
    q.id = row.id;
    QueueKey key{-row.priority, row.seq};
    if (!q.spec.ParseFromString(row.spec))
      throw std::runtime_error(store_->name() + " is corrupted: the spec of job " + ::farm::clip(q.id) +
                               " does not parse");
    q.attempts = row.attempts;
    q.max_attempts = row.max_attempts;
    q.health_for = row.health_for;
    q.queued_ms = now;  // (when it was queued is not stored: its wait counts from this start)
    // Attempts handed back by stopping agents did not count (up to the cap).
    q.free_attempts = std::min<uint32_t>(row.hand_backs, cfg_.max_hand_backs);
    if (!q.health_for.empty()) {
      if (auto it = workers_.find(q.health_for); it != workers_.end()) it->second.health_job = q.id;
    }
    if (row.state == v1::JOB_STATE_QUEUED) {
      queued_index_[q.id] = key;
      queue_.emplace(key, std::move(q));
      ++nq;
    } else {
      Running r;
      r.job_id = q.id;
      r.attempt = q.attempts;
      r.worker_id = row.worker_id;
      r.started_ms = now;
      // Agents keep running across a farmd restart; give them a full lease to reconnect.
      r.expires_ms = now + cfg_.lease_ttl_ms;
      r.stored_expires_ms = row.lease_expires_ms;
      r.cancel_requested = row.cancel_requested;
      r.key = key;
      r.job = std::move(q);
      if (auto it = workers_.find(r.worker_id); it != workers_.end()) it->second.running.insert(r.job_id);
      running_.emplace(r.job_id, std::move(r));
      ++nr;
    }
  }
  if (!running_.empty()) {
    // The store learns the leases given above (it had those of the farmd before).
    Store::Txn t(*store_);
    for (auto& [id, r] : running_) renew_lease(r, now);
    t.commit();
  }
  last_event_seq_ = store_->last_event_seq();
  // A session recovered from the database is not alive until its agent is
  // heard from again, except for workers holding leases: they were given a
  // full lease to reconnect above, and their name stays theirs meanwhile.
  for (auto& [id, w] : workers_) w.contact_ms = w.running.empty() ? 0 : now;
  spdlog::info("farmd: recovered {} workers, {} queued and {} running jobs from {}", workers_.size(), nq, nr,
               store_->name());
}

}  // namespace farmd
