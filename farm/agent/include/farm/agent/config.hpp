#pragma once
// Operator configuration of an executor: where it runs workloads and what it
// agrees to run. Everything here comes from the agent's command line (the
// operator of the machine), never from a job. Jobs come from clients through
// farmd and are untrusted: see policy.hpp for how a job's fields are checked
// against this configuration before anything is executed.
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace farm::agent {

struct ExecutorConfig {
  std::string kind = "native";                   // native | qemu-user | qemu-system | ssh
  std::string arch;                              // target arch (riscv64, aarch64, x86_64)
  std::chrono::milliseconds kill_grace{2000};

  // ---- what this agent agrees to run (policy.hpp)
  // Workload binaries: "patch-stress" -> path, and per ISA "patch-stress@rv64g"
  // -> path (chosen when a job's selector asks for that ISA).
  std::map<std::string, std::string> binaries;
  // Bare-metal images by name: a job names one ("baremetal-rv64gc"), never a path.
  std::map<std::string, std::string> images;
  // Operator opt-in to job-chosen arguments and Command workloads. Alone it
  // allows nothing: every extra argument must match `allow_args` and every
  // command's argv[0] must be one of `allow_command_binaries`.
  bool allow_command = false;
  std::vector<std::string> allow_args;             // ECMAScript regexes, matched against whole arguments
  std::vector<std::string> allow_command_binaries; // absolute paths (compared after realpath on this machine)
  std::vector<std::string> allow_env;              // Command env names allowed despite the built-in deny list
  // qemu-system -M values a job may ask for (the configured `machine` always).
  std::vector<std::string> allow_machines;

  // ---- qemu-user / qemu-system
  std::string qemu;                              // emulator binary (default from arch)
  std::string qemu_cpu;                          // -cpu
  std::string sysroot;                           // qemu-user -L
  std::string machine = "virt";
  std::string bios = "default";
  std::string memory = "256M";
  uint32_t default_smp = 4;
  std::vector<std::string> qemu_args;            // extra emulator arguments

  // ---- ssh (board)
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

}  // namespace farm::agent
