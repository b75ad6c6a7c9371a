// `farmctl conformance`: runs the matrix through an embedded farm (--local) or
// a real one (--farm HOST:PORT), shows progress, prints the matrix, writes
// the reports. See docs/conformance.md.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <set>
#include <thread>

#include "conformance.hpp"
#include "farm/agent/agent.hpp"
#include "farm/agent/vboard.hpp"
#include "farm/common/channel.hpp"
#include "farm/common/names.hpp"
#include "farm/common/result.hpp"
#include "farm/common/select.hpp"
#include "farm/common/util.hpp"
#include "farm/ctl/client.hpp"
#include "farm/ctl/args.hpp"
#include "farm/ctl/text.hpp"
#include "farmd/server.hpp"

namespace farm::conformance {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Command::Options {
  bool local = false;
  std::string farm;
  std::string db;
  std::string report_dir = "conformance-report";
  bool no_report = false;
  std::vector<std::string> targets;
  bool require_all = false;
  bool no_bench = false;
  std::string ps_host, ps_rv64gc, ps_rv64g, ps_aarch64, bm_rv64gc, bm_rv64g;
  std::string bench_host, bench_rv64gc, bench_rv64g, bench_aarch64;
  std::string qemu_user = "qemu-riscv64", qemu_system = "qemu-system-riscv64";
  std::string qemu_user_aarch64 = "qemu-aarch64";
  std::string qemu_system_aarch64;  // "" = the arm64 board description's qemu
  std::string boards_dir;  // --local: the board descriptions and their kernels (default <build>/boards)
  bool qemu_system_given = false;  // --qemu-system given: it also replaces the riscv64 boards' emulator
  uint32_t bench_timeout = 45;
  uint64_t bench_calls_native = 20'000'000, bench_calls_qemu = 1'000'000;
  std::vector<std::string> labels, target_kinds;
  uint32_t slots = 1;
  bool keep_temp = false;
  bool verbose = false;
  bool progress = true;
  std::string render;
  MatrixOptions m;
};

namespace {

// SIGINT / SIGTERM: stop waiting, cancel what is left, shut the local farm
// down cleanly (its destructor), report what finished.
std::atomic<int> g_interrupted{0};
void on_interrupt(int sig) { g_interrupted.store(sig); }

bool executable(const std::string& p) { return !p.empty() && ::access(p.c_str(), X_OK) == 0 && !fs::is_directory(p); }
bool readable(const std::string& p) { return !p.empty() && ::access(p.c_str(), R_OK) == 0 && fs::is_regular_file(p); }

// PATH lookup ("" if not found); a name with a slash is checked as is.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return executable(name) ? name : "";
  const char* path = std::getenv("PATH");
  std::string ps = path ? path : "/usr/bin:/bin";
  size_t pos = 0;
  while (pos <= ps.size()) {
    size_t c = ps.find(':', pos);
    std::string dir = ps.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
    if (dir.empty()) dir = ".";
    if (executable(dir + "/" + name)) return dir + "/" + name;
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  return "";
}

// The build tree farmctl runs from (<build>/farm/ctl/farmctl), or "".
std::string own_build_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  fs::path ctl = exe.parent_path();
  if (ctl.filename() != "ctl" || ctl.parent_path().filename() != "farm") return "";
  return ctl.parent_path().parent_path().string();
}

std::string make_run_id() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y%m%d-%H%M%S", &tm);
  return std::string("c-") + b + "-" + farm::random_hex(2);
}

// ---------------------------------------------------------------- benchmarks

// Runs argv on a pseudo-terminal (so the program's stdout is line buffered,
// also under qemu-user) for at most budget_s; keeps every JSON line printed.
BenchRun run_bench(const std::string& target, const std::string& bench, const std::vector<std::string>& argv,
                   uint32_t budget_s) {
  BenchRun b;
  b.target = target;
  b.bench = bench;
  auto t0 = std::chrono::steady_clock::now();
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) {
    b.message = std::string("forkpty: ") + std::strerror(errno);
    return b;
  }
  if (pid == 0) {
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execvp(a[0], a.data());
    std::fprintf(stderr, "exec %s: %s\n", a[0], std::strerror(errno));
    ::_exit(127);
  }
  std::string out;
  auto deadline = t0 + std::chrono::seconds(budget_s);
  bool cut = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || g_interrupted.load()) {
      cut = true;
      break;
    }
    pollfd p{master, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 500)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t k = ::read(master, buf, sizeof buf);
    if (k > 0) {
      out.append(buf, static_cast<size_t>(k));
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    break;  // EOF / EIO: the child closed the terminal
  }
  int status = 0;
  if (cut) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
  }
  ::waitpid(pid, &status, 0);
  ::close(master);
  b.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  b.lines = parse_bench_lines(out);
  b.partial = cut;
  if (cut) {
    b.ok = !b.lines.empty();
    b.message = "cut at the " + std::to_string(budget_s) + " s budget (--bench-timeout) after " +
                std::to_string(b.lines.size()) + " measurement(s)";
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !b.lines.empty()) {
    b.ok = true;
  } else {
    b.message = (WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status))
                                   : "killed by signal " + std::to_string(WTERMSIG(status))) +
                (b.lines.empty() ? ", no JSON line" : "") + ": " + farm::tail(out, 5, 600);
  }
  return b;
}

