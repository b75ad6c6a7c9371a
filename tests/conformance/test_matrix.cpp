// The conformance matrix: construction, job classification, history.
#include <gtest/gtest.h>

#include <set>

#include "conformance.hpp"

namespace fc = farm::conformance;
namespace v1 = farm::v1;

namespace {

std::vector<fc::Target> all_available() {
  auto t = fc::default_targets();
  for (auto& x : t) x.binary = "/bin/" + x.name;
  return t;
}

const fc::Cell* find(const std::vector<fc::Cell>& cells, const std::string& target, const std::string& test) {
  for (const auto& c : cells)
    if (c.target == target && c.test == test) return &c;
  return nullptr;
}

v1::Job job(v1::JobState st, const std::string& result_json = "", const std::string& msg = "") {
  v1::Job j;
  j.set_id("j-1");
  j.set_state(st);
  j.set_message(msg);
  j.mutable_result()->set_result_json(result_json);
  return j;
}

}  // namespace

TEST(ConformanceMatrix, DefaultTargets) {
  auto t = fc::default_targets();
  ASSERT_EQ(t.size(), 9u);
  EXPECT_EQ(t[0].name, "x86_64");
  EXPECT_EQ(t[0].kind, "native");
  EXPECT_EQ(t[1].name, "rv64gc");
  EXPECT_EQ(t[1].kind, "qemu-user");
  EXPECT_EQ(t[2].isa, "rv64g");
  EXPECT_EQ(t[3].name, "bm-rv64gc");
  EXPECT_EQ(t[3].kind, "qemu-system");
  EXPECT_EQ(t[3].workload, "baremetal");
  // flush_icache only on riscv64
  EXPECT_EQ(t[0].syncs, (std::vector<std::string>{"membarrier", "signal"}));
  EXPECT_EQ(t[1].syncs, (std::vector<std::string>{"membarrier", "flush_icache", "signal"}));
  EXPECT_EQ(t[4].syncs, (std::vector<std::string>{"ipi", "rfence"}));
  // Linux boards (the vboard executor): kind board, named by their description;
  // flush_icache first (the instruction-site and call-probe cells use it).
  EXPECT_EQ(t[5].name, "rv64gc-linux");
  EXPECT_EQ(t[5].kind, "board");
  EXPECT_EQ(t[5].board, "rv64gc-linux");
  EXPECT_EQ(t[5].isa, "rv64gc");
  EXPECT_EQ(t[5].workload, "patch-stress");
  EXPECT_EQ(t[5].syncs, (std::vector<std::string>{"flush_icache", "membarrier", "signal"}));
  EXPECT_EQ(t[6].name, "rv64g-linux");
  EXPECT_EQ(t[6].isa, "rv64g");
  // qemu-user's membarrier is the host kernel's: said on those cells.
  for (int i : {1, 2}) {
    ASSERT_TRUE(t[i].sync_notes.count("membarrier"));
    EXPECT_NE(t[i].sync_notes.at("membarrier").find("HOST kernel"), std::string::npos);
    EXPECT_NE(t[i].note.find("qemu-user"), std::string::npos);
  }
  EXPECT_NE(t[5].sync_notes.at("membarrier").find("no MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE"), std::string::npos);
  EXPECT_TRUE(t[0].sync_notes.empty());
  // Only aarch64 under qemu-user notes a writer (procmem is refused there).
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(t[i].writer_notes.empty()) << t[i].name;
  // AArch64: qemu-user and Debian's arm64 kernel as a board; no flush_icache
  // sync on arm64, membarrier first (the board's kernel has SYNC_CORE).
  EXPECT_EQ(t[7].name, "aarch64");
  EXPECT_EQ(t[7].arch, "aarch64");
  EXPECT_EQ(t[7].isa, "armv8");
  EXPECT_EQ(t[7].kind, "qemu-user");
  EXPECT_EQ(t[7].emulator, "qemu-aarch64");
  EXPECT_EQ(t[7].workload, "patch-stress");
  EXPECT_EQ(t[7].syncs, (std::vector<std::string>{"membarrier", "signal"}));
  EXPECT_TRUE(t[7].board.empty());
  EXPECT_NE(t[7].note.find("qemu-user"), std::string::npos);
  EXPECT_NE(t[7].sync_notes.at("membarrier").find("HOST kernel"), std::string::npos);
  EXPECT_NE(t[7].sync_notes.at("membarrier").find("arm64-linux"), std::string::npos);
  EXPECT_NE(t[7].writer_notes.at("procmem").find("LP_ENOTSUP"), std::string::npos);
  EXPECT_EQ(t[8].name, "arm64-linux");
  EXPECT_EQ(t[8].arch, "aarch64");
  EXPECT_EQ(t[8].isa, "");  // the board's description says armv8-max; its label board=arm64-linux selects it
  EXPECT_EQ(t[8].kind, "board");
  EXPECT_EQ(t[8].board, "arm64-linux");
  EXPECT_EQ(t[8].emulator, "qemu-system-aarch64");
  EXPECT_EQ(t[8].syncs, (std::vector<std::string>{"membarrier", "signal"}));
  EXPECT_NE(t[8].sync_notes.at("membarrier").find("has MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE"), std::string::npos);
  EXPECT_TRUE(t[8].writer_notes.empty());  // procmem works in a real kernel
  EXPECT_NE(t[8].note.find("arm64 Linux 6.1"), std::string::npos);
}

