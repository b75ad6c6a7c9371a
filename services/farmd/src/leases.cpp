// Leases: an agent's hold on a running attempt. Heartbeats and progress
// keep it (renewed in the store too), completion ends it once per
// (job, attempt), and the housekeeping tick ends the ones that expired or
// ran past the job's timeout. finish_attempt is where every attempt ends.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "blob.hpp"
#include "farm/common/names.hpp"
#include "farm/common/util.hpp"
#include "farmd/farm.hpp"
#include "farmd/store.hpp"
#include "validation.hpp"

namespace farmd {

using ::farm::now_ms;
using grpc::Status;
using grpc::StatusCode;

namespace {

// Is the store's copy of a lease deadline far enough behind to be written?
bool stale_in_store(int64_t expires_ms, int64_t stored_ms, uint32_t heartbeat_ms) {
  return expires_ms - stored_ms >= static_cast<int64_t>(heartbeat_ms / 2);
}

}  // namespace

bool Farm::renew_lease(Running& r, int64_t now) {
  r.expires_ms = now + cfg_.lease_ttl_ms;
  if (!stale_in_store(r.expires_ms, r.stored_expires_ms, heartbeat_interval_ms())) return false;
  store_->renew_lease(r.job_id, r.attempt, r.expires_ms);
  r.stored_expires_ms = r.expires_ms;
  return true;
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
      Store::Txn t(*store_);
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
  std::vector<Running*> held;
  bool write = false;
  for (const auto& l : req.leases()) {
    auto it = running_.find(l.job_id());
    if (it == running_.end() || it->second.attempt != l.attempt() || it->second.worker_id != w->w.id()) {
      *out->add_lost() = l;
      continue;
    }
    held.push_back(&it->second);
    write |= stale_in_store(now + cfg_.lease_ttl_ms, it->second.stored_expires_ms, heartbeat_interval_ms());
    if (it->second.cancel_requested) *out->add_cancel() = l;
  }
  // Every lease held lasts another TTL, in the store too (one transaction).
  // Should the store fail, this farmd keeps them (its memory decides here)
  // and the store is written again at the next heartbeat.
  if (!write) {
    for (auto* r : held) r->expires_ms = now + cfg_.lease_ttl_ms;
  } else {
    try {
      Store::Txn t(*store_);
      for (auto* r : held) renew_lease(*r, now);
      t.commit();
    } catch (const std::exception& e) {
      for (auto* r : held) r->stored_expires_ms = 0;
      spdlog::warn("farmd: cannot renew the leases of worker {} in {}: {}", w->w.id(), store_->name(), e.what());
    }
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
  const int64_t stored = r.stored_expires_ms;
  try {
    Store::Txn t(*store_);
    renew_lease(r, now);
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
    r.stored_expires_ms = stored;
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
    auto a = store_->attempt(l.job_id(), l.attempt());
    if (!a) return Status(StatusCode::NOT_FOUND, "no attempt " + std::to_string(l.attempt()) + " of job " + l.job_id());
    const std::string& worker = a->worker_id;
    auto outcome = static_cast<v1::Outcome>(a->outcome);
    if (worker != req.worker_id())
      return Status(StatusCode::PERMISSION_DENIED, "attempt " + std::to_string(l.attempt()) + " of job " + l.job_id() +
                                                       " belongs to another worker");
    if (outcome == v1::OUTCOME_LOST)
      return Status(StatusCode::ABORTED, "lease of attempt " + std::to_string(l.attempt()) + " of " + l.job_id() +
                                             " expired; the job was requeued");
    if (auto state = store_->job_state(l.job_id())) out->set_job_state(static_cast<v1::JobState>(*state));
    out->set_duplicate(true);
  } catch (const std::exception& e) {
    return Status(StatusCode::INTERNAL, e.what());
  }
  return Status::OK;
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

  std::optional<Store::Txn> t;
  if (!store_->in_transaction()) t.emplace(*store_);
  AttemptEnd e;
  e.job_id = r.job_id;
  e.attempt = r.attempt;
  e.outcome = outcome;
  e.now_ms = now;
  e.attempt_message = result.message();
  e.verdict = result.verdict();
  e.exit_code = result.exit_code();
  e.calls = result.calls();
  e.hits = result.hits();
  e.batches = result.batches();
  e.duration_s = result.duration_s();
  e.result = ser(result);
  e.job_state = state;
  e.terminal = terminal;
  e.job_message = msg;
  if (!store_->end_attempt(e)) {
    // The store has this attempt ended already (another farmd on the
    // database ended it): its outcome stands; this one is dropped.
    spdlog::warn("farmd: attempt {} of job {} already ended in {}; {} not recorded", r.attempt, r.job_id,
                 store_->name(), ::farm::outcome_name(outcome));
    if (auto wi = workers_.find(r.worker_id); wi != workers_.end()) wi->second.running.erase(r.job_id);
    running_.erase(r.job_id);
    auto now_state = store_->job_state(r.job_id);
    return now_state ? static_cast<v1::JobState>(*now_state) : state;
  }
  emit_state(r.job_id, state, r.attempt, r.worker_id, msg);
  metrics_->attempt_ended(std::string(::farm::outcome_name(outcome)),
                          now > r.started_ms ? double(now - r.started_ms) / 1000.0 : 0.0);
  if (state == v1::JOB_STATE_QUEUED)
    metrics_->job_requeued(free_hand_back ? "handed-back" : outcome == v1::OUTCOME_LOST ? "lost" : "infra-error");

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
    r.job.queued_ms = now;
    queued_index_[r.job_id] = r.key;
    // keeps its place in the FIFO
    wake_one_for(queue_.emplace(r.key, std::move(r.job)).first->second);
  }
  return state;
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
    metrics_->lease_expired();
    try {
      finish_attempt(std::move(r), std::move(res));
    } catch (const std::exception& e) {
      pending_notify_.clear();
      spdlog::error("farmd: cannot expire lease of {}: {}", id, e.what());
    }
  }
  schedule_health_checks(now);
}

}  // namespace farmd
