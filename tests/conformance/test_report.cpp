// Conformance reports: JSON round trip, JUnit XML and HTML well formed.
#include <gtest/gtest.h>

#include "conf_test_util.hpp"
#include "conformance.hpp"

namespace fc = farm::conformance;
using conftest::count_of;

namespace {

fc::RunReport canned() {
  fc::RunReport r;
  r.run_id = "c-20261125-080000-abcd";
  r.mode = "local";
  r.host = "testhost";
  r.started_ms = 1795600000000;
  r.finished_ms = r.started_ms + 93000;
  auto targets = fc::default_targets();
  for (auto& t : targets) t.binary = "/opt/" + t.name;
  targets[2].available = false;
  targets[2].why = "no /opt/rv64g <missing> & \"quoted\"";
  r.targets = targets;
  fc::MatrixOptions o;
  o.run_id = r.run_id;
  o.writers = {"mprotect", "procmem"};
  r.options = o;
  r.cells = fc::build_matrix(targets, o);
  for (auto& c : r.cells) {
    if (c.status == fc::Status::not_available) continue;
    c.job_id = "j-" + std::to_string(c.seed);
    c.worker = "local-" + c.spec.selector().kind();
    c.attempts = 1;
    c.status = fc::Status::pass;
    c.calls = 1000 + c.seed;
    c.hits = 10 * c.seed;
    c.batches = 2000;
    c.seconds = 1.5;
    c.result_json = R"({"workload":"patch-stress","calls":1000,"verdict":"pass"})";
    if ((c.target == "rv64gc" || c.target == "aarch64") && c.test.find("procmem") != std::string::npos) {
      c.status = fc::Status::unsupported;
      c.message = "LP_ENOTSUP: not supported on this kernel or architecture";
      c.calls = c.hits = c.batches = 0;
    }
    if (c.target.rfind("bm-", 0) == 0) c.toggles = 20000;
  }
  // One real failure with markup in its output.
  for (auto& c : r.cells)
    if (c.target == "x86_64" && c.test == "stress/procmem/signal/trap") {
      c.status = fc::Status::fail;
      c.message = "verdict fail, exit code 1";
      c.log_tail = "wrong result <f3> & \"x\" </script>\n";
      c.result_json = R"({"workload":"patch-stress","wrong_results":1,"note":"</script><b>","verdict":"fail"})";
    }
  fc::BenchRun ph;
  ph.target = "x86_64";
  ph.bench = "probe-hit";
  ph.ok = true;
  ph.seconds = 3;
  ph.lines = {fc::json::parse(R"({"bench":"probe-hit","plain_ns":1.5,"jump_ns":4,"trap_ns":1400,"jump_cost_ns":2.5,"trap_cost_ns":1398.5})")};
  fc::BenchRun cl;
  cl.target = "rv64gc";
  cl.bench = "commit-latency";
  cl.ok = true;
  cl.partial = true;
  cl.lines = {fc::json::parse(R"({"bench":"commit-latency","sites":1,"batch_ms":23.8})"),
              fc::json::parse(R"({"bench":"commit-latency","sites":10,"batch_ms":19.9})"),
              fc::json::parse(R"({"bench":"commit-latency","sites":100,"batch_ms":31.9})")};
  fc::BenchRun cl2 = cl;
  cl2.target = "x86_64";
  cl2.partial = false;
  cl2.lines = {fc::json::parse(R"({"bench":"commit-latency","sites":1,"batch_ms":0.05})"),
               fc::json::parse(R"({"bench":"commit-latency","sites":10000,"batch_ms":3.1})")};
  r.benches = {ph, cl, cl2};
  r.history = {{"c-old", r.started_ms - 86400000, 40, 40, 0, 0, 0, 300.0},
               {r.run_id, r.started_ms, static_cast<uint32_t>(r.cells.size()), 30, 1, 6, 1, 200.0}};
  return r;
}

}  // namespace

