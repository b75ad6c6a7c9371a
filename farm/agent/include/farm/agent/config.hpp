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

// The virtual-board executor (--executor vboard, vboard.hpp): a board
// described by a JSON file (farm/boards/boards/*.json), booted in steps:
// deploy, power on, console, result, power off. The defaults drive a QEMU
// virtual board; the templates let the same executor drive a physical board
// (TFTP deploy, a PDU, a serial console). Every field is the operator's.
struct VBoardConfig {
  std::string board;                 // board description file (--board FILE.json)
  std::string boards_dir;            // its artifacts (kernel, init); default: the description's directory
  std::string deploy_dir;            // per-attempt deploy files go to DIR/<job>-<attempt>/; default: the attempt's work dir
  // Overrides of the description (empty / 0: the description's).
  uint32_t smp = 0;
  std::string memory, cpu;
  // Command templates, run with /bin/sh -c; {kernel} {initrd} {deploy_dir}
  // {board} {job_id} {attempt} {append} are replaced by checked, quoted
  // values (also in the environment as FARM_KERNEL, FARM_INITRD, ...).
  std::string deploy_cmd;            // after the initramfs is written (real board: copy to a TFTP directory)
  std::string power_on_cmd;          // default: the description's qemu command (its stdio is the console)
  std::string power_off_cmd;         // default: stop the power-on process (SIGTERM, then SIGKILL)
  // Console: "stdio" (default: the power-on command's stdout), "serial:DEVICE"
  // (e.g. serial:/dev/ttyUSB0) or "command:TEMPLATE" (conmux-console, telnet...).
  std::string console = "stdio";
  unsigned console_baud = 115200;
  uint32_t boot_timeout_s = 0;       // power on -> BEGIN marker; 0: the description's boot_timeout
  uint32_t boot_retries = 1;         // power cycles after a failed boot before an infrastructure error
  uint32_t power_cmd_timeout_s = 120;  // a power/deploy template must finish within this
  uint32_t end_grace_ms = 15000;     // after the job's timeout, how long the board init has to report END
  uint32_t poweroff_wait_ms = 15000; // after END, how long the board has to power itself off
};

struct ExecutorConfig {
  std::string kind = "native";                   // native | qemu-user | qemu-system | ssh | vboard
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

  // ---- vboard (virtual board, or a real one driven the same way)
  VBoardConfig vboard;
};

}  // namespace farm::agent
