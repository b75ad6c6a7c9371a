#pragma once
// Executors run one job's workload somewhere: on this machine (native),
// under user-mode emulation (qemu-user), in a full-system emulator
// (qemu-system), on a board reached over ssh (with an optional serial
// console and a power-cycle command for hung boards), or on a board booted
// for each job (vboard: a virtual board, or a real one through templates).
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "farm/agent/config.hpp"
#include "farm/agent/process.hpp"
#include "farm/v1/farm.pb.h"

namespace farm::agent {

namespace v1 = ::farm::v1;

struct JobContext {
  std::string job_id;               // checked by the agent: a single path component (policy.hpp)
  std::string worker;               // this agent's name (for logs)
  uint32_t attempt = 0;
  v1::JobSpec spec;
  std::string work_dir;             // scratch directory for this attempt (exists)
  // Streams output ("stdout", "stderr", "console", "serial", "agent").
  std::function<void(std::string_view stream, std::string_view data)> output;
  Cancel* cancel = nullptr;
  void note(const std::string& line) const {  // an agent-side log line
    if (output) output("agent", line + "\n");
  }
};

class Executor {
 public:
  virtual ~Executor() = default;
  virtual std::string kind() const = 0;                // reported capability kind
  virtual std::vector<std::string> workloads() const = 0;
  virtual v1::JobResult run(JobContext& ctx) = 0;
  // Self test used to release a quarantined worker.
  virtual v1::JobResult health_check(JobContext& ctx) = 0;
  // Capability defaults this executor knows better than the machine it runs
  // on (a board's cores, kernel, labels); fields already set are kept.
  virtual void describe(v1::Capabilities& /*caps*/) const {}
};

std::unique_ptr<Executor> make_executor(const ExecutorConfig& cfg);

// Turns a finished process into a job result: parses the workload's JSON
// line, classifies pass/fail/timeout/cancelled/infrastructure error.
// `require_json`: a missing result line is a failure (patch-stress, baremetal).
v1::JobResult result_from_process(const ProcResult& p, bool require_json, std::string_view output_for_tail = {});

// Formats a patch-stress command line (binary + flags + p.extra_args). It
// checks nothing: Policy::patch_stress() calls it with the operator's binary
// and a copy of the job's fields that passed the rules.
std::vector<std::string> patch_stress_argv(const std::string& binary, const v1::PatchStress& p, uint64_t seed);

// The result of a job the agent refused to run (policy.hpp): OUTCOME_REFUSED,
// with a message that starts with "refused" and names the field. A refusal
// must end the job without counting against anyone: INFRA_ERROR would retry
// it on other agents and count it toward this agent's quarantine (a client
// could then quarantine the farm by submitting hostile jobs), and FAIL would
// report a finding of the workload that never ran (farmd: job state ERROR).
v1::JobResult refused_result(const std::string& why);
bool is_refused(const v1::JobResult& r);

}  // namespace farm::agent