TEST(ConformanceMatrix, Aarch64TargetCells) {
  fc::MatrixOptions o;
  o.batches = 1234;
  o.signal_batches = 7;
  o.board_batches = 21;
  o.board_signal_batches = 11;
  o.board_procmem_batches = 3;
  o.pin_target_label = true;
  auto targets = all_available();
  targets[8].labels["board"] = "arm64-linux";  // as --farm sets it
  auto cells = fc::build_matrix(targets, o);
  std::map<std::string, std::set<std::string>> tests;
  for (const auto& c : cells) {
    if (c.target != "aarch64" && c.target != "arm64-linux") continue;
    tests[c.target].insert(c.test);
    const bool board = c.target == "arm64-linux";
    const auto& sel = c.spec.selector();
    const auto& p = c.spec.workload().patch_stress();
    ASSERT_TRUE(c.spec.workload().has_patch_stress()) << c.test;
    EXPECT_EQ(sel.arch(), "aarch64") << c.test;
    EXPECT_EQ(sel.isa(), board ? "" : "armv8") << c.test;
    EXPECT_EQ(sel.kind(), board ? "board" : "qemu-user") << c.test;
    EXPECT_EQ(sel.labels().at("conformance-" + c.target), "yes");
    EXPECT_EQ(sel.labels().count("board"), board ? 1u : 0u);
    EXPECT_EQ(p.binary(), "");
    EXPECT_NE(p.sync(), "flush_icache") << c.test;  // arm64 has no such sync
    uint64_t want = board ? (p.writer() == "procmem" ? 3 : p.sync() == "signal" ? 11 : 21)
                          : (p.sync() == "signal" ? 7 : 1234);
    EXPECT_EQ(p.batches(), want) << c.target << " " << c.test;
    // The notes: under qemu-user procmem is refused (whatever the sync) and
    // membarrier is the host's; on the board membarrier is the guest kernel's.
    if (!board && p.writer() == "procmem")
      EXPECT_NE(c.note.find("refuses --writer procmem with LP_ENOTSUP"), std::string::npos) << c.test;
    else if (p.sync() == "membarrier")
      EXPECT_NE(c.note.find(board ? "expected to pass" : "HOST kernel"), std::string::npos) << c.test;
    else
      EXPECT_EQ(c.note, "") << c.test;
  }
  for (const std::string t : {"aarch64", "arm64-linux"}) {
    std::set<std::string> want;
    for (const char* w : {"mprotect", "procmem"})
      for (const char* y : {"membarrier", "signal"})
        for (const char* k : {"jump", "trap"}) want.insert(std::string("stress/") + w + "/" + y + "/" + k);
    // patch-stress --sites body (the stopped protocol on AArch64) and the call probes
    want.insert({"body/mprotect/membarrier/auto", "exit/mprotect/membarrier/jump", "exit/mprotect/membarrier/trap"});
    EXPECT_EQ(tests[t], want) << t;
  }
  EXPECT_EQ(find(cells, "aarch64", "body/mprotect/membarrier/auto")->spec.workload().patch_stress().sites(), "body");
  EXPECT_TRUE(find(cells, "arm64-linux", "exit/mprotect/membarrier/trap")->spec.workload().patch_stress().exit_probes());
  // 4 procmem cells per aarch64 matrix: the qemu-user ones carry the refusal note.
  int refused = 0;
  for (const auto& c : cells) refused += c.target == "aarch64" && c.note.find("LP_ENOTSUP") != std::string::npos;
  EXPECT_EQ(refused, 4);
}

