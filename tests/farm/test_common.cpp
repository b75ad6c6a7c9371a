// Unit tests of the shared farm pieces: selector matching, result parsing,
// JUnit output, workload command lines, result classification.
#include <gtest/gtest.h>

#include "farm/agent/executor.hpp"
#include "farm/common/names.hpp"
#include "farm/common/result.hpp"
#include "farm/common/select.hpp"
#include "farm/ctl/client.hpp"

namespace v1 = farm::v1;

TEST(FarmSelect, IsaSubsets) {
  EXPECT_TRUE(farm::isa_satisfies("", "rv64gc"));
  EXPECT_TRUE(farm::isa_satisfies("rv64gc", "rv64gc"));
  EXPECT_TRUE(farm::isa_satisfies("rv64g", "rv64gc"));
  EXPECT_TRUE(farm::isa_satisfies("rv64imafd", "rv64gc"));
  EXPECT_TRUE(farm::isa_satisfies("rv64imac", "rv64gc"));
  EXPECT_FALSE(farm::isa_satisfies("rv64gc", "rv64g"));
  EXPECT_FALSE(farm::isa_satisfies("rv64gcv", "rv64gc"));
  EXPECT_TRUE(farm::isa_satisfies("rv64gc_zba", "rv64gcv_zba_zbb"));
  EXPECT_FALSE(farm::isa_satisfies("rv64gc_zbc", "rv64gc_zba_zbb"));
  EXPECT_FALSE(farm::isa_satisfies("rv32gc", "rv64gc"));
  EXPECT_TRUE(farm::isa_satisfies("x86-64", "x86-64"));
  EXPECT_FALSE(farm::isa_satisfies("x86-64-v3", "x86-64"));
}

TEST(FarmSelect, SelectorMatching) {
  v1::Capabilities caps;
  caps.set_arch("riscv64");
  caps.set_isa("rv64gc");
  caps.set_kind("board");
  caps.set_cores(4);
  (*caps.mutable_labels())["board"] = "visionfive2";
  caps.add_workloads("patch-stress");

  v1::JobSpec spec;
  spec.mutable_workload()->mutable_patch_stress();
  std::string why;
  EXPECT_TRUE(farm::selector_matches(spec, caps, "w1", &why)) << why;
  spec.mutable_selector()->set_arch("riscv64");
  spec.mutable_selector()->set_isa("rv64g");
  spec.mutable_selector()->set_kind("board");
  (*spec.mutable_selector()->mutable_labels())["board"] = "visionfive2";
  EXPECT_TRUE(farm::selector_matches(spec, caps, "w1", &why)) << why;

  auto s2 = spec;
  (*s2.mutable_selector()->mutable_labels())["board"] = "unmatched";
  EXPECT_FALSE(farm::selector_matches(s2, caps, "w1", &why));
  EXPECT_NE(why.find("label board=unmatched"), std::string::npos) << why;

  s2 = spec;
  s2.mutable_selector()->set_min_cores(8);
  EXPECT_FALSE(farm::selector_matches(s2, caps, "w1", &why));

  s2 = spec;
  s2.mutable_selector()->set_worker_id("w2");
  EXPECT_FALSE(farm::selector_matches(s2, caps, "w1", &why));
  EXPECT_TRUE(farm::selector_matches(s2, caps, "w2", &why));

  s2 = spec;
  s2.mutable_workload()->mutable_baremetal()->set_image("x");
  EXPECT_FALSE(farm::selector_matches(s2, caps, "w1", &why));
  EXPECT_NE(why.find("baremetal"), std::string::npos);

  s2 = spec;
  s2.mutable_selector()->set_arch("x86_64");
  EXPECT_FALSE(farm::selector_matches(s2, caps, "w1", &why));
}

TEST(FarmResult, LastJsonObjectSkipsNoise) {
  std::string out =
      "booting...\n{\"progress\":0.1}\nnoise { not json }\n"
      "\x1b[0m[hart 1] {\"workload\":\"baremetal\",\"calls\":5,\"verdict\":\"pass\"}\r\n"
      "trailing line\n";
  std::string raw;
  auto j = farm::last_json_object(out, &raw);
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["workload"], "baremetal");
  EXPECT_EQ(raw, "{\"workload\":\"baremetal\",\"calls\":5,\"verdict\":\"pass\"}");
  EXPECT_FALSE(farm::last_json_object("no json here\n{broken\n"));
  EXPECT_FALSE(farm::last_json_object(""));

  v1::JobResult r;
  farm::fill_result_numbers(nlohmann::json::parse(
                                R"({"calls":10,"hits":7,"toggles":3,"syncs":9,"unexpected_signals":1,"wrong_results":2,"verdict":"fail"})"),
                            &r);
  EXPECT_EQ(r.calls(), 10u);
  EXPECT_EQ(r.hits(), 7u);
  EXPECT_EQ(r.batches(), 3u);
  EXPECT_EQ(r.syncs(), 9u);
  EXPECT_EQ(r.unexpected_signals(), 1u);
  EXPECT_EQ(r.wrong_results(), 2u);
  EXPECT_EQ(r.verdict(), "fail");
}

TEST(FarmResult, Tail) {
  EXPECT_EQ(farm::tail("a\nb\nc\n", 2, 100), "b\nc\n");
  EXPECT_EQ(farm::tail("a\nb\nc", 5, 100), "a\nb\nc");
  EXPECT_EQ(farm::tail("0123456789", 5, 4), "6789");
}

