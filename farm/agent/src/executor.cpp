#include "farm/agent/executor.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "farm/agent/policy.hpp"
#include "farm/agent/serial.hpp"
#include "farm/agent/vboard.hpp"
#include "farm/common/result.hpp"

namespace farm::agent {

using namespace std::chrono_literals;

std::vector<std::string> patch_stress_argv(const std::string& binary, const v1::PatchStress& p, uint64_t seed) {
  std::vector<std::string> a{binary};
  if (p.threads()) a.insert(a.end(), {"--threads", std::to_string(p.threads())});
  if (p.functions()) a.insert(a.end(), {"--functions", std::to_string(p.functions())});
  if (p.batches()) a.insert(a.end(), {"--batches", std::to_string(p.batches())});
  if (p.duration_s() > 0) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", p.duration_s());
    a.insert(a.end(), {"--duration", b});
  }
  a.insert(a.end(), {"--seed", std::to_string(seed)});
  if (!p.writer().empty()) a.insert(a.end(), {"--writer", p.writer()});
  if (!p.sync().empty()) a.insert(a.end(), {"--sync", p.sync()});
  if (!p.probe_kind().empty()) a.insert(a.end(), {"--kind", p.probe_kind()});
  if (!p.sites().empty()) a.insert(a.end(), {"--sites", p.sites()});
  if (p.exit_probes()) a.push_back("--exit-probes");
  for (const auto& e : p.extra_args()) a.push_back(e);
  return a;
}

v1::JobResult result_from_process(const ProcResult& p, bool require_json, std::string_view output_for_tail) {
  v1::JobResult r;
  r.set_duration_s(p.duration_s);
  r.set_exit_code(p.exit_code);
  r.set_term_signal(p.term_signal);
  std::string tail_src = output_for_tail.empty() ? p.out + p.err : std::string(output_for_tail);
  r.set_log_tail(farm::tail(tail_src, 40, 8192));
  if (!p.started) {
    r.set_outcome(v1::OUTCOME_INFRA_ERROR);
    r.set_message(p.error);
    return r;
  }
  std::string raw;
  auto j = farm::last_json_object(p.out, &raw);
  if (j) {
    r.set_result_json(raw);
    farm::fill_result_numbers(*j, &r);
  }
  // The verdict is the workload's own text: whatever it printed (control
  // characters, megabytes), the completion farmd accepts must still be sent,
  // or a hostile workload would turn every attempt into a lost lease and get
  // this worker quarantined. Anything but a short printable word becomes
  // "invalid", which fails the job below (its raw text is in result_json).
  {
    const std::string& v = r.verdict();
    bool word = !v.empty() && v.size() <= 32;
    for (unsigned char c : v) word = word && c > 0x20 && c < 0x7f;
    if (!v.empty() && !word) r.set_verdict("invalid");
  }
  if (p.cancelled) {
    r.set_outcome(v1::OUTCOME_CANCELLED);
    r.set_message("cancelled");
    return r;
  }
  if (p.timed_out) {
    r.set_outcome(v1::OUTCOME_TIMEOUT);
    r.set_message("timed out after " + std::to_string(static_cast<int>(p.duration_s)) + " s");
    return r;
  }
  if (p.term_signal) {
    r.set_outcome(v1::OUTCOME_FAIL);
    r.set_message(std::string("killed by signal ") + std::to_string(p.term_signal) + " (" +
                  ::strsignal(p.term_signal) + ")");
    return r;
  }
  if (!j) {
    if (require_json || p.exit_code != 0) {
      r.set_outcome(v1::OUTCOME_FAIL);
      r.set_message("exit code " + std::to_string(p.exit_code) + (require_json ? ", no JSON result line" : ""));
    } else {
      r.set_outcome(v1::OUTCOME_PASS);
      r.set_message("exit code 0");
    }
    return r;
  }
  const std::string& v = r.verdict();
  if (p.exit_code == 0 && (v == "pass" || (v.empty() && !require_json))) {
    r.set_outcome(v1::OUTCOME_PASS);
    r.set_message("pass");
  } else {
    r.set_outcome(v1::OUTCOME_FAIL);
    r.set_message("verdict " + (v.empty() ? std::string("missing") : v) + ", exit code " +
                  std::to_string(p.exit_code));
  }
  return r;
}