TEST(ConformanceMatrix, BoardTargetCells) {
  fc::MatrixOptions o;
  o.batches = 2000;
  o.signal_batches = 100;
  o.board_batches = 21;
  o.board_signal_batches = 11;
  o.board_procmem_batches = 3;
  o.pin_target_label = true;
  auto targets = all_available();
  targets[5].labels["board"] = "rv64gc-linux";  // as --farm sets it
  auto cells = fc::build_matrix(targets, o);
  int n = 0;
  for (const auto& c : cells) {
    if (c.target != "rv64gc-linux") continue;
    ++n;
    const auto& p = c.spec.workload().patch_stress();
    EXPECT_EQ(c.spec.selector().kind(), "board") << c.test;
    EXPECT_EQ(c.spec.selector().isa(), "rv64gc");
    EXPECT_EQ(c.spec.selector().labels().at("conformance-rv64gc-linux"), "yes");
    EXPECT_EQ(c.spec.selector().labels().at("board"), "rv64gc-linux");
    EXPECT_EQ(p.binary(), "");
    uint64_t want = p.writer() == "procmem" ? 3 : p.sync() == "signal" ? 11 : 21;
    EXPECT_EQ(p.batches(), want) << c.test;
    EXPECT_EQ(c.note.empty(), p.sync() != "membarrier") << c.test;
  }
  EXPECT_EQ(n, 2 * 3 * 2 + 1 + 2);
  EXPECT_TRUE(find(cells, "rv64gc-linux", "body/mprotect/flush_icache/auto"));
  EXPECT_TRUE(find(cells, "rv64gc-linux", "exit/mprotect/flush_icache/jump"));
  EXPECT_TRUE(find(cells, "rv64gc-linux", "exit/mprotect/flush_icache/trap"));
  // The other targets keep their batches, and the qemu-user membarrier cells carry the host-kernel note.
  auto* q = find(cells, "rv64gc", "stress/procmem/membarrier/jump");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->spec.workload().patch_stress().batches(), 2000u);
  EXPECT_NE(q->note.find("HOST kernel"), std::string::npos);
  EXPECT_EQ(find(cells, "rv64gc", "stress/procmem/flush_icache/jump")->note, "");
  EXPECT_EQ(find(cells, "x86_64", "stress/procmem/membarrier/jump")->note, "");
}

