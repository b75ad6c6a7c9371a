// The conformance matrix: targets, cells, job -> cell classification, history.
#include <algorithm>
#include <map>

#include "conformance.hpp"
#include "farm/common/names.hpp"
#include "farm/common/result.hpp"

namespace farm::conformance {

std::string_view status_name(Status s) {
  switch (s) {
    case Status::pending: return "pending";
    case Status::pass: return "pass";
    case Status::fail: return "fail";
    case Status::unsupported: return "unsupported";
    case Status::not_available: return "not-available";
    case Status::timeout: return "timeout";
    case Status::error: return "error";
    case Status::cancelled: return "cancelled";
  }
  return "?";
}

std::optional<Status> parse_status(std::string_view s) {
  for (Status st : {Status::pending, Status::pass, Status::fail, Status::unsupported, Status::not_available,
                    Status::timeout, Status::error, Status::cancelled})
    if (status_name(st) == s) return st;
  return std::nullopt;
}

std::vector<Target> default_targets() {
  auto make = [](std::string name, std::string arch, std::string isa, std::string kind, std::string workload,
                 std::vector<std::string> syncs, std::string emulator) {
    Target t;
    t.name = std::move(name);
    t.arch = std::move(arch);
    t.isa = std::move(isa);
    t.kind = std::move(kind);
    t.workload = std::move(workload);
    t.syncs = std::move(syncs);
    t.emulator = std::move(emulator);
    return t;
  };
  std::vector<Target> t;
  t.push_back(make("x86_64", "x86_64", "", "native", "patch-stress", {"membarrier", "signal"}, ""));
  for (std::string isa : {"rv64gc", "rv64g"}) {
    t.push_back(make(isa, "riscv64", isa, "qemu-user", "patch-stress", {"membarrier", "flush_icache", "signal"},
                     "qemu-riscv64"));
    // qemu-user emulates the ISA only: every system call is the host's.
    t.back().note = "qemu-user: user-mode emulation on this machine's kernel; membarrier, mprotect and "
                    "/proc/self/mem are the host's system calls, not a riscv64 kernel's";
    t.back().sync_notes["membarrier"] =
        "membarrier is the HOST kernel's: qemu-user forwards the syscall to the x86-64 Linux it runs on "
        "(which has SYNC_CORE); a riscv64 kernel's membarrier is tested by the *-linux boards";
  }
  for (std::string isa : {"rv64gc", "rv64g"})
    t.push_back(make("bm-" + isa, "riscv64", isa, "qemu-system", "baremetal", {"ipi", "rfence"},
                     "qemu-system-riscv64"));
  // Real Linux kernels as boards: the vboard executor boots the board's kernel
  // with an initramfs holding patch-stress, one boot per job. flush_icache
  // first: the instruction-site and call-probe cells use the first sync, and
  // this kernel has no membarrier SYNC_CORE.
  for (std::string isa : {"rv64gc", "rv64g"}) {
    t.push_back(make(isa + "-linux", "riscv64", isa, "board", "patch-stress", {"flush_icache", "membarrier", "signal"},
                     "qemu-system-riscv64"));
    t.back().board = isa + "-linux";
    t.back().note = "Linux 6.1 (farm/boards) under qemu-system-riscv64 -smp 4 (TCG), one boot per job (the vboard "
                    "executor); fewer batches than the other targets (docs/conformance.md)";
    t.back().sync_notes["membarrier"] =
        "riscv64 Linux 6.1 has no MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE (QUERY gives 0x19f; registering it "
        "is EINVAL): libpatch refuses --sync membarrier with LP_ENOTSUP, unsupported is the expected result";
  }
  // AArch64 (backends/aarch64, the aarch64 preset: ARMv8.0-A, static). No
  // flush_icache sync on arm64 (the cache maintenance is user space's: DC
  // CVAU / IC IVAU, docs/aarch64.md); membarrier SYNC_CORE or the signal round.
  t.push_back(make("aarch64", "aarch64", "armv8", "qemu-user", "patch-stress", {"membarrier", "signal"}, "qemu-aarch64"));
  t.back().note = "qemu-user: user-mode emulation on this machine's kernel; membarrier, mprotect and /proc/self/mem "
                  "are the host's system calls, not an arm64 kernel's; qemu reports CTR_EL0.IDC = DIC = 1, so the "
                  "cache maintenance is not exercised (docs/aarch64.md)";
  t.back().sync_notes["membarrier"] =
      "membarrier is the HOST kernel's: qemu-user forwards the syscall to the x86-64 Linux it runs on "
      "(which has SYNC_CORE); an arm64 kernel's membarrier is tested by the arm64-linux board";
  t.back().writer_notes["procmem"] =
      "under qemu-user libpatch refuses --writer procmem with LP_ENOTSUP: a /proc/self/mem write goes to the host "
      "kernel and does not reach qemu's translated code (probed at start-up); unsupported is the expected result, "
      "the arm64-linux board runs procmem";
  // Debian 12's arm64 kernel as a board. membarrier first: arm64 Linux 6.1
  // has SYNC_CORE, and the instruction-site and call-probe cells use the first sync.
  t.push_back(make("arm64-linux", "aarch64", "", "board", "patch-stress", {"membarrier", "signal"},
                   "qemu-system-aarch64"));
  t.back().board = "arm64-linux";
  t.back().note = "Debian 12's arm64 Linux 6.1 (farm/boards) under qemu-system-aarch64 -M virt -cpu max -smp 4 (TCG), "
                  "one boot per job (the vboard executor); fewer batches than the other targets "
                  "(docs/conformance.md); TCG reports CTR_EL0.IDC = DIC = 1, so the cache maintenance is not exercised";
  t.back().sync_notes["membarrier"] =
      "the guest's arm64 Linux 6.1 membarrier: arm64 has MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, so these cells "
      "are expected to pass (unlike riscv64 Linux 6.1's)";
  return t;
}

std::vector<Cell> build_matrix(const std::vector<Target>& targets, const MatrixOptions& o) {
  std::vector<Cell> cells;
  uint64_t seed = o.seed;
  for (const auto& t : targets) {
    auto base = [&](const std::string& test) {
      Cell c;
      c.target = t.name;
      c.test = test;
      auto& s = c.spec;
      s.set_name("conformance " + t.name + " " + test);
      auto* sel = s.mutable_selector();
      sel->set_arch(t.arch);
      if (!t.isa.empty()) sel->set_isa(t.isa);
      if (!t.kind.empty()) sel->set_kind(t.kind);
      for (const auto& [k, v] : o.labels) (*sel->mutable_labels())[k] = v;
      for (const auto& [k, v] : t.labels) (*sel->mutable_labels())[k] = v;
      if (o.pin_target_label) (*sel->mutable_labels())["conformance-" + t.name] = "yes";
      s.set_timeout_s(o.timeout_s);
      s.set_priority(o.priority);
      auto& tags = *s.mutable_tags();
      tags["suite"] = "conformance";
      if (!o.run_id.empty()) tags["run"] = o.run_id;
      tags["target"] = t.name;
      tags["test"] = test;
      c.seed = seed++;
      s.set_seed(c.seed);
      return c;
    };
    if (!t.available) {
      Cell c = base(t.workload == "baremetal" ? "baremetal" : "stress");
      c.status = Status::not_available;
      c.message = t.why.empty() ? "not available" : t.why;
      cells.push_back(std::move(c));
      continue;
    }
    if (t.workload == "baremetal") {
      for (const auto& sync : t.syncs) {
        Cell c = base("baremetal/" + sync);
        auto* b = c.spec.mutable_workload()->mutable_baremetal();
        b->set_image(t.image.empty() ? "baremetal-" + t.isa : t.image);  // a name; the agent has the file
        b->set_smp(o.smp);
        // The image's kernel command line. batch=all toggles all 16 probes per
        // batch; burst=2 lets the worker vCPUs nap so 4 harts share a small
        // host (farm/workloads/baremetal).
        b->set_append("sync=" + sync + " batch=all burst=2 toggles=" + std::to_string(o.bm_toggles) +
                      " seed=" + std::to_string(c.seed));
        cells.push_back(std::move(c));
      }
      continue;
    }
    auto stress = [&](const std::string& test, const std::string& w, const std::string& sync, const std::string& k,
                      const std::string& sites, bool exit_probes) {
      Cell c = base(test);
      auto* p = c.spec.mutable_workload()->mutable_patch_stress();
      p->set_threads(o.threads);
      p->set_functions(o.functions);
      if (t.board.empty()) p->set_batches(sync == "signal" ? o.signal_batches : o.batches);
      else p->set_batches(w == "procmem" ? o.board_procmem_batches : sync == "signal" ? o.board_signal_batches : o.board_batches);
      p->set_writer(w);
      p->set_sync(sync);
      p->set_probe_kind(k);
      p->set_sites(sites);
      p->set_exit_probes(exit_probes);
      if (auto n = t.sync_notes.find(sync); n != t.sync_notes.end()) c.note = n->second;
      if (auto n = t.writer_notes.find(w); n != t.writer_notes.end()) c.note = n->second;
      cells.push_back(std::move(c));
    };
    for (const auto& w : o.writers)
      for (const auto& sync : t.syncs)
        for (const auto& k : o.kinds) stress("stress/" + w + "/" + sync + "/" + k, w, sync, k, "", false);
    if (o.writers.empty() || t.syncs.empty()) continue;
    const std::string& w = o.writers.front();
    const std::string& sync = t.syncs.front();
    for (const auto& k : o.body_kinds) stress("body/" + w + "/" + sync + "/" + k, w, sync, k, "body", false);
    for (const auto& k : o.exit_kinds) stress("exit/" + w + "/" + sync + "/" + k, w, sync, k, "", true);
  }
  return cells;
}

namespace {

json parse_obj(const std::string& s) {
  if (s.empty()) return json();
  auto j = json::parse(s, nullptr, false);
  return j.is_object() ? j : json();
}

uint64_t u64(const json& j, const char* k) {
  if (!j.is_object() || !j.contains(k)) return 0;
  const auto& v = j[k];
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return static_cast<uint64_t>(std::max<int64_t>(0, v.get<int64_t>()));
  if (v.is_number_float()) return static_cast<uint64_t>(std::max(0.0, v.get<double>()));
  return 0;
}

}  // namespace

Status classify(const v1::Job& job, std::string* why) {
  const auto& r = job.result();
  auto say = [&](const std::string& m) {
    if (why) *why = m;
  };
  std::string msg = !job.message().empty() ? job.message() : r.message();
  switch (job.state()) {
    case v1::JOB_STATE_PASSED:
      say("");
      return Status::pass;
    case v1::JOB_STATE_FAILED: {
      // patch-stress reports a libpatch error that stopped it before any call
      // in "error"; LP_ENOTSUP means "this option is not supported here"
      // (e.g. --writer procmem under qemu-user, docs/riscv64.md).
      json j = parse_obj(r.result_json());
      std::string err = j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "";
      if (err.rfind("LP_ENOTSUP", 0) == 0 && u64(j, "calls") == 0 && u64(j, "unexpected_signals") == 0 &&
          u64(j, "wrong_results") == 0) {
        say(err);
        return Status::unsupported;
      }
      if (!err.empty()) msg = err + (msg.empty() ? "" : " (" + msg + ")");
      say(msg);
      return Status::fail;
    }
    case v1::JOB_STATE_TIMED_OUT: say(msg.empty() ? "timed out" : msg); return Status::timeout;
    case v1::JOB_STATE_ERROR: say(msg); return Status::error;
    case v1::JOB_STATE_CANCELLED: say(msg.empty() ? "cancelled" : msg); return Status::cancelled;
    default: say(""); return Status::pending;
  }
}

void apply_job(const v1::Job& job, Cell* c) {
  c->job_id = job.id();
  std::string why;
  c->status = classify(job, &why);
  c->message = why;
  c->worker = job.worker_id();
  c->attempts = job.attempts();
  const auto& r = job.result();
  if (c->status == Status::pending) {
    c->calls = job.progress().calls();
    c->hits = job.progress().hits();
    c->batches = job.progress().batches();
    c->seconds = job.progress().elapsed_s();
    return;
  }
  c->calls = r.calls();
  c->hits = r.hits();
  c->batches = r.batches();
  c->syncs = r.syncs();
  c->seconds = r.duration_s();
  c->result_json = r.result_json();
  json j = parse_obj(r.result_json());
  c->toggles = u64(j, "toggles");
  if (c->seconds <= 0 && j.is_object() && j.contains("seconds") && j["seconds"].is_number())
    c->seconds = j["seconds"].get<double>();
  c->log_tail = (c->status == Status::pass) ? "" : r.log_tail();
}

std::vector<json> parse_bench_lines(std::string_view out) {
  std::vector<json> v;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    std::string_view line = out.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? out.size() : nl + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    auto b = line.find('{');
    if (b == std::string_view::npos) continue;
    auto j = json::parse(line.substr(b), nullptr, false);
    if (j.is_object() && j.contains("bench")) v.push_back(std::move(j));
  }
  return v;
}

