// The agent's state, shared by its parts: agent.cpp (start, probing, the
// report), hooks.cpp (its own probes on libc: dlopen, _exit, exec; and the
// fatal signals), server.cpp (the control socket). Internal to
// libpatch-trace.so.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "clock.hpp"
#include "functions.hpp"
#include "latency.hpp"
#include "libpatch/patch.h"
#include "ring.hpp"
#include "thread_stats.hpp"

namespace lptrace {

struct Hook;

struct Probed {
  uint32_t index = 0; // in the event rings and the thread tables
  Function fn;
  lp_probe *probe = nullptr;        // null: not probed (failed) or removed (detach)
  std::atomic<bool> enabled{false}; // read by hook handlers (a hooked function's count)
  bool exits = false;
  Hook *hook = nullptr; // the function is one the agent hooks: its probe counts this too
  Stats shared;         // threads without room in their own table (thread_stats.hpp)
};

struct Failed {
  Function fn;
  int error;
};

// One `-f` / `ctl enable` pattern: applied to the objects loaded then, and to
// every object dlopen'ed later (hooks.cpp).
struct Enable {
  Pattern pat;
  size_t index = 0; // in Agent::patterns
  bool exits = false;
};

struct Agent {
  std::recursive_mutex mu; // the control thread, dlopen hooks and the reports
  lp_patcher *patcher = nullptr;
  bool detached = false;
  int listen_fd = -1;
  int wake_fd = -1, wake_rd = -1; // the server's wake-up pipe (a fatal signal arrived)
  bool exits = false;
  std::string out; // report path prefix ("" when attached: reports go over the socket)
  std::deque<Probed> probed;             // stable addresses: handlers hold them
  std::map<uintptr_t, Probed *> by_addr; // the probed ones, by function address
  std::vector<Failed> failed;
  std::string main_object; // the executable's name among the objects ("main:" patterns)
  std::vector<std::string> patterns;
  std::vector<size_t> pattern_hits; // functions each pattern matched
  std::vector<Enable> enables;
  std::set<std::pair<std::string, uintptr_t>> known_objects; // (path, bias) already matched
  std::set<std::string> pinned;                              // objects kept loaded (probes in them)
  size_t matched = 0;
  uint64_t loads_seen = 0; // dlopen calls that loaded something new
  int setup_error = 0;
  std::string setup_why;
  std::vector<std::string> hook_errors; // hooks that could not be placed, with the reason
};

extern Agent *g_agent;
extern Rings g_rings;       // --record
extern ThreadStats g_stats; // per-thread counters
extern Clock g_clock;
extern pid_t g_pid;      // this process (set at the start and in fork children; a vfork child differs)
extern int g_sync_signal; // libpatch's signal round (an instruction-site commit visits every thread)
extern uint64_t g_image; // CLOCK_MONOTONIC ns at the start of this program image: names its reports

// agent.cpp
nlohmann::json probe_patterns(Agent *a, const std::vector<std::string> &texts, bool exits);
nlohmann::json disable_pattern(Agent *a, const std::string &text);
nlohmann::json detach(Agent *a);
nlohmann::json report_json(Agent *a);
nlohmann::json events_json(Agent *a);
void write_report(); // this image's report (and events) files, rewritten whole each time
// The probes of `objs` that the enables [first, end) select (one batch with the
// caller's lp_commit); each object with a probe is pinned (never unloaded).
struct Tally {
  size_t matched = 0, probed = 0, failed = 0;
};
void apply_enables(Agent *a, const std::vector<LoadedObject> &objs, size_t first, Tally *t);
// Accounting of one call of `p` (handlers; also the hooks' for a hooked function).
void note_call(Probed *p);
void note_exit(Probed *p, uint64_t start_ticks);

// hooks.cpp
void install_hooks(Agent *a, bool reports); // + commit by the caller
Hook *hook_at(uintptr_t addr);
void adopt(Hook *h, Probed *p); // a user probe of a hooked function: counted by the hook
void remove_hooks(Agent *a);    // detach (same batch)
// SIGINT / SIGTERM / SIGHUP left at their default: the handler writes the
// signal number to wake_fd (the server then reports and lets it kill).
void install_signal_reports(int wake_fd);
void uninstall_signal_reports(); // the server ends (detach): SIG_DFL where ours is installed
// The agent itself is calling dlopen (a pin): its hook does not rescan.
extern __thread int t_in_agent __attribute__((tls_model("initial-exec")));

// server.cpp
bool start_server(Agent *a); // the control socket, the wake-up pipe and the thread; false: none
void stop_server_files();    // the socket file of this process, at its end
void report_then_die(int sig); // server thread: a fatal signal arrived (install_signal_reports)

} // namespace lptrace
