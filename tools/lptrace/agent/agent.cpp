// libpatch-trace.so: lptrace's agent, preloaded into the traced program by
// `lptrace run`. It probes the functions the patterns select as soon as it is
// loaded (a constructor: every call of the program's main runs probed), and
// the functions of every object the program dlopen's later (hooks.cpp), and
// writes a report when the process ends. Configuration, from lptrace:
//   LPTRACE_FUNCS  the patterns, one per line ([OBJECT:]FUNCTION globs)
//   LPTRACE_EXIT   "1": call probes with an exit handler (latency), else
//                  entry probes (counts only)
//   LPTRACE_RECORD N: keep the last N call events of every thread (ring.hpp)
//                  and write them with the report, PREFIX.PID.IMAGE.events
//   LPTRACE_OUT    report path prefix: PREFIX.PID.IMAGE.json, one per process
//                  image (fork children write their own; an exec'd program
//                  loads the agent again through LD_PRELOAD and writes its
//                  own; IMAGE tells two images of one pid apart)
// When a report is written: at exit (a destructor), at _exit and at a
// successful exec (hooks on libc's _exit / execve / execveat / fexecve: those
// end the image without destructors), and at SIGINT / SIGTERM / SIGHUP when
// the program leaves them at their default action (the agent reports, then
// the signal kills the process as it would have). Not at SIGKILL or a crash.
// Handlers are async-signal-safe: per-thread plain stores and the clock.
// Loaded by `lptrace attach` (dlopen, no environment) the agent only starts
// its control server, and lptrace drives it (ctl_protocol.hpp); in both modes
// the server lets `lptrace ctl PID ...` change probes while the program runs.
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agent.hpp"
#include "ctl_protocol.hpp"

