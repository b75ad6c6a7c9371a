#include "farm/agent/policy.hpp"

#include "farm/common/util.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace farm::agent {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- names

bool is_safe_name(std::string_view s, size_t max_len) {
  if (s.empty() || s.size() > max_len) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!alnum(s[0])) return false;  // no ".", "..", "-option", ".hidden"
  for (char c : s)
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

std::string job_id_problem(std::string_view id) {
  // The id names the attempt's work directory (<work-dir>/<id>-<attempt>) and
  // the board's (<remote-dir>/<id>-<attempt>), and that directory is removed
  // afterwards: "../x" or "a/b" would create and delete outside them.
  if (is_safe_name(id, rules::kMaxJobIdBytes)) return {};
  return "refused: job id '" + printable(id, 80) + "' is not 1-" + std::to_string(rules::kMaxJobIdBytes) +
         " characters of [A-Za-z0-9._-] starting with a letter or digit (it names a directory)";
}

std::string printable(std::string_view s, size_t max) { return farm::clip(s, max); }

// ---------------------------------------------------------------- admitted

std::vector<std::string> Admitted::argv() const {
  std::vector<std::string> a{program};
  a.insert(a.end(), args.begin(), args.end());
  return a;
}

Admission Admission::refuse(std::string why) {
  Admission a;
  a.refusal = std::move(why);
  return a;
}

// ---------------------------------------------------------------- configuration

namespace {

[[noreturn]] void config_error(const std::string& m) { throw std::invalid_argument(m); }

std::string errno_text(int e) { return std::strerror(e); }

// A regular file we can open for `mode` (X_OK, R_OK), else the reason.
std::string file_problem(const std::string& path, int mode) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_text(errno);
  if (S_ISDIR(st.st_mode)) return "is a directory";
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if (::access(path.c_str(), mode) != 0) return errno_text(errno);
  return {};
}