std::vector<HistoryRun> history_from_jobs(const std::vector<v1::Job>& jobs) {
  std::map<std::string, HistoryRun> runs;
  for (const auto& j : jobs) {
    auto it = j.spec().tags().find("run");
    if (it == j.spec().tags().end() || j.spec().tags().count("suite") == 0 ||
        j.spec().tags().at("suite") != "conformance")
      continue;
    auto& h = runs[it->second];
    h.run_id = it->second;
    if (!h.started_ms || (j.created_ms() && j.created_ms() < h.started_ms)) h.started_ms = j.created_ms();
    ++h.total;
    switch (classify(j)) {
      case Status::pass: ++h.passed; break;
      case Status::fail:
      case Status::timeout: ++h.failed; break;
      case Status::unsupported: ++h.unsupported; break;
      default: ++h.other; break;
    }
    h.seconds += j.result().duration_s();
  }
  std::vector<HistoryRun> v;
  for (auto& [_, h] : runs) v.push_back(h);
  std::sort(v.begin(), v.end(), [](const HistoryRun& a, const HistoryRun& b) {
    return a.started_ms != b.started_ms ? a.started_ms < b.started_ms : a.run_id < b.run_id;
  });
  return v;
}

bool RunReport::cell_failed(const Cell& c) const {
  switch (c.status) {
    case Status::pass: return false;
    case Status::unsupported:
    case Status::not_available: return require_all;
    default: return true;
  }
}

bool RunReport::bench_failed(const BenchRun& b) const {
  if (!b.available) return require_all;
  return !b.ok;
}

size_t RunReport::failures() const {
  size_t n = 0;
  for (const auto& c : cells) n += cell_failed(c);
  for (const auto& b : benches) n += bench_failed(b);
  return n;
}

}  // namespace farm::conformance
