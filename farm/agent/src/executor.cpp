#include "farm/agent/executor.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "farm/agent/serial.hpp"
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

namespace {

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

v1::JobResult infra(const std::string& msg) {
  v1::JobResult r;
  r.set_outcome(v1::OUTCOME_INFRA_ERROR);
  r.set_message(msg);
  return r;
}

std::chrono::milliseconds job_timeout(const JobContext& ctx) {
  return std::chrono::seconds(ctx.spec.timeout_s() ? ctx.spec.timeout_s() : 600);
}

// Base for executors that run a local command line (native, qemu-user, qemu-system).
class LocalExecutor : public Executor {
 public:
  explicit LocalExecutor(ExecutorConfig cfg) : cfg_(std::move(cfg)) {}

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

  std::string binary_for(const std::string& workload, const std::string& override_path) const {
    if (!override_path.empty()) return override_path;
    auto it = cfg_.binaries.find(workload);
    return it == cfg_.binaries.end() ? std::string() : it->second;
  }

  std::vector<std::string> supported_common() const {
    std::vector<std::string> w;
    if (cfg_.binaries.count("patch-stress")) w.push_back("patch-stress");
    if (cfg_.allow_command) w.push_back("command");
    return w;
  }

  // Workload -> argv (without any emulator prefix); empty + message on error.
  bool workload_argv(const JobContext& ctx, std::vector<std::string>* argv, std::map<std::string, std::string>* env,
                     std::string* err) const {
    const auto& w = ctx.spec.workload();
    if (w.has_patch_stress()) {
      std::string bin = binary_for("patch-stress", w.patch_stress().binary());
      if (bin.empty()) { *err = "no patch-stress binary configured on this agent"; return false; }
      if (!executable(bin)) { *err = "patch-stress binary " + bin + " is not executable"; return false; }
      *argv = patch_stress_argv(bin, w.patch_stress(), ctx.spec.seed());
      return true;
    }
    if (w.has_command()) {
      if (!cfg_.allow_command) { *err = "this agent does not accept command workloads (--allow-command)"; return false; }
      argv->assign(w.command().argv().begin(), w.command().argv().end());
      for (const auto& [k, v] : w.command().env()) (*env)[k] = v;
      return true;
    }
    *err = "workload type not supported by a " + kind() + " executor";
    return false;
  }

  ExecutorConfig cfg_;
};

class NativeExecutor final : public LocalExecutor {
 public:
  using LocalExecutor::LocalExecutor;
  std::string kind() const override { return "native"; }
  std::vector<std::string> workloads() const override { return supported_common(); }

  v1::JobResult run(JobContext& ctx) override {
    std::vector<std::string> argv;
    std::map<std::string, std::string> env;
    std::string err;
    if (!workload_argv(ctx, &argv, &env, &err)) return infra(err);
    return run_argv(ctx, std::move(argv), ctx.spec.workload().has_patch_stress(), std::move(env));
  }

  v1::JobResult health_check(JobContext& ctx) override {
    for (const auto& [w, bin] : cfg_.binaries)
      if (!executable(bin)) return infra(w + " binary " + bin + " is not executable");
    return run_argv(ctx, {"/bin/sh", "-c", "exit 0"}, false);
  }
};

class QemuUserExecutor final : public LocalExecutor {
 public:
  explicit QemuUserExecutor(ExecutorConfig cfg) : LocalExecutor(std::move(cfg)) {
    if (cfg_.qemu.empty()) cfg_.qemu = "qemu-" + (cfg_.arch.empty() ? std::string("riscv64") : cfg_.arch);
  }
  std::string kind() const override { return "qemu-user"; }
  std::vector<std::string> workloads() const override { return supported_common(); }

  std::vector<std::string> prefix() const {
    std::vector<std::string> p{cfg_.qemu};
    if (!cfg_.sysroot.empty()) p.insert(p.end(), {"-L", cfg_.sysroot});
    if (!cfg_.qemu_cpu.empty()) p.insert(p.end(), {"-cpu", cfg_.qemu_cpu});
    p.insert(p.end(), cfg_.qemu_args.begin(), cfg_.qemu_args.end());
    return p;
  }

  v1::JobResult run(JobContext& ctx) override {
    std::vector<std::string> argv;
    std::map<std::string, std::string> env;
    std::string err;
    if (!workload_argv(ctx, &argv, &env, &err)) return infra(err);
    auto full = prefix();
    full.insert(full.end(), argv.begin(), argv.end());
    return run_argv(ctx, std::move(full), ctx.spec.workload().has_patch_stress(), std::move(env));
  }

