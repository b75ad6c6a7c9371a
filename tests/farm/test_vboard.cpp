// The virtual-board executor (farm/agent/src/vboard_executor.cpp): every step
// and failure with a fake qemu (a shell script that prints the board init's
// markers, or hangs), the configuration checks, the refusal of job-chosen
// programs and paths, templates driving a "physical" board, the farm-agent
// CLI; and (VBoardReal.*, label boards) a real boot of the rv64gc Linux board
// running the cross-built patch-stress.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <elf.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <sstream>

#include <gtest/gtest.h>

#include "farm/agent/agent.hpp"
#include "farm/agent/executor.hpp"
#include "farm/agent/vboard.hpp"
#include "farm/common/util.hpp"
#include "farm_test_util.hpp"

namespace {

namespace v1 = ::farm::v1;
using farm::agent::ExecutorConfig;
using farm::agent::JobContext;
using farm::agent::VBoardExecutor;
using farmtest::TempDir;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A minimal ELF executable header (no program headers unless `dynamic`):
// enough for the executor's checks (machine, static); never executed.
void write_fake_elf(const std::string& path, uint16_t machine, bool dynamic = false) {
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = machine;
  eh.e_version = EV_CURRENT;
  eh.e_ehsize = sizeof eh;
  eh.e_phentsize = sizeof(Elf64_Phdr);
  Elf64_Phdr ph{};
  if (dynamic) {
    eh.e_phoff = sizeof eh;
    eh.e_phnum = 1;
    ph.p_type = PT_INTERP;
  }
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(&eh), sizeof eh);
  if (dynamic) f.write(reinterpret_cast<const char*>(&ph), sizeof ph);
  f << "fake workload " << path;
  f.close();
  ::chmod(path.c_str(), 0755);
}

// The JSON line patch-stress prints.
std::string stress_json(const char* verdict, uint64_t calls = 1234) {
  return std::string("{\"workload\":\"patch-stress\",\"calls\":") + std::to_string(calls) +
         ",\"hits\":600,\"batches\":5,\"syncs\":15,\"unexpected_signals\":0,\"wrong_results\":0,\"error\":\"\","
         "\"verdict\":\"" + verdict + "\"}";
}

// Output collected from a job: streams and agent notes.
struct Collect {
  std::mutex mu;
  std::map<std::string, std::string> streams;
  std::string all() {
    std::lock_guard lk(mu);
    std::string s;
    for (auto& [k, v] : streams) s += "[" + k + "]\n" + v;
    return s;
  }
  std::string get(const std::string& k) {
    std::lock_guard lk(mu);
    return streams[k];
  }
};

// A board directory with a fake kernel, the fake init, a description, a fake
// qemu script and a fake patch-stress.
struct FakeBoard {
  TempDir dir;
  std::string boards, desc, qemu, workload, kernel;

  explicit FakeBoard(const std::string& qemu_body, const std::string& extra_json = "") {
    boards = dir / "boards";
    fs::create_directories(boards);
    kernel = boards + "/fake-linux.Image";
    std::ofstream(kernel) << "not a kernel";
    std::ofstream(boards + "/fake-linux.config") << "#\n# Automatically generated file; DO NOT EDIT.\n"
                                                    "# Linux/riscv 6.1.192 Kernel Configuration\n#\n";
    write_fake_elf(boards + "/init-riscv64", EM_RISCV);
    workload = dir / "patch-stress";
    write_fake_elf(workload, EM_RISCV);
    qemu = dir / "fake-qemu";
    // The fake records its argv and its initramfs, counts boots, then runs the body.
    std::ofstream(qemu) << "#!/bin/bash\n"
                        << "D=" << dir.path << "\n"
                        << "n=$(( $(cat $D/boots 2>/dev/null || echo 0) + 1 )); echo $n > $D/boots\n"
                        << "printf '%s\\n' \"$@\" > $D/qemu.args.$n\n"
                        << "echo $$ > $D/qemu.pid\n"
                        << "while [ $# -gt 0 ]; do [ \"$1\" = -initrd ] && cp \"$2\" $D/initrd.$n.cpio; shift; done\n"
                        << "printf 'OpenSBI v1.1\\r\\n[    0.000000] Linux version 6.1.192\\r\\n'\n"
                        << qemu_body;
    ::chmod(qemu.c_str(), 0755);
    desc = boards + "/fake-linux.json";
    std::ofstream(desc) << R"({
  "name": "fake-linux", "description": "a fake board", "arch": "riscv64", "isa": "rv64gc", "usable": true,
  "qemu": ")" << qemu << R"(", "machine": "virt", "cpu": "rv64", "smp": 4, "memory": "1G", "bios": "default",
  "accel": "tcg,thread=multi", "qemu_args": ["-nographic", "-no-reboot", "-nic", "none"],
  "kernel": "fake-linux.Image", "kernel_target": "board-kernel-fake", "init": "init-riscv64",
  "init_target": "board-init-riscv64", "append": "console=ttyS0 panic=1", "console": "ttyS0",
  "boot_timeout": 20)" << extra_json << "\n}\n";
  }

  ExecutorConfig cfg() const {
    ExecutorConfig c;
    c.kind = "vboard";
    c.kill_grace = 500ms;
    c.binaries["patch-stress"] = workload;
    c.vboard.board = desc;
    c.vboard.end_grace_ms = 300;
    c.vboard.poweroff_wait_ms = 2000;
    return c;
  }
  int boots() const {
    std::ifstream f(dir / "boots");
    int n = 0;
    f >> n;
    return n;
  }
  std::string args(int boot = 1) const { return slurp(dir / ("qemu.args." + std::to_string(boot))); }
  std::string initrd(int boot = 1) const { return dir / ("initrd." + std::to_string(boot) + ".cpio"); }
};

