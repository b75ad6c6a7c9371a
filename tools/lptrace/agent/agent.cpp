// libpatch-trace.so: lptrace's agent, preloaded into the traced program by
// `lptrace run`. It probes the functions the patterns select as soon as it is
// loaded (a constructor: every call of the program's main runs probed) and
// writes a report when the process exits. Configuration, from lptrace:
//   LPTRACE_FUNCS  the patterns, one per line ([OBJECT:]FUNCTION globs)
//   LPTRACE_EXIT   "1": call probes with an exit handler (latency), else
//                  entry probes (counts only)
//   LPTRACE_OUT    report path prefix: PREFIX.PID.json, one per process (fork
//                  children write their own; exec'd programs load the agent
//                  again through LD_PRELOAD)
// Handlers are async-signal-safe: relaxed atomics and clock_gettime only.
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "functions.hpp"
#include "latency.hpp"
#include "libpatch/patch.h"

namespace lptrace {
namespace {

struct Probed {
  Function fn;
  lp_probe *probe = nullptr;
  std::atomic<uint64_t> calls{0};
  Latency lat;
};

struct Failed {
  Function fn;
  int error;
};

struct Agent {
  lp_patcher *patcher = nullptr;
  bool exits = false;
  std::string out;
  std::deque<Probed> probed; // stable addresses: handlers hold them
  std::vector<Failed> failed;
  std::vector<std::string> patterns;
  std::vector<size_t> pattern_hits; // functions each pattern matched
  size_t matched = 0;
  int setup_error = 0;
  std::string setup_why;
};

Agent *g_agent = nullptr;

uint64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}

void count(lp_regs *, void *u) { static_cast<Probed *>(u)->calls.fetch_add(1, std::memory_order_relaxed); }

int on_entry(lp_regs *, uint64_t *call, void *u) {
  static_cast<Probed *>(u)->calls.fetch_add(1, std::memory_order_relaxed);
  if (call) call[0] = now_ns();
  return LP_CALL_RUN;
}

void on_exit_(lp_regs *, uint64_t *call, void *u) { static_cast<Probed *>(u)->lat.add(now_ns() - call[0]); }

// A fork child reports only what it does itself.
void reset_in_child() {
  if (!g_agent) return;
  for (Probed &p : g_agent->probed) {
    p.calls.store(0, std::memory_order_relaxed);
    p.lat.reset();
  }
}

std::string program_name() {
  char buf[4096];
  const ssize_t r = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return r > 0 ? std::string(buf, size_t(r)) : std::string("?");
}

void write_report() {
  Agent *a = g_agent;
  if (!a || a->out.empty()) return;
  nlohmann::json j;
  j["pid"] = getpid();
  j["program"] = program_name();
  j["exits"] = a->exits;
  j["patterns"] = a->patterns;
  j["matched"] = a->matched;
  auto &none = j["unmatched"] = nlohmann::json::array();
  for (size_t i = 0; i < a->patterns.size() && i < a->pattern_hits.size(); ++i)
    if (a->pattern_hits[i] == 0) none.push_back(a->patterns[i]);
  if (a->setup_error) j["error"] = std::string(lp_strerror(a->setup_error)) + (a->setup_why.empty() ? "" : ": " + a->setup_why);
  auto &fs = j["functions"] = nlohmann::json::array();
  for (const Probed &p : a->probed) {
    nlohmann::json f{{"object", p.fn.object},
                     {"name", p.fn.name},
                     {"addr", p.fn.addr},
                     {"kind", lp_probe_is_jump(p.probe) == 1 ? "jump" : "trap"},
                     {"calls", p.calls.load(std::memory_order_relaxed)}};
    if (a->exits) p.lat.to_json(f);
    fs.push_back(std::move(f));
  }
  auto &bad = j["failed"] = nlohmann::json::array();
  for (const Failed &f : a->failed) bad.push_back({{"object", f.fn.object}, {"name", f.fn.name}, {"error", lp_strerror(f.error)}});
  const std::string path = a->out + "." + std::to_string(getpid()) + ".json";
  if (FILE *fp = std::fopen(path.c_str(), "we")) {
    const std::string text = j.dump();
    std::fwrite(text.data(), 1, text.size(), fp);
    std::fclose(fp);
  }
}

void start() {
  const char *funcs = std::getenv("LPTRACE_FUNCS");
  const char *out = std::getenv("LPTRACE_OUT");
  if (!funcs || !out) return; // not started by lptrace: do nothing at all
  auto *a = new Agent;
  g_agent = a;
  a->out = out;
  const char *ex = std::getenv("LPTRACE_EXIT");
  a->exits = ex && std::strcmp(ex, "1") == 0;
  std::vector<Pattern> pats;
  for (const char *s = funcs; *s;) {
    const char *e = std::strchr(s, '\n');
    std::string t = e ? std::string(s, size_t(e - s)) : std::string(s);
    s = e ? e + 1 : s + t.size();
    if (t.empty()) continue;
    Pattern p;
    std::string why;
    if (!parse_pattern(t, &p, &why)) {
      a->setup_error = LP_EINVAL;
      a->setup_why = why;
      return;
    }
    a->patterns.push_back(t);
    pats.push_back(p);
  }
  pthread_atfork(nullptr, nullptr, reset_in_child);
  if (int rc = lp_patcher_open(nullptr, &a->patcher); rc != 0) {
    a->setup_error = rc;
    a->setup_why = "lp_patcher_open";
    return;
  }
  const std::vector<Function> all = list_functions();
  const std::string main_obj = all.empty() ? "" : all.front().object;
  std::set<uintptr_t> taken; // one probe per address, under the first name that matched
  a->pattern_hits.assign(pats.size(), 0);
  for (const Function &f : all) {
    bool hit = false;
    for (size_t i = 0; i < pats.size(); ++i)
      if (matches(pats[i], f, f.object == main_obj)) {
        ++a->pattern_hits[i];
        hit = true;
      }
    if (!hit || !taken.insert(f.addr).second) continue;
    ++a->matched;
    Probed &pr = a->probed.emplace_back();
    pr.fn = f;
    void *addr = reinterpret_cast<void *>(f.addr);
    int rc = a->exits ? lp_probe_call(a->patcher, addr, on_entry, on_exit_, &pr, &pr.probe)
                      : lp_probe_at(a->patcher, addr, count, &pr, &pr.probe);
    if (rc == 0) rc = lp_probe_enable(pr.probe);
    if (rc != 0) {
      a->failed.push_back({f, rc});
      a->probed.pop_back();
    }
  }
  if (int rc = lp_commit(a->patcher); rc != 0) {
    a->setup_error = rc;
    a->setup_why = "lp_commit";
  }
}

__attribute__((constructor)) void agent_start() { start(); }
__attribute__((destructor)) void agent_stop() { write_report(); }

} // namespace
} // namespace lptrace
