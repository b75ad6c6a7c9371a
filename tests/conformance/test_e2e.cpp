// `farmctl conformance --local` end to end: the real farmctl binary starts its
// embedded farmd and agents and runs a small matrix.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <set>
#include <thread>

#include "conf_test_util.hpp"
#include "farm/agent/agent.hpp"
#include "farmd/server.hpp"

using conftest::run;
using conftest::slurp;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kFake = std::string(CONFORMANCE_TEST_DIR) + "/fake";

std::string farmctl(const std::string& args) { return std::string(FARMCTL_BIN) + " conformance --local " + args; }

json load(const std::string& dir) { return json::parse(slurp(dir + "/conformance.json")); }

int count_status(const json& rep, const std::string& st) {
  int n = 0;
  for (const auto& c : rep["cells"]) n += c["status"] == st;
  return n;
}

int count_status(const json& rep, const std::string& target, const std::string& st) {
  int n = 0;
  for (const auto& c : rep["cells"]) n += c["target"] == target && c["status"] == st;
  return n;
}

// A stand-in for qemu-user: skips the emulator's options and runs the program
// with FAKE_EMULATOR=<name> (the fake patch-stress echoes it as "emulator").
void fake_qemu_user(const std::string& path, const std::string& name) {
  std::ofstream(path) << "#!/bin/sh\n"
                         "[ \"$1\" = --version ] && { echo fake qemu-user; exit 0; }\n"
                         "while [ $# -gt 0 ]; do case \"$1\" in -L|-cpu) shift 2 ;; -*) shift ;; *) break ;; esac; done\n"
                         "FAKE_EMULATOR=" << name << " exec \"$@\"\n";
  fs::permissions(path, fs::perms::owner_all);
}

// A minimal static ELF header of machine `em` (243 riscv64, 183 aarch64):
// enough for the vboard executor's checks.
void fake_elf(const std::string& path, unsigned char em) {
  unsigned char h[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
  h[16] = 2;   // ET_EXEC
  h[18] = em;  // e_machine
  h[20] = 1;   // EV_CURRENT
  h[52] = 64;  // e_ehsize
  h[54] = 56;  // e_phentsize
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(h), sizeof h);
  fs::permissions(path, fs::perms::owner_all);
}

// A fake board's qemu: prints the board init's markers around what
// patch-stress (or a benchmark) would print for the job's argv, read back
// from the initramfs. membarrier_enotsup: --sync membarrier is refused
// (riscv64 Linux 6.1), else it passes (arm64 Linux 6.1 has SYNC_CORE).
void fake_board_qemu(const std::string& path, bool membarrier_enotsup) {
  std::ofstream(path) << R"(#!/bin/bash
while [ $# -gt 0 ]; do [ "$1" = -initrd ] && rd=$2; shift; done
argv=$(cpio -i --quiet --to-stdout job/argv < "$rd" | tr '\0' ' ')
printf 'Linux version 6.1.192\r\n===FARM-BOARD-BEGIN===\r\n'
case "$argv" in
  *probe-hit*) echo '{"bench":"probe-hit","plain_ns":17,"jump_cost_ns":150,"trap_cost_ns":76000}'; rc=0 ;;
  *commit-latency*) echo '{"bench":"commit-latency","sites":1,"batch_ms":60}'; rc=0 ;;
  *"--sync membarrier"*)
    if [ )" << (membarrier_enotsup ? 1 : 0) << R"( = 1 ]; then
      echo '{"workload":"patch-stress","calls":0,"error":"LP_ENOTSUP: not supported on this kernel or architecture","verdict":"fail"}'; rc=1
    else
      echo "{\"workload\":\"patch-stress\",\"calls\":1000,\"hits\":10,\"batches\":1,\"argv\":\"$argv\",\"verdict\":\"pass\"}"; rc=0
    fi ;;
  *) echo "{\"workload\":\"patch-stress\",\"calls\":1000,\"hits\":10,\"batches\":1,\"argv\":\"$argv\",\"verdict\":\"pass\"}"; rc=0 ;;