// A file of a newc archive, read back with Debian's cpio.
std::string cpio_file(const std::string& archive, const std::string& member) {
  auto r = farmtest::run({"/bin/sh", "-c", "cd / && " LP_CPIO " -i --quiet --to-stdout " + member + " < " + archive});
  return r.out;
}

v1::JobSpec stress_spec(uint32_t timeout_s = 60) {
  v1::JobSpec s;
  s.set_seed(7);
  s.set_timeout_s(timeout_s);
  auto* p = s.mutable_workload()->mutable_patch_stress();
  p->set_threads(4);
  p->set_functions(64);
  p->set_batches(5);
  p->set_writer("mprotect");
  p->set_sync("flush_icache");
  p->set_probe_kind("jump");
  return s;
}

struct Job {
  TempDir work;
  Collect out;
  farm::agent::Cancel cancel;
  JobContext ctx;
  explicit Job(const v1::JobSpec& spec, const std::string& id = "j-vb01") {
    ctx.job_id = id;
    ctx.worker = "vboard-test";
    ctx.attempt = 1;
    ctx.spec = spec;
    ctx.work_dir = work.path;
    ctx.cancel = &cancel;
    ctx.output = [this](std::string_view st, std::string_view d) {
      std::lock_guard lk(out.mu);
      out.streams[std::string(st)].append(d);
    };
  }
};

const char* kPassBody =
    "printf '===FARM-BOARD-BEGIN===\\r\\n'\n"
    "printf 'patch-stress: starting\\r\\n'\n";

std::string pass_body(const char* verdict = "pass", int rc = 0) {
  return std::string(kPassBody) + "printf '%s\\r\\n' '" + stress_json(verdict) + "'\n" +
         "printf '===FARM-BOARD-END rc=" + std::to_string(rc) + "===\\r\\nreboot: Power down\\r\\n'\nexit 0\n";
}

bool pid_alive(const FakeBoard& b) {
  std::ifstream f(b.dir / "qemu.pid");
  pid_t pid = 0;
  if (!(f >> pid) || pid <= 0) return false;
  return ::kill(pid, 0) == 0;
}

// ---------------------------------------------------------------- steps