// A benchmark inside a board's guest: the vboard executor boots the board
// with the benchmark as the job (farmctl is the operator here: it chooses the
// program); the budget is the job's timeout (the board init stops it, END
// timeout), and every JSON line printed on the console before is kept.
BenchRun run_bench_on_board(const Target& t, const std::string& bench, const std::string& bin,
                            const std::vector<std::string>& args, const farm::agent::ExecutorConfig& cfg,
                            uint32_t budget_s, const std::string& tmp) {
  BenchRun b;
  b.target = t.name;
  b.bench = bench;
  auto t0 = std::chrono::steady_clock::now();
  farm::agent::Cancel cancel;
  std::atomic<bool> stop{false};
  std::thread watch([&] {  // Ctrl-C powers the board off
    while (!stop.load()) {
      if (g_interrupted.load()) {
        cancel.cancel("interrupted");
        break;
      }
      std::this_thread::sleep_for(100ms);
    }
  });
  std::mutex mu;
  std::string console;
  farm::agent::JobContext ctx;
  ctx.job_id = "bench-" + t.name + "-" + bench;
  ctx.worker = "farmctl-conformance";
  ctx.attempt = 1;
  ctx.work_dir = tmp + "/" + ctx.job_id;
  ctx.cancel = &cancel;
  ctx.output = [&](std::string_view st, std::string_view d) {
    if (st != "serial") return;
    std::lock_guard lk(mu);
    console.append(d);
  };
  std::error_code ec;
  fs::create_directories(ctx.work_dir, ec);
  v1::JobResult r;
  try {
    farm::agent::VBoardExecutor ex(cfg);
    farm::agent::GuestJob g;
    g.files["/job/bin/" + bench] = bin;
    g.argv = {"/job/bin/" + bench};
    g.argv.insert(g.argv.end(), args.begin(), args.end());
    g.timeout_s = budget_s;
    g.require_json = false;
    r = ex.run_guest(ctx, g);
  } catch (const std::exception& e) {
    r.set_outcome(v1::OUTCOME_INFRA_ERROR);
    r.set_message(e.what());
  }
  stop = true;
  watch.join();
  fs::remove_all(ctx.work_dir, ec);
  b.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  {
    std::lock_guard lk(mu);
    // Only the job's output: between the board init's BEGIN and END markers.
    auto at = console.find(farm::agent::kBoardBegin);
    std::string job = at == std::string::npos ? std::string() : console.substr(at);
    b.lines = parse_bench_lines(job);
  }
  b.partial = r.outcome() == v1::OUTCOME_TIMEOUT;
  if (b.partial) {
    b.ok = !b.lines.empty();
    b.message = "cut at the " + std::to_string(budget_s) + " s budget (--bench-timeout) after " +
                std::to_string(b.lines.size()) + " measurement(s), in the guest of board " + t.board;
  } else if (r.outcome() == v1::OUTCOME_PASS && !b.lines.empty()) {
    b.ok = true;
    b.message = "in the guest of board " + t.board;
  } else {
    b.message = "in the guest of board " + t.board + ": " + r.message() + (b.lines.empty() ? ", no JSON line" : "") +
                (r.log_tail().empty() ? "" : ": " + farm::tail(r.log_tail(), 5, 600));
  }
  return b;
}

std::vector<BenchRun> run_benches(const std::vector<Target>& targets, const Command::Options& o, bool show,
                                  const std::map<std::string, farm::agent::ExecutorConfig>& boards,
                                  const std::string& tmp) {
  std::vector<BenchRun> v;
  for (const auto& t : targets) {
    if (t.workload != "patch-stress" || !t.available || t.bench_dir.empty()) continue;
    if (!t.board.empty() && !boards.count(t.name)) continue;  // --farm: the board is not here
    for (const char* name : {"probe-hit", "commit-latency"}) {
      if (g_interrupted.load()) break;
      std::string bin = t.bench_dir + "/" + name;
      std::vector<std::string> argv;
      if (!t.emulator.empty()) {
        argv.push_back(t.emulator);
        if (!t.emulator_cpu.empty()) argv.insert(argv.end(), {"-cpu", t.emulator_cpu});
      }
      argv.push_back(bin);
      std::vector<std::string> args;  // the benchmark's own arguments
      if (std::string(name) == "probe-hit")
        args.push_back(std::to_string(t.emulator.empty() ? o.bench_calls_native : o.bench_calls_qemu));
      argv.insert(argv.end(), args.begin(), args.end());
      if (!readable(bin)) {
        BenchRun b;
        b.target = t.name;
        b.bench = name;
        b.available = false;
        b.message = "not available: no " + bin;
        v.push_back(std::move(b));
        continue;
      }
      if (show) std::cout << "bench: " << t.name << " " << name << " ..." << std::flush;
      if (!t.board.empty())
        v.push_back(run_bench_on_board(t, name, bin, args, boards.at(t.name), o.bench_timeout, tmp));
      else
        v.push_back(run_bench(t.name, name, argv, o.bench_timeout));
      if (show)
        std::cout << " " << (v.back().ok ? (v.back().partial ? "ok (partial)" : "ok") : "FAILED") << " ("
                  << static_cast<int>(v.back().seconds) << " s)" << std::endl;
    }
  }
  return v;
}

// ---------------------------------------------------------------- progress

class Progress {
 public:
  Progress(bool tty, bool enabled) : tty_(tty), enabled_(enabled) {}

