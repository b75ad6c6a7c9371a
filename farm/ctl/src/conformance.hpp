#pragma once
// `farmctl conformance`: the cross-target conformance matrix of libpatch run
// through the farm (docs/conformance.md).
//
//   --local           an embedded farmd (in-process, port 0, random tokens,
//                     SQLite in a temp dir or --db) and one in-process agent per
//                     target this machine can run (native, qemu-user, qemu-system)
//   --farm HOST:PORT  the same matrix submitted to a real farm
//
// The pieces are separate so the tests can drive them: the targets and the
// matrix (conformance_matrix.cpp), job -> cell classification, the reports
// (JSON / JUnit XML / self-contained HTML, conformance_report.cpp) and the
// runner with its CLI (conformance_run.cpp).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "farm/v1/farm.pb.h"

namespace CLI {
class App;
}
namespace farm {
struct ChannelOptions;
}

namespace farm::conformance {

namespace v1 = ::farm::v1;
using json = nlohmann::json;

// How one matrix cell ended.
enum class Status {
  pending,        // submitted, not finished
  pass,
  fail,           // the workload's verdict (a real finding), or a crash
  unsupported,    // the workload refused the option here (LP_ENOTSUP): reported, not a failure
  not_available,  // the target could not run here (binary/emulator/worker missing): not submitted
  timeout,
  error,          // infrastructure error (after retries), or submission refused
  cancelled,
};
std::string_view status_name(Status s);  // "pass", "fail", "unsupported", "not-available", ...
std::optional<Status> parse_status(std::string_view s);

// A target of the matrix.
struct Target {
  std::string name;      // x86_64 | rv64gc | rv64g | bm-rv64gc | bm-rv64g | rv64gc-linux | rv64g-linux |
                         // aarch64 | arm64-linux
  std::string arch;      // selector arch
  std::string isa;       // selector isa ("" = any; arm64-linux: the board label selects it)
  std::string kind;      // executor kind: native | qemu-user | qemu-system (farm mode: "" = any)
  std::string workload;  // patch-stress | baremetal
  std::vector<std::string> syncs;  // patch-stress --sync methods, or bare-metal sync= modes
  std::string binary;    // --local: the patch-stress binary / bare-metal image file its agent is given
  std::string image;     // bare-metal: the image NAME jobs give (agents map names to files: farm-agent --image NAME=PATH)
  std::string emulator;  // qemu-riscv64 / qemu-aarch64 / qemu-system-riscv64 / qemu-system-aarch64 ("" for native)
  std::string emulator_cpu;        // qemu -cpu (rv64g: a hart without C)
  std::string bench_dir;           // directory with probe-hit and commit-latency ("" = none)
  bool available = true;
  std::string why;                 // why not available
  // Board targets (rv64gc-linux, rv64g-linux, arm64-linux): a real kernel on a (virtual)
  // board, run by the vboard executor. `board` is the board's name (the
  // description farm/boards/boards/<board>.json; farm mode: label board=<board>),
  // `board_file` the description --local gives its agent.
  std::string board, board_file;
  std::map<std::string, std::string> labels;  // selector labels of this target's jobs
  std::string note;                           // about the whole target (reports)
  std::map<std::string, std::string> sync_notes;  // sync method -> note on its cells
  // writer -> note on its cells; it replaces the sync's note (aarch64 under
  // qemu-user: the procmem writer is refused whatever the sync).
  std::map<std::string, std::string> writer_notes;
};

// x86_64 (native), rv64gc and rv64g (qemu-user), bm-rv64gc and bm-rv64g
// (qemu-system -smp 4), rv64gc-linux and rv64g-linux (Linux 6.1 boards under
// qemu-system, the vboard executor), aarch64 (qemu-user) and arm64-linux
// (Debian's arm64 Linux 6.1 board), with their sync methods; paths left empty.
std::vector<Target> default_targets();

struct MatrixOptions {
  std::string run_id;                      // tag run=<id> on every job
  uint32_t threads = 4;
  uint32_t functions = 64;
  uint64_t batches = 2000;                 // patch-stress batches (membarrier / flush_icache)
  uint64_t signal_batches = 100;           // signal sync costs ms per batch on a loaded host
  uint64_t bm_toggles = 20000;             // bare-metal probe toggles per run
  uint32_t smp = 4;                        // bare-metal harts
  // Board targets (a Linux guest under TCG: a batch costs 0.25-1 s with
  // mprotect, 3-5 s with procmem): fewer batches, docs/conformance.md.
  uint64_t board_batches = 10;             // mprotect with membarrier / flush_icache
  uint64_t board_signal_batches = 5;       // mprotect with signal sync
  uint64_t board_procmem_batches = 2;      // procmem, any sync
  uint64_t seed = 1;                       // cell i gets seed + i
  uint32_t timeout_s = 600;                // per job
  std::vector<std::string> writers = {"mprotect", "procmem"};
  std::vector<std::string> kinds = {"jump", "trap"};
  // Instruction sites (patch-stress --sites body): one cell per kind, with the
  // first writer and sync; empty: none.
  std::vector<std::string> body_kinds = {"auto"};
  // Call probes (patch-stress --exit-probes: entry + exit handlers, return
  // values checked): one cell per kind, with the first writer and sync; empty: none.
  std::vector<std::string> exit_kinds = {"jump", "trap"};
  std::map<std::string, std::string> labels;  // extra selector labels (farm mode)
  bool pin_target_label = false;           // local: selector label conformance-<target>=yes
  int32_t priority = 0;
};

// One cell: a (target, test) pair and its job.
struct Cell {
  std::string target;
  std::string test;  // "stress/mprotect/membarrier/jump", "body/mprotect/membarrier/auto",
                     // "exit/mprotect/membarrier/jump", "baremetal/ipi"
  v1::JobSpec spec;
  std::string job_id;
  Status status = Status::pending;
  std::string message;  // why (fail/unsupported/not-available/error)
  uint64_t calls = 0, hits = 0, batches = 0, toggles = 0, syncs = 0;
  double seconds = 0;   // workload wall time
  uint64_t seed = 0;
  std::string worker;
  uint32_t attempts = 0;
  std::string result_json;  // the workload's JSON line, verbatim
  std::string log_tail;     // on failure
  std::string note;         // what the cell measures, when not obvious (Target::sync_notes)
};

// The matrix for `targets` (unavailable targets get one not-available cell each).
std::vector<Cell> build_matrix(const std::vector<Target>& targets, const MatrixOptions& o);

// Job -> cell status (and numbers). A patch-stress run that failed with
// "error":"LP_ENOTSUP..." and made no calls is `unsupported`.
Status classify(const v1::Job& job, std::string* why = nullptr);
void apply_job(const v1::Job& job, Cell* cell);

// Benchmarks (bench/probe-hit, bench/commit-latency), run by farmctl itself.
struct BenchRun {
  std::string target;
  std::string bench;            // probe-hit | commit-latency
  std::vector<json> lines;      // every {"bench":...} JSON line printed
  bool available = true;        // binary/emulator present
  bool ok = false;              // exited 0 (or was cut at the time budget with some lines)
  bool partial = false;         // cut at --bench-timeout
  double seconds = 0;
  std::string message;
};
std::vector<json> parse_bench_lines(std::string_view output);

// One earlier run, from the store (jobs tagged suite=conformance).
struct HistoryRun {
  std::string run_id;
  int64_t started_ms = 0;
  uint32_t total = 0, passed = 0, failed = 0, unsupported = 0, other = 0;
  double seconds = 0;  // sum of workload time
};
std::vector<HistoryRun> history_from_jobs(const std::vector<v1::Job>& jobs);

struct RunReport {
  std::string run_id;
  std::string mode;        // "local" | "farm HOST:PORT"
  std::string host;        // machine farmctl ran on
  std::string db;          // local store ("" = temporary)
  int64_t started_ms = 0, finished_ms = 0;
  bool require_all = false;
  MatrixOptions options;
  std::vector<Target> targets;
  std::vector<Cell> cells;
  std::vector<BenchRun> benches;
  std::vector<HistoryRun> history;  // oldest first, including this run

  // A cell is a failure if it did not pass, except unsupported / not-available
  // (failures only with require_all). A benchmark that could not run is one too
  // (a missing benchmark binary only with require_all).
  bool cell_failed(const Cell& c) const;
  bool bench_failed(const BenchRun& b) const;
  size_t failures() const;
  bool ok() const { return failures() == 0; }
};

json report_json(const RunReport& r);
RunReport report_from_json(const json& j);   // inverse of report_json (canned runs, tests)
std::string report_junit(const RunReport& r);
std::string report_html(const RunReport& r);
// Writes index.html, conformance.json and junit.xml into dir (created).
void write_reports(const RunReport& r, const std::string& dir);
// The terminal matrix (one row per cell, then a summary per target).
std::string matrix_text(const RunReport& r);

// ---------------------------------------------------------------- CLI

// Registers `farmctl conformance` on the farmctl app; run() executes it with
// farmctl's global connection options (used with --farm).
class Command {
 public:
  explicit Command(CLI::App& app);
  ~Command();
  bool selected() const;
  int run(const farm::ChannelOptions& global, bool as_json);

  struct Options;

 private:
  CLI::App* sub_ = nullptr;
  Options* o_;
};

}  // namespace farm::conformance