TEST(VBoardFake, PassingJobGoesThroughEveryStep) {
  FakeBoard b(pass_body());
  VBoardExecutor ex(b.cfg());
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  std::string all = j.out.all();
  ASSERT_EQ(r.outcome(), v1::OUTCOME_PASS) << r.message() << "\n" << all;
  EXPECT_EQ(r.calls(), 1234u);
  EXPECT_EQ(r.batches(), 5u);
  EXPECT_EQ(r.verdict(), "pass");
  EXPECT_EQ(r.exit_code(), 0);
  EXPECT_TRUE(contains(r.result_json(), "\"verdict\":\"pass\"")) << r.result_json();
  EXPECT_TRUE(contains(r.message(), "board fake-linux")) << r.message();
  // Each step is an agent note, in order.
  std::string notes = j.out.get("agent");
  size_t at = 0;
  for (const char* step : {"deploy: ", "console: ", "power on: $ ", "boot: ===FARM-BOARD-BEGIN=== after",
                           "result: ===FARM-BOARD-END rc=0===", "power off: the board powered itself off", "result: pass"}) {
    size_t p = notes.find(step, at);
    EXPECT_NE(p, std::string::npos) << "no note '" << step << "' after offset " << at << ":\n" << notes;
    if (p != std::string::npos) at = p;
  }
  // The console is the job's serial stream.
  EXPECT_TRUE(contains(j.out.get("serial"), "===FARM-BOARD-BEGIN===")) << all;
  EXPECT_TRUE(contains(j.out.get("serial"), "Linux version 6.1.192")) << all;
  // Power on: the description's qemu command.
  std::string args = b.args();
  for (const char* a : {"-M\nvirt\n", "-cpu\nrv64\n", "-smp\n4\n", "-m\n1G\n", "-bios\ndefault\n",
                        "-accel\ntcg,thread=multi\n", "-nographic\n", "-no-reboot\n", "-nic\nnone\n",
                        "-append\nconsole=ttyS0 panic=1\n"})
    EXPECT_TRUE(contains(args, a)) << a << " missing in\n" << args;
  EXPECT_TRUE(contains(args, "-kernel\n" + b.kernel + "\n")) << args;
  EXPECT_TRUE(contains(args, "-initrd\n" + j.work.path + "/initramfs.cpio\n")) << args;
  EXPECT_EQ(b.boots(), 1);
  // Deploy: the board init, the operator's binary, the admitted argv, timeout, env.
  std::string rd = b.initrd();
  EXPECT_EQ(cpio_file(rd, "init"), slurp(b.boards + "/init-riscv64"));
  EXPECT_EQ(cpio_file(rd, "job/bin/patch-stress"), slurp(b.workload));
  std::string argv = cpio_file(rd, "job/argv");
  std::string want;
  for (const char* a : {"/job/bin/patch-stress", "--threads", "4", "--functions", "64", "--batches", "5", "--seed", "7",
                        "--writer", "mprotect", "--sync", "flush_icache", "--kind", "jump"})
    want += std::string(a) + '\0';
  EXPECT_EQ(argv, want) << farm::clip(argv, 400);
  EXPECT_EQ(cpio_file(rd, "job/timeout"), "60\n");
  std::string env = cpio_file(rd, "job/env");
  EXPECT_TRUE(contains(env, std::string("FARM_JOB_ID=j-vb01\0", 19))) << farm::clip(env, 200);
  EXPECT_TRUE(contains(env, std::string("FARM_SEED=7\0", 12))) << farm::clip(env, 200);
  auto list = farmtest::run({"/bin/sh", "-c", LP_CPIO " -t --quiet < " + rd});
  EXPECT_TRUE(contains(list.out, "dev/console")) << list.out;
  EXPECT_FALSE(pid_alive(b));
}

TEST(VBoardFake, NoBeginPowerCyclesOnceThenInfrastructureError) {
  FakeBoard b("sleep 600\n");
  auto cfg = b.cfg();
  cfg.vboard.boot_timeout_s = 1;
  VBoardExecutor ex(cfg);
  Job j(stress_spec());
  auto t0 = std::chrono::steady_clock::now();
  auto r = ex.run(j.ctx);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.outcome(), v1::OUTCOME_INFRA_ERROR) << r.message();
  EXPECT_TRUE(contains(r.message(), "boot: no ===FARM-BOARD-BEGIN=== within 1 s")) << r.message();
  EXPECT_TRUE(contains(r.message(), "step boot; 2 boot(s), power-cycled 1 time(s)")) << r.message();
  EXPECT_EQ(b.boots(), 2);
  EXPECT_TRUE(contains(j.out.get("agent"), "power cycle: booting again (2 of 2)")) << j.out.all();
  EXPECT_TRUE(contains(r.log_tail(), "OpenSBI")) << r.log_tail();
  EXPECT_LT(s, 10) << "boot timeouts of 1 s";
  EXPECT_FALSE(pid_alive(b));
}

TEST(VBoardFake, NoBeginOnceThenTheSecondBootPasses) {
  FakeBoard b("if [ $n = 1 ]; then sleep 600; fi\n" + pass_body());
  auto cfg = b.cfg();
  cfg.vboard.boot_timeout_s = 1;
  VBoardExecutor ex(cfg);
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_PASS) << r.message() << j.out.all();
  EXPECT_EQ(b.boots(), 2);
  EXPECT_TRUE(contains(j.out.get("agent"), "boot failed: no ===FARM-BOARD-BEGIN=== within 1 s")) << j.out.all();
}

TEST(VBoardFake, NoRetryWithZeroBootRetries) {
  FakeBoard b("sleep 600\n");
  auto cfg = b.cfg();
  cfg.vboard.boot_timeout_s = 1;
  cfg.vboard.boot_retries = 0;
  VBoardExecutor ex(cfg);
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_INFRA_ERROR) << r.message();
  EXPECT_EQ(b.boots(), 1);
}

TEST(VBoardFake, NothingOnTheConsoleSaysSo) {
  FakeBoard b("exec sleep 600\n");
  // No boot noise at all: rewrite the script without the banner.
  std::string s = slurp(b.qemu);
  auto p = s.find("printf 'OpenSBI");
  s.erase(p, s.find('\n', p) - p + 1);
  std::ofstream(b.qemu) << s;
  auto cfg = b.cfg();
  cfg.vboard.boot_timeout_s = 1;
  cfg.vboard.boot_retries = 0;
  VBoardExecutor ex(cfg);
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_INFRA_ERROR);
  EXPECT_TRUE(contains(r.message(), "nothing at all on the console")) << r.message();
}

