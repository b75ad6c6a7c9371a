#pragma once
// What this agent agrees to run.
//
// A lease carries a JobSpec written by a client (CI holds client tokens) and
// relayed by farmd. The agent trusts neither: a farmd bug or a forged lease
// must not get code run on the agent's machine or board. So nothing from a
// job reaches an exec, a path or a shell unless it went through this file:
//
//  * the program is always the operator's: the configured patch-stress binary
//    (per ISA), the configured bare-metal image (jobs give a NAME), or, only
//    with --allow-command, a command whose argv[0] is on the operator's list;
//  * the workload's arguments are built from typed fields checked against
//    exact rules (numbers in ranges, words from fixed sets);
//  * free arguments (extra_args) and Command workloads need the operator's
//    opt-in (--allow-command) AND an allow-list match; each use is logged;
//  * names that become file names (job ids, image names) are single path
//    components of a small character set.
//
// A refusal is not an infrastructure error: it says the job asked for
// something this agent does not do, so it must neither be retried elsewhere
// forever nor count against the agent (see Executor: refused() results).
#include <cstdint>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "farm/agent/config.hpp"
#include "farm/common/workload_limits.hpp"
#include "farm/agent/executor.hpp"

namespace farm::agent {

// The exact rules (also documented in farm-agent --help and docs/farm.md).
namespace rules {
// The typed workload fields: farm/common/workload_limits.hpp (shared with farmd and farmctl).
inline constexpr uint32_t kMaxThreads = farm::limits::kMaxStressThreads;
inline constexpr uint32_t kMaxFunctions = farm::limits::kMaxStressFunctions;
inline constexpr uint64_t kMaxBatches = farm::limits::kMaxStressBatches;
inline constexpr double kMaxDurationS = farm::limits::kMaxStressDurationS;
inline constexpr uint32_t kMaxSmp = farm::limits::kMaxBaremetalSmp;
inline constexpr size_t kMaxExtraArgs = 64;
inline constexpr size_t kMaxArgBytes = 1024;           // also bounds std::regex's recursion
inline constexpr size_t kMaxCommandArgs = 256;
inline constexpr size_t kMaxEnvVars = 64;
inline constexpr size_t kMaxEnvValueBytes = 4096;
inline constexpr size_t kMaxNameBytes = 64;            // image names, ISA names
inline constexpr size_t kMaxJobIdBytes = 128;
inline constexpr size_t kMaxAppendBytes = 256;         // BaremetalImage.append: [A-Za-z0-9 =._,:+-]
}  // namespace rules

// ^[A-Za-z0-9][A-Za-z0-9._-]{0,max-1}$: one path component, never "." or
// "..", never an option ("-x"), nothing a shell or qemu would split.
bool is_safe_name(std::string_view s, size_t max_len = rules::kMaxNameBytes);
// Why a job id from a lease cannot be used as a directory name ("" if it can).
std::string job_id_problem(std::string_view id);
// For log lines and refusals: farm::clip (control characters escaped, long
// values cut at `max` characters with an ellipsis).
std::string printable(std::string_view s, size_t max = 200);

// A workload the agent agreed to run. Every string in it is operator
// configuration or a value that passed one of the rules above.
struct Admitted {
  enum class Kind { patch_stress, baremetal, command };
  Kind kind = Kind::patch_stress;
  std::string program;                      // operator path: patch-stress, command (argv[0])
  std::vector<std::string> args;            // arguments after argv[0]
  std::map<std::string, std::string> env;   // Command env, checked
  bool require_json = false;                // no JSON result line = fail
  // Bare-metal image
  std::string image_name, image_path, machine, memory;
  uint32_t smp = 0;
  std::string append;                       // the image's kernel command line (qemu -append), checked
  std::vector<std::string> emulator_args;   // BaremetalImage.extra_args that matched the allow-list

  std::vector<std::string> argv() const;    // program + args
};

struct Admission {
  std::optional<Admitted> job;
  std::string refusal;  // "refused: <field> ...", when !job
  explicit operator bool() const { return job.has_value(); }
  static Admission refuse(std::string why);
};

// Where a Command's argv[0] lives: on this machine (compared after realpath)
// or on a board (compared literally: the local file system says nothing).
enum class CommandHost { local, remote };

class Policy {
 public:
  // Checks the operator configuration; throws std::invalid_argument with a
  // message naming the option (farm-agent exits 2 with it).
  Policy(const ExecutorConfig& cfg, CommandHost host);

  // The job's workload, admitted or refused. Logs every use of the
  // --allow-command opt-in with the job id and the worker.
  Admission admit(const JobContext& ctx) const;
  Admission patch_stress(const JobContext& ctx) const;
  Admission baremetal(const JobContext& ctx) const;
  Admission command(const JobContext& ctx) const;

  // Workloads this configuration can run (for the capabilities).
  bool runs_patch_stress() const { return !binaries_.empty(); }
  bool runs_baremetal() const { return !images_.empty(); }
  bool runs_commands() const { return cfg_.allow_command && !commands_.empty(); }
  // Configured binaries with absolute paths ("patch-stress", "patch-stress@rv64g").
  const std::map<std::string, std::string>& binaries() const { return binaries_; }
  const std::map<std::string, std::string>& images() const { return images_; }

 private:
  // Empty if every extra argument matches an --allow-arg pattern (each accepted
  // one is logged), else the refusal naming `field`[i].
  std::string check_extra_args(const JobContext& ctx, const std::string& field,
                               const google::protobuf::RepeatedPtrField<std::string>& args) const;

  ExecutorConfig cfg_;
  CommandHost host_;
  std::map<std::string, std::string> binaries_;  // absolute paths
  std::map<std::string, std::string> images_;    // name -> absolute path
  std::vector<std::pair<std::string, std::regex>> allow_args_;
  // Allowed command programs: the operator's path (what runs) and, for local
  // commands, its realpath (what a job's argv[0] is compared with after realpath).
  std::vector<std::pair<std::string, std::string>> commands_;
};

}  // namespace farm::agent