v1::JobResult refused_result(const std::string& why) {
  v1::JobResult r;
  r.set_outcome(v1::OUTCOME_REFUSED);  // terminal, held against no one (see executor.hpp)
  r.set_message(why.rfind("refused", 0) == 0 ? why : "refused: " + why);
  r.set_exit_code(-1);
  return r;
}

bool is_refused(const v1::JobResult& r) {
  return r.outcome() == v1::OUTCOME_REFUSED && r.message().rfind("refused", 0) == 0;
}

namespace {

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

v1::JobResult infra(const std::string& msg) {
  v1::JobResult r;
  r.set_outcome(v1::OUTCOME_INFRA_ERROR);
  r.set_message(msg);
  return r;
}

// A refused job: logged on the agent and in the job's own output.
v1::JobResult refuse(JobContext& ctx, const std::string& why) {
  spdlog::warn("farm-agent {}: job {} attempt {}: {}", ctx.worker, ctx.job_id, ctx.attempt, why);
  ctx.note(why);
  return refused_result(why);
}

std::chrono::milliseconds job_timeout(const JobContext& ctx) {
  return std::chrono::seconds(ctx.spec.timeout_s() ? ctx.spec.timeout_s() : 600);
}

// The emulator for a target arch: the operator's --qemu, else qemu-<arch> /
// qemu-system-<arch> from PATH. The arch is the operator's --arch.
std::string default_emulator(const ExecutorConfig& cfg, const char* prefix) {
  if (!cfg.qemu.empty()) return cfg.qemu;
  std::string arch = cfg.arch.empty() ? std::string("riscv64") : cfg.arch;
  if (!is_safe_name(arch)) throw std::invalid_argument("--arch " + arch + ": not an architecture name");
  return prefix + arch;
}

// Base for executors that run a local command line (native, qemu-user, qemu-system).
class LocalExecutor : public Executor {
 public:
  explicit LocalExecutor(ExecutorConfig cfg) : cfg_(std::move(cfg)), policy_(cfg_, CommandHost::local) {}

 protected:
  v1::JobResult run_argv(JobContext& ctx, std::vector<std::string> argv, bool require_json,
                         std::map<std::string, std::string> env = {}, const char* stream = nullptr) {
    ProcSpec ps;
    ps.argv = std::move(argv);
    ps.env = std::move(env);
    ps.env["FARM_JOB_ID"] = ctx.job_id;
    ps.env["FARM_ATTEMPT"] = std::to_string(ctx.attempt);
    ps.env["FARM_SEED"] = std::to_string(ctx.spec.seed());
    ps.cwd = ctx.work_dir;
    ps.timeout = job_timeout(ctx);
    ps.kill_grace = cfg_.kill_grace;
    ctx.note("$ " + shell_join(ps.argv));
    std::string s = stream ? stream : "";
    auto out = [&](std::string_view st, std::string_view d) {
      if (ctx.output) ctx.output(s.empty() || st != "stdout" ? st : std::string_view(s), d);
    };
    auto p = run_process(ps, out, ctx.cancel);
    return result_from_process(p, require_json);
  }

  // Runs an admitted patch-stress or command workload, behind `prefix` (an emulator).
  v1::JobResult run_admitted(JobContext& ctx, const Admitted& a, std::vector<std::string> prefix = {}) {
    // The operator's file went away since start-up: this agent is broken (infrastructure).
    if (!executable(a.program)) return infra(a.program + " is not executable on this agent");
    prefix.insert(prefix.end(), a.program);
    prefix.insert(prefix.end(), a.args.begin(), a.args.end());
    return run_argv(ctx, std::move(prefix), a.require_json, a.env);
  }