TEST(VBoardFake, QemuExitingBeforeBeginIsRetriedThenInfra) {
  FakeBoard b("echo 'qemu-system-riscv64: could not load kernel' >&2\nexit 1\n");
  VBoardExecutor ex(b.cfg());
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_INFRA_ERROR);
  EXPECT_TRUE(contains(r.message(), "qemu exited (status 1) before ===FARM-BOARD-BEGIN===")) << r.message();
  EXPECT_TRUE(contains(r.message(), "could not load kernel")) << r.message();
  EXPECT_EQ(b.boots(), 2);
}

TEST(VBoardFake, HangAfterBeginIsATimeoutAndTheBoardIsPoweredOff) {
  FakeBoard b(std::string(kPassBody) + "sleep 600\n");
  VBoardExecutor ex(b.cfg());
  Job j(stress_spec(/*timeout_s=*/1));
  auto t0 = std::chrono::steady_clock::now();
  auto r = ex.run(j.ctx);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.outcome(), v1::OUTCOME_TIMEOUT) << r.message();
  EXPECT_TRUE(contains(r.message(), "no ===FARM-BOARD-END=== (step console")) << r.message();
  EXPECT_TRUE(contains(r.message(), "board powered off")) << r.message();
  EXPECT_TRUE(contains(j.out.get("agent"), "power off (job timed out): stopping qemu")) << j.out.all();
  EXPECT_LT(s, 10);
  EXPECT_FALSE(pid_alive(b)) << "qemu still running after the timeout";
  EXPECT_EQ(b.boots(), 1) << "a hang after BEGIN is a result, not a boot failure";
}

TEST(VBoardFake, EndRcNonZeroIsAFailure) {
  FakeBoard b(pass_body("fail", 1));
  VBoardExecutor ex(b.cfg());
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_FAIL) << r.message();
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_EQ(r.verdict(), "fail");
  EXPECT_TRUE(contains(r.message(), "verdict fail, exit code 1")) << r.message();
}

TEST(VBoardFake, NoJsonLineIsAFailure) {
  FakeBoard b(std::string(kPassBody) + "printf '===FARM-BOARD-END rc=0===\\r\\n'\n");
  VBoardExecutor ex(b.cfg());
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_FAIL) << r.message();
  EXPECT_TRUE(contains(r.message(), "no JSON result line")) << r.message();
}

TEST(VBoardFake, JobKilledBySignalInTheGuest) {
  FakeBoard b(std::string(kPassBody) + "printf '===FARM-BOARD-END signal=11===\\r\\n'\n");
  VBoardExecutor ex(b.cfg());
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_FAIL) << r.message();
  EXPECT_EQ(r.term_signal(), 11);
  EXPECT_TRUE(contains(r.message(), "killed by signal 11")) << r.message();
  EXPECT_TRUE(contains(r.message(), "in the guest (END signal=11)")) << r.message();
}

TEST(VBoardFake, BoardInitTimeoutIsATimeout) {
  FakeBoard b(std::string(kPassBody) + "printf '===FARM-BOARD-END timeout===\\r\\n'\n");
  VBoardExecutor ex(b.cfg());
  Job j(stress_spec(5));
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_TIMEOUT) << r.message();
  EXPECT_TRUE(contains(r.message(), "the board init killed the job (END timeout)")) << r.message();
}

TEST(VBoardFake, BoardInitErrorIsAnInfrastructureErrorWithoutRetry) {
  FakeBoard b("printf '===FARM-BOARD-ERROR exec /job/bin/patch-stress: Exec format error===\\r\\n'\n");
  VBoardExecutor ex(b.cfg());
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_INFRA_ERROR) << r.message();
  EXPECT_TRUE(contains(r.message(), "the board init failed: exec /job/bin/patch-stress: Exec format error")) << r.message();
  EXPECT_EQ(b.boots(), 1);
}

TEST(VBoardFake, KernelPanicDuringTheJobIsAFailure) {
  FakeBoard b(std::string(kPassBody) +
              "printf '[   12.5] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\\r\\n'\n"
              "printf '[   12.5] CPU: 1 PID: 1 Comm: init\\r\\n'\nexit 0\n");
  VBoardExecutor ex(b.cfg());
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_FAIL) << r.message();
  EXPECT_TRUE(contains(r.message(), "kernel panic during the job")) << r.message();
  EXPECT_TRUE(contains(r.message(), "Attempted to kill init")) << r.message();
  EXPECT_TRUE(contains(r.log_tail(), "Comm: init")) << r.log_tail();
}

TEST(VBoardFake, QemuDyingDuringTheJobIsAnInfrastructureError) {
  FakeBoard b(std::string(kPassBody) + "echo 'qemu: fatal: lost the plot' >&2\nkill -9 $$\n");
  VBoardExecutor ex(b.cfg());
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_INFRA_ERROR) << r.message();
  EXPECT_TRUE(contains(r.message(), "qemu died during the job (signal 9, step console)")) << r.message();
}

