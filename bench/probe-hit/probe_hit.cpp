// probe-hit: cost of one call through a probed function, per probe state:
// uninstrumented (sled never touched), disabled site (probe committed off),
// jump probe, trap probe, a probe on the first instruction after the sled
// (an instruction site: relocated out of line), and call probes (entry + exit
// handler, lp_probe_call) in both flavours. Then, where the machine allows it,
// the same call under a Linux uretprobe (bpftrace, run as a child process) on
// a plain function of this binary that libpatch never touches. Prints ns per
// call and ratios, then one JSON line.
//
// usage: probe-hit [CALLS] [--no-uretprobe]
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <string>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>

#include "../bench_util.hpp"
#include "libpatch/patch.h"
#include "libpatch/patchable.h"

extern "C" {
LP_PATCHABLE uint64_t bench_plain(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
LP_PATCHABLE uint64_t bench_disabled(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
LP_PATCHABLE uint64_t bench_jump(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
LP_PATCHABLE uint64_t bench_trap(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
LP_PATCHABLE uint64_t bench_body(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
LP_PATCHABLE uint64_t bench_call(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
// The uretprobe's function: no sled, never probed by libpatch, the same body.
__attribute__((noinline, used)) uint64_t bench_uretprobe(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
}

namespace {
uint64_t g_hits;
void handler(lp_regs *, void *) { ++g_hits; }

// Call probes: trivial entry and exit handlers, each counting its calls.
uint64_t g_entries, g_exits;
int on_entry(lp_regs *, uint64_t *, void *) {
  ++g_entries;
  return LP_CALL_RUN;
}
void on_exit(lp_regs *, uint64_t *, void *) { ++g_exits; }

using Fn = uint64_t (*)(uint64_t);
Fn volatile g_fn; // through a volatile pointer: the compiler can't inline or hoist
constexpr int kReps = 5;

double ns_per_call(Fn f, uint64_t n) {
  g_fn = f;
  return lp_bench::median_of(kReps, [&] {
    const double t0 = lp_bench::now_s();
    uint64_t acc = 0;
    for (uint64_t i = 0; i < n; ++i) acc += g_fn(i);
    const double t = lp_bench::now_s() - t0;
    if (acc == 42) std::puts("");
    return t * 1e9 / double(n);
  });
}

[[noreturn]] void die(const char *what, int rc) {
  std::fprintf(stderr, "probe-hit: %s: %s\n", what, lp_strerror(rc));
  std::exit(1);
}

// The first instruction after fn's entry sled (found by an entry probe that is
// removed before it is ever committed).
void *body_site(lp_patcher *p, void *fn) {
  lp_probe *entry = nullptr;
  if (int rc = lp_probe_at(p, fn, handler, nullptr, &entry); rc != 0) die("lp_probe_at", rc);
  void *site = static_cast<char *>(lp_probe_address(entry)) + lp_probe_site_len(entry);
  lp_probe_remove(entry);
  return site;
}

void commit_state(lp_patcher *p, lp_probe *pr, int enable) {
  lp_probe_enable(pr);
  if (int rc = lp_commit(p); rc != 0) die("lp_commit", rc);
  if (!enable) {
    lp_probe_disable(pr);
    if (int rc = lp_commit(p); rc != 0) die("lp_commit", rc);
  }
}

lp_probe *probe(lp_patcher *p, void *fn, int enable) {
  lp_probe *pr = nullptr;
  if (int rc = lp_probe_at(p, fn, handler, nullptr, &pr); rc != 0) die("lp_probe_at", rc);
  commit_state(p, pr, enable);
  return pr;
}

int open_with(int policy, lp_patcher **p, unsigned flags = 0) {
  lp_options o;
  lp_options_init(&o);
  o.policy = policy;
  o.flags = flags;
  const int rc = lp_patcher_open(&o, p);
  if (rc != 0) std::fprintf(stderr, "probe-hit: %s\n", lp_strerror(rc));
  return rc;
}

// One call-probe measurement: a patcher with `policy` and `flags`, an entry +
// exit probe on bench_call, n calls per run. Both handlers must have run once
// per call. A build without call probes of this flavour says why (error).
struct CallRow {
  double ns = 0;
  bool jump = false;
  bool counts_ok = false;
  int error = 0;
};
CallRow call_probe_row(int policy, unsigned flags, uint64_t n) {
  CallRow row;
  lp_patcher *p = nullptr;
  if (open_with(policy, &p, flags) != 0) std::exit(1);
  lp_probe *pr = nullptr;
  if (int rc = lp_probe_call(p, reinterpret_cast<void *>(&bench_call), on_entry, on_exit, nullptr, &pr); rc != 0) {
    row.error = rc;
    lp_patcher_close(p);
    return row;
  }
  commit_state(p, pr, 1);
  row.jump = lp_probe_is_jump(pr) == 1;
  g_entries = g_exits = 0;
  row.ns = ns_per_call(bench_call, n);
  row.counts_ok = g_entries == kReps * n && g_exits == kReps * n;
  if (!row.counts_ok)
    std::fprintf(stderr, "probe-hit: call probe counted %llu entries and %llu exits for %llu calls\n",
                 (unsigned long long)g_entries, (unsigned long long)g_exits, (unsigned long long)(kReps * n));
  lp_patcher_close(p);
  return row;
}

// ---- the Linux uretprobe (bpftrace) ----

struct Uretprobe {
  bool ran = false;     // attached and measured
  std::string reason;   // why not
  double ns = 0;        // ns per call under the uretprobe
  uint64_t counted = 0; // bpftrace's count
  bool count_ok = false;
};

// Printable, JSON- and terminal-safe, one line.
std::string clean(const std::string &s, size_t max = 160) {
  std::string r;
  for (char c : s) {
    if (c == '\n' || c == '\r') c = ' ';
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') continue;
    if (!(r.empty() && c == ' ')) r += c;
    if (r.size() >= max) break;
  }
  while (!r.empty() && r.back() == ' ') r.pop_back();
  return r;
}

std::string find_in_path(const char *name) {
  const char *path = std::getenv("PATH");
  std::string p = path && *path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  size_t pos = 0;
  while (pos <= p.size()) {
    size_t end = p.find(':', pos);
    if (end == std::string::npos) end = p.size();
    std::string dir = p.substr(pos, end - pos);
    if (!dir.empty()) {
      std::string f = dir + "/" + name;
      if (access(f.c_str(), X_OK) == 0) return f;
    }
    pos = end + 1;
  }
  return "";
}

// The first error line bpftrace printed (it also warns about RLIMIT_MEMLOCK
// and detaching, which are not reasons).
std::string bpftrace_error(const std::string &err) {
  size_t pos = 0;
  std::string first;
  while (pos < err.size()) {
    size_t nl = err.find('\n', pos);
    std::string line = err.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? err.size() : nl + 1;
    if (line.empty() || line.find("RLIMIT_MEMLOCK") != std::string::npos) continue;
    if (first.empty()) first = line;
    if (line.rfind("ERROR", 0) == 0) return line;
  }
  return first;
}

// Reads what is available from fd into s; false at EOF.
bool drain(int fd, std::string &s) {
  char buf[4096];
  for (;;) {
    const ssize_t r = read(fd, buf, sizeof buf);
    if (r > 0) {
      s.append(buf, size_t(r));
      continue;
    }
    if (r == 0) return false;
    return errno == EINTR || errno == EAGAIN;
  }
}

Uretprobe measure_uretprobe(uint64_t n) {
  Uretprobe u;
#if !defined(__x86_64__)
  // The riscv64 benchmarks run under qemu-user, where a host uprobe on the
  // guest's ELF would patch host breakpoints into code qemu only translates.
  u.reason = "measured on x86-64 builds only";
  return u;
#endif
  const std::string bpftrace = find_in_path("bpftrace");
  if (bpftrace.empty()) {
    u.reason = "bpftrace is not installed (ci/install-deps --bench)";
    return u;
  }
  if (geteuid() != 0) {
    u.reason = "not root (bpftrace needs root)";
    return u;
  }
  char exe[4096];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) {
    u.reason = "cannot read /proc/self/exe";
    return u;
  }
  exe[len] = 0;
  for (const char *c = exe; *c; ++c)
    if (!(std::isalnum(static_cast<unsigned char>(*c)) || std::strchr("/._+-", *c))) {
      u.reason = std::string("the binary's path has characters a bpftrace probe cannot name: ") + clean(exe);
      return u;
    }
  const std::string script = std::string("uretprobe:") + exe + ":bench_uretprobe { @calls = count(); }";
  const std::string pid = std::to_string(getpid());

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    u.reason = "pipe failed";
    return u;
  }
  const volatile uint8_t *text = reinterpret_cast<const volatile uint8_t *>(&bench_uretprobe);
  const uint8_t original = *text;
  const pid_t child = fork();
  if (child < 0) {
    u.reason = "fork failed";
    return u;
  }
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGINT); // the benchmark died: detach
    dup2(out[1], 1);
    dup2(err[1], 2);
    execl(bpftrace.c_str(), "bpftrace", "-p", pid.c_str(), "-e", script.c_str(), static_cast<char *>(nullptr));
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  std::string so, se;
  bool out_open = true, err_open = true, exited = false;
  int status = 0;
  auto pump = [&](int timeout_ms) {
    pollfd fds[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
    poll(fds, 2, timeout_ms);
    if (out_open) out_open = drain(out[0], so);
    if (err_open) err_open = drain(err[0], se);
    if (!exited && waitpid(child, &status, WNOHANG) == child) exited = true;
  };
  // Attached: the uprobe's breakpoint is in this process's copy of the text
  // (the kernel writes it when the probe is registered). bpftrace's
  // "Attaching 1 probe..." is printed before it attaches.
  const double deadline = lp_bench::now_s() + 30;
  while (!exited && *text == original && lp_bench::now_s() < deadline) pump(20);
  if (exited || *text == original) {
    const bool timed_out = !exited;
    if (timed_out) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
    }
    const double drain_by = lp_bench::now_s() + 5;
    while ((out_open || err_open) && lp_bench::now_s() < drain_by) pump(50);
    const std::string why = clean(bpftrace_error(se));
    if (timed_out) u.reason = "bpftrace did not attach within 30 s";
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 127) u.reason = "cannot run " + clean(bpftrace);
    else
      u.reason = "bpftrace exited with status " +
                 std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    if (!why.empty()) u.reason += ": " + why;
    close(out[0]);
    close(err[0]);
    return u;
  }
  u.ns = ns_per_call(bench_uretprobe, n);
  kill(child, SIGINT); // bpftrace prints its map and detaches
  const double stop_by = lp_bench::now_s() + 20;
  while ((out_open || err_open || !exited) && lp_bench::now_s() < stop_by) pump(50);
  if (!exited) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
  }
  close(out[0]);
  close(err[0]);
  const size_t at = so.find("@calls: ");
  if (at == std::string::npos) {
    u.reason = "bpftrace printed no count" + (se.empty() ? std::string() : ": " + clean(bpftrace_error(se)));
    return u;
  }
  u.counted = std::strtoull(so.c_str() + at + 8, nullptr, 10);
  u.count_ok = u.counted == kReps * n;
  u.ran = true;
  return u;
}

double ratio(double a, double b) { return a / (b > 0.01 ? b : 0.01); }

} // namespace

int main(int argc, char **argv) {
  uint64_t n = 20000000;
  bool uretprobe = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--no-uretprobe")) uretprobe = false;
    else if (argv[i][0] >= '0' && argv[i][0] <= '9') n = std::strtoull(argv[i], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: probe-hit [CALLS] [--no-uretprobe]\n");
      return 2;
    }
  }
  if (n == 0) n = 1;
  const uint64_t n_trap = n / 100 ? n / 100 : 1;
  const uint64_t n_uret = n / 1000 ? n / 1000 : 1; // a uretprobe hit costs two kernel traps
  lp_patcher *p = nullptr;
  // One patcher per process at a time, and the probe kind is a patcher
  // policy: jump-probe states first, then the trap probe.
  if (open_with(LP_PROBE_JUMP, &p) != 0) return 1;
  probe(p, reinterpret_cast<void *>(&bench_disabled), 0);
  probe(p, reinterpret_cast<void *>(&bench_jump), 1);
  const double plain = ns_per_call(bench_plain, n);
  const double disabled = ns_per_call(bench_disabled, n);
  const double jump = ns_per_call(bench_jump, n);
  lp_patcher_close(p);
  // The handler above only touches integer registers: the promise the
  // LP_FLAG_HANDLER_GPR_ONLY fast path needs.
  if (open_with(LP_PROBE_JUMP, &p, LP_FLAG_HANDLER_GPR_ONLY) != 0) return 1;
  probe(p, reinterpret_cast<void *>(&bench_jump), 1);
  const double jump_gpr = ns_per_call(bench_jump, n);
  lp_patcher_close(p);
  // An instruction site: a jump where one fits (riscv64 static binaries: the
  // far form needs a dead register), else a trap probe; reported as such.
  if (open_with(LP_PROBE_JUMP_OR_TRAP, &p) != 0) return 1;
  lp_probe *body = probe(p, body_site(p, reinterpret_cast<void *>(&bench_body)), 1);
  const bool body_jump = lp_probe_is_jump(body) == 1;
  const int body_fallback = lp_probe_fallback(body); // why a trap, when it is one
  const double insn = ns_per_call(bench_body, body_jump ? n : n_trap);
  lp_patcher_close(p);
  if (open_with(LP_PROBE_TRAP, &p) != 0) return 1;
  probe(p, reinterpret_cast<void *>(&bench_trap), 1);
  const double trap = ns_per_call(bench_trap, n_trap);
  lp_patcher_close(p);
  // Call probes: entry + exit handler on every call.
  const CallRow call_jump = call_probe_row(LP_PROBE_JUMP, 0, n);
  const CallRow call_jump_gpr = call_probe_row(LP_PROBE_JUMP, LP_FLAG_HANDLER_GPR_ONLY, n);
  const CallRow call_trap = call_probe_row(LP_PROBE_TRAP, 0, n_trap);
  // The uretprobe: its function uninstrumented first, then under bpftrace.
  const double uret_plain = ns_per_call(bench_uretprobe, n);
  Uretprobe u;
  if (uretprobe) u = measure_uretprobe(n_uret);
  else u.reason = "--no-uretprobe";

  std::printf("probe-hit (%s), median of %d runs\n", lp_arch(), kReps);
  std::printf("  %-27s %10.2f ns/call\n", "uninstrumented call", plain);
  std::printf("  %-27s %10.2f ns/call\n", "disabled site", disabled);
  std::printf("  %-27s %10.2f ns/call  (probe cost %.2f ns over the call)\n", "jump probe", jump, jump - plain);
  std::printf("  %-27s %10.2f ns/call  (probe cost %.2f ns over the call)\n", "jump probe, GPR-only", jump_gpr,
              jump_gpr - plain);
  std::printf("  %-27s %10.2f ns/call  (probe cost %.2f ns over the call)\n", "trap probe", trap, trap - plain);
  std::printf("  %-27s %10.2f ns/call  (probe cost %.2f ns over the call; %s probe%s%s)\n", "instruction site", insn,
              insn - plain, body_jump ? "jump" : "trap", body_jump ? "" : ": no jump because ",
              body_jump ? "" : lp_strerror(body_fallback));
  std::printf("  ratio trap/jump (probe cost) %.1fx   jump/uninstrumented %.2fx   disabled/uninstrumented %.2fx\n",
              ratio(trap - plain, jump - plain), jump / plain, disabled / plain);
  std::printf("\n  entry+exit (call probes: lp_probe_call, both handlers counting)\n");
  auto call_line = [&](const char *name, const CallRow &r) {
    if (r.error) std::printf("  %-27s not available (%s)\n", name, lp_strerror(r.error));
    else
      std::printf("  %-27s %10.2f ns/call  (cost %.2f ns over the call, %.2fx uninstrumented%s)\n", name, r.ns,
                  r.ns - plain, r.ns / plain, r.jump ? "" : "; a trap probe");
  };
  call_line("entry+exit jump probe", call_jump);
  call_line("entry+exit jump, GPR-only", call_jump_gpr);
  call_line("entry+exit trap probe", call_trap);
  std::printf("  %-27s %10.2f ns/call  (the uretprobe's function: no sled, never touched by libpatch)\n",
              "plain function", uret_plain);
  if (u.ran) {
    std::printf("  %-27s %10.2f ns/call  (cost %.2f ns over the call, %.2fx uninstrumented; bpftrace counted %llu "
                "of %llu calls: %s)\n",
                "uretprobe (bpftrace)", u.ns, u.ns - uret_plain, u.ns / uret_plain, (unsigned long long)u.counted,
                (unsigned long long)(kReps * n_uret), u.count_ok ? "ok" : "MISMATCH");
    std::printf("  ratio uretprobe / libpatch entry+exit (per call; probe cost):");
    const std::pair<const char *, const CallRow *> rows[] = {
        {"jump", &call_jump}, {"jump GPR-only", &call_jump_gpr}, {"trap", &call_trap}};
    for (const auto &[name, r] : rows)
      if (!r->error) std::printf("  %s %.1fx; %.1fx", name, ratio(u.ns, r->ns), ratio(u.ns - uret_plain, r->ns - plain));
    std::printf("\n");
  } else {
    std::printf("  uretprobe: not available (%s)\n", u.reason.c_str());
  }
  // JSON: a measurement this build lacks is null.
  auto num = [](bool have, double v) {
    char b[32];
    if (have) std::snprintf(b, sizeof b, "%.3f", v);
    else std::snprintf(b, sizeof b, "null");
    return std::string(b);
  };
  std::printf("{\"bench\":\"probe-hit\",\"arch\":\"%s\",\"plain_ns\":%.3f,\"disabled_ns\":%.3f,\"jump_ns\":%.3f,"
              "\"trap_ns\":%.3f,\"jump_cost_ns\":%.3f,\"trap_cost_ns\":%.3f,\"jump_gpr_only_ns\":%.3f,"
              "\"insn_site_ns\":%.3f,\"insn_site_kind\":\"%s\",\"insn_site_fallback\":%d,\"call_jump_ns\":%s,\"call_jump_gpr_only_ns\":%s,"
              "\"call_trap_ns\":%s,\"call_jump_cost_ns\":%s,\"call_trap_cost_ns\":%s,\"uretprobe_plain_ns\":%.3f,",
              lp_arch(), plain, disabled, jump, trap, jump - plain, trap - plain, jump_gpr, insn,
              body_jump ? "jump" : "trap", body_fallback, num(!call_jump.error, call_jump.ns).c_str(),
              num(!call_jump_gpr.error, call_jump_gpr.ns).c_str(), num(!call_trap.error, call_trap.ns).c_str(),
              num(!call_jump.error, call_jump.ns - plain).c_str(), num(!call_trap.error, call_trap.ns - plain).c_str(),
              uret_plain);
  if (u.ran)
    std::printf("\"uretprobe\":true,\"uretprobe_ns\":%.3f,\"uretprobe_cost_ns\":%.3f,\"uretprobe_count_ok\":%s,"
                "\"uretprobe_over_call_jump\":%s}\n",
                u.ns, u.ns - uret_plain, u.count_ok ? "true" : "false",
                num(!call_jump.error, ratio(u.ns, call_jump.ns)).c_str());
  else
    std::printf("\"uretprobe\":false,\"uretprobe_reason\":\"%s\"}\n", u.reason.c_str());
  // Handlers that missed calls are a failure; a flavour this build lacks is not.
  const bool ok = (call_jump.error || call_jump.counts_ok) && (call_jump_gpr.error || call_jump_gpr.counts_ok) &&
                  (call_trap.error || call_trap.counts_ok);
  return ok ? 0 : 1;
}
