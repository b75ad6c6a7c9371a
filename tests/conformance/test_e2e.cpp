// `farmctl conformance --local` end to end: the real farmctl binary starts its
// embedded farmd and agents and runs a small matrix.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
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
  // A minimal static riscv64 ELF header: enough for the executor's checks.
  auto fake_elf = [](const std::string& path) {
    unsigned char h[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    h[16] = 2;                  // ET_EXEC
    h[18] = 243;                // EM_RISCV
    h[20] = 1;                  // EV_CURRENT
    h[52] = 64;                 // e_ehsize
    h[54] = 56;                 // e_phentsize
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(h), sizeof h);
    fs::permissions(path, fs::perms::owner_all);
  };
  fake_elf(boards + "/init-riscv64");
  fake_elf(d / "patch-stress");
  fs::create_directories(d / "bench");
  fake_elf(d / "bench/probe-hit");
  fake_elf(d / "bench/commit-latency");
  for (const char* b : {"rv64gc-linux", "rv64g-linux"}) std::ofstream(boards + "/" + b + ".Image") << "kernel";
  std::ofstream(d / "qemu-good") << R"(#!/bin/bash
while [ $# -gt 0 ]; do [ "$1" = -initrd ] && rd=$2; shift; done
argv=$(cpio -i --quiet --to-stdout job/argv < "$rd" | tr '\0' ' ')
printf 'Linux version 6.1.192\r\n===FARM-BOARD-BEGIN===\r\n'
case "$argv" in
  *probe-hit*) echo '{"bench":"probe-hit","plain_ns":17,"jump_cost_ns":150,"trap_cost_ns":76000}'; rc=0 ;;
  *commit-latency*) echo '{"bench":"commit-latency","sites":1,"batch_ms":60}'; rc=0 ;;
  *"--sync membarrier"*) echo '{"workload":"patch-stress","calls":0,"error":"LP_ENOTSUP: not supported on this kernel or architecture","verdict":"fail"}'; rc=1 ;;
  *) echo "{\"workload\":\"patch-stress\",\"calls\":1000,\"hits\":10,\"batches\":1,\"argv\":\"$argv\",\"verdict\":\"pass\"}"; rc=0 ;;
esac
printf '===FARM-BOARD-END rc=%d===\r\n' $rc
)";
  std::ofstream(d / "qemu-dead") << "#!/bin/sh\nexec sleep 600\n";
  fs::permissions(d / "qemu-good", fs::perms::owner_all);
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