  std::vector<std::string> supported_common() const {
    std::vector<std::string> w;
    if (policy_.runs_patch_stress()) w.push_back("patch-stress");
    if (policy_.runs_commands()) w.push_back("command");
    return w;
  }

  v1::JobResult check_binaries() const {
    for (const auto& [w, bin] : policy_.binaries())
      if (!executable(bin)) return infra(w + " binary " + bin + " is not executable");
    v1::JobResult r;
    r.set_outcome(v1::OUTCOME_PASS);
    return r;
  }

  ExecutorConfig cfg_;
  Policy policy_;
};

class NativeExecutor final : public LocalExecutor {
 public:
  using LocalExecutor::LocalExecutor;
  std::string kind() const override { return "native"; }
  std::vector<std::string> workloads() const override { return supported_common(); }

  v1::JobResult run(JobContext& ctx) override {
    auto adm = policy_.admit(ctx);
    if (!adm) return refuse(ctx, adm.refusal);
    if (adm.job->kind == Admitted::Kind::baremetal)
      return refuse(ctx, "refused: a bare-metal image runs on qemu-system agents, not on a native one");
    return run_admitted(ctx, *adm.job);
  }

  v1::JobResult health_check(JobContext& ctx) override {
    if (auto r = check_binaries(); r.outcome() != v1::OUTCOME_PASS) return r;
    return run_argv(ctx, {"/bin/sh", "-c", "exit 0"}, false);
  }
};

class QemuUserExecutor final : public LocalExecutor {
 public:
  explicit QemuUserExecutor(ExecutorConfig cfg) : LocalExecutor(std::move(cfg)) {
    cfg_.qemu = default_emulator(cfg_, "qemu-");
  }
  std::string kind() const override { return "qemu-user"; }
  std::vector<std::string> workloads() const override { return supported_common(); }

  // Operator configuration only: emulator, sysroot, cpu, extra emulator arguments.
  std::vector<std::string> prefix() const {
    std::vector<std::string> p{cfg_.qemu};
    if (!cfg_.sysroot.empty()) p.insert(p.end(), {"-L", cfg_.sysroot});
    if (!cfg_.qemu_cpu.empty()) p.insert(p.end(), {"-cpu", cfg_.qemu_cpu});
    p.insert(p.end(), cfg_.qemu_args.begin(), cfg_.qemu_args.end());
    return p;
  }

  v1::JobResult run(JobContext& ctx) override {
    auto adm = policy_.admit(ctx);
    if (!adm) return refuse(ctx, adm.refusal);
    if (adm.job->kind == Admitted::Kind::baremetal)
      return refuse(ctx, "refused: a bare-metal image runs on qemu-system agents, not on a qemu-user one");
    // The emulator stops parsing its own options at the program: the
    // workload's arguments cannot reach qemu.
    return run_admitted(ctx, *adm.job, prefix());
  }

  v1::JobResult health_check(JobContext& ctx) override {
    if (auto r = check_binaries(); r.outcome() != v1::OUTCOME_PASS) return r;
    auto r = run_argv(ctx, {cfg_.qemu, "--version"}, false);
    if (r.outcome() != v1::OUTCOME_PASS && r.outcome() != v1::OUTCOME_INFRA_ERROR) r.set_outcome(v1::OUTCOME_FAIL);
    return r;
  }
};

class QemuSystemExecutor final : public LocalExecutor {
 public:
  explicit QemuSystemExecutor(ExecutorConfig cfg) : LocalExecutor(std::move(cfg)) {
    cfg_.qemu = default_emulator(cfg_, "qemu-system-");
  }
  std::string kind() const override { return "qemu-system"; }
  std::vector<std::string> workloads() const override {
    std::vector<std::string> w;
    if (policy_.runs_baremetal()) w.push_back("baremetal");
    if (policy_.runs_commands()) w.push_back("command");
    return w;
  }

