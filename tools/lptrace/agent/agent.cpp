// libpatch-trace.so: lptrace's agent, preloaded into the traced program by
// `lptrace run`. It probes the functions the patterns select as soon as it is
// loaded (a constructor: every call of the program's main runs probed) and
// writes a report when the process exits. Configuration, from lptrace:
//   LPTRACE_FUNCS  the patterns, one per line ([OBJECT:]FUNCTION globs)
//   LPTRACE_EXIT   "1": call probes with an exit handler (latency), else
//                  entry probes (counts only)
//   LPTRACE_RECORD N: keep the last N call events of every thread (ring.hpp)
//                  and write them at exit, PREFIX.PID.events
//   LPTRACE_OUT    report path prefix: PREFIX.PID.json, one per process (fork
//                  children write their own; exec'd programs load the agent
//                  again through LD_PRELOAD)
// Handlers are async-signal-safe: relaxed atomics and clock_gettime only.
// Loaded by `lptrace attach` (dlopen, no environment) the agent only starts
// its control server, and lptrace drives it (ctl_protocol.hpp); in both modes
// the server lets `lptrace ctl PID ...` change probes while the program runs.
#include <csignal>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctl_protocol.hpp"
#include "functions.hpp"
#include "clock.hpp"
#include "latency.hpp"
#include "ring.hpp"
#include "thread_stats.hpp"
#include "libpatch/patch.h"

