// farm-agent: runs patch farm jobs on this machine, an emulator or a board.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>
#include <thread>

#include "farm/agent/agent.hpp"
#include "farm/common/util.hpp"

int main(int argc, char** argv) {
  farm::agent::AgentConfig cfg;
  auto& ex = cfg.exec;
  std::string token_file, log_level = "info", patch_stress;
  std::vector<std::string> labels, binaries, ssh_opts;
  uint32_t cores = 0, slots = 1;
  bool exit_with_parent = false;
  std::string arch, isa, kernel;

  CLI::App app{"farm-agent: runs patch farm jobs (connects to farmd; farmd never dials out)"};
  app.add_option("--server", cfg.channel.address, "farmd address host:port")->capture_default_str();
  app.add_option("--token", cfg.channel.token, "agent bearer token (or FARM_AGENT_TOKEN)")->envname("FARM_AGENT_TOKEN");
  app.add_option("--token-file", token_file, "read the agent token from this file");
  app.add_flag("--tls", cfg.channel.tls, "connect with TLS (system roots unless --ca)");
  app.add_option("--ca", cfg.channel.ca_file, "PEM CA certificate to verify farmd (implies --tls)");
  app.add_option("--tls-server-name", cfg.channel.server_name, "name expected in farmd's certificate");
  app.add_option("--name", cfg.name, "unique worker name (default: <hostname>-<kind>)");
  app.add_option("--executor", ex.kind, "native | qemu-user | qemu-system | ssh")->capture_default_str();
  app.add_option("--arch", arch, "target architecture (default: this machine for native, riscv64 for qemu)");
  app.add_option("--isa", isa, "ISA string, e.g. rv64gc, rv64g");
  app.add_option("--label", labels, "board label key=value (repeatable)");
  app.add_option("--cores", cores, "cores/harts offered (default: detected)");
  app.add_option("--slots", slots, "jobs run concurrently")->capture_default_str();
  app.add_option("--kernel", kernel, "kernel release to report (boards)");
  app.add_option("--patch-stress", patch_stress, "patch-stress binary for this target");
  app.add_option("--binary", binaries, "workload=path (repeatable), e.g. patch-stress=/opt/ps");
  app.add_flag("--allow-command", ex.allow_command, "accept arbitrary command workloads");
  app.add_option("--work-dir", cfg.work_dir, "scratch directory");
  app.add_option("--acquire-wait-ms", cfg.acquire_wait_ms, "long-poll length")->capture_default_str();
  app.add_option("--kill-grace-ms", [&](const CLI::results_t& r) { ex.kill_grace = std::chrono::milliseconds(std::stol(r[0])); return true; },
                 "SIGTERM -> SIGKILL grace on timeout/cancel");
  // qemu
  app.add_option("--qemu", ex.qemu, "emulator binary (default qemu-<arch> / qemu-system-<arch>)");
  app.add_option("--qemu-cpu", ex.qemu_cpu, "emulator -cpu");
  app.add_option("--sysroot", ex.sysroot, "qemu-user -L sysroot (dynamic cross binaries)");
  app.add_option("--machine", ex.machine, "qemu-system -M")->capture_default_str();
  app.add_option("--bios", ex.bios, "qemu-system -bios")->capture_default_str();
  app.add_option("--memory", ex.memory, "qemu-system -m")->capture_default_str();
  app.add_option("--smp", ex.default_smp, "qemu-system -smp when the job sets none")->capture_default_str();
  app.add_option("--qemu-arg", ex.qemu_args, "extra emulator argument (repeatable)");
  // ssh board
  app.add_option("--ssh-host", ex.ssh_host, "[user@]board for the ssh executor");
  app.add_option("--ssh", ex.ssh, "ssh client")->capture_default_str();
  app.add_option("--scp", ex.scp, "scp client")->capture_default_str();
  app.add_option("--ssh-opt", ssh_opts, "ssh option (repeatable; replaces the defaults)");
  app.add_option("--remote-dir", ex.remote_dir, "scratch directory on the board")->capture_default_str();
  app.add_option("--serial", ex.serial_device, "board serial console device (logged during jobs)");
  app.add_option("--baud", ex.serial_baud, "serial baud rate")->capture_default_str();
  app.add_option("--power-cycle", ex.power_cycle, "shell command that power-cycles the board");
  app.add_option("--boot-timeout", ex.boot_timeout_s, "seconds to wait for the board after a power cycle")
      ->capture_default_str();
  app.add_option("--boot-poll-ms", ex.boot_poll_ms, "ssh probe interval while waiting for the board");
  app.add_flag("--exit-with-parent", exit_with_parent, "terminate when the parent process dies (tests)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (!farm::init_service_process(log_level, exit_with_parent)) return 1;
  try {
    if (!token_file.empty()) cfg.channel.token = farm::trim(farm::read_file(token_file));
    ex.arch = arch;
    if (!patch_stress.empty()) ex.binaries["patch-stress"] = patch_stress;
    for (const auto& b : binaries) {
      auto eq = b.find('=');
      if (eq == std::string::npos) throw std::invalid_argument("--binary expects workload=path, got " + b);
      ex.binaries[b.substr(0, eq)] = b.substr(eq + 1);
    }
    if (!ssh_opts.empty()) ex.ssh_opts = ssh_opts;
    cfg.caps.set_arch(arch);
    cfg.caps.set_isa(isa);
    cfg.caps.set_cores(cores);
    cfg.caps.set_slots(std::max(1u, slots));
    cfg.caps.set_kernel(kernel);
    for (const auto& l : labels) {
      auto eq = l.find('=');
      if (eq == std::string::npos) throw std::invalid_argument("--label expects key=value, got " + l);
      (*cfg.caps.mutable_labels())[l.substr(0, eq)] = l.substr(eq + 1);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    farm::agent::Agent agent(cfg);
    agent.start();
    std::thread sig([&] {
      int s = 0;
      sigwait(&set, &s);
      spdlog::info("farm-agent: signal {}, stopping (running jobs are handed back)", s);
      agent.stop();
    });
    sig.detach();
    agent.wait();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "farm-agent: " << e.what() << "\n";
    return 2;
  }
}