TEST(ConformanceReport, JsonRoundTrip) {
  auto r = canned();
  auto j = fc::report_json(r);
  EXPECT_EQ(j["schema"], "libpatch-conformance/1");
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["failures"], 1);
  EXPECT_EQ(j["summary"]["unsupported"], 6 + 4);  // procmem under qemu-user: rv64gc's 6, aarch64's 4
  EXPECT_EQ(j["summary"]["not-available"], 1);
  auto back = fc::report_from_json(j);
  EXPECT_EQ(fc::report_json(back).dump(), j.dump());
  EXPECT_EQ(back.cells.size(), r.cells.size());
  EXPECT_EQ(back.cells[0].spec.workload().patch_stress().writer(), "mprotect");
  EXPECT_EQ(j["options"]["exit_kinds"], (std::vector<std::string>{"jump", "trap"}));
  EXPECT_EQ(back.options.exit_kinds, r.options.exit_kinds);
  EXPECT_EQ(back.options.body_kinds, r.options.body_kinds);
  int exit_cells = 0;
  for (const auto& c : back.cells)
    if (c.test.rfind("exit/", 0) == 0) {
      ++exit_cells;
      EXPECT_TRUE(c.spec.workload().patch_stress().exit_probes()) << c.test;
    }
  EXPECT_EQ(exit_cells, 2 * 6);  // x86_64, rv64gc, rv64gc-linux, rv64g-linux, aarch64, arm64-linux (not rv64g here)
  // Notes: the qemu-user membarrier cells and the targets carry them through the JSON.
  int noted = 0;
  for (size_t i = 0; i < back.cells.size(); ++i) {
    EXPECT_EQ(back.cells[i].note, r.cells[i].note);
    noted += !back.cells[i].note.empty();
  }
  EXPECT_GT(noted, 0);
  EXPECT_EQ(back.targets[1].sync_notes, r.targets[1].sync_notes);
  ASSERT_FALSE(r.targets[7].writer_notes.empty());
  EXPECT_EQ(back.targets[7].writer_notes, r.targets[7].writer_notes);
  EXPECT_EQ(back.targets[5].board, "rv64gc-linux");
  EXPECT_EQ(back.options.board_batches, r.options.board_batches);
  EXPECT_EQ(j["cells"][r.cells.size() - 1]["note"].is_string(), true);
}

TEST(ConformanceReport, JunitCounts) {
  auto r = canned();
  auto x = fc::report_junit(r);
  EXPECT_EQ(count_of(x, "<failure "), 1u);
  EXPECT_EQ(count_of(x, "<skipped "), 11u);  // 6 + 4 unsupported + 1 not available
  EXPECT_NE(x.find("<testsuite name=\"x86_64\""), std::string::npos);
  EXPECT_NE(x.find("<testsuite name=\"bench\""), std::string::npos);
  EXPECT_EQ(x.find("<f3>"), std::string::npos);  // escaped
  EXPECT_NE(x.find("&lt;f3&gt;"), std::string::npos);
  r.require_all = true;  // unsupported / not available become failures
  x = fc::report_junit(r);
  EXPECT_EQ(count_of(x, "<failure "), 12u);
  EXPECT_EQ(count_of(x, "<skipped "), 0u);
}

TEST(ConformanceReport, HtmlIsSelfContained) {
  auto r = canned();
  auto h = fc::report_html(r);
  EXPECT_NE(h.find("<table id=\"matrix\">"), std::string::npos);
  EXPECT_EQ(count_of(h, "<tr class=\"target-row\""), 9u);
  // The notes: a footnote marker on the qemu-user membarrier column, the list under the matrix.
  EXPECT_NE(h.find("<ol id=\"notes\""), std::string::npos);
  EXPECT_NE(h.find("membarrier is the HOST kernel&#39;s"), std::string::npos);
  EXPECT_NE(h.find("<sup class=\"fn\" title=\"membarrier is the HOST kernel"), std::string::npos);
  EXPECT_NE(h.find("<b>rv64gc-linux</b>: Linux 6.1"), std::string::npos);
  // The call-probe cells: one column, a badge per probe kind.
  EXPECT_EQ(count_of(h, "<th>exit/mprotect/membarrier</th>"), 1u);
  EXPECT_NE(h.find("title=\"exit/mprotect/membarrier/trap: pass\">trap \u2713</a>"), std::string::npos);
  EXPECT_NE(h.find("<svg id=\"plot-probe-hit\""), std::string::npos);
  EXPECT_NE(h.find("<svg id=\"plot-commit-latency\""), std::string::npos);
  EXPECT_NE(h.find("<svg id=\"plot-history\""), std::string::npos);
  EXPECT_EQ(count_of(h, "<polyline class=\"series\""), 2u);
  EXPECT_EQ(count_of(h, "class=\"bar bar-"), 2u);
  EXPECT_NE(h.find("not available: no /opt/rv64g &lt;missing&gt; &amp; &quot;quoted&quot;"), std::string::npos);
  // The embedded data cannot end its <script> early.
  auto data = h.find("id=\"report-data\">");
  ASSERT_NE(data, std::string::npos);
  auto end = h.find("</script>", data);
  EXPECT_EQ(h.substr(data, end - data).find("</"), std::string::npos);
  // No external assets (the SVG namespace URI is not one).
  EXPECT_EQ(h.find("src=\""), std::string::npos);
  EXPECT_EQ(h.find("<link"), std::string::npos);
  EXPECT_EQ(h.find("href=\"http"), std::string::npos);
}