  void update(const std::vector<Cell>& cells, const std::vector<std::string>& order) {
    if (!enabled_) return;
    size_t done = 0, total = 0;
    for (const auto& c : cells)
      if (c.status != Status::not_available) {
        ++total;
        done += c.status != Status::pending;
      }
    if (tty_) {
      std::vector<std::string> lines;
      for (const auto& t : order) {
        size_t n = 0, d = 0, bad = 0, uns = 0;
        const Cell* running = nullptr;
        bool na = false;
        for (const auto& c : cells) {
          if (c.target != t) continue;
          if (c.status == Status::not_available) {
            na = true;
            continue;
          }
          ++n;
          if (c.status != Status::pending) ++d;
          if (c.status == Status::unsupported) ++uns;
          else if (c.status != Status::pending && c.status != Status::pass) ++bad;
          if (c.status == Status::pending && c.seconds > 0 && !running) running = &c;
        }
        char head[64];
        std::snprintf(head, sizeof head, "%-10s ", t.c_str());
        std::string line = head;
        if (na) {
          line += "not available";
        } else {
          const int W = 20;
          int fill = n ? static_cast<int>(W * d / n) : W;
          line += "[" + std::string(fill, '#') + std::string(W - fill, '.') + "] " + std::to_string(d) + "/" +
                  std::to_string(n);
          if (bad) line += "  " + std::to_string(bad) + " FAILED";
          if (uns) line += "  " + std::to_string(uns) + " unsupported";
          if (running) {
            char b[160];
            if (running->calls)
              std::snprintf(b, sizeof b, "  %s %.0fs calls=%llu", running->test.c_str(), running->seconds,
                            static_cast<unsigned long long>(running->calls));
            else
              std::snprintf(b, sizeof b, "  %s %.0fs", running->test.c_str(), running->seconds);
            line += b;
          } else if (d == n) {
            line += "  done";
          }
        }
        lines.push_back(line.substr(0, 150));
      }
      if (drawn_) std::cout << "\033[" << drawn_ << "A";
      for (const auto& l : lines) std::cout << "\r\033[K" << l << "\n";
      std::cout << std::flush;
      drawn_ = lines.size();
      return;
    }
    // Plain output: one line per finished cell, and a note every 30 s.
    for (const auto& c : cells) {
      std::string key = c.target + " " + c.test;
      if (c.status == Status::pending || c.status == Status::not_available || reported_.count(key)) continue;
      reported_.insert(key);
      ++shown_;
      char b[64];
      std::snprintf(b, sizeof b, "[%3zu/%zu] ", shown_, total);
      std::cout << b << c.target << " " << c.test << ": " << status_name(c.status);
      if (c.seconds > 0) std::cout << " (" << static_cast<int>(c.seconds + 0.5) << " s)";
      if (!c.message.empty() && c.status != Status::pass) std::cout << " " << farm::ctl::ellipsize(farm::ctl::term_safe(c.message), 100);
      std::cout << std::endl;
    }
    auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_note_ > 30s) {
      if (last_note_.time_since_epoch().count()) {
        std::cout << "... " << done << "/" << total << " done; running:";
        for (const auto& c : cells)
          if (c.status == Status::pending && c.seconds > 0) std::cout << " " << c.target << " " << c.test;
        std::cout << " (" << total - done << " queued or running)";
        std::cout << std::endl;
      }
      last_note_ = now;
    }
  }

 private:
  bool tty_, enabled_;
  size_t drawn_ = 0, shown_ = 0;
  std::set<std::string> reported_;
  std::chrono::steady_clock::time_point last_note_{};
};

// ---------------------------------------------------------------- targets

std::vector<Target> resolve_targets(const Command::Options& o, bool local) {
  std::string b = own_build_dir();
  auto dflt = [&](const std::string& given, const std::string& rel) {
    // Local paths are made absolute: the agents run jobs in their work dirs.
    if (!given.empty()) return local ? fs::absolute(given).lexically_normal().string() : given;
    return b.empty() ? std::string() : (fs::path(b) / rel).lexically_normal().string();
  };
  std::vector<Target> all = default_targets();
  std::vector<Target> out;
  for (auto& t : all) {
    if (!o.targets.empty() && std::find(o.targets.begin(), o.targets.end(), t.name) == o.targets.end()) continue;
    // The patch-stress targets of an ISA (qemu-user and the Linux board) share its build.
    const bool board = !t.board.empty();
    const bool a64 = t.arch == "aarch64";
    const std::string key = !board ? t.name : a64 ? std::string("aarch64") : t.isa;
    std::string ps = key == "x86_64" ? o.ps_host : key == "rv64gc" ? o.ps_rv64gc : key == "rv64g" ? o.ps_rv64g
                     : key == "aarch64" ? o.ps_aarch64 : key == "bm-rv64gc" ? o.bm_rv64gc : o.bm_rv64g;
    std::string rel = key == "x86_64"    ? "farm/workloads/stress/patch-stress"
                      : key == "rv64gc"  ? "../riscv64-gc/farm/workloads/stress/patch-stress"
                      : key == "rv64g"   ? "../riscv64-g/farm/workloads/stress/patch-stress"
                      : key == "aarch64" ? "../aarch64/farm/workloads/stress/patch-stress"
                                         : "farm/workloads/baremetal/baremetal-" + t.isa + ".elf";
    std::string bench = key == "x86_64" ? o.bench_host : key == "rv64gc" ? o.bench_rv64gc
                        : key == "aarch64" ? o.bench_aarch64 : o.bench_rv64g;
    std::string bench_rel = key == "x86_64" ? "bench" : key == "rv64gc" ? "../riscv64-gc/bench"
                            : key == "aarch64" ? "../aarch64/bench" : "../riscv64-g/bench";
    if (t.workload == "patch-stress") t.bench_dir = dflt(bench, bench_rel);
    if (t.emulator == "qemu-riscv64") t.emulator = o.qemu_user;
    if (t.emulator == "qemu-aarch64") t.emulator = o.qemu_user_aarch64;
    if (t.emulator == "qemu-system-riscv64") t.emulator = o.qemu_system;
    if (t.emulator == "qemu-system-aarch64" && !o.qemu_system_aarch64.empty()) t.emulator = o.qemu_system_aarch64;
    if (t.workload == "baremetal") t.image = "baremetal-" + t.isa;
    if (!local) {
      // A real farm: selectors by arch/isa/kind; each agent runs its own
      // binary, and a bare-metal image is named (--baremetal-* give the name).
      t.binary.clear();
      if (t.workload == "baremetal" && !ps.empty()) t.image = ps;
      t.kind = t.workload == "baremetal" ? "qemu-system" : board ? "board" : "";
      // A board target runs on the board of that name (vboard agents label
      // themselves board=<name>), with the benchmarks only --local runs in it.
      if (board) {
        t.labels["board"] = t.board;
        t.bench_dir.clear();
      }
      for (const auto& tk : o.target_kinds) {
        auto eq = tk.find('=');
        if (eq != std::string::npos && tk.substr(0, eq) == t.name) t.kind = tk.substr(eq + 1);
      }
      t.emulator.clear();
      out.push_back(std::move(t));
      continue;
    }
    t.binary = dflt(ps, rel);
    if (t.binary.empty()) {
      t.available = false;
      t.why = "no " + std::string(t.workload == "baremetal" ? "image" : "patch-stress binary") +
              " (farmctl is not in a build tree; pass " +
              (t.name == "x86_64" ? std::string("--patch-stress-host")
                                  : t.workload == "baremetal" ? "--baremetal-" + t.isa : "--patch-stress-" + key) +
              ")";
    } else if (t.workload == "patch-stress" ? !executable(t.binary) : !readable(t.binary)) {
      t.available = false;
      t.why = "no " + t.binary + (t.workload == "baremetal" ? " (build the baremetal targets)" : " (build it: see docs/conformance.md)");
    } else if (t.name == "x86_64" && farm::machine_arch() != "x86_64") {
      t.available = false;
      t.why = "this machine is " + farm::machine_arch();
    } else if (board) {
      // The board: its description and artifacts, from the boards build; its
      // emulator is the description's unless --qemu-system was given.
      std::string dir = dflt(o.boards_dir, "boards");
      t.board_file = dir.empty() ? std::string() : (fs::path(dir) / (t.board + ".json")).string();
      try {
        if (t.board_file.empty() || !readable(t.board_file))
          throw std::invalid_argument("no board description " + (t.board_file.empty() ? t.board + ".json" : t.board_file) +
                                      " (build the boards: cmake --build BUILD --target boards)");
        auto d = farm::agent::load_board_description(t.board_file);
        if (!d.usable)  // the reason first: the matrix's note column is short
          throw std::invalid_argument("unusable board: " +
                                      (d.unusable_reason.empty() ? std::string("no reason given") : d.unusable_reason) +
                                      " (\"usable\": false in " + t.board_file + ")");
        for (const auto& [f, target] : {std::pair{d.kernel, d.kernel_target}, std::pair{d.init, d.init_target}})
          if (!readable(f)) throw std::invalid_argument("no " + f + " (build it: cmake --build BUILD --target " + target + ")");
        // (--qemu-system is riscv64's, --qemu-system-aarch64 the arm64 board's)
        if (a64 ? o.qemu_system_aarch64.empty() : !o.qemu_system_given) t.emulator = d.qemu;
        if (find_program(t.emulator).empty())
          throw std::invalid_argument(t.emulator + " not found in PATH (Debian: " +
                                      (a64 ? "qemu-system-arm" : "qemu-system-misc opensbi") + ")");
      } catch (const std::invalid_argument& e) {
        t.available = false;
        t.why = e.what();
      }
    } else if (!t.emulator.empty() && find_program(t.emulator).empty()) {
      t.available = false;
      t.why = t.emulator + " not found in PATH (" +
              (t.kind == "qemu-user" ? std::string("Debian: qemu-user") : std::string("Debian: qemu-system-misc opensbi")) + ")";
    }
    out.push_back(std::move(t));
  }
  return out;
}