TEST(VBoardFake, CancelPowersTheBoardOff) {
  FakeBoard b(std::string(kPassBody) + "sleep 600\n");
  VBoardExecutor ex(b.cfg());
  Job j(stress_spec(300));
  std::thread t([&] {
    farmtest::wait_until([&] { return contains(j.out.get("agent"), "the job runs"); }, 10s);
    j.cancel.cancel("test");
  });
  auto r = ex.run(j.ctx);
  t.join();
  EXPECT_EQ(r.outcome(), v1::OUTCOME_CANCELLED) << r.message();
  EXPECT_FALSE(pid_alive(b));
}

TEST(VBoardFake, HealthCheckBootsTheBoardWithHelp) {
  FakeBoard b(std::string(kPassBody) + "printf 'usage: patch-stress ...\\r\\n===FARM-BOARD-END rc=0===\\r\\n'\n");
  VBoardExecutor ex(b.cfg());
  Job j(v1::JobSpec{});
  auto r = ex.health_check(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_PASS) << r.message();
  EXPECT_EQ(cpio_file(b.initrd(), "job/argv"), std::string("/job/bin/patch-stress\0--help\0", 29));
}

TEST(VBoardFake, CapabilitiesComeFromTheBoard) {
  FakeBoard b(pass_body());
  auto cfg = b.cfg();
  VBoardExecutor ex(cfg);
  auto caps = farm::agent::detect_capabilities(cfg, ex, {});
  EXPECT_EQ(caps.kind(), "board");
  EXPECT_EQ(caps.arch(), "riscv64");
  EXPECT_EQ(caps.isa(), "rv64gc");
  EXPECT_EQ(caps.cores(), 4u);
  EXPECT_EQ(caps.kernel(), "6.1.192");
  EXPECT_EQ(caps.labels().at("board"), "fake-linux");
  ASSERT_EQ(caps.workloads_size(), 1);
  EXPECT_EQ(caps.workloads(0), "patch-stress");
  // The operator's --smp / --memory override the description's.
  cfg.vboard.smp = 2;
  cfg.vboard.memory = "512M";
  VBoardExecutor ex2(cfg);
  EXPECT_EQ(farm::agent::detect_capabilities(cfg, ex2, {}).cores(), 2u);
  auto a = ex2.qemu_argv("/x/initramfs.cpio");
  EXPECT_NE(std::find(a.begin(), a.end(), "512M"), a.end());
}

// ---------------------------------------------------------------- what a job cannot choose

TEST(VBoardFake, JobChosenProgramsAndPathsAreRefused) {
  FakeBoard b(pass_body());
  VBoardExecutor ex(b.cfg());
  auto expect_refused = [&](const v1::JobSpec& spec, const std::string& field, const std::string& id = "j-vb01") {
    Job j(spec, id);
    auto r = ex.run(j.ctx);
    EXPECT_EQ(r.outcome(), v1::OUTCOME_REFUSED) << field << ": " << r.message();
    EXPECT_TRUE(contains(r.message(), field)) << r.message();
  };
  auto s = stress_spec();
  s.mutable_workload()->mutable_patch_stress()->set_binary("/bin/sh");
  expect_refused(s, "PatchStress.binary");
  s = stress_spec();
  s.mutable_workload()->mutable_patch_stress()->add_extra_args("--evil");
  expect_refused(s, "PatchStress.extra_args");
  s = stress_spec();
  s.mutable_workload()->mutable_patch_stress()->set_writer("/etc/passwd");
  expect_refused(s, "PatchStress.writer");
  v1::JobSpec bm;
  bm.mutable_workload()->mutable_baremetal()->set_image("/boot/vmlinuz");
  expect_refused(bm, "BaremetalImage.image");
  v1::JobSpec cmd;
  cmd.mutable_workload()->mutable_command()->add_argv("/bin/sh");
  expect_refused(cmd, "Command");
  expect_refused(stress_spec(), "job id", "../../etc");
  EXPECT_EQ(b.boots(), 0) << "a refused job never powers the board on";
}

// ---------------------------------------------------------------- configuration

void expect_config_error(const ExecutorConfig& c, const std::string& what) {
  try {
    VBoardExecutor ex(c);
    ADD_FAILURE() << "accepted; expected an error with '" << what << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), what)) << e.what();
  }
}