namespace lptrace {
namespace {

struct Probed {
  uint32_t index = 0; // in the event rings
  Function fn;
  lp_probe *probe = nullptr; // null: not probed (failed) or removed (detach)
  bool enabled = false;
  bool exits = false;
  Stats shared; // threads without room in their own table (thread_stats.hpp)
};

struct Failed {
  Function fn;
  int error;
};

struct Agent {
  std::recursive_mutex mu; // the control thread and the exit report
  lp_patcher *patcher = nullptr;
  bool detached = false;
  int listen_fd = -1;
  bool exits = false;
  std::string out;
  std::deque<Probed> probed; // stable addresses: handlers hold them
  std::map<uintptr_t, Probed *> by_addr; // the probed ones, by function address
  std::vector<Failed> failed;
  std::string main_object; // the executable's name among the objects ("main:" patterns)
  std::vector<std::string> patterns;
  std::vector<size_t> pattern_hits; // functions each pattern matched
  size_t matched = 0;
  int setup_error = 0;
  std::string setup_why;
};

Agent *g_agent = nullptr;
Rings g_rings;       // --record
ThreadStats g_stats; // per-thread counters: no locked instruction on the hit path
Clock g_clock;

// The handlers: this thread's Stats of the function (plain stores), the
// shared one only when the thread's table has no room for it.
void count(lp_regs *, void *u) {
  auto *p = static_cast<Probed *>(u);
  if (Stats *s = g_stats.mine(p->index)) s->own_call();
  else p->shared.shared_call();
  if (g_rings.on()) g_rings.add(p->index, g_clock.now(), UINT64_MAX);
}

int on_entry(lp_regs *, uint64_t *call, void *u) {
  auto *p = static_cast<Probed *>(u);
  if (Stats *s = g_stats.mine(p->index)) s->own_call();
  else p->shared.shared_call();
  if (call) call[0] = g_clock.now();
  return LP_CALL_RUN;
}

void on_exit_(lp_regs *, uint64_t *call, void *u) {
  auto *p = static_cast<Probed *>(u);
  const uint64_t dur = g_clock.now() - call[0];
  if (Stats *s = g_stats.mine(p->index)) s->own_exit(dur);
  else p->shared.shared_exit(dur);
  if (g_rings.on()) g_rings.add(p->index, call[0], dur);
}

Summary summary_of(const Probed &p) {
  Summary sum;
  sum.add(p.shared);
  for (const ThreadTable *t : g_stats.all())
    if (p.index < t->cap) sum.add(t->slot[p.index]);
  return sum;
}

// A fork child reports only what it does itself.
void reset_in_child() {
  if (!g_agent) return;
  g_rings.forget_all();
  g_stats.forget_all();
  for (Probed &p : g_agent->probed) p.shared.reset();
}

std::string program_name() {
  char buf[4096];
  const ssize_t r = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return r > 0 ? std::string(buf, size_t(r)) : std::string("?");
}

nlohmann::json report_json(Agent *a) {
  std::lock_guard lk(a->mu);
  nlohmann::json j;
  j["pid"] = getpid();
  j["program"] = program_name();
  bool exits = a->exits;
  for (const Probed &p : a->probed) exits = exits || (p.probe && p.exits);
  j["exits"] = exits; // latency columns: some probe has exits
  j["patterns"] = a->patterns;
  j["matched"] = a->matched;
  auto &none = j["unmatched"] = nlohmann::json::array();
  for (size_t i = 0; i < a->patterns.size() && i < a->pattern_hits.size(); ++i)
    if (a->pattern_hits[i] == 0) none.push_back(a->patterns[i]);
  if (a->setup_error) j["error"] = std::string(lp_strerror(a->setup_error)) + (a->setup_why.empty() ? "" : ": " + a->setup_why);
  auto &fs = j["functions"] = nlohmann::json::array();
  const double k = g_clock.ns_per_tick();
  for (const Probed &p : a->probed) {
    if (!p.probe) continue; // removed by a detach
    const Summary sum = summary_of(p);
    nlohmann::json f{{"object", p.fn.object},
                     {"name", p.fn.name},
                     {"addr", p.fn.addr},
                     {"kind", lp_probe_is_jump(p.probe) == 1 ? "jump" : "trap"},
                     {"enabled", p.enabled},
                     {"calls", sum.calls}};
    if (p.exits) sum.to_json(f, k);
    else if (exits) f.update({{"exits", 0}, {"total_ns", 0}, {"mean_ns", 0}, {"p50_ns", 0}, {"p99_ns", 0}, {"max_ns", 0}});
    fs.push_back(std::move(f));
  }
  // Per thread (lptrace --per-thread): what each thread's own table holds
  // (calls that fell back to the shared Stats are in the totals only).
  auto &threads = j["threads"] = nlohmann::json::array();
  for (const ThreadTable *t : g_stats.all()) {
    nlohmann::json tf = nlohmann::json::array();
    for (const Probed &p : a->probed) {
      if (!p.probe || p.index >= t->cap) continue;
      Summary one;
      one.add(t->slot[p.index]);
      if (one.calls == 0) continue;
      nlohmann::json f{{"object", p.fn.object}, {"name", p.fn.name}, {"calls", one.calls}};
      if (p.exits) one.to_json(f, k);
      tf.push_back(std::move(f));
    }
    threads.push_back({{"tid", t->tid}, {"functions", std::move(tf)}});
  }
  auto &bad = j["failed"] = nlohmann::json::array();
  for (const Failed &f : a->failed) bad.push_back({{"object", f.fn.object}, {"name", f.fn.name}, {"error", lp_strerror(f.error)}});
  return j;
}

// --record: this process's events, for lptrace to merge into one trace.
nlohmann::json events_json(Agent *a) {
  std::lock_guard lk(a->mu);
  nlohmann::json j;
  auto &names = j["names"] = nlohmann::json::array();
  for (const Probed &p : a->probed) names.push_back(p.fn.object + ":" + p.fn.name);
  auto &threads = j["threads"] = nlohmann::json::array();
  const double k = g_clock.ns_per_tick();
  for (const Ring *r : g_rings.all()) {
    const uint64_t n = r->n.load(std::memory_order_acquire);
    const uint64_t first = n > r->cap ? n - r->cap : 0;
    nlohmann::json ev = nlohmann::json::array();
    for (uint64_t i = first; i < n; ++i) {
      const Event &e = r->ev[i % r->cap];
      ev.push_back({e.fn, g_clock.to_mono_ns(e.ts_ns), e.dur_ns == UINT64_MAX ? -1 : int64_t(double(e.dur_ns) * k)});
    }
    threads.push_back({{"tid", r->tid}, {"dropped", first}, {"events", std::move(ev)}});
  }
  return j;
}

void write_report() {
  Agent *a = g_agent;
  if (!a || a->out.empty()) return;
  if (g_rings.on()) {
    const std::string ev = events_json(a).dump();
    if (FILE *fp = std::fopen((a->out + "." + std::to_string(getpid()) + ".events").c_str(), "we")) {
      std::fwrite(ev.data(), 1, ev.size(), fp);
      std::fclose(fp);
    }
  }
  const std::string text = report_json(a).dump();
  const std::string path = a->out + "." + std::to_string(getpid()) + ".json";
  if (FILE *fp = std::fopen(path.c_str(), "we")) {
    std::fwrite(text.data(), 1, text.size(), fp);
    std::fclose(fp);
  }
}

// Probes (and enables) what `texts` select, one batch. Functions probed
// before are enabled again, not probed twice.
nlohmann::json probe_patterns(Agent *a, const std::vector<std::string> &texts, bool exits) {
  std::lock_guard lk(a->mu);
  nlohmann::json r{{"ok", true}};
  std::vector<Pattern> pats;
  for (const std::string &t : texts) {
    Pattern p;
    std::string why;
    if (!parse_pattern(t, &p, &why)) return {{"ok", false}, {"error", "bad pattern: " + why}};
    pats.push_back(p);
  }
  const size_t first = a->patterns.size();
  for (const std::string &t : texts) a->patterns.push_back(t);
  a->pattern_hits.resize(a->patterns.size(), 0);
  const std::vector<Function> all = list_functions();
  if (!all.empty()) a->main_object = all.front().object;
  const std::string &main_obj = a->main_object;
  std::set<uintptr_t> taken;
  size_t matched = 0, probed = 0, failed = 0;
  for (const Function &f : all) {
    bool hit = false;
    for (size_t i = 0; i < pats.size(); ++i)
      if (matches(pats[i], f, f.object == main_obj)) {
        ++a->pattern_hits[first + i];
        hit = true;
      }
    if (!hit || !taken.insert(f.addr).second) continue;
    ++matched;
    auto it = a->by_addr.find(f.addr);
    Probed *known = it != a->by_addr.end() && it->second->probe ? it->second : nullptr;
    if (known) {
      if (!known->enabled && lp_probe_enable(known->probe) == 0) known->enabled = true;
      ++probed;
      continue;
    }
    Probed &pr = a->probed.emplace_back();
    pr.index = uint32_t(a->probed.size() - 1);
    pr.fn = f;
    pr.exits = exits;
    void *addr = reinterpret_cast<void *>(f.addr);
    int rc = exits ? lp_probe_call(a->patcher, addr, on_entry, on_exit_, &pr, &pr.probe)
                   : lp_probe_at(a->patcher, addr, count, &pr, &pr.probe);
    if (rc == 0) rc = lp_probe_enable(pr.probe);
    if (rc != 0) {
      // Kept in the deque (stable addresses), without a probe: not reported.
      if (pr.probe) lp_probe_remove(pr.probe);
      pr.probe = nullptr;
      a->failed.push_back({f, rc});
      ++failed;
      continue;
    }
    pr.enabled = true;
    a->by_addr[f.addr] = &pr;
    ++probed;
  }
  a->matched += matched;
  g_stats.set_capacity(uint32_t(a->probed.size() + 64)); // threads that start now get room for all, and more
  if (int rc = lp_commit(a->patcher); rc != 0) return {{"ok", false}, {"error", std::string("lp_commit: ") + lp_strerror(rc)}};
  r["matched"] = matched;
  r["probed"] = probed;
  r["failed"] = failed;
  return r;
}

nlohmann::json disable_pattern(Agent *a, const std::string &text) {
  std::lock_guard lk(a->mu);
  Pattern p;
  std::string why;
  if (!parse_pattern(text, &p, &why)) return {{"ok", false}, {"error", "bad pattern: " + why}};
  const std::string &main_obj = a->main_object; // known since the first enable: no second ELF read
  size_t n = 0;
  for (Probed &pr : a->probed)
    if (pr.probe && pr.enabled && matches(p, pr.fn, pr.fn.object == main_obj) && lp_probe_disable(pr.probe) == 0) {
      pr.enabled = false;
      ++n;
    }
  if (int rc = lp_commit(a->patcher); rc != 0) return {{"ok", false}, {"error", std::string("lp_commit: ") + lp_strerror(rc)}};
  return {{"ok", true}, {"disabled", n}};
}

nlohmann::json detach(Agent *a) {
  std::lock_guard lk(a->mu);
  size_t n = 0;
  for (Probed &pr : a->probed)
    if (pr.probe && lp_probe_remove(pr.probe) == 0) ++n;
  if (int rc = lp_commit(a->patcher); rc != 0) return {{"ok", false}, {"error", std::string("lp_commit: ") + lp_strerror(rc)}};
  // Every site holds its original bytes again; the report of what was seen
  // goes back with the reply. The patcher stays open (its trampolines stay
  // mapped for a thread that might still be in one): nothing runs any more.
  nlohmann::json r{{"ok", true}, {"removed", n}, {"report", report_json(a)}};
  (void)lp_quiesce(a->patcher, 2000);
  for (Probed &pr : a->probed) pr.probe = nullptr;
  a->detached = true;
  return r;
}

std::string handle(Agent *a, const std::string &line) {
  std::string cmd = line, arg;
  if (auto sp = line.find(' '); sp != std::string::npos) {
    cmd = line.substr(0, sp);
    arg = line.substr(sp + 1);
  }
  nlohmann::json r;
  if (a->detached) r = {{"ok", false}, {"error", "detached"}};
  else if (cmd == "stats") r = {{"ok", true}, {"report", report_json(a)}};
  else if (cmd == "enable") {
    bool exits = false;
    if (arg.size() > 5 && arg.compare(arg.size() - 5, 5, " exit") == 0) {
      exits = true;
      arg.resize(arg.size() - 5);
    }
    r = probe_patterns(a, {arg}, exits);
  } else if (cmd == "disable") r = disable_pattern(a, arg);
  else if (cmd == "detach") r = detach(a);
  else r = {{"ok", false}, {"error", "unknown request '" + cmd + "' (enable, disable, stats, detach)"}};
  return r.dump() + "\n";
}

// The control server: one thread, one request per connection, peers of our
// uid only. Ends after a detach.
void serve(Agent *a) {
  while (!a->detached) {
    const int c = accept4(a->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR) continue;
      break;
    }
    ucred cr{};
    socklen_t len = sizeof cr;
    std::string reply;
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || cr.uid != getuid()) {
      reply = "{\"ok\":false,\"error\":\"permission denied: not the traced process's uid\"}\n";
    } else {
      std::string line;
      char ch;
      pollfd pf{c, POLLIN, 0};
      while (line.size() < 4096 && poll(&pf, 1, 5000) == 1 && read(c, &ch, 1) == 1 && ch != '\n') line += ch;
      reply = handle(a, line);
    }
    (void)!write(c, reply.data(), reply.size());
    close(c);
  }
  close(a->listen_fd);
  unlink(ctl_socket_path(getpid()).c_str());
}

