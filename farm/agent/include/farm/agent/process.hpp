#pragma once
// Runs a child process in its own process group with Boost.Asio: streams
// stdout/stderr as it arrives, enforces a timeout (SIGTERM to the group,
// SIGKILL after a grace period), supports cancellation from another thread,
// and never leaves group members behind.
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace farm::agent {

// Thread-safe cancellation flag with a wake-up hook.
class Cancel {
 public:
  void cancel(const std::string& reason);
  bool cancelled() const;
  std::string reason() const;
  // Runs `fn` now if already cancelled, else on cancel(). Returns a handle for unsubscribe.
  int subscribe(std::function<void()> fn);
  void unsubscribe(int handle);

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  std::string reason_;
  std::map<int, std::function<void()>> subs_;
  int next_ = 0;
};

struct ProcSpec {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  // added to (or overriding) the agent's environment
  std::string cwd;
  std::chrono::milliseconds timeout{0};     // 0: none
  std::chrono::milliseconds kill_grace{2000};
  size_t keep_stdout_bytes = 1 << 20;       // kept for result parsing (the tail)
  size_t keep_stderr_bytes = 64 << 10;
};

struct ProcResult {
  bool started = false;
  std::string error;       // why it did not start
  int exit_code = -1;      // -1 when killed by a signal
  int term_signal = 0;
  bool timed_out = false;
  bool cancelled = false;
  std::string out;         // stdout tail
  std::string err;         // stderr tail
  double duration_s = 0;
  bool ok() const { return started && exit_code == 0; }
};

using OutputFn = std::function<void(std::string_view stream, std::string_view data)>;

// Blocks the calling thread until the child (and its group) is gone.
ProcResult run_process(const ProcSpec& spec, const OutputFn& on_output, Cancel* cancel);

// Shell-quotes one argument for /bin/sh ('...' with embedded quotes escaped).
std::string shell_quote(std::string_view s);
std::string shell_join(const std::vector<std::string>& argv);

}  // namespace farm::agent
