// The agent's own probes, on the libc functions that extend or end a program
// image, placed with the same libpatch patcher (and in the same batch) as the
// user's probes:
//   dlopen, dlmopen        a call probe; at its exit (the loader's lock is
//                          released, the new objects' constructors have run)
//                          the patterns are matched against the objects that
//                          are new and their functions probed -- one batch --
//                          before the caller gets the handle. Calls made by
//                          the new objects' constructors are not seen.
//   _exit, execve,         an entry probe; the image ends without running
//   execveat, fexecve      destructors, so the report is written now (an exec
//                          that fails goes on, and the image's report is
//                          written again later, whole: same file).
// glibc's own callers (exit paths, execvp, system, posix_spawn) reach these
// function bodies too: the probe is in the function, not in a PLT.
// A user pattern that selects one of these functions is counted by the
// hook's probe (one probe per address): adopt().
//
// And the fatal signals a user sends to stop a traced run -- SIGINT, SIGTERM,
// SIGHUP -- when the program leaves them at their default action: the handler
// only wakes the control server (a pipe write is async-signal-safe; writing
// JSON in a handler could deadlock on a lock the interrupted code holds),
// which writes the report and then lets the signal kill the process.
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>

#include "agent.hpp"

namespace lptrace {

__thread int t_in_agent __attribute__((tls_model("initial-exec"))) = 0;

enum class HookKind { load, end_exit, end_exec };

struct Hook {
  const char *symbol;
  HookKind kind;
  uintptr_t addr = 0;
  lp_probe *probe = nullptr;
  std::atomic<Probed *> user{nullptr}; // a user probe of this function (adopt)
};

namespace {

Hook g_hooks[] = {{"dlopen", HookKind::load},       {"dlmopen", HookKind::load},   {"_exit", HookKind::end_exit},
                  {"execve", HookKind::end_exec},   {"execveat", HookKind::end_exec}, {"fexecve", HookKind::end_exec}};

// The user's probe of the hooked function, when enabled; not for the agent's
// own calls (pin()'s dlopen).
Probed *user_of(Hook *h) {
  if (t_in_agent) return nullptr;
  Probed *p = h->user.load(std::memory_order_acquire);
  return p && p->enabled.load(std::memory_order_relaxed) ? p : nullptr;
}

// The objects loaded since the last match: the patterns applied to them.
void rescan(Agent *a) {
  if (!a) return;
  std::lock_guard lk(a->mu);
  if (a->detached || a->enables.empty()) return;
  std::vector<LoadedObject> fresh;
  for (LoadedObject &o : loaded_objects())
    if (a->known_objects.insert({o.path, o.bias}).second) fresh.push_back(std::move(o));
  if (fresh.empty()) return;
  ++a->loads_seen;
  Tally t;
  apply_enables(a, fresh, 0, &t);
  if (int rc = lp_commit(a->patcher); rc != 0)
    a->hook_errors.push_back(std::string("lp_commit after dlopen: ") + lp_strerror(rc));
}

// call[1] = 1: the user's probe of dlopen itself timed this call at entry.
int load_entry(lp_regs *, uint64_t *call, void *u) {
  auto *h = static_cast<Hook *>(u);
  if (call) call[1] = 0;
  if (Probed *p = user_of(h)) {
    note_call(p);
    if (call && p->exits) {
      call[0] = g_clock.now();
      call[1] = 1;
    } else if (g_rings.on()) {
      g_rings.add(p->index, g_clock.now(), UINT64_MAX);
    }
  }
  return LP_CALL_RUN;
}

void load_exit(lp_regs *regs, uint64_t *call, void *u) {
  auto *h = static_cast<Hook *>(u);
  if (call && call[1])
    if (Probed *p = h->user.load(std::memory_order_acquire)) note_exit(p, call[0]);
  if (lp_regs_ret(regs) == 0 || t_in_agent) return; // failed, or the agent's own pin
  rescan(g_agent);
}

bool saw_calls(Agent *a) {
  std::lock_guard lk(a->mu);
  for (const ThreadTable *t : g_stats.all())
    for (uint32_t i = 0; i < t->cap; ++i)
      if (t->slot[i].calls.load(std::memory_order_relaxed)) return true;
  for (const Probed &p : a->probed)
    if (p.shared.calls.load(std::memory_order_relaxed)) return true;
  return false;
}

// _exit / exec*: this image ends here. A vfork child (posix_spawn) shares the
// parent's memory: getpid() differs from g_pid and nothing is written. An
// image about to exec that counted nothing leaves no report (a shell's child
// between its fork and its exec).
void end_entry(lp_regs *, void *u) {
  auto *h = static_cast<Hook *>(u);
  if (Probed *p = user_of(h)) {
    note_call(p);
    if (g_rings.on()) g_rings.add(p->index, g_clock.now(), UINT64_MAX);
  }
  Agent *a = g_agent;
  if (!a || a->out.empty() || getpid() != g_pid) return;
  if (h->kind == HookKind::end_exec && !saw_calls(a)) return;
  write_report();
  if (h->kind == HookKind::end_exit) stop_server_files(); // (an exec that fails keeps serving)
}

std::atomic<int> g_wake{-1};
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
bool g_signals_done = false;
bool g_signal_mine[3] = {};

void on_signal(int sig) {
  const int saved = errno;
  const int fd = g_wake.load(std::memory_order_relaxed);
  const unsigned char b = static_cast<unsigned char>(sig);
  if (fd < 0 || write(fd, &b, 1) != 1) { // no server to report: die as without the agent
    signal(sig, SIG_DFL);
    raise(sig); // pending until this handler returns
  }
  errno = saved;
}

} // namespace

Hook *hook_at(uintptr_t addr) {
  for (Hook &h : g_hooks)
    if (h.probe && h.addr == addr) return &h;
  return nullptr;
}

void adopt(Hook *h, Probed *p) {
  p->hook = h;
  p->probe = h->probe;
  if (h->kind != HookKind::load) p->exits = false; // an entry probe: the call ends the image
  p->enabled.store(true, std::memory_order_relaxed);
  h->user.store(p, std::memory_order_release);
}

void install_hooks(Agent *a, bool reports) {
  for (Hook &h : g_hooks) {
    if (h.kind != HookKind::load && !reports) continue; // attached: reports go over the socket
    void *addr = dlsym(RTLD_DEFAULT, h.symbol);
    if (!addr) {
      a->hook_errors.push_back(std::string(h.symbol) + ": not found");
      continue;
    }
    if (hook_at(uintptr_t(addr))) continue; // an alias of one hooked already
    int rc = h.kind == HookKind::load ? lp_probe_call(a->patcher, addr, load_entry, load_exit, &h, &h.probe)
                                      : lp_probe_at(a->patcher, addr, end_entry, &h, &h.probe);
    if (rc == 0) rc = lp_probe_enable(h.probe);
    if (rc != 0) {
      if (h.probe) lp_probe_remove(h.probe);
      h.probe = nullptr;
      a->hook_errors.push_back(std::string(h.symbol) + ": " + lp_strerror(rc));
      continue;
    }
    h.addr = uintptr_t(addr);
  }
}

void remove_hooks(Agent *) {
  for (Hook &h : g_hooks) {
    if (h.probe) lp_probe_remove(h.probe);
    h.probe = nullptr;
    h.addr = 0;
  }
}

void install_signal_reports(int wake_fd) {
  g_wake.store(wake_fd, std::memory_order_relaxed);
  if (g_signals_done) return; // a fork child: the handlers are inherited, the pipe is new
  g_signals_done = true;
  for (size_t i = 0; i < std::size(kSignals); ++i) {
    struct sigaction old {};
    if (sigaction(kSignals[i], nullptr, &old) != 0 || (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
      continue; // the program's own handler, or ignored: left alone
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    g_signal_mine[i] = sigaction(kSignals[i], &sa, nullptr) == 0;
  }
}

void uninstall_signal_reports() {
  g_wake.store(-1, std::memory_order_relaxed);
  for (size_t i = 0; i < std::size(kSignals); ++i) {
    struct sigaction cur {};
    if (g_signal_mine[i] && sigaction(kSignals[i], nullptr, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
        cur.sa_handler == on_signal)
      signal(kSignals[i], SIG_DFL);
    g_signal_mine[i] = false;
  }
}

} // namespace lptrace
