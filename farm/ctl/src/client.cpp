#include "farm/ctl/client.hpp"

#include <thread>

#include "farm/common/names.hpp"
#include "farm/common/select.hpp"

namespace farm::ctl {

using namespace std::chrono_literals;

std::string RpcError::code_name(grpc::StatusCode c) { return farm::status_code_name(c); }

Client::Client(const farm::ChannelOptions& opt) : opt_(opt), ch_(farm::make_channel(opt)), stub_(v1::FarmClient::NewStub(ch_)) {}

#define CALL(method, req, resp)                                     \
  do {                                                              \
    grpc::ClientContext ctx;                                        \
    farm::prepare_context(ctx, opt_.token, 30s);                    \
    auto s = stub_->method(&ctx, req, &resp);                       \
    if (!s.ok()) throw RpcError(s);                                 \
  } while (0)

v1::Job Client::submit(const v1::JobSpec& spec, bool allow_unmatched) {
  v1::SubmitJobRequest req;
  *req.mutable_spec() = spec;
  req.set_allow_unmatched(allow_unmatched);
  v1::SubmitJobResponse resp;
  CALL(SubmitJob, req, resp);
  return resp.job();
}

v1::Job Client::get(const std::string& id, bool history) {
  v1::GetJobRequest req;
  req.set_job_id(id);
  req.set_include_history(history);
  v1::GetJobResponse resp;
  CALL(GetJob, req, resp);
  return resp.job();
}

std::vector<v1::Job> Client::list(const v1::ListJobsRequest& req) {
  v1::ListJobsResponse resp;
  CALL(ListJobs, req, resp);
  return {resp.jobs().begin(), resp.jobs().end()};
}

v1::Job Client::cancel(const std::string& id, const std::string& reason) {
  v1::CancelJobRequest req;
  req.set_job_id(id);
  req.set_reason(reason);
  v1::CancelJobResponse resp;
  CALL(CancelJob, req, resp);
  return resp.job();
}

std::vector<v1::Worker> Client::workers() {
  v1::ListWorkersRequest req;
  v1::ListWorkersResponse resp;
  CALL(ListWorkers, req, resp);
  return {resp.workers().begin(), resp.workers().end()};
}

std::vector<v1::Worker> Client::workers(std::chrono::milliseconds deadline) {
  v1::ListWorkersRequest req;
  v1::ListWorkersResponse resp;
  grpc::ClientContext ctx;
  farm::prepare_context(ctx, opt_.token, deadline);
  ctx.set_wait_for_ready(false);
  auto s = stub_->ListWorkers(&ctx, req, &resp);
  if (!s.ok()) throw RpcError(s);
  return {resp.workers().begin(), resp.workers().end()};
}

void Client::remove_worker(const std::string& id, bool force) {
  v1::RemoveWorkerRequest req;
  req.set_worker_id(id);
  req.set_force(force);
  v1::RemoveWorkerResponse resp;
  CALL(RemoveWorker, req, resp);
}

v1::Report Client::report(const v1::GetReportRequest& req) {
  v1::GetReportResponse resp;
  CALL(GetReport, req, resp);
  return resp.report();
}

v1::Job Client::watch(const std::string& id, bool logs, const std::function<bool(const v1::JobEvent&)>& on_event) {
  uint64_t after = 0;
  int failures = 0;
  for (;;) {
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, opt_.token);
    v1::WatchJobRequest req;
    req.set_job_id(id);
    req.set_after_seq(after);
    req.set_include_logs(logs);
    auto reader = stub_->WatchJob(&ctx, req);
    v1::JobEvent ev;
    bool stop = false;
    while (reader->Read(&ev)) {
      failures = 0;
      if (ev.seq() > 0) after = ev.seq();
      if (!on_event(ev)) {
        stop = true;
        ctx.TryCancel();
        break;
      }
    }
    auto s = reader->Finish();
    if (stop) return get(id);
    if (s.ok()) return get(id);
    auto c = s.error_code();
    if (c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::INTERNAL || c == grpc::StatusCode::UNKNOWN) {
      if (++failures > 60) throw RpcError(s);
      std::this_thread::sleep_for(1s);  // farmd restarting: resume after the last event seen
      continue;
    }
    throw RpcError(s);
  }
}

std::string describe_workload(const v1::JobSpec& spec) {
  const auto& w = spec.workload();
  std::string r(farm::workload_type(w));
  auto kv = [&](const char* k, const std::string& v) {
    if (!v.empty() && v != "0") r += std::string(" ") + k + "=" + v;
  };
  if (w.has_patch_stress()) {
    const auto& p = w.patch_stress();
    kv("threads", std::to_string(p.threads()));
    kv("functions", std::to_string(p.functions()));
    kv("batches", std::to_string(p.batches()));
    kv("writer", p.writer());
    kv("sync", p.sync());
    kv("kind", p.probe_kind());
    kv("sites", p.sites());
    if (p.exit_probes()) kv("exit_probes", "true");
  } else if (w.has_baremetal()) {
    kv("image", w.baremetal().image());
    kv("smp", std::to_string(w.baremetal().smp()));
  } else if (w.has_command()) {
    std::string a;
    for (const auto& x : w.command().argv()) a += (a.empty() ? "" : " ") + x;
    r += " " + a;
  }
  r += " seed=" + std::to_string(spec.seed());
  return r;
}

}  // namespace farm::ctl