esac
printf '===FARM-BOARD-END rc=%d===\r\n' $rc
)";
  fs::permissions(path, fs::perms::owner_all);
}

}  // namespace

#ifdef PATCH_STRESS_BIN
// The real patch-stress, x86_64 only, a small matrix: passes.
TEST(ConformanceE2E, LocalX86Passes) {
  conftest::TempDir d;
  auto r = run(farmctl("--targets x86_64 --batches 50 --signal-batches 5 --threads 2 --functions 16 "
                       "--patch-stress-host " PATCH_STRESS_BIN " --bench-dir-host " + kFake +
                       " --report-dir " + d / "rep"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("PASS: 11/11 passed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stress/procmem/signal/trap"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("body/mprotect/membarrier/auto"), std::string::npos) << r.out;  // instruction sites
  EXPECT_NE(r.out.find("exit/mprotect/membarrier/jump"), std::string::npos) << r.out;  // call probes
  EXPECT_NE(r.out.find("exit/mprotect/membarrier/trap"), std::string::npos) << r.out;
  auto rep = load(d / "rep");
  EXPECT_EQ(rep["ok"], true);
  EXPECT_EQ(count_status(rep, "pass"), 11);
  int exit_cells = 0;
  for (const auto& c : rep["cells"]) {
    EXPECT_GT(c["calls"].get<uint64_t>(), 0u) << c.dump();
    EXPECT_EQ(c["result"]["verdict"], "pass");
    EXPECT_EQ(c["result"]["seed"], c["seed"]);
    // The agent passed --exit-probes: the workload says so and checked the exits.
    const bool exit_cell = c["test"].get<std::string>().rfind("exit/", 0) == 0;
    EXPECT_EQ(c["result"]["exit_probes"], exit_cell) << c.dump();
    if (exit_cell) {
      ++exit_cells;
      EXPECT_GT(c["result"]["exits"].get<uint64_t>(), 0u) << c.dump();
      EXPECT_EQ(c["result"]["exits"], c["result"]["entries"]) << c.dump();
      EXPECT_EQ(c["result"]["exit_mismatches"], 0) << c.dump();
    }
  }
  EXPECT_EQ(exit_cells, 2);
  auto chk = run(conftest::check_report_cmd(d / "rep"));
  EXPECT_EQ(chk.status, 0) << chk.out;
}
#endif

// A target whose workload fails: non-zero exit, the failure in every report.
TEST(ConformanceE2E, FailingWorkloadFailsTheRun) {
  conftest::TempDir d;
  auto r = run("FAKE_STRESS_MODE=fail " +
               farmctl("--targets x86_64 --writers mprotect --kinds jump --no-bench --patch-stress-host " + kFake +
                       "/patch-stress --report-dir " + d / "rep"));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("FAIL"), std::string::npos) << r.out;
  auto rep = load(d / "rep");
  EXPECT_EQ(rep["ok"], false);
  EXPECT_EQ(count_status(rep, "fail"), 5);  // membarrier, signal, the instruction-site cell, 2 call-probe cells
  std::string junit = slurp(d / "rep/junit.xml");
  EXPECT_EQ(conftest::count_of(junit, "<failure "), 5u);
  EXPECT_NE(junit.find("wrong result in f3"), std::string::npos);  // the output tail
  auto chk = run(conftest::check_report_cmd(d / "rep"));
  EXPECT_EQ(chk.status, 0) << chk.out;
}

// LP_ENOTSUP is "unsupported" and a missing target "not available": reported,
// not failures, unless --require-all.
TEST(ConformanceE2E, UnsupportedAndNotAvailable) {
  conftest::TempDir d;
  std::string args = "--targets x86_64,rv64gc --kinds jump --patch-stress-host " + kFake +
                     "/patch-stress --patch-stress-rv64gc " + d / "no-such-binary" + " --bench-dir-host " + kFake +
                     " --report-dir " + d / "rep";
  auto r = run("FAKE_STRESS_MODE=enotsup-procmem " + farmctl(args));
  EXPECT_EQ(r.status, 0) << r.out;
  auto rep = load(d / "rep");
  EXPECT_EQ(count_status(rep, "pass"), 5);  // mprotect x {membarrier, signal}, body, exit x {jump, trap}
  EXPECT_EQ(count_status(rep, "unsupported"), 2);
  EXPECT_EQ(count_status(rep, "not-available"), 1);
  EXPECT_NE(r.out.find("rv64gc: not available: no " + d / "no-such-binary"), std::string::npos) << r.out;
  EXPECT_EQ(rep["benches"].size(), 2u);
  std::string html = slurp(d / "rep/index.html");
  EXPECT_NE(html.find("<svg id=\"plot-probe-hit\""), std::string::npos);
  EXPECT_NE(html.find("<polyline class=\"series\" data-target=\"x86_64\""), std::string::npos);

  auto strict = run("FAKE_STRESS_MODE=enotsup-procmem " + farmctl(args + " --require-all --no-report"));
  EXPECT_EQ(strict.status, 1) << strict.out;
  EXPECT_NE(strict.out.find("(--require-all)"), std::string::npos) << strict.out;
}

// The board targets through the embedded farm with fake boards (a fake qemu
// script per board, as the vboard executor's own tests use): rv64gc-linux
// boots; its qemu reads the job's argv back from the initramfs and answers as
// patch-stress would (LP_ENOTSUP for --sync membarrier) or as a benchmark;
// rv64g-linux never prints anything, so its preflight boot fails and the
// target is not available with that reason (nothing submitted for it).
TEST(ConformanceE2E, BoardTargets) {
  conftest::TempDir d;
  std::string boards = d / "boards";
  fs::create_directories(boards);
  fake_elf(boards + "/init-riscv64", 243);
  fake_elf(d / "patch-stress", 243);
  fs::create_directories(d / "bench");
  fake_elf(d / "bench/probe-hit", 243);
  fake_elf(d / "bench/commit-latency", 243);
  for (const char* b : {"rv64gc-linux", "rv64g-linux"}) std::ofstream(boards + "/" + b + ".Image") << "kernel";
  fake_board_qemu(d / "qemu-good", /*membarrier_enotsup=*/true);
  std::ofstream(d / "qemu-dead") << "#!/bin/sh\nexec sleep 600\n";
  fs::permissions(d / "qemu-dead", fs::perms::owner_all);
  for (auto [b, q] : {std::pair{"rv64gc-linux", "qemu-good"}, std::pair{"rv64g-linux", "qemu-dead"}})
    std::ofstream(boards + "/" + b + ".json")
        << R"({"name": ")" << b << R"(", "arch": "riscv64", "isa": ")" << (std::string(b) == "rv64gc-linux" ? "rv64gc" : "rv64g")
        << R"(", "usable": true, "qemu": ")" << d / q << R"(", "machine": "virt", "cpu": "rv64", "smp": 4,
  "memory": "1G", "bios": "default", "qemu_args": ["-nographic", "-no-reboot"], "kernel": ")" << b
        << R"(.Image", "kernel_target": "board-kernel-x", "init": "init-riscv64", "append": "console=ttyS0",
  "boot_timeout": 2})";
  auto r = run(farmctl("--targets rv64gc-linux,rv64g-linux --boards-dir " + boards + " --patch-stress-rv64gc " +
                       d / "patch-stress" + " --patch-stress-rv64g " + d / "patch-stress" + " --bench-dir-rv64gc " +
                       d / "bench" + " --board-batches 7 --board-procmem-batches 2 --report-dir " + d / "rep"));
  EXPECT_EQ(r.status, 0) << r.out;
  auto rep = load(d / "rep");
  EXPECT_EQ(count_status(rep, "pass"), 11) << r.out;
  EXPECT_EQ(count_status(rep, "unsupported"), 4) << r.out;  // the membarrier cells
  EXPECT_EQ(count_status(rep, "not-available"), 1) << r.out;
  EXPECT_NE(r.out.find("rv64gc-linux: the board booted (preflight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rv64g-linux: not available: the board did not boot (preflight, patch-stress --help as the "
                       "job): boot: no ===FARM-BOARD-BEGIN=== within 2 s (nothing at all on the console"),
            std::string::npos)
      << r.out;
  for (const auto& c : rep["cells"]) {
    if (c["target"] != "rv64gc-linux") continue;
    EXPECT_EQ(c["worker"], "local-rv64gc-linux") << c.dump();
    const std::string test = c["test"];
    if (c["status"] == "unsupported") {
      EXPECT_NE(test.find("/membarrier/"), std::string::npos) << test;
      EXPECT_NE(c["note"].get<std::string>().find("no MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE"), std::string::npos);
      continue;
    }
    // The job's typed fields crossed farmd and the executor into /job/argv.
    const std::string argv = c["result"]["argv"];
    EXPECT_EQ(argv.rfind("/job/bin/patch-stress ", 0), 0u) << argv;
    const bool procmem = test.find("/procmem/") != std::string::npos, sig = test.find("/signal/") != std::string::npos;
    const std::string batches = procmem ? "2" : sig ? "5" : "7";
    EXPECT_NE(argv.find("--batches " + batches + " "), std::string::npos) << test << ": " << argv;
  }
  ASSERT_EQ(rep["benches"].size(), 2u);
  for (const auto& b : rep["benches"]) {
    EXPECT_EQ(b["target"], "rv64gc-linux");
    EXPECT_EQ(b["ok"], true) << b.dump();
    EXPECT_NE(b["message"].get<std::string>().find("in the guest of board rv64gc-linux"), std::string::npos);
  }
  EXPECT_NE(r.out.find("rv64gc-linux probe-hit: jump probe 150.00 ns"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("notes:\n  [1] riscv64 Linux 6.1 has no MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE"),
            std::string::npos)
      << r.out;
  auto chk = run(conftest::check_report_cmd(d / "rep"));
  EXPECT_EQ(chk.status, 0) << chk.out;

  // A board marked unusable in its description: not available at once, with its reason.
  std::string desc = slurp(boards + "/rv64g-linux.json");
  desc.replace(desc.find("\"usable\": true"), 14, "\"usable\": false, \"unusable_reason\": \"OpenSBI is rv64gc code\"");
  std::ofstream(boards + "/rv64g-linux.json") << desc;
  r = run(farmctl("--targets rv64g-linux --boards-dir " + boards + " --patch-stress-rv64g " + d / "patch-stress" +
                  " --no-bench --no-report"));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("rv64g-linux: not available: unusable board: OpenSBI is rv64gc code (\"usable\": false in " +
                       boards + "/rv64g-linux.json)"),
            std::string::npos)
      << r.out;
}