  // The emulator command line: operator configuration plus the admitted
  // image path (from the operator's --image list), machine, smp, memory, the
  // checked kernel command line and the extra arguments that matched the
  // operator's allow-list.
  std::vector<std::string> boot_argv(const Admitted& b) const {
    std::vector<std::string> a{cfg_.qemu,
                               "-M", b.machine,
                               "-smp", std::to_string(b.smp),
                               "-m", b.memory,
                               "-nographic",
                               "-bios", cfg_.bios,
                               "-kernel", b.image_path};
    if (!cfg_.qemu_cpu.empty()) a.insert(a.end(), {"-cpu", cfg_.qemu_cpu});
    if (!b.append.empty()) a.insert(a.end(), {"-append", b.append});
    a.insert(a.end(), cfg_.qemu_args.begin(), cfg_.qemu_args.end());
    a.insert(a.end(), b.emulator_args.begin(), b.emulator_args.end());
    return a;
  }

  v1::JobResult run(JobContext& ctx) override {
    auto adm = policy_.admit(ctx);
    if (!adm) return refuse(ctx, adm.refusal);
    const Admitted& a = *adm.job;
    if (a.kind == Admitted::Kind::baremetal) {
      if (::access(a.image_path.c_str(), R_OK) != 0)
        return infra("image " + a.image_name + " (" + a.image_path + ") is not readable on this agent");
      // Console output is the result: the image prints its JSON line and
      // leaves through the test device (exit status 0 = pass); a hang is a timeout.
      return run_argv(ctx, boot_argv(a), true, {}, "console");
    }
    if (a.kind == Admitted::Kind::command) return run_admitted(ctx, a);
    return refuse(ctx, "refused: a qemu-system agent runs bare-metal images, not patch-stress");
  }

  v1::JobResult health_check(JobContext& ctx) override {
    auto r = run_argv(ctx, {cfg_.qemu, "--version"}, false);
    if (r.outcome() != v1::OUTCOME_PASS && r.outcome() != v1::OUTCOME_INFRA_ERROR) r.set_outcome(v1::OUTCOME_FAIL);
    return r;
  }
};

// Operator settings of the ssh executor that end up on command lines: the
// host is an ssh operand (never an option), the remote directory is part of
// the board's shell commands (and of scp's remote path).
void check_ssh_config(const ExecutorConfig& cfg) {
  if (cfg.ssh_host.empty()) throw std::invalid_argument("the ssh executor needs --ssh-host");
  for (char c : cfg.ssh_host)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("@._:-[]%", c)))
      throw std::invalid_argument("--ssh-host " + printable(cfg.ssh_host) + ": not [user@]host");
  if (cfg.ssh_host[0] == '-') throw std::invalid_argument("--ssh-host must not start with '-'");
  const std::string& d = cfg.remote_dir;
  if (d.empty() || d[0] != '/') throw std::invalid_argument("--remote-dir must be an absolute path");
  for (char c : d)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("/._+-", c)))
      throw std::invalid_argument("--remote-dir " + printable(d) + ": only [A-Za-z0-9/._+-] please");
  if (d.find("/../") != std::string::npos || (d.size() >= 3 && d.compare(d.size() - 3, 3, "/..") == 0))
    throw std::invalid_argument("--remote-dir must not contain '..'");
}

ExecutorConfig checked(ExecutorConfig cfg) {
  check_ssh_config(cfg);
  return cfg;
}

// A board reached over ssh. The workload binary is copied with scp, run with
// ssh (its stdout, streamed back, carries the JSON result), and the scratch
// directory removed. An optional serial console is logged for the whole
// attempt; after a hang or a lost connection the board is power-cycled.
//
// Every remote command is one string for the board's shell: each word in it
// is shell_quote()d, and the words are the operator's (remote dir), checked
// names (job id, env names), numbers, or admitted arguments.
class SshExecutor final : public Executor {
 public:
  explicit SshExecutor(ExecutorConfig cfg) : cfg_(checked(std::move(cfg))), policy_(cfg_, CommandHost::remote) {}
  std::string kind() const override { return "board"; }
  std::vector<std::string> workloads() const override {
    std::vector<std::string> w;
    if (policy_.runs_patch_stress()) w.push_back("patch-stress");
    if (policy_.runs_commands()) w.push_back("command");
    return w;
  }