TEST(FarmNames, RoundTrip) {
  for (int i = v1::JOB_STATE_QUEUED; i <= v1::JOB_STATE_CANCELLED; ++i) {
    auto s = static_cast<v1::JobState>(i);
    EXPECT_EQ(farm::parse_job_state(farm::job_state_name(s)), s);
  }
  EXPECT_TRUE(farm::is_terminal(v1::JOB_STATE_PASSED));
  EXPECT_FALSE(farm::is_terminal(v1::JOB_STATE_RUNNING));
  EXPECT_EQ(farm::state_for_outcome(v1::OUTCOME_TIMEOUT), v1::JOB_STATE_TIMED_OUT);
}

TEST(FarmAgentExec, PatchStressArgv) {
  v1::PatchStress p;
  p.set_threads(4);
  p.set_functions(64);
  p.set_batches(10000);
  p.set_writer("procmem");
  p.set_sync("signal");
  p.set_probe_kind("trap");
  p.set_sites("body");
  p.add_extra_args("--verbose");
  auto a = farm::agent::patch_stress_argv("/bin/ps", p, 7);
  std::vector<std::string> want{"/bin/ps", "--threads", "4", "--functions", "64", "--batches", "10000", "--seed", "7",
                                "--writer", "procmem", "--sync", "signal", "--kind", "trap", "--sites", "body",
                                "--verbose"};
  EXPECT_EQ(a, want);
  v1::PatchStress d;
  d.set_duration_s(2.5);
  EXPECT_EQ(farm::agent::patch_stress_argv("x", d, 1),
            (std::vector<std::string>{"x", "--duration", "2.5", "--seed", "1"}));
  v1::PatchStress e;  // call probes: a flag without a value
  e.set_probe_kind("jump");
  e.set_exit_probes(true);
  EXPECT_EQ(farm::agent::patch_stress_argv("x", e, 3),
            (std::vector<std::string>{"x", "--seed", "3", "--kind", "jump", "--exit-probes"}));
}

TEST(FarmAgentExec, ResultClassification) {
  using farm::agent::ProcResult;
  using farm::agent::result_from_process;
  ProcResult p;
  p.started = true;
  p.exit_code = 0;
  p.out = "x\n{\"verdict\":\"pass\",\"calls\":3}\n";
  auto r = result_from_process(p, true);
  EXPECT_EQ(r.outcome(), v1::OUTCOME_PASS);
  EXPECT_EQ(r.calls(), 3u);

  p.exit_code = 1;
  p.out = "{\"verdict\":\"fail\"}\n";
  EXPECT_EQ(result_from_process(p, true).outcome(), v1::OUTCOME_FAIL);

  p.exit_code = 1;
  p.out = "{\"verdict\":\"pass\"}\n";  // verdict says pass but the exit code disagrees
  EXPECT_EQ(result_from_process(p, true).outcome(), v1::OUTCOME_FAIL);

  p.exit_code = 0;
  p.out = "no json\n";
  EXPECT_EQ(result_from_process(p, true).outcome(), v1::OUTCOME_FAIL);
  EXPECT_EQ(result_from_process(p, false).outcome(), v1::OUTCOME_PASS);

  p.exit_code = -1;
  p.term_signal = 11;
  auto crash = result_from_process(p, true);
  EXPECT_EQ(crash.outcome(), v1::OUTCOME_FAIL);
  EXPECT_NE(crash.message().find("signal 11"), std::string::npos);

  p.term_signal = 15;
  p.timed_out = true;
  EXPECT_EQ(result_from_process(p, true).outcome(), v1::OUTCOME_TIMEOUT);
  p.timed_out = false;
  p.cancelled = true;
  EXPECT_EQ(result_from_process(p, true).outcome(), v1::OUTCOME_CANCELLED);

  ProcResult ns;
  ns.error = "cannot run x: No such file";
  EXPECT_EQ(result_from_process(ns, true).outcome(), v1::OUTCOME_INFRA_ERROR);
}

TEST(FarmCtl, JunitXml) {
  v1::Report rep;
  (*rep.mutable_worker_targets())["w1"] = "riscv64/qemu-user/rv64gc";
  auto add = [&](const char* id, v1::JobState st, const char* msg) {
    auto* j = rep.add_jobs();
    j->set_id(id);
    j->set_state(st);
    j->set_worker_id("w1");
    j->set_message(msg);
    j->mutable_spec()->mutable_workload()->mutable_patch_stress()->set_threads(2);
    j->mutable_result()->set_duration_s(1.5);
    j->mutable_result()->set_log_tail("line <1> & \"2\"\x01\n");
    j->mutable_result()->set_result_json("{\"verdict\":\"pass\"}");
  };
  add("j-1", v1::JOB_STATE_PASSED, "");
  add("j-2", v1::JOB_STATE_FAILED, "verdict fail");
  add("j-3", v1::JOB_STATE_TIMED_OUT, "timed out");
  add("j-4", v1::JOB_STATE_ERROR, "gave up");
  add("j-5", v1::JOB_STATE_CANCELLED, "cancelled");
  auto xml = farm::ctl::junit_xml(rep);
  EXPECT_NE(xml.find("<testsuites name=\"patch-farm\" tests=\"5\" failures=\"2\" errors=\"1\" skipped=\"1\""),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<testsuite name=\"riscv64/qemu-user/rv64gc\""), std::string::npos);
  EXPECT_NE(xml.find("[j-2]"), std::string::npos);
  EXPECT_NE(xml.find("<failure type=\"timeout\""), std::string::npos);
  EXPECT_NE(xml.find("<error type=\"infrastructure\" message=\"gave up\""), std::string::npos);
  EXPECT_NE(xml.find("line &lt;1&gt; &amp; &quot;2&quot;?"), std::string::npos);
  EXPECT_EQ(xml.find('\x01'), std::string::npos);
}