std::string absolute(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

std::string realpath_of(const std::string& p) {
  char buf[PATH_MAX];
  return ::realpath(p.c_str(), buf) ? std::string(buf) : std::string();
}

bool valid_env_name(std::string_view k) {
  if (k.empty() || k.size() > 128) return false;
  if (!(std::isalpha(static_cast<unsigned char>(k[0])) || k[0] == '_')) return false;
  for (char c : k)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

// Environment variables that change what a program loads or executes, where
// it looks things up, or how an interpreter/emulator behaves. A Command may
// set them only when the operator lists them with --allow-env.
bool dangerous_env_name(std::string_view k) {
  static const std::initializer_list<std::string_view> prefixes = {
      "LD_",       // dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ...
      "FARM_",     // set by the agent itself (FARM_JOB_ID, FARM_SEED, ...)
      "QEMU_",     // qemu-user: QEMU_LD_PREFIX, QEMU_GDB, QEMU_SET_ENV, QEMU_STRACE, ...
      "MALLOC_", "GLIBC_", "BASH_FUNC_", "PYTHON", "PERL", "RUBY", "NODE_", "GCONV_", "RESOLV_"};
  static const std::initializer_list<std::string_view> names = {
      "PATH", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "CDPATH", "GETCONF_DIR", "HOSTALIASES",
      "LOCALDOMAIN", "LOCPATH", "NLSPATH", "RES_OPTIONS", "TZDIR", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
      "SSH_AUTH_SOCK", "HOME", "SHELL"};
  for (auto p : prefixes)
    if (k.substr(0, p.size()) == p) return true;
  for (auto n : names)
    if (k == n) return true;
  return false;
}

bool contains_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

}  // namespace

Policy::Policy(const ExecutorConfig& cfg, CommandHost host) : cfg_(cfg), host_(host) {
  // Workload binaries. They run from the attempt's work directory, so they
  // are made absolute here; on a board they are copied with scp first.
  for (const auto& [key, path] : cfg.binaries) {
    std::string workload = key.substr(0, key.find('@'));
    if (workload != "patch-stress")
      config_error("--binary " + key + "=" + path +
                   ": unknown workload (this agent runs patch-stress: patch-stress=PATH or patch-stress@ISA=PATH)");
    if (key.size() > workload.size() && !is_safe_name(key.substr(workload.size() + 1)))
      config_error("--binary " + key + ": the ISA after '@' must be a name like rv64gc");
    if (path.empty()) config_error("--binary " + key + ": empty path");
    const bool local = host == CommandHost::local;
    if (auto why = file_problem(path, local ? X_OK : R_OK); !why.empty())
      config_error(std::string(local ? "cannot execute " : "cannot read ") + path + ": " + why + " (" +
                   (key == "patch-stress" ? "--patch-stress" : "--binary " + key) + ")");
    binaries_[key] = absolute(path);
  }
  for (const auto& [name, path] : cfg.images) {
    if (!is_safe_name(name))
      config_error("--image " + name + "=" + path + ": an image name is 1-64 characters of [A-Za-z0-9._-] "
                   "starting with a letter or digit");
    if (auto why = file_problem(path, R_OK); !why.empty())
      config_error("cannot read image " + path + ": " + why + " (--image " + name + ")");
    images_[name] = absolute(path);
  }
  for (const auto& m : cfg.allow_machines)
    if (!is_safe_name(m)) config_error("--allow-machine " + m + ": not a machine name");

  const bool lists = !cfg.allow_args.empty() || !cfg.allow_command_binaries.empty() || !cfg.allow_env.empty();
  if (lists && !cfg.allow_command)
    config_error("--allow-arg, --allow-command-binary and --allow-env take effect only with --allow-command");
  if (cfg.allow_command && cfg.allow_args.empty() && cfg.allow_command_binaries.empty())
    config_error("--allow-command needs an allow-list: --allow-arg REGEX (extra workload arguments) and/or "
                 "--allow-command-binary PATH (command workloads); it never allows everything");
  for (const auto& pattern : cfg.allow_args) {
    try {
      allow_args_.emplace_back(pattern, std::regex(pattern, std::regex::ECMAScript));
    } catch (const std::regex_error& e) {
      config_error("--allow-arg '" + pattern + "': not a valid regular expression: " + e.what());
    }
  }
  for (const auto& b : cfg.allow_command_binaries) {
    if (b.empty() || b[0] != '/') config_error("--allow-command-binary " + b + ": must be an absolute path");
    if (host == CommandHost::remote) {  // a path on the board
      commands_.emplace_back(fs::path(b).lexically_normal().string(), fs::path(b).lexically_normal().string());
      continue;
    }
    if (auto why = file_problem(b, X_OK); !why.empty())
      config_error("--allow-command-binary: cannot execute " + b + ": " + why);
    commands_.emplace_back(b, realpath_of(b));
  }
  for (const auto& k : cfg.allow_env)
    if (!valid_env_name(k)) config_error("--allow-env " + k + ": not an environment variable name");
}

// ---------------------------------------------------------------- admission

Admission Policy::admit(const JobContext& ctx) const {
  const auto& w = ctx.spec.workload();
  if (w.has_patch_stress()) return patch_stress(ctx);
  if (w.has_baremetal()) return baremetal(ctx);
  if (w.has_command()) return command(ctx);
  return Admission::refuse("refused: the job has no workload this agent runs");
}

std::string Policy::check_extra_args(const JobContext& ctx, const std::string& field,
                                     const google::protobuf::RepeatedPtrField<std::string>& args) const {
  if (args.empty()) return {};
  if (!cfg_.allow_command)
    return "refused: " + field + " (" + std::to_string(args.size()) +
           " argument(s)) needs an agent started with --allow-command and a matching --allow-arg; this agent "
           "builds the command line from the typed fields only";
  if (static_cast<size_t>(args.size()) > rules::kMaxExtraArgs)
    return "refused: " + field + " has more than " + std::to_string(rules::kMaxExtraArgs) + " arguments";
  std::vector<const std::string*> matched(args.size());
  for (int i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string where = field + "[" + std::to_string(i) + "] '" + printable(a, 80) + "'";
    if (a.size() > rules::kMaxArgBytes)
      return "refused: " + field + "[" + std::to_string(i) + "] is longer than " +
             std::to_string(rules::kMaxArgBytes) + " bytes";
    if (contains_nul(a)) return "refused: " + where + " contains a NUL byte";
    for (const auto& [pattern, re] : allow_args_) {
      if (std::regex_match(a, re)) {
        matched[static_cast<size_t>(i)] = &pattern;
        break;
      }
    }
    if (!matched[static_cast<size_t>(i)]) return "refused: " + where + " matches no --allow-arg pattern of this agent";
  }
  // All accepted: the opt-in was used, say so in the agent's log.
  for (int i = 0; i < args.size(); ++i)
    spdlog::warn("farm-agent {}: job {}: --allow-command: accepted {}[{}] '{}' (--allow-arg '{}')", ctx.worker,
                 ctx.job_id, field, i, printable(args[i]), *matched[static_cast<size_t>(i)]);
  return {};
}

Admission Policy::patch_stress(const JobContext& ctx) const {
  const v1::PatchStress& p = ctx.spec.workload().patch_stress();
  auto refuse = [](const std::string& m) { return Admission::refuse("refused: " + m); };

  // What runs is the agent's decision, never the job's.
  if (!p.binary().empty())
    return refuse("PatchStress.binary is chosen by the agent, not the job (got '" + printable(p.binary(), 80) +
                  "'; this agent runs its configured patch-stress)");

  // Typed fields: the exact values patch-stress accepts (farm/workloads/stress/main.cpp).
  auto in_set = [](const std::string& v, std::initializer_list<const char*> ok) {
    if (v.empty()) return true;  // workload default
    for (const char* o : ok)
      if (v == o) return true;
    return false;
  };
  if (p.threads() > rules::kMaxThreads)
    return refuse("PatchStress.threads " + std::to_string(p.threads()) + " is not in 1.." +
                  std::to_string(rules::kMaxThreads));
  if (p.functions() > rules::kMaxFunctions)
    return refuse("PatchStress.functions " + std::to_string(p.functions()) + " is not in 1.." +
                  std::to_string(rules::kMaxFunctions));
  if (p.batches() > rules::kMaxBatches)
    return refuse("PatchStress.batches " + std::to_string(p.batches()) + " is more than " +
                  std::to_string(rules::kMaxBatches));
  const double d = p.duration_s();
  if (!std::isfinite(d) || d < 0 || d > rules::kMaxDurationS)
    return refuse("PatchStress.duration_s must be a finite number of seconds in [0, " +
                  std::to_string(static_cast<int>(rules::kMaxDurationS)) + "]");
  if (p.batches() && d > 0) return refuse("PatchStress.batches and PatchStress.duration_s are exclusive");
  if (!in_set(p.writer(), {"mprotect", "procmem", "default"}))
    return refuse("PatchStress.writer '" + printable(p.writer(), 40) + "' is not mprotect, procmem or default");
  if (!in_set(p.sync(), {"default", "membarrier", "flush_icache", "signal"}))
    return refuse("PatchStress.sync '" + printable(p.sync(), 40) +
                  "' is not default, membarrier, flush_icache or signal");
  if (!in_set(p.probe_kind(), {"jump", "trap", "auto"}))
    return refuse("PatchStress.probe_kind '" + printable(p.probe_kind(), 40) + "' is not jump, trap or auto");
  if (!in_set(p.sites(), {"entry", "body"}))
    return refuse("PatchStress.sites '" + printable(p.sites(), 40) + "' is not entry or body");
  if (p.exit_probes() && p.sites() == "body")
    return refuse("PatchStress.exit_probes needs entry sites (call probes sit on entry sleds), not sites 'body'");
  if (auto why = check_extra_args(ctx, "PatchStress.extra_args", p.extra_args()); !why.empty())
    return Admission::refuse(why);

  // The binary: the one configured for the ISA the job asks for, else the
  // agent's default. The job's ISA is only a key into the operator's map.
  const std::string& isa = ctx.spec.selector().isa();
  auto it = binaries_.end();
  if (is_safe_name(isa)) it = binaries_.find("patch-stress@" + isa);
  if (it == binaries_.end()) it = binaries_.find("patch-stress");
  if (it == binaries_.end()) return refuse("no patch-stress binary is configured on this agent (--patch-stress)");

  v1::PatchStress checked = p;  // only what passed the rules above
  checked.clear_binary();
  Admitted a;
  a.kind = Admitted::Kind::patch_stress;
  a.program = it->second;
  auto argv = patch_stress_argv(a.program, checked, ctx.spec.seed());
  a.args.assign(argv.begin() + 1, argv.end());
  a.require_json = true;
  return Admission{std::move(a), {}};
}

Admission Policy::baremetal(const JobContext& ctx) const {
  const v1::BaremetalImage& b = ctx.spec.workload().baremetal();
  auto refuse = [](const std::string& m) { return Admission::refuse("refused: " + m); };

  // The image is a name from the operator's --image list, never a path: a
  // path would let a job boot (and so read) any file the agent can open.
  std::string known;
  for (const auto& [n, _] : images_) known += (known.empty() ? "" : ", ") + n;
  if (known.empty()) known = "none";
  if (!is_safe_name(b.image()))
    return refuse("BaremetalImage.image '" + printable(b.image(), 80) + "' is not an image name" +
                  (b.image().find('/') != std::string::npos ? " (jobs name an image; paths are the agent's)" : "") +
                  "; images of this agent: " + known);
  auto it = images_.find(b.image());
  if (it == images_.end())
    return refuse("BaremetalImage.image '" + b.image() + "' is not an image of this agent; known: " + known);
  if (b.smp() > rules::kMaxSmp)
    return refuse("BaremetalImage.smp " + std::to_string(b.smp()) + " is not in 1.." + std::to_string(rules::kMaxSmp));
  std::string machine = b.machine().empty() ? cfg_.machine : b.machine();
  bool machine_ok = machine == cfg_.machine;
  for (const auto& m : cfg_.allow_machines) machine_ok = machine_ok || machine == m;
  if (!machine_ok) {
    std::string allowed = cfg_.machine;
    for (const auto& m : cfg_.allow_machines) allowed += ", " + m;
    return refuse("BaremetalImage.machine '" + printable(b.machine(), 40) + "' is not allowed on this agent (" +
                  allowed + ")");
  }
  static const std::regex kMemory("[0-9]{1,6}[MG]");
  if (!b.memory().empty() && !std::regex_match(b.memory(), kMemory))
    return refuse("BaremetalImage.memory '" + printable(b.memory(), 40) + "' must look like 256M or 2G");
  // The kernel command line is one qemu argument (after -append) that only
  // the operator's image reads: key=value words of a small character set.
  if (b.append().size() > rules::kMaxAppendBytes)
    return refuse("BaremetalImage.append is longer than " + std::to_string(rules::kMaxAppendBytes) + " characters");
  for (char ch : b.append())
    if (!std::isalnum(static_cast<unsigned char>(ch)) && !std::strchr(" =._,:+-", ch))
      return refuse("BaremetalImage.append '" + printable(b.append(), 80) +
                    "' may only hold [A-Za-z0-9 =._,:+-] (key=value words)");
  if (auto why = check_extra_args(ctx, "BaremetalImage.extra_args", b.extra_args()); !why.empty())
    return Admission::refuse(why);

  Admitted a;
  a.kind = Admitted::Kind::baremetal;
  a.image_name = it->first;
  a.image_path = it->second;
  a.machine = machine;
  a.memory = b.memory().empty() ? cfg_.memory : b.memory();
  a.smp = b.smp() ? b.smp() : cfg_.default_smp;
  a.append = b.append();
  a.emulator_args.assign(b.extra_args().begin(), b.extra_args().end());
  a.require_json = true;
  return Admission{std::move(a), {}};
}

Admission Policy::command(const JobContext& ctx) const {
  const v1::Command& c = ctx.spec.workload().command();
  auto refuse = [](const std::string& m) { return Admission::refuse("refused: " + m); };
  if (!runs_commands())
    return refuse("Command workloads need an agent started with --allow-command and --allow-command-binary; "
                  "this agent runs its configured workloads only");
  if (c.argv().empty() || c.argv(0).empty()) return refuse("Command.argv is empty");
  if (static_cast<size_t>(c.argv_size()) > rules::kMaxCommandArgs)
    return refuse("Command.argv has more than " + std::to_string(rules::kMaxCommandArgs) + " arguments");
  for (int i = 0; i < c.argv_size(); ++i) {
    if (contains_nul(c.argv(i))) return refuse("Command.argv[" + std::to_string(i) + "] contains a NUL byte");
    if (c.argv(i).size() > 4096) return refuse("Command.argv[" + std::to_string(i) + "] is longer than 4096 bytes");
  }

  // argv[0]: one of the operator's programs. Locally the comparison is by
  // realpath (a symlink or "/usr/bin/../bin/x" names the same file), and what
  // runs is the operator's path, not the job's string.
  const std::string& want = c.argv(0);
  if (want[0] != '/') return refuse("Command.argv[0] '" + printable(want, 80) + "' must be an absolute path");
  std::string key = host_ == CommandHost::local ? realpath_of(want) : fs::path(want).lexically_normal().string();
  const std::string* program = nullptr;
  if (!key.empty())
    for (const auto& [path, real] : commands_)
      if (real == key) program = &path;
  if (!program) {
    std::string allowed;
    for (const auto& [path, _] : commands_) allowed += (allowed.empty() ? "" : ", ") + path;
    return refuse("Command.argv[0] '" + printable(want, 80) + "' is not on this agent's --allow-command-binary list (" +
                  allowed + ")");
  }

  // Environment: names a shell cannot misread (they are also interpolated
  // into the board's shell command line), no loader/interpreter hooks.
  if (static_cast<size_t>(c.env_size()) > rules::kMaxEnvVars)
    return refuse("Command.env has more than " + std::to_string(rules::kMaxEnvVars) + " variables");
  std::map<std::string, std::string> env;
  for (const auto& [k, v] : c.env()) {
    if (!valid_env_name(k))
      return refuse("Command.env name '" + printable(k, 60) + "' is not [A-Za-z_][A-Za-z0-9_]*");
    bool listed = false;
    for (const auto& a : cfg_.allow_env) listed = listed || a == k;
    if (dangerous_env_name(k) && !listed)
      return refuse("Command.env " + k + " changes what the program loads or runs (allow it with --allow-env " + k +
                    ")");
    if (contains_nul(v) || v.size() > rules::kMaxEnvValueBytes)
      return refuse("Command.env " + k + ": the value has a NUL byte or is longer than " +
                    std::to_string(rules::kMaxEnvValueBytes) + " bytes");
    env[k] = v;
  }

  Admitted a;
  a.kind = Admitted::Kind::command;
  a.program = *program;
  a.args.assign(c.argv().begin() + 1, c.argv().end());
  a.env = std::move(env);
  std::string shown;
  for (const auto& s : a.argv()) shown += (shown.empty() ? "" : " ") + printable(s, 120);
  spdlog::warn("farm-agent {}: job {}: --allow-command: running command {}{}", ctx.worker, ctx.job_id, shown,
               a.env.empty() ? "" : " (with " + std::to_string(a.env.size()) + " environment variable(s))");
  return Admission{std::move(a), {}};
}

}  // namespace farm::agent