// aarch64 under qemu-user next to rv64gc: each has a local agent of its own
// (arch aarch64 / riscv64) with its own emulator; procmem is refused
// (LP_ENOTSUP, as patch-stress does under qemu-aarch64) and reported as
// unsupported with the target's note; no flush_icache cells on arm64.
TEST(ConformanceE2E, Aarch64QemuUser) {
  conftest::TempDir d;
  fake_qemu_user(d / "qemu-rv", "rv");
  fake_qemu_user(d / "qemu-a64", "a64");
  auto r = run("FAKE_STRESS_MODE=enotsup-procmem " +
               farmctl("--targets rv64gc,aarch64 --kinds jump --patch-stress-rv64gc " + kFake +
                       "/patch-stress --patch-stress-aarch64 " + kFake + "/patch-stress --qemu-user " + d / "qemu-rv" +
                       " --qemu-user-aarch64 " + d / "qemu-a64" + " --bench-dir-rv64gc " + kFake +
                       " --bench-dir-aarch64 " + kFake + " --report-dir " + d / "rep"));
  EXPECT_EQ(r.status, 0) << r.out;
  auto rep = load(d / "rep");
  // rv64gc: 2 writers x 3 syncs + 1 + 2; aarch64: 2 writers x 2 syncs + 1 + 2
  EXPECT_EQ(count_status(rep, "rv64gc", "pass"), 6) << r.out;
  EXPECT_EQ(count_status(rep, "rv64gc", "unsupported"), 3) << r.out;
  EXPECT_EQ(count_status(rep, "aarch64", "pass"), 5) << r.out;
  EXPECT_EQ(count_status(rep, "aarch64", "unsupported"), 2) << r.out;
  EXPECT_NE(r.out.find("  aarch64: 5/7 passed, 2 unsupported"), std::string::npos) << r.out;
  std::set<std::string> tests;
  for (const auto& c : rep["cells"]) {
    const std::string target = c["target"], test = c["test"];
    const bool a64 = target == "aarch64";
    EXPECT_EQ(c["worker"], a64 ? "local-qemu-user-aarch64" : "local-qemu-user") << c.dump();
    EXPECT_EQ(c["result"]["emulator"], a64 ? "a64" : "rv") << c.dump();
    EXPECT_EQ(c["spec"]["selector"]["arch"], a64 ? "aarch64" : "riscv64") << c.dump();
    if (!a64) continue;
    tests.insert(test);
    EXPECT_EQ(test.find("flush_icache"), std::string::npos) << test;
    const std::string note = c.value("note", "");
    if (test.find("/procmem/") != std::string::npos) {
      EXPECT_EQ(c["status"], "unsupported") << c.dump();
      EXPECT_NE(note.find("refuses --writer procmem with LP_ENOTSUP"), std::string::npos) << c.dump();
    } else {
      EXPECT_EQ(c["status"], "pass") << c.dump();
      EXPECT_EQ(note.find("HOST kernel") != std::string::npos, test.find("/membarrier/") != std::string::npos)
          << c.dump();
    }
  }
  EXPECT_EQ(tests, (std::set<std::string>{"stress/mprotect/membarrier/jump", "stress/mprotect/signal/jump",
                                          "stress/procmem/membarrier/jump", "stress/procmem/signal/jump",
                                          "body/mprotect/membarrier/auto", "exit/mprotect/membarrier/jump",
                                          "exit/mprotect/membarrier/trap"}));
  // The benchmarks ran through each target's emulator.
  ASSERT_EQ(rep["benches"].size(), 4u);
  for (const auto& b : rep["benches"]) EXPECT_EQ(b["ok"], true) << b.dump();
  EXPECT_NE(r.out.find("  aarch64: qemu-user: user-mode emulation"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("] under qemu-user libpatch refuses --writer procmem with LP_ENOTSUP"), std::string::npos)
      << r.out;
  for (const auto& t : rep["targets"])
    if (t["name"] == "aarch64") {
      EXPECT_EQ(t["emulator"], d / "qemu-a64");
      EXPECT_EQ(t["bench_dir"], kFake);
    }
  auto chk = run(conftest::check_report_cmd(d / "rep"));
  EXPECT_EQ(chk.status, 0) << chk.out;
}

// Debian's arm64 kernel as a board (arm64-linux), with a fake board: its
// description's qemu boots it (--qemu-system is riscv64's and does not
// replace it), membarrier passes there (arm64 Linux 6.1 has SYNC_CORE), the
// aarch64 patch-stress and benchmarks go into its guest.
TEST(ConformanceE2E, Arm64Board) {
  conftest::TempDir d;
  std::string boards = d / "boards";
  fs::create_directories(boards);
  fake_elf(boards + "/init-aarch64", 183);
  fake_elf(d / "patch-stress", 183);
  fs::create_directories(d / "bench");
  fake_elf(d / "bench/probe-hit", 183);
  fake_elf(d / "bench/commit-latency", 183);
  std::ofstream(boards + "/arm64-linux.vmlinuz") << "kernel";
  fake_board_qemu(d / "qemu-arm64", /*membarrier_enotsup=*/false);
  std::ofstream(boards + "/arm64-linux.json")
      << R"({"name": "arm64-linux", "arch": "aarch64", "isa": "armv8-max", "usable": true, "qemu": ")" << d / "qemu-arm64"
      << R"(", "machine": "virt", "cpu": "max,pauth-impdef=on", "smp": 4, "memory": "1G", "bios": null,
  "qemu_args": ["-nographic", "-no-reboot", "-nic", "none"], "kernel": "arm64-linux.vmlinuz",
  "kernel_target": "board-kernel-arm64", "init": "init-aarch64", "init_target": "board-init-aarch64",
  "append": "console=ttyAMA0 panic=1", "console": "ttyAMA0", "boot_timeout": 5})";
  const std::string args = "--targets arm64-linux --boards-dir " + boards + " --patch-stress-aarch64 " +
                           d / "patch-stress" + " --bench-dir-aarch64 " + d / "bench" +
                           " --board-batches 7 --board-signal-batches 4 --board-procmem-batches 2";
  auto r = run(farmctl(args + " --qemu-system " + d / "no-such-qemu-system-riscv64 --report-dir " + d / "rep"));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("arm64-linux: the board booted (preflight"), std::string::npos) << r.out;
  auto rep = load(d / "rep");
  EXPECT_EQ(count_status(rep, "pass"), 2 * 2 * 2 + 1 + 2) << r.out;
  EXPECT_EQ(rep["cells"].size(), 11u) << r.out;
  for (const auto& c : rep["cells"]) {
    EXPECT_EQ(c["worker"], "local-arm64-linux") << c.dump();
    EXPECT_EQ(c["spec"]["selector"]["kind"], "board") << c.dump();
    const std::string test = c["test"], argv = c["result"]["argv"];
    EXPECT_EQ(argv.rfind("/job/bin/patch-stress ", 0), 0u) << argv;
    const bool procmem = test.find("/procmem/") != std::string::npos, sig = test.find("/signal/") != std::string::npos;
    const std::string batches = procmem ? "2" : sig ? "4" : "7";
    EXPECT_NE(argv.find("--batches " + batches + " "), std::string::npos) << test << ": " << argv;
    if (test.rfind("body/", 0) == 0 || test.rfind("exit/", 0) == 0) {
      EXPECT_NE(argv.find("--sync membarrier"), std::string::npos) << test << ": " << argv;  // the first sync
    }
    EXPECT_EQ(c.value("note", "").find("expected to pass") != std::string::npos,
              test.find("/membarrier/") != std::string::npos)
        << c.dump();
  }
  ASSERT_EQ(rep["benches"].size(), 2u);
  for (const auto& b : rep["benches"]) {
    EXPECT_EQ(b["target"], "arm64-linux");
    EXPECT_EQ(b["ok"], true) << b.dump();
    EXPECT_NE(b["message"].get<std::string>().find("in the guest of board arm64-linux"), std::string::npos);
  }
  EXPECT_NE(r.out.find("notes:\n  [1] the guest's arm64 Linux 6.1 membarrier"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  arm64-linux: Debian 12's arm64 Linux 6.1"), std::string::npos) << r.out;
  auto chk = run(conftest::check_report_cmd(d / "rep"));
  EXPECT_EQ(chk.status, 0) << chk.out;

  // --qemu-system-aarch64 replaces the description's emulator.
  r = run(farmctl(args + " --qemu-system-aarch64 " + d / "no-such-qemu --no-bench --no-report"));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("arm64-linux: not available: " + d / "no-such-qemu" + " not found in PATH (Debian: qemu-system-arm)"),
            std::string::npos)
      << r.out;
  // A riscv64 patch-stress is refused by the arm64 board's executor.
  fake_elf(d / "rv-patch-stress", 243);
  r = run(farmctl("--targets arm64-linux --boards-dir " + boards + " --patch-stress-aarch64 " + d / "rv-patch-stress" +
                  " --no-bench --no-report"));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("arm64-linux: not available: vboard executor: "), std::string::npos) << r.out;
}