TEST(ConformanceMatrix, CellsPerTarget) {
  fc::MatrixOptions o;
  o.run_id = "r1";
  o.batches = 1234;
  o.signal_batches = 7;
  o.bm_toggles = 999;
  o.seed = 100;
  auto cells = fc::build_matrix(all_available(), o);
  std::map<std::string, int> per;
  for (const auto& c : cells) per[c.target]++;
  // writer x sync x kind, + one instruction-site cell, + the call-probe cells (jump, trap)
  EXPECT_EQ(per["x86_64"], 2 * 2 * 2 + 1 + 2);
  EXPECT_EQ(per["rv64gc"], 2 * 3 * 2 + 1 + 2);
  EXPECT_EQ(per["rv64g"], 2 * 3 * 2 + 1 + 2);
  EXPECT_EQ(per["bm-rv64gc"], 2);
  EXPECT_EQ(per["bm-rv64g"], 2);
  EXPECT_EQ(per["rv64gc-linux"], 2 * 3 * 2 + 1 + 2);
  EXPECT_EQ(per["rv64g-linux"], 2 * 3 * 2 + 1 + 2);
  EXPECT_EQ(per["aarch64"], 2 * 2 * 2 + 1 + 2);      // no flush_icache on arm64
  EXPECT_EQ(per["arm64-linux"], 2 * 2 * 2 + 1 + 2);
  EXPECT_EQ(per.size(), 9u);
  // The seven earlier targets' 75 cells (61 in a local run, where rv64g-linux's
  // unusable description makes it one not-available cell), + aarch64 and arm64-linux.
  EXPECT_EQ(cells.size(), 75u + 2 * 11);
  // seeds: consecutive from --seed, all different
  std::set<uint64_t> seeds;
  for (const auto& c : cells) {
    seeds.insert(c.seed);
    EXPECT_EQ(c.spec.seed(), c.seed);
    EXPECT_EQ(c.spec.tags().at("suite"), "conformance");
    EXPECT_EQ(c.spec.tags().at("run"), "r1");
    EXPECT_EQ(c.spec.tags().at("target"), c.target);
    EXPECT_EQ(c.spec.tags().at("test"), c.test);
    EXPECT_EQ(c.status, fc::Status::pending);
  }
  EXPECT_EQ(seeds.size(), cells.size());
  EXPECT_EQ(*seeds.begin(), 100u);

  auto* c = find(cells, "rv64gc", "stress/procmem/flush_icache/trap");
  ASSERT_TRUE(c);
  const auto& p = c->spec.workload().patch_stress();
  EXPECT_EQ(p.writer(), "procmem");
  EXPECT_EQ(p.sync(), "flush_icache");
  EXPECT_EQ(p.probe_kind(), "trap");
  EXPECT_EQ(p.batches(), 1234u);
  EXPECT_EQ(c->spec.selector().arch(), "riscv64");
  EXPECT_EQ(c->spec.selector().isa(), "rv64gc");
  EXPECT_EQ(c->spec.selector().kind(), "qemu-user");
  auto* s = find(cells, "x86_64", "stress/mprotect/signal/jump");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->spec.workload().patch_stress().batches(), 7u);  // --signal-batches
  EXPECT_FALSE(find(cells, "x86_64", "stress/mprotect/flush_icache/jump"));
  EXPECT_FALSE(s->spec.workload().patch_stress().exit_probes());
  for (const char* t : {"x86_64", "rv64gc", "rv64g"})
    for (const char* k : {"jump", "trap"}) {
      auto* e = find(cells, t, std::string("exit/mprotect/membarrier/") + k);
      ASSERT_TRUE(e) << t << " " << k;
      EXPECT_TRUE(e->spec.workload().patch_stress().exit_probes());
      EXPECT_EQ(e->spec.workload().patch_stress().probe_kind(), k);
      EXPECT_EQ(e->spec.workload().patch_stress().sites(), "");  // entry sleds
      EXPECT_EQ(e->spec.workload().patch_stress().batches(), 1234u);
    }

  auto* b = find(cells, "bm-rv64g", "baremetal/rfence");
  ASSERT_TRUE(b);
  const auto& bm = b->spec.workload().baremetal();
  // Jobs name the image the agents were configured with; its kernel command
  // line travels in `append`, never as free emulator arguments.
  EXPECT_EQ(bm.image(), "baremetal-rv64g");
  EXPECT_EQ(bm.smp(), 4u);
  EXPECT_EQ(bm.extra_args_size(), 0);
  EXPECT_NE(bm.append().find("sync=rfence"), std::string::npos) << bm.append();
  EXPECT_NE(bm.append().find("toggles=999"), std::string::npos) << bm.append();
  EXPECT_NE(bm.append().find("seed=" + std::to_string(b->seed)), std::string::npos) << bm.append();
}