TEST(VBoardConfig, BadConfigurationIsRefusedWithAClearMessage) {
  FakeBoard b(pass_body());
  auto c = b.cfg();
  c.vboard.board.clear();
  expect_config_error(c, "needs --board FILE");
  c = b.cfg();
  c.vboard.board = b.dir / "nope.json";
  expect_config_error(c, "cannot read");
  std::ofstream(b.dir / "bad.json") << "{not json";
  c.vboard.board = b.dir / "bad.json";
  expect_config_error(c, "not a JSON object");
  // Fields of the description.
  auto with = [&](const std::string& from, const std::string& to) {
    std::string d = slurp(b.desc);
    auto p = d.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    d.replace(p, from.size(), to);
    std::string f = b.dir / "edited.json";
    std::ofstream(f) << d;
    auto k = b.cfg();
    k.vboard.board = f;
    k.vboard.boards_dir = b.boards;
    return k;
  };
  expect_config_error(with("\"usable\": true", "\"usable\": false, \"usable_reason\": \"OpenSBI has C\""),
                      "marked \"usable\": false: OpenSBI has C");
  expect_config_error(with("\"machine\": \"virt\"", "\"machine\": \"-virt\""), "\"machine\" must be");
  expect_config_error(with("\"smp\": 4", "\"smp\": 0"), "\"smp\" must be");
  expect_config_error(with("\"memory\": \"1G\"", "\"memory\": \"1G; rm -rf /\""), "\"memory\" must be");
  expect_config_error(with("\"append\": \"console=ttyS0 panic=1\"", "\"append\": \"console=ttyS0 $(reboot)\""),
                      "\"append\" must be");
  expect_config_error(with("\"kernel\": \"fake-linux.Image\"", "\"kernel\": \"missing.Image\""),
                      "build it: cmake --build BUILD --target board-kernel-fake");
  expect_config_error(with("\"qemu\": \"" + b.qemu + "\"", "\"qemu\": \"no-such-qemu-system\""),
                      "no-such-qemu-system not found in PATH");
  // A physical board's description may leave the qemu fields out: then it needs --power-on.
  {
    auto k = with("\"qemu\": \"" + b.qemu + "\", \"machine\": \"virt\",", "");
    expect_config_error(k, "\"qemu\" is required for the default power-on (qemu); a physical board needs --power-on");
    k.vboard.power_on_cmd = "pdu on";
    k.vboard.power_off_cmd = "pdu off";
    k.vboard.console = "serial:/dev/null";
    EXPECT_NO_THROW(VBoardExecutor ex(k));
  }
  // The workload: static and for the board's arch.
  c = b.cfg();
  c.binaries.clear();
  expect_config_error(c, "needs --patch-stress");
  write_fake_elf(b.dir / "x86", EM_X86_64);
  c.binaries["patch-stress"] = b.dir / "x86";
  expect_config_error(c, "not riscv64");
  write_fake_elf(b.dir / "dyn", EM_RISCV, true);
  c.binaries["patch-stress"] = b.dir / "dyn";
  expect_config_error(c, "dynamically linked");
  std::ofstream(b.dir / "text") << "#!/bin/sh\n";
  c.binaries["patch-stress"] = b.dir / "text";
  expect_config_error(c, "not an ELF file");
  // Templates and the console.
  c = b.cfg();
  c.vboard.power_on_cmd = "pdu on '{board}'";
  c.vboard.power_off_cmd = "pdu off";
  expect_config_error(c, "placeholder {board} inside quotes");
  c.vboard.power_on_cmd = "pdu on {outlet}";
  expect_config_error(c, "unknown placeholder {outlet}");
  c.vboard.power_on_cmd = "pdu on {board";
  expect_config_error(c, "unmatched '{'");
  c = b.cfg();
  c.vboard.console = "serial:/dev/ttyUSB0-does-not-exist";
  expect_config_error(c, "not a character device");
  c.vboard.console = "serial:/dev/null";
  expect_config_error(c, "needs --power-on");
  c.vboard.console = "telnet:host:23";
  expect_config_error(c, "stdio, serial:DEVICE or command:TEMPLATE");
  c = b.cfg();
  c.vboard.power_on_cmd = "pdu on";
  c.vboard.console = "command:cat /dev/null";
  expect_config_error(c, "needs --power-off");
  c = b.cfg();
  c.vboard.power_off_cmd = "pdu off";
  expect_config_error(c, "--power-off without --power-on");
  c = b.cfg();
  c.vboard.deploy_dir = "relative/dir";
  expect_config_error(c, "--deploy-dir must be an absolute path");
  c = b.cfg();
  c.allow_command = true;
  c.allow_args = {".*"};
  expect_config_error(c, "runs patch-stress only");
  c = b.cfg();
  c.arch = "aarch64";
  expect_config_error(c, "does not match board fake-linux");
}

