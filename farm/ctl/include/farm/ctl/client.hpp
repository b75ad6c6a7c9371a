#pragma once
// farmctl's client side as a library (reused by `farmctl conformance`).
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "farm/common/channel.hpp"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::ctl {

namespace v1 = ::farm::v1;

// A failed RPC, with its gRPC status.
struct RpcError : std::runtime_error {
  RpcError(grpc::Status s)
      : std::runtime_error(code_name(s.error_code()) + ": " + s.error_message()), status(std::move(s)) {}
  static std::string code_name(grpc::StatusCode c);
  grpc::Status status;
};

class Client {
 public:
  explicit Client(const farm::ChannelOptions& opt);
  v1::Job submit(const v1::JobSpec& spec, bool allow_unmatched = false);
  v1::Job get(const std::string& id, bool history = false);
  std::vector<v1::Job> list(const v1::ListJobsRequest& req);
  v1::Job cancel(const std::string& id, const std::string& reason = "");
  std::vector<v1::Worker> workers();
  // One ListWorkers call with its own deadline that fails at once (UNAVAILABLE)
  // while farmd is not reachable: `farmctl wait-ready` polls with it.
  std::vector<v1::Worker> workers(std::chrono::milliseconds deadline);
  void remove_worker(const std::string& id, bool force = false);
  v1::Report report(const v1::GetReportRequest& req);
  // Streams events until the job is terminal; `on_event` returns false to stop.
  // Reconnects (resuming after the last seq) if the stream breaks. Returns the final job.
  v1::Job watch(const std::string& id, bool logs, const std::function<bool(const v1::JobEvent&)>& on_event);

 private:
  farm::ChannelOptions opt_;
  std::shared_ptr<grpc::Channel> ch_;
  std::unique_ptr<v1::FarmClient::Stub> stub_;
};

// JUnit XML for a report: one <testsuite> per target, one <testcase> per job.
std::string junit_xml(const v1::Report& report, const std::string& suite_name = "patch-farm");

// "patch-stress threads=4 writer=mprotect ... seed=1"
std::string describe_workload(const v1::JobSpec& spec);

}  // namespace farm::ctl