struct LocalFarm {
  std::string tmp;
  std::unique_ptr<farmd::Server> server;
  std::vector<std::unique_ptr<farm::agent::Agent>> agents;
  farm::ChannelOptions client;
  bool keep = false;
  // The vboard agents' executor configuration per board target (the
  // preflight boot and the benchmarks in the guest use it too).
  std::map<std::string, farm::agent::ExecutorConfig> boards;

  ~LocalFarm() {
    for (auto& a : agents) a->stop();
    for (auto& a : agents) a->wait();
    agents.clear();
    if (server) server->shutdown(1000);
    server.reset();
    std::error_code ec;
    if (!tmp.empty() && !keep) fs::remove_all(tmp, ec);
  }
};

// farmd in-process on 127.0.0.1:0 with random tokens, and one agent per
// executor kind the available targets need (each carries a label
// conformance-<target>=yes for every target it serves; jobs select it).
void start_local_farm(LocalFarm& lf, std::vector<Target>& targets, const Command::Options& o) {
  std::string tmpl = (fs::temp_directory_path() / "farmctl-conformance-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  lf.tmp = tmpl;
  lf.keep = o.keep_temp;
  farmd::Config cfg;
  cfg.listen = "127.0.0.1:0";
  cfg.db_path = o.db.empty() ? lf.tmp + "/farm.db" : o.db;
  std::string client_tok = farm::random_hex(16), agent_tok = farm::random_hex(16);
  cfg.tokens = {{farmd::Role::client, client_tok, "conformance"}, {farmd::Role::agent, agent_tok, "local-agents"}};
  cfg.lease_ttl_ms = 30000;  // a loaded machine can stall a heartbeat for seconds
  cfg.default_timeout_s = o.m.timeout_s;
  lf.server = std::make_unique<farmd::Server>(cfg);
  lf.server->start();
  lf.client.address = lf.server->address();
  lf.client.token = client_tok;

  // One agent per executor kind (and per arch but riscv64's, whose agents keep
  // their names: local-qemu-user, local-qemu-system), one per board target.
  auto agent_key = [](const Target& t) {
    if (!t.board.empty()) return "board " + t.name;
    return t.kind == "native" || t.arch == "riscv64" ? t.kind : t.kind + "-" + t.arch;  // local-qemu-user-aarch64
  };
  std::map<std::string, std::vector<Target*>> by_kind;
  for (auto& t : targets)
    if (t.available) by_kind[agent_key(t)].push_back(&t);
  for (auto& [kind, ts] : by_kind) {
    if (!ts.front()->board.empty()) {
      // A board target: an agent of its own with the vboard executor (one
      // board, one job at a time unless --slots says otherwise).
      Target& t = *ts.front();
      farm::agent::AgentConfig ac;
      ac.channel.address = lf.server->address();
      ac.channel.token = agent_tok;
      ac.name = "local-" + t.name;
      ac.work_dir = lf.tmp + "/agent-" + t.name;
      ac.exec.kind = "vboard";
      ac.exec.arch = t.arch;
      ac.exec.qemu = t.emulator;
      ac.exec.binaries["patch-stress"] = t.binary;
      ac.exec.vboard.board = t.board_file;
      ac.caps.set_arch(t.arch);
      ac.caps.set_isa(t.isa);
      ac.caps.set_slots(std::max(1u, o.slots));
      (*ac.caps.mutable_labels())["conformance-" + t.name] = "yes";
      try {
        lf.agents.push_back(std::make_unique<farm::agent::Agent>(ac));
      } catch (const std::exception& e) {
        t.available = false;
        t.why = std::string("vboard executor: ") + e.what();
        continue;
      }
      lf.boards[t.name] = ac.exec;
      lf.agents.back()->start();
      continue;
    }
    farm::agent::AgentConfig ac;
    ac.channel.address = lf.server->address();
    ac.channel.token = agent_tok;
    ac.name = "local-" + kind;
    ac.work_dir = lf.tmp + "/agent-" + kind;
    ac.exec.kind = ts.front()->kind;
    ac.exec.arch = ts.front()->arch;
    ac.exec.default_smp = o.m.smp;
    ac.caps.set_arch(ts.front()->arch);
    // The widest ISA served (a job's ISA must be a subset of the worker's).
    std::string isa = ts.front()->isa;
    for (auto* t : ts)
      if (t->isa == "rv64gc") isa = "rv64gc";
    ac.caps.set_isa(isa);
    ac.caps.set_slots(std::max(1u, o.slots));
    if (ac.exec.kind == "qemu-system") ac.caps.set_cores(o.m.smp);
    // What the agent runs is its configuration, as on a real farm: the
    // binary per ISA (a job's selector ISA picks it) and the images by name.
    for (auto* t : ts) {
      (*ac.caps.mutable_labels())["conformance-" + t->name] = "yes";
      if (t->workload == "patch-stress") {
        if (!t->isa.empty()) ac.exec.binaries["patch-stress@" + t->isa] = t->binary;
        if (!ac.exec.binaries.count("patch-stress")) ac.exec.binaries["patch-stress"] = t->binary;
      } else {
        ac.exec.images[t->image] = t->binary;
      }
      if (!t->emulator.empty()) ac.exec.qemu = t->emulator;
    }
    lf.agents.push_back(std::make_unique<farm::agent::Agent>(ac));
    lf.agents.back()->start();
  }
  auto end = std::chrono::steady_clock::now() + 20s;
  for (auto& a : lf.agents)
    while (!a->registered() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(20ms);
}

void parse_kv(const std::vector<std::string>& in, std::map<std::string, std::string>* out, const char* what) {
  for (const auto& kv : in) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw CLI::ValidationError(what, "expected key=value, got '" + kv + "'");
    (*out)[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
}

// A plain decimal integer in lo..hi, checked on the text (CLI11 would read
// "-1" into an unsigned option as its largest value, and accept 0x10).
CLI::Validator decimal(uint64_t lo, uint64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        try {
          farm::ctl::parse_uint("value", s, lo, hi);
          return "";
        } catch (const farm::ctl::UsageError&) {
          return "must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got '" +
                 farm::ctl::term_safe(s) + "'";
        }
      },
      "INT in " + std::to_string(lo) + ".." + std::to_string(hi));
}

// The preflight boots of the board targets, each on a thread of its own.
class Preflights {
 public:
  struct Done {
    std::string target;
    bool ok;
    std::string why;
    double seconds;
  };
  ~Preflights() {
    cancel();
    for (auto& [_, p] : runs_)
      if (p->th.joinable()) p->th.join();
  }
  void start(const std::string& target, farm::agent::ExecutorConfig cfg, const std::string& tmp) {
    auto p = std::make_unique<Run>();
    Run* r = p.get();
    cfg.vboard.boot_retries = 0;  // a board that does not boot once is reported, not retried here
    r->th = std::thread([r, cfg, target, tmp] {
      auto t0 = std::chrono::steady_clock::now();
      farm::agent::JobContext ctx;
      ctx.job_id = "preflight-" + target;
      ctx.worker = "farmctl-conformance";
      ctx.attempt = 1;
      ctx.work_dir = tmp + "/preflight-" + target;
      ctx.cancel = &r->cancel;
      std::error_code ec;
      fs::create_directories(ctx.work_dir, ec);
      v1::JobResult res;
      try {
        farm::agent::VBoardExecutor ex(cfg);
        res = ex.health_check(ctx);
      } catch (const std::exception& e) {
        res.set_outcome(v1::OUTCOME_INFRA_ERROR);
        res.set_message(e.what());
      }
      std::lock_guard lk(r->mu);
      r->ok = res.outcome() == v1::OUTCOME_PASS;
      r->why = "the board did not boot (preflight, patch-stress --help as the job): " + res.message();
      r->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      r->done = true;
    });
    runs_[target] = std::move(p);
  }
  bool any() const { return !runs_.empty(); }
  bool waiting(const std::string& target) const {
    auto it = runs_.find(target);
    if (it == runs_.end()) return false;
    std::lock_guard lk(it->second->mu);
    return !it->second->handled;
  }
  std::vector<Done> finished() {
    std::vector<Done> v;
    for (auto& [name, p] : runs_) {
      std::lock_guard lk(p->mu);
      if (!p->done || p->handled) continue;
      p->handled = true;
      v.push_back({name, p->ok, p->why, p->seconds});
    }
    return v;
  }
  void cancel() {
    for (auto& [_, p] : runs_) p->cancel.cancel("farmctl conformance interrupted");
  }

 private:
  struct Run {
    std::thread th;
    farm::agent::Cancel cancel;
    mutable std::mutex mu;
    bool done = false, handled = false, ok = false;
    std::string why;
    double seconds = 0;
  };
  std::map<std::string, std::unique_ptr<Run>> runs_;
};

}  // namespace