TEST(VBoardConfig, TemplatesQuoteCheckedValues) {
  using farm::agent::expand_template;
  std::map<std::string, std::string> v = {{"kernel", "/b/k.Image"}, {"initrd", "/w/j-1-1/initramfs.cpio"},
                                          {"board", "vf2-1"}, {"append", "console=ttyS0 panic=1"}};
  EXPECT_EQ(expand_template("cp {kernel} {initrd} /srv/tftp/{board}/ && echo {{ok}}", v),
            "cp /b/k.Image /w/j-1-1/initramfs.cpio /srv/tftp/vf2-1/ && echo {ok}");
  EXPECT_EQ(expand_template("echo {append}", v), "echo 'console=ttyS0 panic=1'");
  v["initrd"] = "/w/$(reboot)/x";
  EXPECT_THROW(expand_template("cp {initrd} /t", v), std::invalid_argument);
  v["initrd"] = "/w/a b";
  EXPECT_THROW(expand_template("cp {initrd} /t", v), std::invalid_argument);
  v["initrd"] = "-rf";
  EXPECT_THROW(expand_template("rm {initrd}", v), std::invalid_argument);
  EXPECT_THROW(expand_template("echo {job_id}", v), std::invalid_argument) << "no value";
  EXPECT_NO_THROW(farm::agent::check_template("--x", "echo \"a\" '{{' {{ {board}}}"));
  EXPECT_THROW(farm::agent::check_template("--x", "echo \"{board}\""), std::invalid_argument);
  EXPECT_THROW(farm::agent::check_template("--x", "echo 'unterminated"), std::invalid_argument);
}

// ---------------------------------------------------------------- a physical board

// The same executor with templates, as for a real board: deploy copies the
// kernel and initramfs to a "TFTP" directory, power-on starts the board (a
// script in its own session writing its console to a file, as a board writes
// to a serial line), the console is a command (tail -F), power-off records
// the call and stops the board.
TEST(VBoardFake, TemplatesDriveAPhysicalBoard) {
  FakeBoard b("exit 99\n");  // the qemu of the description is not used
  std::string tftp = b.dir / "tftp";
  fs::create_directories(tftp);
  std::string board_sh = b.dir / "board.sh";
  std::ofstream(board_sh) << "#!/bin/sh\n# $1: the initramfs the bootloader loads, $2: console file\n"
                          << "echo $$ > " << b.dir.path << "/board.pid\n"
                          << "test -s \"$1\" || { echo 'no initramfs' > \"$2\"; exit 1; }\n"
                          << "sleep 0.3; printf 'U-Boot 2024.01\\r\\n' >> \"$2\"\n"
                          << "printf '===FARM-BOARD-BEGIN===\\r\\n' >> \"$2\"\n"
                          << "printf '%s\\r\\n' '" << stress_json("pass", 777) << "' >> \"$2\"\n"
                          << "printf '===FARM-BOARD-END rc=0===\\r\\n' >> \"$2\"\nexec sleep 600\n";
  ::chmod(board_sh.c_str(), 0755);
  auto c = b.cfg();
  c.vboard.deploy_cmd = "cp {kernel} " + tftp + "/Image && cp {initrd} " + tftp + "/initrd && echo $FARM_JOB_ID > " +
                        tftp + "/job";
  // (the board runs in a session of its own, as a real board is another machine;
  // the command returns once it is up)
  c.vboard.power_on_cmd = "rm -f " + b.dir.path + "/board.pid; (setsid " + board_sh + " " + tftp +
                          "/initrd {deploy_dir}/console.log < /dev/null > /dev/null 2>&1 &); while [ ! -s " +
                          b.dir.path + "/board.pid ]; do sleep 0.05; done";
  c.vboard.power_off_cmd = "echo off {board} {job_id} {attempt} $FARM_STEP $FARM_REASON >> " + b.dir.path +
                           "/power.log; kill $(cat " + b.dir.path + "/board.pid) 2>/dev/null; true";
  c.vboard.console = "command:exec tail -n +1 -F {deploy_dir}/console.log";
  c.vboard.deploy_dir = b.dir / "deploy";
  VBoardExecutor ex(c);
  Job j(stress_spec());
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_PASS) << r.message() << "\n" << j.out.all();
  EXPECT_EQ(r.calls(), 777u);
  EXPECT_EQ(slurp(tftp + "/Image"), slurp(b.kernel));
  EXPECT_EQ(cpio_file(tftp + "/initrd", "job/bin/patch-stress"), slurp(b.workload));
  EXPECT_EQ(slurp(tftp + "/job"), "j-vb01\n");
  EXPECT_EQ(slurp(b.dir / "power.log"), "off fake-linux j-vb01 1 power-off job ended\n");
  EXPECT_EQ(b.boots(), 0) << "qemu was not used";
  EXPECT_TRUE(contains(j.out.get("serial"), "U-Boot 2024.01")) << j.out.all();
  EXPECT_FALSE(fs::exists(b.dir / "deploy/j-vb01-1")) << "the attempt's deploy directory is removed";
  std::ifstream pf(b.dir / "board.pid");
  pid_t pid = 0;
  pf >> pid;
  EXPECT_TRUE(pid > 0 && farmtest::wait_until([&] { return ::kill(pid, 0) != 0; }, 5s)) << "the board was not switched off";
}