// The aarch64 options: a bad path or emulator makes the target not available
// with the reason (a failure only with --require-all); an unknown target and
// --patch-stress-aarch64 with --farm are usage errors.
TEST(ConformanceE2E, Aarch64Options) {
  conftest::TempDir d;
  const std::string missing = d / "no-such-binary";
  for (const char* t : {"aarch64", "arm64-linux"}) {
    auto r = run(farmctl(std::string("--targets ") + t + " --patch-stress-aarch64 " + missing + " --no-report"));
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find(std::string(t) + ": not available: no " + missing + " (build it: see docs/conformance.md)"),
              std::string::npos)
        << r.out;
    r = run(farmctl(std::string("--targets ") + t + " --patch-stress-aarch64 " + missing + " --require-all --no-report"));
    EXPECT_EQ(r.status, 1) << r.out;
  }
  // The defaults: the aarch64 preset's tree next to this build's (build/aarch64),
  // for both targets (here not available: no such emulators, nothing runs).
  auto r = run(farmctl("--targets aarch64,arm64-linux --qemu-user-aarch64 " + d / "no-qemu" +
                       " --qemu-system-aarch64 " + d / "no-qemu" + " --no-bench --no-report --json"));
  EXPECT_EQ(r.status, 0) << r.out;
  const fs::path build = fs::path(FARMCTL_BIN).parent_path().parent_path().parent_path().parent_path();
  const std::string bin = (build / "aarch64/farm/workloads/stress/patch-stress").lexically_normal().string();
  const std::string bench = (build / "aarch64/bench").lexically_normal().string();
  EXPECT_EQ(conftest::count_of(r.out, "\"binary\": \"" + bin + "\""), 2u) << r.out;
  EXPECT_EQ(conftest::count_of(r.out, "\"bench_dir\": \"" + bench + "\""), 2u) << r.out;
  // A missing emulator.
  r = run(farmctl("--targets aarch64 --patch-stress-aarch64 " + kFake + "/patch-stress --qemu-user-aarch64 " +
                  d / "no-qemu" + " --no-report"));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("aarch64: not available: " + d / "no-qemu" + " not found in PATH (Debian: qemu-user)"),
            std::string::npos)
      << r.out;
  // A missing board description.
  r = run(farmctl("--targets arm64-linux --patch-stress-aarch64 " + kFake + "/patch-stress --boards-dir " + d / "none" +
                  " --no-report"));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("arm64-linux: not available: no board description " + d / "none" +
                       "/arm64-linux.json (build the boards: cmake --build BUILD --target boards)"),
            std::string::npos)
      << r.out;
  // A benchmark directory without the benchmarks: reported, a failure with --require-all.
  fake_qemu_user(d / "qemu-a64", "a64");
  const std::string small = "--targets aarch64 --writers mprotect --kinds jump --body-kinds '' --exit-kinds '' "
                            "--patch-stress-aarch64 " + kFake + "/patch-stress --qemu-user-aarch64 " + d / "qemu-a64" +
                            " --bench-dir-aarch64 " + d / "no-bench" + " --no-report";
  r = run(farmctl(small));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("aarch64 probe-hit: not available: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no " + d / "no-bench/probe-hit"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PASS: 2/2 passed"), std::string::npos) << r.out;
  EXPECT_EQ(run(farmctl(small + " --require-all")).status, 1);
  // Usage errors: an unknown target names the valid ones; --patch-stress-aarch64 is --local's.
  r = run(farmctl("--targets aarch64,arm64 --no-report"));
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("--targets: arm64 not in {"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(",aarch64,arm64-linux}"), std::string::npos) << r.out;  // the valid targets
  r = run(std::string(FARMCTL_BIN) + " conformance --farm 127.0.0.1:1 --targets aarch64 --patch-stress-aarch64 " +
          missing + " --no-report");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("--patch-stress-aarch64 applies to --local"), std::string::npos) << r.out;
}