  v1::JobResult run(JobContext& ctx) override {
    // Admission first: a refused job does not even touch the board.
    auto adm = policy_.admit(ctx);
    if (!adm) return refuse(ctx, adm.refusal);
    if (adm.job->kind == Admitted::Kind::baremetal)
      return refuse(ctx, "refused: this board agent does not boot bare-metal images");
    std::unique_ptr<SerialConsole> serial;
    if (!cfg_.serial_device.empty()) {  // the operator's device, never the job's
      serial = std::make_unique<SerialConsole>(cfg_.serial_device, cfg_.serial_baud,
                                               [&ctx](std::string_view d) { if (ctx.output) ctx.output("serial", d); });
      std::string err;
      if (!serial->start(&err)) ctx.note("serial console unavailable: " + err);
    }
    auto r = run_on_board(ctx, *adm.job);
    if (serial) serial->stop();
    return r;
  }

  v1::JobResult health_check(JobContext& ctx) override {
    auto r = ssh_cmd(ctx, "true", 30s);
    if (r.outcome() == v1::OUTCOME_PASS) return r;
    ctx.note("board unreachable (" + r.message() + ")");
    if (cfg_.power_cycle.empty()) return r;
    if (!power_cycle_and_wait(ctx, "health check: board unreachable")) return infra("board did not come back after a power cycle");
    return ssh_cmd(ctx, "true", 30s);
  }

 private:
  std::vector<std::string> ssh_argv(const std::string& remote_cmd) const {
    std::vector<std::string> a{cfg_.ssh};
    a.insert(a.end(), cfg_.ssh_opts.begin(), cfg_.ssh_opts.end());
    a.push_back("--");  // the host is an operand, whatever it looks like
    a.push_back(cfg_.ssh_host);
    a.push_back(remote_cmd);
    return a;
  }

  // The connection options for scp: the operator's ssh options (port, key,
  // known hosts, BatchMode...) in scp's spelling. -o, -i, -F, -J, -c and the
  // flags -4 -6 -A -C -q -v mean the same to both; ssh -p PORT is scp -P PORT
  // (scp -p preserves times); the other ssh letters that concern the
  // connection become -o Name=value (scp -l limits bandwidth, -S names the
  // ssh program, -D is an sftp server path); options of interactive sessions
  // and forwardings (-t, -N, -L, -R, -E, ...) do not apply to a copy and are
  // left out.
  std::vector<std::string> scp_opts() const {
    static const std::map<char, std::string> as_o = {{'l', "User"},          {'S', "ControlPath"},
                                                     {'b', "BindAddress"},   {'B', "BindInterface"},
                                                     {'m', "MACs"},          {'I', "PKCS11Provider"}};
    std::vector<std::string> out;
    const auto& o = cfg_.ssh_opts;
    for (size_t i = 0; i < o.size(); ++i) {
      const std::string& a = o[i];
      if (a.size() < 2 || a[0] != '-') {
        out.push_back(a);  // not an option: as given
      } else if (std::strchr("BbcDEeFIiJLlmOoPpQRSWw", a[1])) {  // takes an argument: "-p 22" or "-p22"
        std::string v = a.size() > 2 ? a.substr(2) : (i + 1 < o.size() ? o[++i] : std::string());
        if (a[1] == 'p') out.insert(out.end(), {"-P", v});
        else if (std::strchr("oiFJc", a[1])) out.insert(out.end(), {a.substr(0, 2), v});
        else if (auto it = as_o.find(a[1]); it != as_o.end()) out.insert(out.end(), {"-o", it->second + "=" + v});
      } else if (a.find_first_not_of("46ACqv", 1) == std::string::npos) {
        out.push_back(a);
      }
    }
    return out;
  }