TEST(ConformanceReport, FilesAreWellFormed) {
  conftest::TempDir d;
  fc::write_reports(canned(), d / "report");
  auto r = conftest::run(conftest::check_report_cmd(d / "report"));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("\"junit_failures\": 1"), std::string::npos) << r.out;
}

TEST(ConformanceReport, MatrixText) {
  auto r = canned();
  auto t = fc::matrix_text(r);
  EXPECT_NE(t.find("TARGET"), std::string::npos);
  auto at = t.find("stress/procmem/signal/trap");
  ASSERT_NE(at, std::string::npos);
  auto line = t.substr(t.rfind('\n', at) + 1);
  line = line.substr(0, line.find('\n'));
  EXPECT_EQ(line.rfind("x86_64 ", 0), 0u) << line;
  EXPECT_NE(line.find(" FAIL "), std::string::npos) << t;
  // Footnotes: the qemu-user membarrier cells say whose membarrier they test.
  at = t.find("rv64gc        stress/mprotect/membarrier/jump");
  ASSERT_NE(at, std::string::npos) << t;
  line = t.substr(at, t.find('\n', at) - at);
  EXPECT_NE(line.find("[1]"), std::string::npos) << line;
  EXPECT_NE(t.find("notes:\n  [1] membarrier is the HOST kernel's: qemu-user forwards the syscall"), std::string::npos) << t;
  EXPECT_NE(t.find("  rv64gc-linux: Linux 6.1"), std::string::npos) << t;
  // aarch64 under qemu-user: the procmem cells say why they are unsupported,
  // its membarrier cells whose membarrier they test; the board's are the guest's.
  for (const char* test : {"stress/procmem/membarrier/jump", "stress/procmem/signal/trap"}) {
    at = t.find("aarch64       " + std::string(test));
    ASSERT_NE(at, std::string::npos) << test << "\n" << t;
    line = t.substr(at, t.find('\n', at) - at);
    EXPECT_NE(line.find("unsupported"), std::string::npos) << line;
    EXPECT_NE(line.find("] LP_ENOTSUP"), std::string::npos) << line;
  }
  EXPECT_NE(t.find("] under qemu-user libpatch refuses --writer procmem with LP_ENOTSUP"), std::string::npos) << t;
  EXPECT_NE(t.find("] membarrier is the HOST kernel's: qemu-user forwards the syscall to the x86-64 Linux it runs on "
                   "(which has SYNC_CORE); an arm64 kernel's"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("] the guest's arm64 Linux 6.1 membarrier"), std::string::npos) << t;
  EXPECT_NE(t.find("  aarch64: qemu-user"), std::string::npos) << t;
  EXPECT_NE(t.find("  arm64-linux: Debian 12's arm64 Linux 6.1"), std::string::npos) << t;
  EXPECT_EQ(t.find("  rv64g: qemu-user"), std::string::npos) << "no note for a target that is not available";
  EXPECT_NE(t.find("unsupported"), std::string::npos);
  EXPECT_NE(t.find("not-available"), std::string::npos);
  EXPECT_NE(t.find("FAIL: "), std::string::npos);
  EXPECT_NE(t.find("jump probe 2.50 ns, trap probe 1398.50 ns over a 1.50 ns call"), std::string::npos) << t;
  // probe-hit's call-probe and uretprobe numbers, when the line has them
  r.benches[0].lines = {fc::json::parse(R"({"bench":"probe-hit","plain_ns":1.5,"jump_cost_ns":2.5,"trap_cost_ns":1398.5,)"
                                        R"("call_jump_cost_ns":12.25,"uretprobe_cost_ns":3100})")};
  t = fc::matrix_text(r);
  EXPECT_NE(t.find("trap probe 1398.50 ns, entry+exit jump 12.25 ns, uretprobe 3100.00 ns over a 1.50 ns call"),
            std::string::npos)
      << t;
}