// --db keeps the store: the second run's report shows both runs.
TEST(ConformanceE2E, HistoryAcrossRuns) {
  conftest::TempDir d;
  std::string args = "--targets x86_64 --writers mprotect --kinds jump --body-kinds '' --exit-kinds '' --no-bench "
                     "--patch-stress-host " + kFake + "/patch-stress --db " + d / "farm.db" + " --report-dir " + d / "rep";
  ASSERT_EQ(run(farmctl(args)).status, 0);
  auto r = run("FAKE_STRESS_MODE=fail " + farmctl(args));
  EXPECT_EQ(r.status, 1) << r.out;
  auto rep = load(d / "rep");
  ASSERT_EQ(rep["history"].size(), 2u) << rep["history"].dump();
  EXPECT_EQ(rep["history"][0]["passed"], 2);
  EXPECT_EQ(rep["history"][1]["failed"], 2);
  EXPECT_EQ(rep["history"][1]["run_id"], rep["run_id"]);
}

TEST(ConformanceE2E, UsageErrors) {
  EXPECT_EQ(run(std::string(FARMCTL_BIN) + " conformance").status, 2);
  EXPECT_NE(run(std::string(FARMCTL_BIN) + " conformance --local --targets sparc").status, 0);
  const auto bad = run(std::string(FARMCTL_BIN) + " conformance --local --body-kinds auto,bogus");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.out.find("unknown probe kind 'bogus'"), std::string::npos) << bad.out;
  const auto bad_exit = run(std::string(FARMCTL_BIN) + " conformance --local --exit-kinds jump,sideways");
  EXPECT_EQ(bad_exit.status, 2);
  EXPECT_NE(bad_exit.out.find("--exit-kinds: unknown probe kind 'sideways'"), std::string::npos) << bad_exit.out;
}