  ProcResult local(JobContext& ctx, std::vector<std::string> argv, std::chrono::milliseconds timeout,
                   bool stream_stdout = false) {
    ProcSpec ps;
    ps.argv = std::move(argv);
    ps.cwd = ctx.work_dir;
    ps.timeout = timeout;
    ps.kill_grace = cfg_.kill_grace;
    ctx.note("$ " + shell_join(ps.argv));
    auto out = [&](std::string_view st, std::string_view d) {
      if (!ctx.output) return;
      if (st == "stdout" && !stream_stdout) return;
      ctx.output(st, d);
    };
    return run_process(ps, out, ctx.cancel);
  }

  v1::JobResult ssh_cmd(JobContext& ctx, const std::string& cmd, std::chrono::milliseconds timeout) {
    auto p = local(ctx, ssh_argv(cmd), timeout);
    if (!p.started) return infra(p.error);
    if (p.timed_out) return infra("ssh " + cmd + ": timed out");
    if (p.exit_code != 0)
      return infra("ssh " + cmd + ": exit " + std::to_string(p.exit_code) + ": " + farm::tail(p.err, 3, 400));
    v1::JobResult r;
    r.set_outcome(v1::OUTCOME_PASS);
    r.set_message("ok");
    return r;
  }

  // The power switch is the operator's shell command (--power-cycle); a job
  // cannot choose or change it. What it learns about the job comes in
  // environment variables, never interpolated into the command.
  bool power_cycle_and_wait(JobContext& ctx, const std::string& reason) {
    if (cfg_.power_cycle.empty()) return false;
    ctx.note("power-cycling board: " + reason);
    ProcSpec ps;
    ps.argv = {"/bin/sh", "-c", cfg_.power_cycle};
    ps.env = {{"FARM_BOARD", cfg_.ssh_host}, {"FARM_JOB_ID", ctx.job_id}, {"FARM_REASON", printable(reason, 400)}};
    ps.timeout = 120s;
    auto p = run_process(ps, [&](std::string_view, std::string_view d) { if (ctx.output) ctx.output("agent", d); },
                         nullptr);
    if (!p.ok()) {
      ctx.note("power-cycle command failed (exit " + std::to_string(p.exit_code) + ")");
      return false;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(cfg_.boot_timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      auto q = local(ctx, ssh_argv("true"), 30s);
      if (q.ok()) {
        ctx.note("board is back");
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(cfg_.boot_poll_ms));
    }
    ctx.note("board did not come back within " + std::to_string(cfg_.boot_timeout_s) + " s");
    return false;
  }

  v1::JobResult run_on_board(JobContext& ctx, const Admitted& a) {
    // The job id was checked by the agent (one path component): the
    // directory stays under the operator's --remote-dir.
    std::string dir = cfg_.remote_dir + "/" + ctx.job_id + "-" + std::to_string(ctx.attempt);
    std::vector<std::string> remote_argv;
    std::string local_bin;
    if (a.kind == Admitted::Kind::patch_stress) {
      local_bin = a.program;  // the operator's binary, copied to the board
      if (::access(local_bin.c_str(), R_OK) != 0) return infra("patch-stress binary " + local_bin + " not readable");
      remote_argv = {"./patch-stress"};
      remote_argv.insert(remote_argv.end(), a.args.begin(), a.args.end());
    } else {
      remote_argv = a.argv();  // argv[0] is on the operator's list of board programs
    }

    // 1. scratch dir on the board, 2. copy the workload
    if (auto r = ssh_cmd(ctx, "mkdir -p " + shell_quote(dir), 60s); r.outcome() != v1::OUTCOME_PASS) {
      if (!ctx.cancel || !ctx.cancel->cancelled()) power_cycle_and_wait(ctx, "board unreachable: " + r.message());
      return r;
    }
    if (!local_bin.empty()) {
      // local_bin is absolute (no "host:" reading), the remote path is the checked dir.
      std::vector<std::string> scp{cfg_.scp, "-q"};
      auto opts = scp_opts();
      scp.insert(scp.end(), opts.begin(), opts.end());
      scp.insert(scp.end(), {"--", local_bin, cfg_.ssh_host + ":" + dir + "/patch-stress"});
      auto p = local(ctx, std::move(scp), 300s);
      if (!p.ok())
        return infra("scp of the workload to " + cfg_.ssh_host + " failed: exit " + std::to_string(p.exit_code) + " " +
                     p.error + farm::tail(p.err, 3, 400));
    }
    // 3. run it; stdout streams back and carries the JSON result
    std::string cmd = "cd " + shell_quote(dir) + " && ";
    for (const auto& [k, v] : a.env) cmd += k + "=" + shell_quote(v) + " ";  // names checked: [A-Za-z_][A-Za-z0-9_]*
    cmd += "FARM_JOB_ID=" + shell_quote(ctx.job_id) + " FARM_SEED=" + std::to_string(ctx.spec.seed()) + " ";
    cmd += "exec " + shell_join(remote_argv);
    ProcSpec ps;
    ps.argv = ssh_argv(cmd);
    ps.cwd = ctx.work_dir;
    ps.timeout = job_timeout(ctx);
    ps.kill_grace = cfg_.kill_grace;
    ctx.note("$ " + shell_join(ps.argv));
    auto p = run_process(ps, [&](std::string_view st, std::string_view d) { if (ctx.output) ctx.output(st, d); },
                         ctx.cancel);
    auto r = result_from_process(p, a.require_json);
    if (p.started && !p.timed_out && !p.cancelled && p.exit_code == 255 && r.result_json().empty()) {
      // ssh itself failed (connection lost / board died): infrastructure
      r.set_outcome(v1::OUTCOME_INFRA_ERROR);
      r.set_message("ssh to " + cfg_.ssh_host + " failed (exit 255): " + farm::tail(p.err, 3, 400));
      power_cycle_and_wait(ctx, "connection lost during the job");
      return r;
    }
    if (p.timed_out) {
      // A hung board: get it back for the next job.
      if (!power_cycle_and_wait(ctx, "job timed out (board hung?)") && !cfg_.power_cycle.empty()) {
        r.set_message(r.message() + "; board did not come back after a power cycle");
      } else if (!cfg_.power_cycle.empty()) {
        r.set_message(r.message() + "; board power-cycled");
        // The board is back: its storage survived the power cycle (a /tmp on
        // disk), so the job's directory is removed as after any other job.
        (void)ssh_cmd(ctx, "rm -rf " + shell_quote(dir), 60s);
      }
      return r;
    }
    // 4. clean up (best effort)
    if (!p.cancelled) (void)ssh_cmd(ctx, "rm -rf " + shell_quote(dir), 60s);
    return r;
  }

  ExecutorConfig cfg_;
  Policy policy_;
};

}  // namespace

std::unique_ptr<Executor> make_executor(const ExecutorConfig& cfg) {
  if (cfg.kind == "native") return std::make_unique<NativeExecutor>(cfg);
  if (cfg.kind == "qemu-user") return std::make_unique<QemuUserExecutor>(cfg);
  if (cfg.kind == "qemu-system") return std::make_unique<QemuSystemExecutor>(cfg);
  if (cfg.kind == "ssh" || cfg.kind == "board") return std::make_unique<SshExecutor>(cfg);
  if (cfg.kind == "vboard") return std::make_unique<VBoardExecutor>(cfg);  // vboard_executor.cpp
  throw std::invalid_argument("unknown executor kind '" + cfg.kind + "' (native, qemu-user, qemu-system, ssh, vboard)");
}

}  // namespace farm::agent
