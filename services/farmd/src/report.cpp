// GetReport: the jobs of a run (by id, tags, since) summed up per target.
#include <map>
#include <set>

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

Status Farm::report(const v1::GetReportRequest& req, v1::Report* out) {
  if (req.job_ids_size() > 10000)
    return Status(StatusCode::INVALID_ARGUMENT,
                  "job_ids has " + std::to_string(req.job_ids_size()) + " entries; at most 10000");
  for (const auto& id : req.job_ids())
    if (auto s = check::job_id("job_ids entry", id); !s.ok()) return s;
  if (auto s = check::tags("tags", req.tags()); !s.ok()) return s;
  std::vector<std::string> ids;
  std::set<std::string> want_ids(req.job_ids().begin(), req.job_ids().end());
  std::map<std::string, v1::Capabilities> caps;
  try {
    JobQuery q;
    q.created_since_ms = req.since_ms();
    store_->scan_jobs(q, [&](const std::string& id, const std::string& spec_blob) {
      if (!want_ids.empty() && !want_ids.count(id)) return true;
      if (!req.tags().empty()) {
        v1::JobSpec spec;
        spec.ParseFromString(spec_blob);
        if (!tags_match(spec, req.tags())) return true;
      }
      ids.push_back(id);
      return true;
    });
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