// --farm: the same matrix on a running farm (here farmd and one native agent
// in this process); targets no worker can run are reported as not available.
TEST(ConformanceE2E, FarmMode) {
  conftest::TempDir d;
  farmd::Config cfg;
  cfg.db_path = d / "farm.db";
  cfg.tokens = {{farmd::Role::client, "client-tok", "ci"}, {farmd::Role::agent, "agent-tok", "lab"}};
  farmd::Server srv(cfg);
  srv.start();
  farm::agent::AgentConfig ac;
  ac.channel.address = srv.address();
  ac.channel.token = "agent-tok";
  ac.name = "x86-1";
  ac.exec.kind = "native";
  ac.exec.binaries["patch-stress"] = kFake + "/patch-stress";
  ac.work_dir = d / "agent";
  farm::agent::Agent agent(ac);
  agent.start();
  for (int i = 0; i < 500 && !agent.registered(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(agent.registered());

  auto r = run(std::string(FARMCTL_BIN) + " --token client-tok conformance --farm " + srv.address() +
               " --targets x86_64,rv64gc --writers mprotect --kinds jump --no-bench --report-dir " + d / "rep");
  EXPECT_EQ(r.status, 0) << r.out;
  auto rep = load(d / "rep");
  EXPECT_EQ(count_status(rep, "pass"), 5);
  EXPECT_EQ(count_status(rep, "not-available"), 1);
  EXPECT_NE(r.out.find("rv64gc: not available: no worker of the farm matches"), std::string::npos) << r.out;
  for (const auto& c : rep["cells"])
    if (c["status"] == "pass") {
      EXPECT_EQ(c["worker"], "x86-1");
      // Through farmd and the agent: exit_probes became --exit-probes (the fake echoes it).
      EXPECT_EQ(c["result"]["exit_probes"], c["test"].get<std::string>().rfind("exit/", 0) == 0) << c.dump();
    }

  // Without the token: an RPC error, exit 2.
  auto bad = run(std::string(FARMCTL_BIN) + " conformance --farm " + srv.address() +
                 " --targets x86_64 --no-bench --no-report");
  EXPECT_EQ(bad.status, 2) << bad.out;
  EXPECT_NE(bad.out.find("UNAUTHENTICATED"), std::string::npos) << bad.out;
  agent.stop();
  agent.wait();
  srv.shutdown();
}