// ---------------------------------------------------------------- the farm-agent CLI

TEST(VBoardCli, OptionsAreDocumentedAndCheckedAtStart) {
  auto h = farmtest::run({FARM_AGENT_BIN, "--help"});
  EXPECT_EQ(h.code, 0);
  for (const char* o : {"--board", "--boards-dir", "--deploy-dir", "--deploy", "--power-on", "--power-off", "--console",
                        "--boot-retries", "vboard", "{kernel} {initrd}"})
    EXPECT_TRUE(contains(h.out, o)) << o;
  FakeBoard b(pass_body());
  auto r = farmtest::run({FARM_AGENT_BIN, "--server", "127.0.0.1:1", "--token", "t", "--executor", "vboard", "--board",
                          b.desc, "--patch-stress", b.dir / "nope"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "cannot read")) << r.err;
  r = farmtest::run({FARM_AGENT_BIN, "--server", "127.0.0.1:1", "--token", "t", "--executor", "vboard", "--board",
                     b.desc, "--patch-stress", b.workload, "--power-on", "pdu on \"{board}\""});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "inside quotes")) << r.err;
  r = farmtest::run({FARM_AGENT_BIN, "--server", "127.0.0.1:1", "--token", "t", "--board", b.desc});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "--board applies to --executor vboard")) << r.err;
}

// ---------------------------------------------------------------- a real boot

// The rv64gc Linux board (farm/boards: Linux 6.1 under qemu-system-riscv64
// -smp 4) running the riscv64-gc build's static patch-stress through the
// executor. Label boards (and farm).
struct RealBoard {
  std::string desc = std::string(LP_BOARDS_DIR) + "/rv64gc-linux.json";
  std::string ps = LP_VBOARD_PATCH_STRESS_RV64GC;
  std::string problem() const {
    if (!fs::exists(std::string(LP_BOARDS_DIR) + "/rv64gc-linux.Image"))
      return std::string("no ") + LP_BOARDS_DIR + "/rv64gc-linux.Image: build it with cmake --build " +
             LP_BUILD_DIR + " --target boards";
    if (!fs::exists(ps))
      return "no " + ps + " (the riscv64-gc preset's static patch-stress): cmake --preset riscv64-gc && cmake --build "
             "--preset riscv64-gc --target patch-stress, or set LP_VBOARD_PATCH_STRESS_RV64GC";
    return {};
  }
};

TEST(VBoardReal, PatchStressPassesOnTheRv64gcLinuxBoard) {
  RealBoard rb;
  ASSERT_EQ(rb.problem(), "");
  ExecutorConfig c;
  c.kind = "vboard";
  c.binaries["patch-stress"] = rb.ps;
  c.vboard.board = rb.desc;
  VBoardExecutor ex(c);
  auto spec = stress_spec(240);
  spec.mutable_workload()->mutable_patch_stress()->set_batches(3);
  Job j(spec);
  auto r = ex.run(j.ctx);
  ASSERT_EQ(r.outcome(), v1::OUTCOME_PASS) << r.message() << "\n" << j.out.all();
  EXPECT_EQ(r.batches(), 3u);
  EXPECT_GT(r.calls(), 0u);
  EXPECT_GT(r.hits(), 0u);
  EXPECT_EQ(r.wrong_results(), 0u);
  EXPECT_TRUE(contains(r.result_json(), "\"arch\":\"riscv64\"")) << r.result_json();
  EXPECT_TRUE(contains(j.out.get("serial"), "Linux version 6.1")) << j.out.get("serial");
  EXPECT_TRUE(contains(j.out.get("agent"), "power off: the board powered itself off")) << j.out.get("agent");
  std::cout << "boot + job: " << r.message() << "\n";
}

// A real-kernel finding the conformance row relies on: riscv Linux 6.1 has no
// MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, so --sync membarrier is refused
// with LP_ENOTSUP before any call (farmctl conformance: unsupported).
TEST(VBoardReal, MembarrierSyncCoreIsNotSupportedByRiscvLinux61) {
  RealBoard rb;
  ASSERT_EQ(rb.problem(), "");
  ExecutorConfig c;
  c.kind = "vboard";
  c.binaries["patch-stress"] = rb.ps;
  c.vboard.board = rb.desc;
  VBoardExecutor ex(c);
  auto spec = stress_spec(120);
  spec.mutable_workload()->mutable_patch_stress()->set_sync("membarrier");
  Job j(spec);
  auto r = ex.run(j.ctx);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_FAIL) << r.message();
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_EQ(r.calls(), 0u);
  EXPECT_TRUE(contains(r.result_json(), "\"error\":\"LP_ENOTSUP")) << r.result_json();
}

}  // namespace