  v1::JobResult health_check(JobContext& ctx) override {
    for (const auto& [w, bin] : cfg_.binaries)
      if (!executable(bin)) return infra(w + " binary " + bin + " is not executable");
    auto r = run_argv(ctx, {cfg_.qemu, "--version"}, false);
    if (r.outcome() != v1::OUTCOME_PASS && r.outcome() != v1::OUTCOME_INFRA_ERROR) r.set_outcome(v1::OUTCOME_FAIL);
    return r;
  }
};

class QemuSystemExecutor final : public LocalExecutor {
 public:
  explicit QemuSystemExecutor(ExecutorConfig cfg) : LocalExecutor(std::move(cfg)) {
    if (cfg_.qemu.empty()) cfg_.qemu = "qemu-system-" + (cfg_.arch.empty() ? std::string("riscv64") : cfg_.arch);
  }
  std::string kind() const override { return "qemu-system"; }
  std::vector<std::string> workloads() const override {
    std::vector<std::string> w{"baremetal"};
    if (cfg_.allow_command) w.push_back("command");
    return w;
  }

  std::vector<std::string> boot_argv(const v1::BaremetalImage& b) const {
    std::vector<std::string> a{cfg_.qemu,
                               "-M", b.machine().empty() ? cfg_.machine : b.machine(),
                               "-smp", std::to_string(b.smp() ? b.smp() : cfg_.default_smp),
                               "-m", b.memory().empty() ? cfg_.memory : b.memory(),
                               "-nographic",
                               "-bios", cfg_.bios,
                               "-kernel", b.image()};
    if (!cfg_.qemu_cpu.empty()) a.insert(a.end(), {"-cpu", cfg_.qemu_cpu});
    a.insert(a.end(), cfg_.qemu_args.begin(), cfg_.qemu_args.end());
    a.insert(a.end(), b.extra_args().begin(), b.extra_args().end());
    return a;
  }

  v1::JobResult run(JobContext& ctx) override {
    const auto& w = ctx.spec.workload();
    if (w.has_baremetal()) {
      const auto& b = w.baremetal();
      if (::access(b.image().c_str(), R_OK) != 0) return infra("image " + b.image() + " is not readable on this agent");
      // Console output is the result: the image prints its JSON line and
      // leaves through the test device (exit status 0 = pass); a hang is a timeout.
      return run_argv(ctx, boot_argv(b), true, {}, "console");
    }
    std::vector<std::string> argv;
    std::map<std::string, std::string> env;
    std::string err;
    if (!workload_argv(ctx, &argv, &env, &err)) return infra(err);
    return run_argv(ctx, std::move(argv), false, std::move(env));
  }

  v1::JobResult health_check(JobContext& ctx) override {
    auto r = run_argv(ctx, {cfg_.qemu, "--version"}, false);
    if (r.outcome() != v1::OUTCOME_PASS && r.outcome() != v1::OUTCOME_INFRA_ERROR) r.set_outcome(v1::OUTCOME_FAIL);
    return r;
  }
};

// A board reached over ssh. The workload binary is copied with scp, run with
// ssh (its stdout, streamed back, carries the JSON result), and the scratch
// directory removed. An optional serial console is logged for the whole
// attempt; after a hang or a lost connection the board is power-cycled.
class SshExecutor final : public Executor {
 public:
  explicit SshExecutor(ExecutorConfig cfg) : cfg_(std::move(cfg)) {}
  std::string kind() const override { return "board"; }
  std::vector<std::string> workloads() const override {
    std::vector<std::string> w;
    if (cfg_.binaries.count("patch-stress")) w.push_back("patch-stress");
    if (cfg_.allow_command) w.push_back("command");
    return w;
  }

