#pragma once
// Executors run one job's workload somewhere: on this machine (native),
// under user-mode emulation (qemu-user), in a full-system emulator
// (qemu-system) or on a board reached over ssh (with an optional serial
// console and a power-cycle command for hung boards).
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "farm/agent/process.hpp"
#include "farm/v1/farm.pb.h"

namespace farm::agent {

namespace v1 = ::farm::v1;

struct JobContext {
  std::string job_id;
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

struct ExecutorConfig {
  std::string kind = "native";                   // native | qemu-user | qemu-system | ssh
  std::string arch;                              // target arch (riscv64, aarch64, x86_64)
  std::map<std::string, std::string> binaries;   // workload -> binary ("patch-stress" -> path)
  bool allow_command = false;                    // accept Command workloads
  std::chrono::milliseconds kill_grace{2000};

  // qemu-user / qemu-system
  std::string qemu;                              // emulator binary (default from arch)
  std::string qemu_cpu;                          // -cpu
  std::string sysroot;                           // qemu-user -L
  std::string machine = "virt";
  std::string bios = "default";
  std::string memory = "256M";
  uint32_t default_smp = 4;
  std::vector<std::string> qemu_args;            // extra emulator arguments

  // ssh (board)
  std::string ssh = "ssh";
  std::string scp = "scp";
  std::string ssh_host;                          // [user@]host
  std::vector<std::string> ssh_opts = {"-o", "BatchMode=yes", "-o", "ConnectTimeout=10"};
  std::string remote_dir = "/tmp/farm-agent";
  std::string serial_device;                     // e.g. /dev/ttyUSB0 (optional)
  unsigned serial_baud = 115200;
  std::string power_cycle;                       // shell command (optional)
  uint32_t boot_timeout_s = 180;                 // wait for ssh after a power cycle
  uint32_t boot_poll_ms = 2000;
};

class Executor {
 public:
  virtual ~Executor() = default;
  virtual std::string kind() const = 0;                // reported capability kind
  virtual std::vector<std::string> workloads() const = 0;
  virtual v1::JobResult run(JobContext& ctx) = 0;
  // Self test used to release a quarantined worker.
  virtual v1::JobResult health_check(JobContext& ctx) = 0;
};

std::unique_ptr<Executor> make_executor(const ExecutorConfig& cfg);

// Turns a finished process into a job result: parses the workload's JSON
// line, classifies pass/fail/timeout/cancelled/infrastructure error.
// `require_json`: a missing result line is a failure (patch-stress, baremetal).
v1::JobResult result_from_process(const ProcResult& p, bool require_json, std::string_view output_for_tail = {});

// Command line for a patch-stress workload (binary + flags).
std::vector<std::string> patch_stress_argv(const std::string& binary, const v1::PatchStress& p, uint64_t seed);

}  // namespace farm::agent