TEST(ConformanceMatrix, LocalPinsAndNoClientChosenBinaries) {
  fc::MatrixOptions o;
  o.pin_target_label = true;
  o.labels["rack"] = "3";
  auto cells = fc::build_matrix(all_available(), o);
  for (const auto& c : cells) {
    EXPECT_EQ(c.spec.selector().labels().at("conformance-" + c.target), "yes");
    EXPECT_EQ(c.spec.selector().labels().at("rack"), "3");
    if (c.spec.workload().has_patch_stress()) {
      // The agents run their configured binaries: a job never names one.
      EXPECT_EQ(c.spec.workload().patch_stress().binary(), "");
    }
  }
}

TEST(ConformanceMatrix, InstructionSiteCells) {
  fc::MatrixOptions o;
  o.writers = {"procmem", "mprotect"};
  o.body_kinds = {"auto", "jump"};
  auto cells = fc::build_matrix(all_available(), o);
  int n = 0;
  for (const auto& c : cells) {
    if (!c.spec.workload().has_patch_stress() || c.spec.workload().patch_stress().sites() != "body") continue;
    ++n;
    const auto& p = c.spec.workload().patch_stress();
    EXPECT_EQ(p.writer(), "procmem");  // the first writer, the target's first sync
    const std::string sync = c.target.find("rv64") != std::string::npos && c.target.find("-linux") != std::string::npos
                                 ? "flush_icache"
                                 : "membarrier";
    EXPECT_EQ(p.sync(), sync);
    EXPECT_EQ(c.test, "body/procmem/" + sync + "/" + p.probe_kind());
  }
  EXPECT_EQ(n, 7 * 2);  // x86_64, rv64gc, rv64g, rv64gc-linux, rv64g-linux, aarch64, arm64-linux; none on bare metal
  o.body_kinds.clear();
  for (const auto& c : fc::build_matrix(all_available(), o))
    if (c.spec.workload().has_patch_stress()) {
      EXPECT_EQ(c.spec.workload().patch_stress().sites(), "");
    }
}

TEST(ConformanceMatrix, ExitProbeCells) {
  fc::MatrixOptions o;
  o.writers = {"procmem", "mprotect"};
  o.exit_kinds = {"trap", "auto"};
  auto cells = fc::build_matrix(all_available(), o);
  std::map<std::string, int> per;
  for (const auto& c : cells) {
    if (!c.spec.workload().has_patch_stress() || !c.spec.workload().patch_stress().exit_probes()) continue;
    ++per[c.target];
    const auto& p = c.spec.workload().patch_stress();
    EXPECT_EQ(p.writer(), "procmem");  // the first writer, the target's first sync
    const std::string sync = c.target.find("rv64") != std::string::npos && c.target.find("-linux") != std::string::npos
                                 ? "flush_icache"
                                 : "membarrier";
    EXPECT_EQ(p.sync(), sync);
    EXPECT_EQ(p.sites(), "");  // call probes sit on entry sleds: never combined with body sites
    EXPECT_EQ(c.test, "exit/procmem/" + sync + "/" + p.probe_kind());
    EXPECT_EQ(c.spec.tags().at("test"), c.test);
  }
  // x86_64, both riscv64 flavours, aarch64, and the boards; none on bare metal.
  EXPECT_EQ(per, (std::map<std::string, int>{{"x86_64", 2},
                                             {"rv64gc", 2},
                                             {"rv64g", 2},
                                             {"rv64gc-linux", 2},
                                             {"rv64g-linux", 2},
                                             {"aarch64", 2},
                                             {"arm64-linux", 2}}));
  o.exit_kinds.clear();
  for (const auto& c : fc::build_matrix(all_available(), o))
    if (c.spec.workload().has_patch_stress()) {
      EXPECT_FALSE(c.spec.workload().patch_stress().exit_probes()) << c.test;
    }
}

