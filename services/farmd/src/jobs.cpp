// The client side of jobs: submit (with the matching check against the
// registered workers), get, list, cancel.
#include <spdlog/spdlog.h>

#include "blob.hpp"
#include "farm/common/names.hpp"
#include "farm/common/select.hpp"
#include "farm/common/util.hpp"
#include "farmd/farm.hpp"
#include "farmd/store.hpp"
#include "tags_match.hpp"
#include "validation.hpp"

namespace farmd {

using ::farm::now_ms;
using grpc::Status;
using grpc::StatusCode;

std::string Farm::insert_job(const v1::JobSpec& spec, uint32_t max_attempts, const std::string& health_for,
                             const std::string& message, QueueKey* key) {
  NewJob j;
  j.id = "j-" + ::farm::random_hex(6);
  j.name = spec.name();
  j.spec = ser(spec);
  j.priority = spec.priority();
  j.max_attempts = max_attempts;
  j.created_ms = now_ms();
  j.message = message;
  j.health_for = health_for;
  *key = QueueKey{-spec.priority(), store_->insert_job(j)};
  emit_state(j.id, v1::JOB_STATE_QUEUED, 0, "", message);
  return j.id;
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
    Store::Txn t(*store_);
    id = insert_job(spec, max_attempts, health_for, message, &key);
    t.commit();
  } catch (const std::exception& e) {
    pending_notify_.clear();
    return Status(StatusCode::INTERNAL, std::string("store: ") + e.what());
  }
  publish_events();
  metrics_->job_submitted();
  Queued q;
  q.id = id;
  q.spec = spec;
  q.max_attempts = max_attempts;
  q.health_for = health_for;
  q.queued_ms = now_ms();
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
  auto row = store_->job(id, history);
  if (!row) return false;
  out->set_id(row->id);
  out->mutable_spec()->ParseFromString(row->spec);
  out->set_state(static_cast<v1::JobState>(row->state));
  out->set_attempts(row->attempts);
  out->set_worker_id(row->worker_id);
  out->set_created_ms(row->created_ms);
  out->set_started_ms(row->started_ms);
  out->set_finished_ms(row->finished_ms);
  out->set_message(row->message);
  out->set_cancel_requested(row->cancel_requested);
  if (row->result) out->mutable_result()->ParseFromString(*row->result);
  for (const auto& a : row->history) {
    auto* h = out->add_attempt_history();
    h->set_attempt(a.attempt);
    h->set_worker_id(a.worker_id);
    h->set_outcome(static_cast<v1::Outcome>(a.outcome));
    h->set_started_ms(a.started_ms);
    h->set_finished_ms(a.finished_ms);
    h->set_message(a.message);
  }
  if (out->state() == v1::JOB_STATE_RUNNING) {
    std::lock_guard lk(mu_);
    if (auto it = running_.find(id); it != running_.end()) *out->mutable_progress() = it->second.progress;
  }
  return true;
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

Status Farm::list_jobs(const v1::ListJobsRequest& req, v1::ListJobsResponse* out) {
  if (req.limit() > 100000)
    return Status(StatusCode::INVALID_ARGUMENT, "limit is " + std::to_string(req.limit()) + "; at most 100000 (0: 100)");
  if (req.states_size() > 16) return Status(StatusCode::INVALID_ARGUMENT, "states has more than 16 entries");
  for (int st : req.states())
    if (!v1::JobState_IsValid(st) || st == v1::JOB_STATE_UNSPECIFIED)
      return Status(StatusCode::INVALID_ARGUMENT, "states: " + std::to_string(st) + " is not a job state");
  if (auto s = check::worker_id("worker_id", req.worker_id(), false); !s.ok()) return s;
  if (auto s = check::tags("tags", req.tags()); !s.ok()) return s;
  const size_t limit = req.limit() ? req.limit() : 100;
  JobQuery q;
  q.states.assign(req.states().begin(), req.states().end());
  q.worker_id = req.worker_id();
  q.newest_first = req.newest_first();
  std::vector<std::string> ids;
  try {
    store_->scan_jobs(q, [&](const std::string& id, const std::string& spec_blob) {
      if (!req.tags().empty()) {
        v1::JobSpec spec;
        spec.ParseFromString(spec_blob);
        if (!tags_match(spec, req.tags())) return true;
      }
      ids.push_back(id);
      return ids.size() < limit;
    });
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
        Store::Txn t(*store_);
        bool ended = store_->end_queued(id, v1::JOB_STATE_CANCELLED, now_ms(), msg, ser(res), true);
        if (ended) {
          emit_state(id, v1::JOB_STATE_CANCELLED, 0, "", msg);
          t.commit();
          publish_events();
        } else {
          // Not queued in the store: another farmd on the database took it. It is not ours to index.
          spdlog::warn("farmd: job {} was queued here but not in {}; dropped from the queue", id, store_->name());
        }
        auto& q = queue_.at(qi->second);
        if (!q.health_for.empty())
          if (auto w = workers_.find(q.health_for); w != workers_.end() && w->second.health_job == id)
            w->second.health_job.clear();
        queue_.erase(qi->second);
        queued_index_.erase(qi);
      } else if (auto ri = running_.find(id); ri != running_.end()) {
        if (!ri->second.cancel_requested) {
          std::string note = "cancel requested" + (reason.empty() ? std::string() : ": " + reason);
          Store::Txn t(*store_);
          if (store_->request_cancel(id, note)) {
            emit_state(id, v1::JOB_STATE_RUNNING, ri->second.attempt, ri->second.worker_id, note);
            t.commit();
            publish_events();
            ri->second.cancel_requested = true;
          }
        }
      }
      // otherwise: finished or unknown, reported below (outside the lock)
    } catch (const std::exception& e) {
      pending_notify_.clear();
      return Status(StatusCode::INTERNAL, e.what());
    }
  }
  try {
    if (!load_job(id, false, out)) return Status(StatusCode::NOT_FOUND, "no job " + id);
  } catch (const std::exception& e) {
    return Status(StatusCode::INTERNAL, e.what());
  }
  if (::farm::is_terminal(out->state()) && out->state() != v1::JOB_STATE_CANCELLED)
    return Status(StatusCode::FAILED_PRECONDITION,
                  "job " + id + " already finished (" + std::string(::farm::job_state_name(out->state())) + ")");
  return Status::OK;
}

}  // namespace farmd
