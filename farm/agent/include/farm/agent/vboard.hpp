#pragma once
// The virtual-board executor (--executor vboard): drives a board the way LAVA
// drives a real one, in explicit steps, each logged as an agent note of the job:
//
//   deploy     an initramfs written here (farm::boards::Initramfs): the board
//              init as /init, the operator's workload binary as
//              /job/bin/patch-stress, /job/argv from the admitted job
//              (Policy::patch_stress, the same checks as every executor),
//              /job/env and /job/timeout; then the operator's deploy
//              template, if any (a real board: copy kernel + initramfs to TFTP)
//   power on   the description's qemu-system command (-M -cpu -smp -m -bios
//              -accel, its qemu_args, -kernel -initrd -append, -nographic
//              -no-reboot), or the operator's power-on template (a PDU)
//   boot       wait for ===FARM-BOARD-BEGIN=== on the console within the boot
//              timeout; if it does not come: power off, power on again (a
//              power cycle) and retry, then an infrastructure error
//   console    the serial console streamed to the job's "serial" output
//              (qemu's stdio, a serial device, or a console command)
//   result     the job's output between BEGIN and ===FARM-BOARD-END ...===:
//              its last JSON line is the result, the END marker's rc= is the
//              exit code (signal= / timeout as such)
//   power off  after END (the board powers itself off; qemu exits), on the
//              job's timeout (a hang: the board is powered off), on cancel
//
// The board init's protocol is farm/boards/init/board-init.c (docs/boards.md).
// Everything that chooses a program or a path is operator configuration
// (VBoardConfig, the description file); what comes from a job are the
// patch-stress typed fields (admitted by Policy) and its id (checked), and the
// values substituted into the operator's templates are checked and quoted.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "farm/agent/config.hpp"
#include "farm/agent/executor.hpp"

namespace farm::agent {

// A board description (farm/boards/boards/*.json), checked. Paths absolute.
struct BoardDescription {
  std::string file;          // the description file
  std::string name;          // "rv64gc-linux"
  std::string description;
  std::string arch;          // riscv64 | aarch64
  std::string isa;           // rv64gc, rv64g, armv8-max
  bool usable = true;
  std::string unusable_reason;  // "usable_reason" / "why" when usable is false
  std::string qemu;          // program (name looked up in PATH, or a path)
  std::string machine, cpu, memory, bios, accel;  // bios "" = none given
  uint32_t smp = 1;
  std::vector<std::string> qemu_args;
  std::string kernel;        // absolute path
  std::string init;          // absolute path of the board init (/init)
  std::string kernel_target, init_target;  // build targets (for messages)
  std::string append;        // kernel command line
  std::string console;       // ttyS0 (informational)
  uint32_t boot_timeout_s = 60;
  std::string kernel_release;  // from <kernel>.config next to the kernel ("6.1.192"), if present
};

// Reads and checks a description; `boards_dir` ("" = the file's directory)
// is where its relative artifact names are. Throws std::invalid_argument with
// a message naming the file and the field. Artifacts are not required to
// exist here (see VBoardExecutor).
BoardDescription load_board_description(const std::string& file, const std::string& boards_dir = "");

// A command template of the operator (/bin/sh -c). Placeholders: {kernel}
// {initrd} {deploy_dir} {board} {job_id} {attempt} {append}; "{{" and "}}" are
// literal braces. A placeholder must stand outside quotes (the agent quotes
// the value). Throws std::invalid_argument naming `option`.
void check_template(const std::string& option, const std::string& tmpl);
// Expands a checked template. Every value must be non-empty and of
// [A-Za-z0-9/._+,:=@%-] (plus ' ' for {append}); it is shell-quoted.
// Throws std::invalid_argument naming the value that is not.
std::string expand_template(const std::string& tmpl, const std::map<std::string, std::string>& values);

// The ELF file's problem as a static executable for `arch` ("" if none):
// not ELF, another machine, dynamically linked (the initramfs has no loader).
std::string guest_binary_problem(const std::string& path, const std::string& arch);

// The markers of the board init (farm/boards/init/board-init.c).
inline constexpr const char* kBoardBegin = "===FARM-BOARD-BEGIN===";

// What runs in the guest: the caller's (operator's) program and arguments.
// Only the executor itself (from an admitted job) and operator tools (farmctl
// conformance's benchmarks) build one; never a job's field.
struct GuestJob {
  std::map<std::string, std::string> files;  // guest path ("/job/bin/x") -> host file
  std::vector<std::string> argv;             // argv[0]: a guest path
  std::map<std::string, std::string> env;    // NAME -> value (checked names)
  uint32_t timeout_s = 600;                  // /job/timeout and the agent's deadline
  bool require_json = true;                  // no JSON line between the markers = fail
};

class VBoardExecutor final : public Executor {
 public:
  // Checks the configuration (throws std::invalid_argument with a message
  // naming the option): the description, its artifacts, the workload binary
  // (static, the board's arch), the templates, the console.
  explicit VBoardExecutor(ExecutorConfig cfg);
  ~VBoardExecutor() override;

  std::string kind() const override { return "board"; }
  std::vector<std::string> workloads() const override;
  void describe(v1::Capabilities& caps) const override;
  v1::JobResult run(JobContext& ctx) override;
  // Boots the board with `patch-stress --help` as the job: passes when the
  // board boots, runs it and reports END rc=0.
  v1::JobResult health_check(JobContext& ctx) override;

  // Deploy, power on, boot, console, result, power off for one guest job.
  v1::JobResult run_guest(JobContext& ctx, const GuestJob& job);

  const BoardDescription& board() const { return board_; }
  // The default power-on command (qemu) for an initramfs.
  std::vector<std::string> qemu_argv(const std::string& initrd) const;

 private:
  struct Impl;
  ExecutorConfig cfg_;
  BoardDescription board_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace farm::agent
