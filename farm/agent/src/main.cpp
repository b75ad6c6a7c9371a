// farm-agent: runs patch farm jobs on this machine, an emulator or a board.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>
#include <regex>
#include <thread>

#include "farm/agent/agent.hpp"
#include "farm/agent/policy.hpp"
#include "farm/common/util.hpp"

namespace {

const char* kFooter = R"(What the agent runs is decided here, never by a job (jobs come from client tokens):
  * patch-stress jobs run the --patch-stress binary (or --binary patch-stress@ISA=PATH when the
    job's selector asks for that ISA); a job that names a binary (PatchStress.binary) is refused.
    Its arguments come from the typed fields, each checked: threads 1-256, functions 1-256,
    batches <= 100000000, duration_s finite in [0, 86400] (not with batches), writer
    mprotect|procmem|default, sync default|membarrier|flush_icache|signal, probe_kind
    jump|trap|auto, sites entry|body, exit_probes (call probes: --exit-probes, entry sites
    only); empty or 0: the workload's default.
  * bare-metal jobs name an --image NAME=PATH (never a path); machine is --machine or an
    --allow-machine, memory like 256M or 2G, smp 1-64, append (the image's kernel command line,
    qemu -append) at most 256 characters of [A-Za-z0-9 =._,:+-].
  * extra_args (PatchStress, BaremetalImage) and Command workloads are refused unless the operator
    opts in with --allow-command, which needs an allow-list (alone it allows nothing): each extra
    argument must match an --allow-arg REGEX (whole argument, ECMAScript; write --allow-arg=-x... for
    a pattern that starts with '-'); a command's argv[0] must
    be an --allow-command-binary (absolute; compared after realpath; a listed program runs with the
    job's arguments, so list only programs that are safe with any); its env may not set LD_*, PATH,
    QEMU_*, FARM_* and other loader/interpreter variables unless listed with --allow-env NAME.
    Every accepted use is logged with the job id.
  * --executor vboard boots a board described by --board FILE.json (farm/boards/boards/) for every
    job: deploy (an initramfs: the board init as /init, the --patch-stress binary, the job's checked
    arguments), power on (the description's qemu-system command, or --power-on), boot (the board
    init's ===FARM-BOARD-BEGIN=== within the boot timeout, else a power cycle and one more boot
    (--boot-retries), then an infrastructure error), console (streamed as "serial"), result (the
    last JSON line before ===FARM-BOARD-END rc=N===), power off (after END, on the job's timeout, on
    cancel). For a physical board: --deploy, --power-on, --power-off and --console are command
    templates (/bin/sh -c) with the placeholders {kernel} {initrd} {deploy_dir} {board} {job_id}
    {attempt} {append}, written unquoted (the agent quotes the values, which are checked paths,
    names and numbers; also in the environment as FARM_KERNEL, FARM_INITRD, ...).
  A refused job ends with outcome fail and a message "refused: <field> ...".
Exit status: 0 after SIGTERM/SIGINT (running jobs are handed back), 1 when farmd refuses the agent
(wrong token, --name taken by a live agent), 2 on bad usage or configuration.)";

// farmd's worker name rule; the name also forms the default work directory.
bool valid_agent_name(const std::string& n) {
  static const std::regex re("[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}");
  return std::regex_match(n, re);
}

void split_kv(const std::vector<std::string>& in, const char* option, const char* shape,
              std::map<std::string, std::string>* out) {
  for (const auto& s : in) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument(std::string(option) + " expects " + shape + ", got '" + s + "'");
    (*out)[s.substr(0, eq)] = s.substr(eq + 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  farm::agent::AgentConfig cfg;
  auto& ex = cfg.exec;
  std::string token_file, log_level = "info", patch_stress;
  std::vector<std::string> labels, binaries, images, ssh_opts;
  uint32_t cores = 0, slots = 1, kill_grace_ms = 2000;
  bool exit_with_parent = false;
  std::string arch, isa, kernel;

  CLI::App app{"farm-agent: runs patch farm jobs (connects to farmd; farmd never dials out)"};
  app.footer(kFooter);
  app.get_formatter()->column_width(40);
  app.add_option("--server", cfg.channel.address, "farmd address host:port")->capture_default_str();
  app.add_option("--token", cfg.channel.token, "agent bearer token (prefer --token-file or FARM_AGENT_TOKEN)")
      ->envname("FARM_AGENT_TOKEN");
  app.add_option("--token-file", token_file, "read the agent token from this file");
  app.add_flag("--tls", cfg.channel.tls, "connect with TLS (system roots unless --ca)");
  app.add_option("--ca", cfg.channel.ca_file, "PEM CA certificate to verify farmd (implies --tls)");
  app.add_option("--tls-server-name", cfg.channel.server_name, "name expected in farmd's certificate");
  app.add_option("--name", cfg.name, "unique worker name (default: <hostname>-<kind>)");
  app.add_option("--executor", ex.kind, "native | qemu-user | qemu-system | ssh | vboard")
      ->capture_default_str()
      ->check(CLI::IsMember({"native", "qemu-user", "qemu-system", "ssh", "board", "vboard"}));
  app.add_option("--arch", arch, "target architecture (default: this machine for native, riscv64 for qemu)");
  app.add_option("--isa", isa, "ISA string, e.g. rv64gc, rv64g");
  app.add_option("--label", labels, "board label key=value (repeatable)");
  app.add_option("--cores", cores, "cores/harts offered (0: detected)")->capture_default_str();
  app.add_option("--slots", slots, "jobs run concurrently")->capture_default_str()->check(CLI::Range(1u, 1024u));
  app.add_option("--kernel", kernel, "kernel release to report (boards)");
  // What this agent runs (see the footer).
  app.add_option("--patch-stress", patch_stress, "patch-stress binary for this target (checked at start)");
  app.add_option("--binary", binaries, "workload=path (repeatable): patch-stress=PATH, patch-stress@ISA=PATH");
  app.add_option("--image", images, "bare-metal image NAME=PATH (repeatable); jobs give the NAME");
  app.add_option("--allow-machine", ex.allow_machines,
                 "qemu-system -M a job may ask for besides --machine (repeatable)");
  app.add_flag("--allow-command", ex.allow_command,
               "opt in to job-chosen extra_args and Command workloads; "
               "needs --allow-arg and/or --allow-command-binary");
  app.add_option("--allow-arg", ex.allow_args, "REGEX an extra argument must match as a whole (repeatable)");
  app.add_option("--allow-command-binary", ex.allow_command_binaries,
                 "absolute PATH a Command's argv[0] may name (repeatable)");
  app.add_option("--allow-env", ex.allow_env, "NAME a Command may set although it is on the deny list (repeatable)");
  app.add_option("--work-dir", cfg.work_dir, "scratch directory (default: $TMPDIR/farm-agent-<name>)");
  app.add_option("--acquire-wait-ms", cfg.acquire_wait_ms, "long-poll length")
      ->capture_default_str()
      ->check(CLI::Range(100u, 600000u));
  app.add_option("--kill-grace-ms", kill_grace_ms, "SIGTERM -> SIGKILL grace on timeout/cancel")
      ->capture_default_str()
      ->check(CLI::Range(0u, 600000u));
  // qemu
  app.add_option("--qemu", ex.qemu, "emulator binary (default qemu-<arch> / qemu-system-<arch>)");
  app.add_option("--qemu-cpu", ex.qemu_cpu, "emulator -cpu");
  app.add_option("--sysroot", ex.sysroot, "qemu-user -L sysroot (dynamic cross binaries)");
  app.add_option("--machine", ex.machine, "qemu-system -M")->capture_default_str();
  app.add_option("--bios", ex.bios, "qemu-system -bios")->capture_default_str();
  app.add_option("--memory", ex.memory, "qemu-system -m")->capture_default_str();
  app.add_option("--smp", ex.default_smp, "qemu-system -smp when the job sets none")
      ->capture_default_str()
      ->check(CLI::Range(1u, farm::agent::rules::kMaxSmp));
  app.add_option("--qemu-arg", ex.qemu_args, "extra emulator argument (repeatable)");
  // ssh board
  app.add_option("--ssh-host", ex.ssh_host, "[user@]board for the ssh executor");
  app.add_option("--ssh", ex.ssh, "ssh client")->capture_default_str();
  app.add_option("--scp", ex.scp, "scp client")->capture_default_str();
  app.add_option("--ssh-opt", ssh_opts,
                 "ssh option (repeatable; replaces the defaults -o BatchMode=yes -o ConnectTimeout=10)");
  app.add_option("--remote-dir", ex.remote_dir, "scratch directory on the board")->capture_default_str();
  app.add_option("--serial", ex.serial_device, "board serial console device (logged during jobs)");
  app.add_option("--baud", ex.serial_baud, "serial baud rate")->capture_default_str();
  app.add_option("--power-cycle", ex.power_cycle, "shell command that power-cycles the board (env FARM_BOARD, "
                                                   "FARM_JOB_ID, FARM_REASON)");
  app.add_option("--boot-timeout", ex.boot_timeout_s, "ssh: seconds to wait for the board after a power cycle; vboard: power on -> BEGIN marker (default: the "
                 "description's boot_timeout)")
      ->capture_default_str();
  app.add_option("--boot-poll-ms", ex.boot_poll_ms, "ssh probe interval while waiting for the board")
      ->capture_default_str();
  // virtual board (vboard.hpp; docs/farm.md "Virtual boards (and real ones)")
  auto& vb = ex.vboard;
  app.add_option("--board", vb.board, "vboard: board description FILE.json (farm/boards/boards/)");
  app.add_option("--boards-dir", vb.boards_dir, "vboard: directory of the board's kernel and init (default: the "
                                                "description's directory, e.g. build/host/boards)");
  app.add_option("--deploy-dir", vb.deploy_dir, "vboard: write each attempt's initramfs under DIR/<job>-<attempt>/ "
                                                "(default: the attempt's work directory)");
  app.add_option("--deploy", vb.deploy_cmd, "vboard: deploy TEMPLATE run after the initramfs is written "
                                            "(e.g. cp {kernel} {initrd} /srv/tftp/board1/)");
  app.add_option("--power-on", vb.power_on_cmd, "vboard: power-on TEMPLATE (default: the description's qemu command)");
  app.add_option("--power-off", vb.power_off_cmd, "vboard: power-off TEMPLATE (default: stop the power-on process)");
  app.add_option("--console", vb.console, "vboard: stdio | serial:DEVICE | command:TEMPLATE")->capture_default_str();
  uint32_t boot_retries = vb.boot_retries;
  app.add_option("--boot-retries", boot_retries, "vboard: power cycles after a failed boot")
      ->capture_default_str()->check(CLI::Range(0u, 5u));
  app.add_flag("--exit-with-parent", exit_with_parent, "terminate when the parent process dies (tests)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; bad usage: the message, 2
  }
  // The token must not leak into workloads (they inherit the environment).
  ::unsetenv("FARM_AGENT_TOKEN");

  auto usage_error = [](const std::string& m) {
    std::cerr << "farm-agent: error: " << m << "\n";
    return 2;
  };
  try {
    if (!token_file.empty()) cfg.channel.token = farm::trim(farm::read_file(token_file));
    if (!cfg.name.empty() && !valid_agent_name(cfg.name))
      return usage_error("--name '" + farm::agent::printable(cfg.name) +
                         "': 1-128 characters of [A-Za-z0-9._@:-] starting with a letter or digit");
    if (!arch.empty() && !farm::agent::is_safe_name(arch))
      return usage_error("--arch '" + arch + "': not an architecture name");
    ex.arch = arch;
    ex.kill_grace = std::chrono::milliseconds(kill_grace_ms);
    if (!patch_stress.empty()) ex.binaries["patch-stress"] = patch_stress;
    split_kv(binaries, "--binary", "workload=path", &ex.binaries);
    split_kv(images, "--image", "NAME=PATH", &ex.images);
    if (!ssh_opts.empty()) ex.ssh_opts = ssh_opts;
    if (ex.kind == "vboard") {
      // Options shared with other executors: only given ones override the description.
      vb.boot_retries = boot_retries;
      if (app.count("--boot-timeout")) vb.boot_timeout_s = ex.boot_timeout_s;
      if (app.count("--smp")) vb.smp = ex.default_smp;
      if (app.count("--memory")) vb.memory = ex.memory;
      if (app.count("--qemu-cpu")) vb.cpu = ex.qemu_cpu;
      vb.console_baud = ex.serial_baud;
      if (!ex.serial_device.empty())
        return usage_error("--serial is the ssh executor's; a board's serial console is --console serial:DEVICE");
    } else {
      for (const char* o : {"--board", "--boards-dir", "--deploy-dir", "--deploy", "--power-on", "--power-off",
                            "--console", "--boot-retries"})
        if (app.count(o)) return usage_error(std::string(o) + " applies to --executor vboard");
    }
    cfg.caps.set_arch(arch);
    cfg.caps.set_isa(isa);
    cfg.caps.set_cores(cores);
    cfg.caps.set_slots(slots);
    cfg.caps.set_kernel(kernel);
    std::map<std::string, std::string> label_map;
    split_kv(labels, "--label", "key=value", &label_map);
    for (const auto& [k, v] : label_map) (*cfg.caps.mutable_labels())[k] = v;
  } catch (const std::exception& e) {
    return usage_error(e.what());
  }

  if (!farm::init_service_process(log_level, exit_with_parent)) return 1;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<farm::agent::Agent> agent;
  try {
    // Checks the executor configuration: binaries, images, allow-lists.
    agent = std::make_unique<farm::agent::Agent>(cfg);
  } catch (const std::exception& e) {
    return usage_error(e.what());
  }
  agent->start();
  std::thread sig([&] {
    int s = 0;
    sigwait(&set, &s);
    spdlog::info("farm-agent: signal {}, stopping (running jobs are handed back)", s);
    agent->stop();
  });
  sig.detach();
  agent->wait();
  if (auto fatal = agent->fatal_error()) {
    std::cerr << "farm-agent: error: " << *fatal << "\n";
    return 1;
  }
  return 0;
}