// ---------------------------------------------------------------- the command

Command::Command(CLI::App& app) : o_(new Options) {
  auto& o = *o_;
  sub_ = app.add_subcommand("conformance", "run the conformance matrix (--local: embedded farm; --farm HOST:PORT)");
  auto* s = sub_;
  auto* g_local = s->add_flag("--local", o.local, "start farmd and agents in-process for every target this machine can run");
  s->add_option("--farm", o.farm, "submit to this farm (HOST:PORT; --token/--ca/--tls as for other commands)")
      ->excludes(g_local);
  s->add_option("--db", o.db, "--local: keep the farm's SQLite store in FILE (history across runs)");
  s->add_option("--report-dir", o.report_dir, "write index.html, conformance.json, junit.xml here")->capture_default_str();
  s->add_flag("--no-report", o.no_report, "do not write the report files");
  s->add_option("--targets", o.targets,
                "only these targets: x86_64 rv64gc rv64g bm-rv64gc bm-rv64g rv64gc-linux rv64g-linux aarch64 arm64-linux")
      ->delimiter(',')
      ->check(CLI::IsMember({"x86_64", "rv64gc", "rv64g", "bm-rv64gc", "bm-rv64g", "rv64gc-linux", "rv64g-linux",
                             "aarch64", "arm64-linux"}));
  s->add_flag("--require-all", o.require_all, "a target not available, an unsupported option or a missing benchmark is a failure");
  s->add_flag("--no-bench", o.no_bench, "do not run probe-hit / commit-latency");
  s->add_option("--patch-stress-host", o.ps_host, "--local: x86-64 patch-stress (default: <build>/farm/workloads/stress/patch-stress)");
  s->add_option("--patch-stress-rv64gc", o.ps_rv64gc, "--local: rv64gc patch-stress (default: <build>/../riscv64-gc/...)");
  s->add_option("--patch-stress-rv64g", o.ps_rv64g, "--local: rv64g patch-stress (default: <build>/../riscv64-g/...)");
  s->add_option("--patch-stress-aarch64", o.ps_aarch64,
                "--local: aarch64 patch-stress, for aarch64 and arm64-linux (default: <build>/../aarch64/...)");
  s->add_option("--baremetal-rv64gc", o.bm_rv64gc,
                "bare-metal image: --local the file (default: <build>/farm/workloads/baremetal/baremetal-rv64gc.elf), "
                "--farm the NAME the agents have (default: baremetal-rv64gc)");
  s->add_option("--baremetal-rv64g", o.bm_rv64g,
                "bare-metal image: --local the file (default: <build>/farm/workloads/baremetal/baremetal-rv64g.elf), "
                "--farm the NAME the agents have (default: baremetal-rv64g)");
  s->add_option("--bench-dir-host", o.bench_host, "directory with probe-hit and commit-latency (default: <build>/bench)");
  s->add_option("--bench-dir-rv64gc", o.bench_rv64gc, "riscv64 rv64gc benchmarks (default: <build>/../riscv64-gc/bench)");
  s->add_option("--bench-dir-rv64g", o.bench_rv64g, "riscv64 rv64g benchmarks (default: <build>/../riscv64-g/bench)");
  s->add_option("--bench-dir-aarch64", o.bench_aarch64, "aarch64 benchmarks (default: <build>/../aarch64/bench)");
  s->add_option("--bench-timeout", o.bench_timeout, "seconds per benchmark run; measurements printed before it are kept")
      ->capture_default_str()->check(decimal(1, 86400));
  s->add_option("--boards-dir", o.boards_dir,
                "--local: board descriptions and their kernels for rv64gc-linux / rv64g-linux / arm64-linux (default: <build>/boards; "
                "cmake --build BUILD --target boards)");
  s->add_option("--board-batches", o.m.board_batches, "board targets: patch-stress batches (mprotect; membarrier / flush_icache)")
      ->capture_default_str()->check(decimal(1, farm::ctl::limits::kMaxBatches));
  s->add_option("--board-signal-batches", o.m.board_signal_batches, "board targets: batches with signal sync (mprotect)")
      ->capture_default_str()->check(decimal(1, farm::ctl::limits::kMaxBatches));
  s->add_option("--board-procmem-batches", o.m.board_procmem_batches, "board targets: batches with the procmem writer")
      ->capture_default_str()->check(decimal(1, farm::ctl::limits::kMaxBatches));
  s->add_option("--qemu-user", o.qemu_user, "user-mode emulator for riscv64")->capture_default_str();
  s->add_option("--qemu-system", o.qemu_system, "system emulator for the bare-metal images and the riscv64 boards")->capture_default_str();
  s->add_option("--qemu-user-aarch64", o.qemu_user_aarch64, "user-mode emulator for aarch64")->capture_default_str();
  s->add_option("--qemu-system-aarch64", o.qemu_system_aarch64,
                "system emulator for the arm64-linux board (default: its description's qemu)");
  s->add_option("--threads", o.m.threads, "patch-stress threads")->capture_default_str()->check(decimal(1, farm::ctl::limits::kMaxThreads));
  s->add_option("--functions", o.m.functions, "patch-stress probed functions")->capture_default_str()->check(decimal(1, farm::ctl::limits::kMaxFunctions));
  s->add_option("--batches", o.m.batches, "patch-stress batches (membarrier / flush_icache)")->capture_default_str()->check(decimal(1, farm::ctl::limits::kMaxBatches));
  s->add_option("--signal-batches", o.m.signal_batches, "patch-stress batches with signal sync")->capture_default_str()->check(decimal(1, farm::ctl::limits::kMaxBatches));
  s->add_option("--bm-toggles", o.m.bm_toggles, "bare-metal probe toggles per run")->capture_default_str()->check(decimal(1, 1'000'000'000));
  s->add_option("--smp", o.m.smp, "bare-metal harts")->capture_default_str()->check(decimal(1, farm::ctl::limits::kMaxSmp));
  s->add_option("--seed", o.m.seed, "first seed (each job gets the next one)")->capture_default_str()->check(decimal(0, UINT64_MAX - 10000));
  s->add_option("--job-timeout", o.m.timeout_s, "seconds per job")->capture_default_str()->check(decimal(1, farm::ctl::limits::kMaxTimeoutS));
  s->add_option("--writers", o.m.writers, "patch-stress writers")->delimiter(',')->capture_default_str();
  s->add_option("--kinds", o.m.kinds, "probe kinds")->delimiter(',')->capture_default_str();
  s->add_option("--body-kinds", o.m.body_kinds,
                "probe kinds of the instruction-site cells (patch-stress --sites body; \"\" for none)")
      ->delimiter(',')->capture_default_str();
  s->add_option("--exit-kinds", o.m.exit_kinds,
                "probe kinds of the call-probe cells (patch-stress --exit-probes; \"\" for none)")
      ->delimiter(',')->capture_default_str();
  s->add_option("--slots", o.slots, "--local: concurrent jobs per local agent (native, qemu-user, qemu-system)")
      ->capture_default_str()->check(decimal(1, 64));
  s->add_option("--label", o.labels, "--farm: board label key=value every job requires (repeatable)")->allow_extra_args(false);
  s->add_option("--target-kind", o.target_kinds, "--farm: executor kind for a target, e.g. rv64gc=board (repeatable)")->allow_extra_args(false);
  s->add_option("--priority", o.m.priority, "--farm: job priority")->check(CLI::Range(-999999, 999999));
  s->add_flag("--keep-temp", o.keep_temp, "--local: keep the temporary directory (store, agent work dirs)");
  s->add_flag("--verbose,-v", o.verbose, "farmd / agent logs on stderr");
  s->add_flag("!--no-progress", o.progress, "no progress output while running");
  s->add_option("--render", o.render, "re-render the reports of an earlier run from its conformance.json (no run)");
}

Command::~Command() { delete o_; }

bool Command::selected() const { return sub_ && sub_->parsed(); }

int Command::run(const farm::ChannelOptions& global, bool as_json) {
  auto& o = *o_;
  if (!o.render.empty()) {
    auto rep = report_from_json(json::parse(farm::read_file(o.render)));
    std::cout << matrix_text(rep);
    if (!o.no_report) {
      write_reports(rep, o.report_dir);
      std::cout << "reports: " << o.report_dir << "/index.html, " << o.report_dir << "/junit.xml, " << o.report_dir
                << "/conformance.json" << std::endl;
    }
    return rep.ok() ? 0 : 1;
  }
  if (!o.local && o.farm.empty()) {
    std::cerr << "farmctl conformance: give --local or --farm HOST:PORT\n";
    return 2;
  }
  std::erase(o.m.body_kinds, std::string());  // --body-kinds "": no instruction-site cells
  std::erase(o.m.exit_kinds, std::string());  // --exit-kinds "": no call-probe cells
  for (const auto& [opt, kinds] : {std::pair<const char*, const std::vector<std::string>&>{"--body-kinds", o.m.body_kinds},
                                   {"--exit-kinds", o.m.exit_kinds}})
    for (const auto& k : kinds)
      if (k != "jump" && k != "trap" && k != "auto") {
        std::cerr << "farmctl conformance: " << opt << ": unknown probe kind '" << k << "' (jump, trap or auto)\n";
        return 2;
      }
  const bool local = o.local;
  const bool tty = ::isatty(1) && !as_json;
  auto logger = spdlog::stderr_color_mt("conformance");
  spdlog::set_default_logger(logger);
  spdlog::set_level(o.verbose ? spdlog::level::info : spdlog::level::err);
  spdlog::set_pattern("%H:%M:%S.%e %^%l%$ %v");
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  RunReport rep;
  rep.run_id = make_run_id();
  rep.mode = local ? "local" : "farm " + o.farm;
  rep.host = farm::host_name();
  rep.db = o.db;
  rep.require_all = o.require_all;
  rep.started_ms = farm::now_ms();
  if (!local) {
    for (const auto& [opt, v] : {std::pair<const char*, const std::string&>{"--patch-stress-host", o.ps_host},
                                 {"--patch-stress-rv64gc", o.ps_rv64gc},
                                 {"--patch-stress-rv64g", o.ps_rv64g},
                                 {"--patch-stress-aarch64", o.ps_aarch64}})
      if (!v.empty()) {
        std::cerr << "farmctl conformance: " << opt << " applies to --local: on a farm each agent runs its own "
                  << "binary (farm-agent --patch-stress PATH or --binary patch-stress@ISA=PATH)\n";
        return 2;
      }
    for (const auto& [opt, v] : {std::pair<const char*, const std::string&>{"--baremetal-rv64gc", o.bm_rv64gc},
                                 {"--baremetal-rv64g", o.bm_rv64g}})
      if (!v.empty()) {
        try {
          farm::ctl::check_image_name(opt, v);  // on a farm: the NAME the agents were given
        } catch (const farm::ctl::UsageError& e) {
          std::cerr << "farmctl conformance: " << e.what() << "\n";
          return 2;
        }
      }
  }
  o.m.run_id = rep.run_id;
  o.m.pin_target_label = local;
  o.qemu_system_given = sub_->count("--qemu-system") > 0;
  parse_kv(o.labels, &o.m.labels, "--label");
  rep.options = o.m;
  rep.targets = resolve_targets(o, local);
  if (rep.targets.empty()) {
    std::cerr << "farmctl conformance: no targets selected\n";
    return 2;
  }
  std::ostream& info = as_json ? std::cerr : std::cout;

  LocalFarm lf;
  farm::ChannelOptions chan = global;
  if (local) {
    start_local_farm(lf, rep.targets, o);
    chan = lf.client;
    info << "conformance run " << rep.run_id << ": embedded farmd on " << chan.address << ", store "
         << (o.db.empty() ? lf.tmp + "/farm.db (temporary)" : o.db) << ", " << lf.agents.size() << " local agent(s)"
         << std::endl;
  } else {
    chan.address = o.farm;
    info << "conformance run " << rep.run_id << " on the farm at " << chan.address << std::endl;
  }
  farm::ctl::Client client(chan);

  // Farm mode: a target no registered worker can run is not available.
  if (!local) {
    auto workers = client.workers();
    for (auto& t : rep.targets) {
      MatrixOptions probe = o.m;
      auto cells = build_matrix({t}, probe);
      if (cells.empty()) continue;
      bool any = false;
      std::string whys;
      for (const auto& w : workers) {
        std::string why;
        if (w.state() == v1::WORKER_STATE_OFFLINE) continue;
        if (farm::selector_matches(cells.front().spec, w.capabilities(), w.id(), &why)) any = true;
        else if (whys.size() < 300) whys += (whys.empty() ? "" : "; ") + w.id() + ": " + why;
      }
      if (!any) {
        t.available = false;
        t.why = "no worker of the farm matches " + farm::describe_selector(cells.front().spec.selector()) +
                (whys.empty() ? "" : " (" + whys + ")");
      }
    }
  }
  for (const auto& t : rep.targets)
    if (!t.available) info << "  " << t.name << ": not available: " << t.why << std::endl;

  rep.cells = build_matrix(rep.targets, o.m);
  std::map<std::string, size_t> by_id;
  // Interleave the targets so that every agent has work from the start.
  std::vector<size_t> order;
  {
    std::map<std::string, std::vector<size_t>> per;
    std::vector<std::string> names;
    for (size_t i = 0; i < rep.cells.size(); ++i) {
      if (!per.count(rep.cells[i].target)) names.push_back(rep.cells[i].target);
      per[rep.cells[i].target].push_back(i);
    }
    for (size_t k = 0;; ++k) {
      bool any = false;
      for (const auto& n : names)
        if (k < per[n].size()) order.push_back(per[n][k]), any = true;
      if (!any) break;
    }
  }
  // Board targets (--local): the board is booted once first (a preflight:
  // the health check of the vboard executor, `patch-stress --help` as the
  // job, no power cycle); its cells are submitted when it booted, and a board
  // that does not boot is not available (with the reason) instead of failing
  // every cell after boot timeouts and retries. The other targets start at once.
  Preflights preflights;
  if (local)
    for (const auto& [name, cfg] : lf.boards) preflights.start(name, cfg, lf.tmp);
  auto submit = [&](size_t i) {
    auto& c = rep.cells[i];
    if (c.status == Status::not_available || !c.job_id.empty()) return;
    try {
      auto job = client.submit(c.spec, /*allow_unmatched=*/false);
      c.job_id = job.id();
      by_id[job.id()] = i;
      if (!job.message().empty()) spdlog::info("submitted {} ({} {}): {}", job.id(), c.target, c.test, job.message());
    } catch (const farm::ctl::RpcError& e) {
      c.status = Status::error;
      c.message = std::string("submit refused: ") + e.what();
    }
  };
  for (size_t i : order)
    if (!preflights.waiting(rep.cells[i].target)) submit(i);
  // A finished preflight: submit the board's cells, or make the target not available.
  auto preflights_done = [&] {
    for (auto& [name, ok, why, secs] : preflights.finished()) {
      if (ok) {
        info << "  " << name << ": the board booted (preflight, " << static_cast<int>(secs + 0.5) << " s)" << std::endl;
        for (size_t i : order)
          if (rep.cells[i].target == name) submit(i);
        continue;
      }
      info << "  " << name << ": not available: " << why << std::endl;
      for (auto& t : rep.targets)
        if (t.name == name) {
          t.available = false;
          t.why = why;
        }
      // Its cells (none submitted) become the one not-available cell.
      std::vector<Cell> kept;
      bool placed = false;
      for (auto& c : rep.cells) {
        if (c.target != name) {
          kept.push_back(std::move(c));
          continue;
        }
        if (placed) continue;
        placed = true;
        c.test = "stress";
        c.status = Status::not_available;
        c.message = why;
        c.note.clear();
        kept.push_back(std::move(c));
      }
      rep.cells = std::move(kept);
      by_id.clear();
      for (size_t i = 0; i < rep.cells.size(); ++i)
        if (!rep.cells[i].job_id.empty()) by_id[rep.cells[i].job_id] = i;
      order.clear();
      for (size_t i = 0; i < rep.cells.size(); ++i) order.push_back(i);
    }
  };
  size_t submitted = by_id.size();
  info << "submitted " << submitted << " job(s) for " << rep.targets.size() << " target(s)"
       << (preflights.any() ? " (the board targets' after their preflight boot)" : "") << std::endl;

  std::vector<std::string> torder;
  for (const auto& t : rep.targets) torder.push_back(t.name);
  Progress prog(tty, o.progress);
  v1::ListJobsRequest lr;
  (*lr.mutable_tags())["suite"] = "conformance";
  (*lr.mutable_tags())["run"] = rep.run_id;
  lr.set_limit(100000);
  size_t failed_polls = 0;
  for (;;) {
    size_t pending = 0;
    preflights_done();
    try {
      for (const auto& j : client.list(lr)) {
        auto it = by_id.find(j.id());
        if (it != by_id.end()) apply_job(j, &rep.cells[it->second]);
      }
      failed_polls = 0;
    } catch (const farm::ctl::RpcError& e) {
      if (++failed_polls > 60) throw;
      spdlog::warn("ListJobs: {}", e.what());
    }
    for (const auto& c : rep.cells) pending += c.status == Status::pending;
    prog.update(rep.cells, torder);
    if (!pending) break;
    if (g_interrupted.load()) {
      preflights.cancel();
      info << "\ninterrupted: cancelling " << pending << " job(s)" << std::endl;
      for (auto& [id, i] : by_id)
        if (rep.cells[i].status == Status::pending) {
          try {
            client.cancel(id, "farmctl conformance interrupted");
          } catch (const std::exception&) {
          }
          rep.cells[i].status = Status::cancelled;
          rep.cells[i].message = "interrupted";
        }
      break;
    }
    std::this_thread::sleep_for(tty ? 500ms : 1000ms);
  }
  // Full results (log tails of failures) for the report.
  for (auto& [id, i] : by_id)
    if (rep.cells[i].status != Status::pass) {
      try {
        apply_job(client.get(id, true), &rep.cells[i]);
      } catch (const std::exception&) {
      }
    }

  if (g_interrupted.load())
    for (auto& c : rep.cells)
      if (c.status == Status::pending) {
        c.status = Status::cancelled;
        c.message = "interrupted";
      }

  if (!o.no_bench && !g_interrupted.load()) {
    // After the matrix, so the measurements compete with fewer jobs.
    if (!as_json) std::cout << std::endl;
    rep.benches = run_benches(rep.targets, o, o.progress && !as_json, lf.boards, local ? lf.tmp : std::string());
  }

  try {
    v1::ListJobsRequest hr;
    (*hr.mutable_tags())["suite"] = "conformance";
    hr.set_limit(100000);
    rep.history = history_from_jobs(client.list(hr));
  } catch (const std::exception& e) {
    spdlog::warn("history: {}", e.what());
  }
  rep.finished_ms = farm::now_ms();

  if (as_json) {
    std::cout << farm::ctl::json_term_safe(report_json(rep).dump(2, ' ', false, json::error_handler_t::replace))
              << std::endl;
  } else {
    std::cout << "\n" << matrix_text(rep);
  }
  if (!o.no_report) {
    write_reports(rep, o.report_dir);
    info << "reports: " << o.report_dir << "/index.html, " << o.report_dir << "/junit.xml, " << o.report_dir
         << "/conformance.json" << std::endl;
  }
  if (g_interrupted.load()) return 128 + g_interrupted.load();
  return rep.ok() ? 0 : 1;
}

}  // namespace farm::conformance