TEST(ConformanceMatrix, NotAvailableTargetIsOneCell) {
  auto t = all_available();
  t[1].available = false;
  t[1].why = "qemu-riscv64 not found";
  fc::MatrixOptions o;
  o.writers = {"mprotect"};
  o.kinds = {"jump"};
  auto cells = fc::build_matrix(t, o);
  int n = 0;
  for (const auto& c : cells)
    if (c.target == "rv64gc") {
      ++n;
      EXPECT_EQ(c.status, fc::Status::not_available);
      EXPECT_EQ(c.message, "qemu-riscv64 not found");
    }
  EXPECT_EQ(n, 1);
  // + 2 call-probe cells per patch-stress target; each riscv64 board 3 syncs + 1 + 2;
  // aarch64 and arm64-linux 2 syncs + 1 + 2
  EXPECT_EQ(cells.size(), 5u /*x86*/ + 1 + 6 /*rv64g*/ + 2 + 2 + 6 + 6 + 5 + 5);
}

TEST(ConformanceClassify, States) {
  std::string why;
  EXPECT_EQ(fc::classify(job(v1::JOB_STATE_PASSED, R"({"verdict":"pass","calls":5})"), &why), fc::Status::pass);
  EXPECT_EQ(fc::classify(job(v1::JOB_STATE_RUNNING)), fc::Status::pending);
  EXPECT_EQ(fc::classify(job(v1::JOB_STATE_QUEUED)), fc::Status::pending);
  EXPECT_EQ(fc::classify(job(v1::JOB_STATE_TIMED_OUT, "", "timed out after 600 s"), &why), fc::Status::timeout);
  EXPECT_EQ(why, "timed out after 600 s");
  EXPECT_EQ(fc::classify(job(v1::JOB_STATE_ERROR, "", "binary missing"), &why), fc::Status::error);
  EXPECT_EQ(fc::classify(job(v1::JOB_STATE_CANCELLED)), fc::Status::cancelled);
  EXPECT_EQ(fc::classify(job(v1::JOB_STATE_FAILED, R"({"calls":10,"wrong_results":1,"error":"","verdict":"fail"})",
                             "verdict fail, exit code 1"),
                         &why),
            fc::Status::fail);
  EXPECT_EQ(why, "verdict fail, exit code 1");
}

TEST(ConformanceClassify, EnotsupIsUnsupported) {
  // What patch-stress --writer procmem prints under qemu-user (docs/riscv64.md).
  std::string line =
      R"({"workload":"patch-stress","arch":"riscv64","writer":"procmem","calls":0,"hits":0,"batches":0,)"
      R"("unexpected_signals":0,"wrong_results":0,"error":"LP_ENOTSUP: not supported on this kernel or architecture",)"
      R"("seconds":0.000,"verdict":"fail"})";
  std::string why;
  EXPECT_EQ(fc::classify(job(v1::JOB_STATE_FAILED, line), &why), fc::Status::unsupported);
  EXPECT_EQ(why.rfind("LP_ENOTSUP", 0), 0u);
  // Another error is a failure, and so is LP_ENOTSUP after calls were made.
  EXPECT_EQ(fc::classify(job(v1::JOB_STATE_FAILED, R"({"calls":0,"error":"LP_ESYNC: x","verdict":"fail"})"), &why),
            fc::Status::fail);
  EXPECT_NE(why.find("LP_ESYNC"), std::string::npos);
  EXPECT_EQ(fc::classify(job(v1::JOB_STATE_FAILED, R"({"calls":7,"error":"LP_ENOTSUP: x","verdict":"fail"})")),
            fc::Status::fail);
}