namespace lptrace {

Agent *g_agent = nullptr;
Rings g_rings;
ThreadStats g_stats;
Clock g_clock;
pid_t g_pid = 0;
uint64_t g_image = 0;
int g_sync_signal = 0;

// The handlers: this thread's Stats of the function (plain stores), the
// shared one only when the thread's table has no room for it.
void note_call(Probed *p) {
  if (Stats *s = g_stats.mine(p->index)) s->own_call();
  else p->shared.shared_call();
}

void note_exit(Probed *p, uint64_t start) {
  const uint64_t dur = g_clock.now() - start;
  if (Stats *s = g_stats.mine(p->index)) s->own_exit(dur);
  else p->shared.shared_exit(dur);
  if (g_rings.on()) g_rings.add(p->index, start, dur);
}

namespace {

void count(lp_regs *, void *u) {
  auto *p = static_cast<Probed *>(u);
  note_call(p);
  if (g_rings.on()) g_rings.add(p->index, g_clock.now(), UINT64_MAX);
}

int on_entry(lp_regs *, uint64_t *call, void *u) {
  note_call(static_cast<Probed *>(u));
  if (call) call[0] = g_clock.now();
  return LP_CALL_RUN;
}

void on_exit_(lp_regs *, uint64_t *call, void *u) { note_exit(static_cast<Probed *>(u), call[0]); }

Summary summary_of(const Probed &p) {
  Summary sum;
  sum.add(p.shared);
  for (const ThreadTable *t : g_stats.all())
    if (p.index < t->cap) sum.add(t->slot[p.index]);
  return sum;
}

std::string program_name() {
  char buf[4096];
  const ssize_t r = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return r > 0 ? std::string(buf, size_t(r)) : std::string("?");
}

// Enabled or disabled (the caller commits). A hooked function's probe is the
// hook's: only the flag its handler reads changes.
int set_enabled(Probed &p, bool on) {
  if (!p.hook) {
    const int rc = on ? lp_probe_enable(p.probe) : lp_probe_disable(p.probe);
    if (rc != 0) return rc;
  }
  p.enabled.store(on, std::memory_order_relaxed);
  return 0;
}

// An object with a probe in it stays loaded: a dlclose that unmapped it
// would leave the probe pointing at text that is gone (or someone else's),
// and the detach would write into it. RTLD_NODELETE pins it.
void pin(Agent *a, const LoadedObject &o) {
  if (o.is_main || !a->pinned.insert(o.path).second) return;
  ++t_in_agent;
  (void)dlopen(o.path.c_str(), RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
  --t_in_agent;
}

std::string image_path(const Agent *a, const char *ext) {
  return a->out + "." + std::to_string(getpid()) + "." + std::to_string(g_image) + ext;
}

} // namespace

nlohmann::json report_json(Agent *a) {
  std::lock_guard lk(a->mu);
  nlohmann::json j;
  j["pid"] = getpid();
  j["image"] = g_image;
  j["program"] = program_name();
  bool exits = a->exits;
  for (const Probed &p : a->probed) exits = exits || (p.probe && p.exits);
  j["exits"] = exits; // latency columns: some probe has exits
  j["patterns"] = a->patterns;
  j["matched"] = a->matched;
  j["dlopen_rescans"] = a->loads_seen;
  auto &none = j["unmatched"] = nlohmann::json::array();
  for (size_t i = 0; i < a->patterns.size() && i < a->pattern_hits.size(); ++i)
    if (a->pattern_hits[i] == 0) none.push_back(a->patterns[i]);
  if (a->setup_error) j["error"] = std::string(lp_strerror(a->setup_error)) + (a->setup_why.empty() ? "" : ": " + a->setup_why);
  if (!a->hook_errors.empty()) j["hook_errors"] = a->hook_errors;
  auto &fs = j["functions"] = nlohmann::json::array();
  const double k = g_clock.ns_per_tick();
  for (const Probed &p : a->probed) {
    if (!p.probe) continue; // removed by a detach
    const Summary sum = summary_of(p);
    nlohmann::json f{{"object", p.fn.object},
                     {"name", p.fn.name},
                     {"addr", p.fn.addr},
                     {"kind", lp_probe_is_jump(p.probe) == 1 ? "jump" : "trap"},
                     {"enabled", p.enabled.load(std::memory_order_relaxed)},
                     {"calls", sum.calls}};
    // A trap where a jump was tried: the reason (lp_probe_fallback), e.g.
    // LP_ERANGE when no trampoline could be placed within the jump's reach.
    if (const int why = lp_probe_fallback(p.probe); why < 0) f["trap_reason"] = lp_strerror(why);
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
      // The end converts like the start (one k, one monotonic map), so a call
      // that ended inside its caller still does after the conversion.
      const uint64_t ts = g_clock.to_mono_ns(e.ts_ns, k);
      const int64_t dur = e.dur_ns == UINT64_MAX ? -1 : int64_t(g_clock.to_mono_ns(e.ts_ns + e.dur_ns, k) - ts);
      ev.push_back({e.fn, ts, dur});
    }
    threads.push_back({{"tid", r->tid}, {"dropped", first}, {"events", std::move(ev)}});
  }
  return j;
}

// Written to a temporary name and renamed: a report read while a later one
// of the same image (exec that failed, then exit) is being written is whole.
void write_report() {
  Agent *a = g_agent;
  if (!a || a->out.empty() || getpid() != g_pid) return; // a vfork child: the parent's state
  std::lock_guard lk(a->mu);
  auto put = [](const std::string &path, const std::string &text) {
    const std::string tmp = path + ".tmp";
    FILE *fp = std::fopen(tmp.c_str(), "we");
    if (!fp) return;
    const bool ok = std::fwrite(text.data(), 1, text.size(), fp) == text.size();
    if (std::fclose(fp) == 0 && ok) std::rename(tmp.c_str(), path.c_str());
    else std::remove(tmp.c_str());
  };
  if (g_rings.on()) put(image_path(a, ".events"), events_json(a).dump());
  put(image_path(a, ".json"), report_json(a).dump());
}

void apply_enables(Agent *a, const std::vector<LoadedObject> &objs, size_t first, Tally *t) {
  std::set<uintptr_t> taken;
  for (const LoadedObject &o : objs) {
    if (o.is_main) a->main_object = o.name;
    bool probed_here = false;
    for (const Function &f : functions_of(o)) {
      const Enable *hit = nullptr;
      for (size_t i = first; i < a->enables.size(); ++i)
        if (matches(a->enables[i].pat, f, o.is_main)) {
          ++a->pattern_hits[a->enables[i].index];
          if (!hit) hit = &a->enables[i];
        }
      if (!hit || !taken.insert(f.addr).second) continue;
      ++t->matched;
      auto it = a->by_addr.find(f.addr);
      if (it != a->by_addr.end() && it->second->probe) { // probed before: enabled again, not probed twice
        Probed *known = it->second;
        if (!known->enabled.load(std::memory_order_relaxed)) (void)set_enabled(*known, true);
        ++t->probed;
        continue;
      }
      Probed &pr = a->probed.emplace_back();
      pr.index = uint32_t(a->probed.size() - 1);
      pr.fn = f;
      pr.exits = hit->exits;
      if (Hook *h = hook_at(f.addr)) {
        adopt(h, &pr); // counted by the hook's probe (one probe per address)
      } else {
        void *addr = reinterpret_cast<void *>(f.addr);
        int rc = pr.exits ? lp_probe_call(a->patcher, addr, on_entry, on_exit_, &pr, &pr.probe)
                          : lp_probe_at(a->patcher, addr, count, &pr, &pr.probe);
        if (rc == 0) rc = set_enabled(pr, true);
        if (rc != 0) {
          // Kept in the deque (stable addresses), without a probe: not reported.
          if (pr.probe) lp_probe_remove(pr.probe);
          pr.probe = nullptr;
          a->failed.push_back({f, rc});
          ++t->failed;
          continue;
        }
      }
      a->by_addr[f.addr] = &pr;
      ++t->probed;
      probed_here = true;
    }
    if (probed_here) pin(a, o);
  }
  a->matched += t->matched;
  g_stats.set_capacity(uint32_t(a->probed.size() + 64)); // threads that start now get room for all, and more
}

// Probes (and enables) what `texts` select in every loaded object, one batch.
nlohmann::json probe_patterns(Agent *a, const std::vector<std::string> &texts, bool exits) {
  std::lock_guard lk(a->mu);
  std::vector<Pattern> pats;
  for (const std::string &t : texts) {
    Pattern p;
    std::string why;
    if (!parse_pattern(t, &p, &why)) return {{"ok", false}, {"error", "bad pattern: " + why}};
    pats.push_back(p);
  }
  const size_t first = a->enables.size();
  for (size_t i = 0; i < texts.size(); ++i) {
    a->enables.push_back({pats[i], a->patterns.size(), exits});
    a->patterns.push_back(texts[i]);
  }
  a->pattern_hits.resize(a->patterns.size(), 0);
  const std::vector<LoadedObject> objs = loaded_objects();
  for (const LoadedObject &o : objs) a->known_objects.insert({o.path, o.bias});
  Tally t;
  apply_enables(a, objs, first, &t);
  if (int rc = lp_commit(a->patcher); rc != 0) return {{"ok", false}, {"error", std::string("lp_commit: ") + lp_strerror(rc)}};
  return {{"ok", true}, {"matched", t.matched}, {"probed", t.probed}, {"failed", t.failed}};
}

nlohmann::json disable_pattern(Agent *a, const std::string &text) {
  std::lock_guard lk(a->mu);
  Pattern p;
  std::string why;
  if (!parse_pattern(text, &p, &why)) return {{"ok", false}, {"error", "bad pattern: " + why}};
  const std::string &main_obj = a->main_object; // known since the first enable: no second ELF read
  size_t n = 0;
  for (Probed &pr : a->probed)
    if (pr.probe && pr.enabled.load(std::memory_order_relaxed) && matches(p, pr.fn, pr.fn.object == main_obj) &&
        set_enabled(pr, false) == 0)
      ++n;
  if (int rc = lp_commit(a->patcher); rc != 0) return {{"ok", false}, {"error", std::string("lp_commit: ") + lp_strerror(rc)}};
  return {{"ok", true}, {"disabled", n}};
}

nlohmann::json detach(Agent *a) {
  std::lock_guard lk(a->mu);
  size_t n = 0;
  for (Probed &pr : a->probed)
    if (pr.probe && (pr.hook || lp_probe_remove(pr.probe) == 0)) ++n;
  remove_hooks(a);
  if (int rc = lp_commit(a->patcher); rc != 0) return {{"ok", false}, {"error", std::string("lp_commit: ") + lp_strerror(rc)}};
  // Every site holds its original bytes again; the report of what was seen
  // goes back with the reply (and the events, --record, read now that no
  // handler writes them). The patcher stays open (its trampolines stay
  // mapped for a thread that might still be in one): nothing runs any more.
  (void)lp_quiesce(a->patcher, 2000);
  nlohmann::json r{{"ok", true}, {"removed", n}, {"report", report_json(a)}};
  if (g_rings.on()) r["events"] = events_json(a);
  for (Probed &pr : a->probed) pr.probe = nullptr;
  a->detached = true;
  return r;
}

namespace {

// A fork child reports only what it does itself, under its own pid, and has
// its own control server (the parent's thread did not survive the fork).
void reset_in_child() {
  if (!g_agent) return;
  g_pid = getpid();
  g_rings.forget_all();
  g_stats.forget_all();
  for (Probed &p : g_agent->probed) p.shared.reset();
  for (int *fd : {&g_agent->listen_fd, &g_agent->wake_fd, &g_agent->wake_rd}) // the parent's server's
    if (*fd >= 0) {
      close(*fd);
      *fd = -1;
    }
  // qemu-user 7.2 aborts when the fork child of a multi-threaded guest creates
  // a thread (reproduced without lptrace): under qemu (lptrace run passes
  // LPTRACE_QEMU) a fork child has no control server, so no ctl socket and no
  // report at SIGINT/SIGTERM/SIGHUP; its reports at exit, _exit and exec stay.
  if (std::getenv("LPTRACE_QEMU")) return;
  if (!g_agent->detached && start_server(g_agent) && !g_agent->out.empty()) install_signal_reports(g_agent->wake_fd);
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
  g_pid = getpid();
  g_image = mono_ns();
  if (out) a->out = out;
  const char *ex = std::getenv("LPTRACE_EXIT");
  a->exits = ex && std::strcmp(ex, "1") == 0;
  if (const char *rec = std::getenv("LPTRACE_RECORD"); rec && std::strtoull(rec, nullptr, 10) > 0)
    g_rings.set_capacity(std::strtoull(rec, nullptr, 10));
  g_clock.start();
  pthread_atfork(nullptr, nullptr, reset_in_child);
  lp_options opt;
  lp_options_init(&opt);
  opt.signal = g_sync_signal = SIGRTMIN + 5; // named: the server thread must not block it
  if (int rc = lp_patcher_open(&opt, &a->patcher); rc != 0) {
    a->setup_error = rc;
    a->setup_why = "lp_patcher_open";
    return;
  }
  install_hooks(a, !a->out.empty());
  if (funcs) {
    std::vector<std::string> texts;
    for (const char *s = funcs; *s;) {
      const char *e = std::strchr(s, '\n');
      std::string t = e ? std::string(s, size_t(e - s)) : std::string(s);
      s = e ? e + 1 : s + t.size();
      if (!t.empty()) texts.push_back(t);
    }
    const nlohmann::json r = probe_patterns(a, texts, a->exits); // the hooks in the same batch
    if (!r.value("ok", false)) {
      a->setup_error = LP_EINVAL;
      a->setup_why = r.value("error", "");
    }
  } else if (int rc = lp_commit(a->patcher); rc != 0) {
    a->hook_errors.push_back(std::string("lp_commit: ") + lp_strerror(rc));
  }
  if (start_server(a) && !a->out.empty()) install_signal_reports(a->wake_fd);
}

__attribute__((constructor)) void agent_start() { start(); }
__attribute__((destructor)) void agent_stop() {
  write_report();
  stop_server_files();
}

} // namespace
} // namespace lptrace