void start_server(Agent *a) {
  const std::string dir = ctl_dir(), path = ctl_socket_path(getpid());
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return;
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) return;
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  unlink(path.c_str());
  const mode_t old = umask(077);
  const int rc = bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa);
  umask(old);
  if (rc != 0 || chmod(path.c_str(), 0600) != 0 || listen(fd, 8) != 0) {
    close(fd);
    return;
  }
  a->listen_fd = fd;
  // A plain thread (std::thread would need the agent's C++ runtime to
  // outlive it): detached, it ends with the process or after a detach.
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  sigset_t all, old_mask;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old_mask); // the program's signals go to its own threads
  pthread_create(&t, &at, [](void *p) -> void * { serve(static_cast<Agent *>(p)); return nullptr; }, a);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  pthread_attr_destroy(&at);
}

void start() {
  const char *funcs = std::getenv("LPTRACE_FUNCS");
  const char *out = std::getenv("LPTRACE_OUT");
  const std::string marker = attach_marker_path(getpid());
  const bool attached = !funcs && access(marker.c_str(), F_OK) == 0;
  if (!attached && (!funcs || !out)) return; // not started by lptrace: do nothing at all
  if (attached) unlink(marker.c_str());
  auto *a = new Agent;
  g_agent = a;
  if (out) a->out = out;
  const char *ex = std::getenv("LPTRACE_EXIT");
  a->exits = ex && std::strcmp(ex, "1") == 0;
  if (const char *rec = std::getenv("LPTRACE_RECORD"); rec && std::strtoull(rec, nullptr, 10) > 0)
    g_rings.set_capacity(std::strtoull(rec, nullptr, 10));
  g_clock.start();
  pthread_atfork(nullptr, nullptr, reset_in_child);
  if (int rc = lp_patcher_open(nullptr, &a->patcher); rc != 0) {
    a->setup_error = rc;
    a->setup_why = "lp_patcher_open";
    return;
  }
  if (funcs) {
    std::vector<std::string> texts;
    for (const char *s = funcs; *s;) {
      const char *e = std::strchr(s, '\n');
      std::string t = e ? std::string(s, size_t(e - s)) : std::string(s);
      s = e ? e + 1 : s + t.size();
      if (!t.empty()) texts.push_back(t);
    }
    const nlohmann::json r = probe_patterns(a, texts, a->exits);
    if (!r.value("ok", false)) {
      a->setup_error = LP_EINVAL;
      a->setup_why = r.value("error", "");
    }
  }
  start_server(a);
}

__attribute__((constructor)) void agent_start() { start(); }
__attribute__((destructor)) void agent_stop() { write_report(); }

} // namespace
} // namespace lptrace
