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