TEST(ConformanceClassify, ApplyJobCopiesNumbers) {
  auto j = job(v1::JOB_STATE_PASSED, R"({"workload":"baremetal","toggles":20000,"batches":1250,"calls":99})");
  j.set_worker_id("w1");
  j.set_attempts(1);
  auto* r = j.mutable_result();
  r->set_calls(99);
  r->set_hits(42);
  r->set_batches(1250);
  r->set_duration_s(3.5);
  fc::Cell c;
  fc::apply_job(j, &c);
  EXPECT_EQ(c.status, fc::Status::pass);
  EXPECT_EQ(c.calls, 99u);
  EXPECT_EQ(c.hits, 42u);
  EXPECT_EQ(c.batches, 1250u);
  EXPECT_EQ(c.toggles, 20000u);
  EXPECT_EQ(c.worker, "w1");
  EXPECT_DOUBLE_EQ(c.seconds, 3.5);
}

TEST(ConformanceBench, ParseLines) {
  auto v = fc::parse_bench_lines(
      "commit-latency (riscv64), 2 threads\r\n  sites batch\r\n"
      "{\"bench\":\"commit-latency\",\"sites\":1,\"batch_ms\":0.5}\r\n"
      "noise {\"not\":\"bench\"}\n"
      "{\"bench\":\"commit-latency\",\"sites\":10,\"batch_ms\":0.7}\n"
      "{\"bench\":\"commit-lat");  // cut mid-line
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[1]["sites"], 10);
}

TEST(ConformanceHistory, GroupsRuns) {
  std::vector<v1::Job> jobs;
  auto add = [&](const std::string& run, int64_t created, v1::JobState st, const std::string& rj = "") {
    auto j = job(st, rj);
    j.set_created_ms(created);
    (*j.mutable_spec()->mutable_tags())["suite"] = "conformance";
    (*j.mutable_spec()->mutable_tags())["run"] = run;
    jobs.push_back(j);
  };
  add("b", 2000, v1::JOB_STATE_PASSED);
  add("a", 1000, v1::JOB_STATE_PASSED);
  add("a", 1001, v1::JOB_STATE_FAILED, R"({"calls":3,"verdict":"fail"})");
  add("a", 1002, v1::JOB_STATE_FAILED, R"({"calls":0,"error":"LP_ENOTSUP: no","verdict":"fail"})");
  add("b", 2001, v1::JOB_STATE_ERROR);
  jobs.push_back(job(v1::JOB_STATE_PASSED));  // no tags: ignored
  auto h = fc::history_from_jobs(jobs);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].run_id, "a");
  EXPECT_EQ(h[0].total, 3u);
  EXPECT_EQ(h[0].passed, 1u);
  EXPECT_EQ(h[0].failed, 1u);
  EXPECT_EQ(h[0].unsupported, 1u);
  EXPECT_EQ(h[1].run_id, "b");
  EXPECT_EQ(h[1].other, 1u);
}

TEST(ConformanceReport, FailuresAndRequireAll) {
  fc::RunReport r;
  fc::Cell a, b, c;
  a.status = fc::Status::pass;
  b.status = fc::Status::unsupported;
  c.status = fc::Status::not_available;
  r.cells = {a, b, c};
  EXPECT_TRUE(r.ok());
  fc::BenchRun missing;
  missing.available = false;
  r.benches = {missing};
  EXPECT_TRUE(r.ok());
  r.require_all = true;
  EXPECT_EQ(r.failures(), 3u);
  r.require_all = false;
  fc::Cell d;
  d.status = fc::Status::timeout;
  r.cells.push_back(d);
  EXPECT_EQ(r.failures(), 1u);
  fc::BenchRun crashed;
  crashed.ok = false;
  r.benches.push_back(crashed);
  EXPECT_EQ(r.failures(), 2u);
}