  v1::JobResult run(JobContext& ctx) override {
    std::unique_ptr<SerialConsole> serial;
    if (!cfg_.serial_device.empty()) {
      serial = std::make_unique<SerialConsole>(cfg_.serial_device, cfg_.serial_baud,
                                               [&ctx](std::string_view d) { if (ctx.output) ctx.output("serial", d); });
      std::string err;
      if (!serial->start(&err)) ctx.note("serial console unavailable: " + err);
    }
    auto r = run_on_board(ctx);
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
    a.push_back(cfg_.ssh_host);
    a.push_back(remote_cmd);
    return a;
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

  bool power_cycle_and_wait(JobContext& ctx, const std::string& reason) {
    if (cfg_.power_cycle.empty()) return false;
    ctx.note("power-cycling board: " + reason);
    ProcSpec ps;
    ps.argv = {"/bin/sh", "-c", cfg_.power_cycle};
    ps.env = {{"FARM_BOARD", cfg_.ssh_host}, {"FARM_JOB_ID", ctx.job_id}, {"FARM_REASON", reason}};
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

  v1::JobResult run_on_board(JobContext& ctx) {
    const auto& w = ctx.spec.workload();
    std::string dir = cfg_.remote_dir + "/" + ctx.job_id + "-" + std::to_string(ctx.attempt);
    std::vector<std::string> remote_argv;
    bool require_json = false;
    std::string local_bin;
    std::map<std::string, std::string> env;
    if (w.has_patch_stress()) {
      local_bin = w.patch_stress().binary();
      if (local_bin.empty()) {
        auto it = cfg_.binaries.find("patch-stress");
        if (it != cfg_.binaries.end()) local_bin = it->second;
      }
      if (local_bin.empty()) return infra("no patch-stress binary configured on this agent");
      if (::access(local_bin.c_str(), R_OK) != 0) return infra("patch-stress binary " + local_bin + " not readable");
      remote_argv = patch_stress_argv("./patch-stress", w.patch_stress(), ctx.spec.seed());
      require_json = true;
    } else if (w.has_command()) {
      if (!cfg_.allow_command) return infra("this agent does not accept command workloads (--allow-command)");
      remote_argv.assign(w.command().argv().begin(), w.command().argv().end());
      for (const auto& [k, v] : w.command().env()) env[k] = v;
    } else {
      return infra("workload type not supported by the ssh executor");
    }

    // 1. scratch dir on the board, 2. copy the workload
    if (auto r = ssh_cmd(ctx, "mkdir -p " + shell_quote(dir), 60s); r.outcome() != v1::OUTCOME_PASS) {
      if (!ctx.cancel || !ctx.cancel->cancelled()) power_cycle_and_wait(ctx, "board unreachable: " + r.message());
      return r;
    }
    if (!local_bin.empty()) {
      auto p = local(ctx, {cfg_.scp, "-q", local_bin, cfg_.ssh_host + ":" + dir + "/patch-stress"}, 300s);
      if (!p.ok()) return infra("scp of the workload failed: exit " + std::to_string(p.exit_code) + " " + p.error);
    }
    // 3. run it; stdout streams back and carries the JSON result
    std::string cmd = "cd " + shell_quote(dir) + " && ";
    for (const auto& [k, v] : env) cmd += k + "=" + shell_quote(v) + " ";
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
    auto r = result_from_process(p, require_json);
    if (p.started && !p.timed_out && !p.cancelled && p.exit_code == 255 && r.result_json().empty()) {
      // ssh itself failed (connection lost / board died): infrastructure
      r.set_outcome(v1::OUTCOME_INFRA_ERROR);
      r.set_message("ssh to " + cfg_.ssh_host + " failed (exit 255): " + farm::tail(p.err, 3, 400));
      power_cycle_and_wait(ctx, "connection lost during the job");
      return r;
    }
    if (p.timed_out) {
      // A hung board: get it back for the next job.
      if (!power_cycle_and_wait(ctx, "job timed out (board hung?)") && !cfg_.power_cycle.empty())
        r.set_message(r.message() + "; board did not come back after a power cycle");
      else if (!cfg_.power_cycle.empty())
        r.set_message(r.message() + "; board power-cycled");
      return r;
    }
    // 4. clean up (best effort)
    if (!p.cancelled) (void)ssh_cmd(ctx, "rm -rf " + shell_quote(dir), 60s);
    return r;
  }

  ExecutorConfig cfg_;
};

}  // namespace

std::unique_ptr<Executor> make_executor(const ExecutorConfig& cfg) {
  if (cfg.kind == "native") return std::make_unique<NativeExecutor>(cfg);
  if (cfg.kind == "qemu-user") return std::make_unique<QemuUserExecutor>(cfg);
  if (cfg.kind == "qemu-system") return std::make_unique<QemuSystemExecutor>(cfg);
  if (cfg.kind == "ssh" || cfg.kind == "board") {
    if (cfg.ssh_host.empty()) throw std::invalid_argument("the ssh executor needs --ssh-host");
    return std::make_unique<SshExecutor>(cfg);
  }
  throw std::invalid_argument("unknown executor kind '" + cfg.kind + "' (native, qemu-user, qemu-system, ssh)");
}

}  // namespace farm::agent
