#include "trap_signal.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <sys/syscall.h>
#include <unistd.h>

#include "libpatch/patch.h"

namespace lp::linux_platform {
namespace {

// Every namespace-scope object is constinit: libpatch may be used from a
// constructor that runs before any dynamic initialiser of ours would.
constinit std::mutex g_mu;
constinit int g_signo = 0;
constinit std::atomic<TrapDispatch> g_dispatch{nullptr};
// The action the program had (or installed after us); read by the handler.
// Updated only while our handler is not the one installed or with the signal
// blocked in the updating thread... a torn read would need a trap exactly during
// lp_commit's re-assert, where the previous action is being replaced anyway.
constinit struct sigaction g_prev {};
constinit std::atomic<unsigned long> g_chained{0};

void on_trap(int signo, siginfo_t *si, void *uc);

void chain(int signo, siginfo_t *si, void *uc) {
  g_chained.fetch_add(1, std::memory_order_relaxed);
  const struct sigaction &p = g_prev;
  if (p.sa_flags & SA_SIGINFO) {
    if (p.sa_sigaction) {
      p.sa_sigaction(signo, si, uc);
      return;
    }
  } else if (p.sa_handler == SIG_IGN) {
    // An ignored signal sent by a process is ignored; one the CPU raised (a real
    // trap instruction) cannot be: the kernel forces the default action.
    if (si->si_code <= 0) return;
  } else if (p.sa_handler != SIG_DFL) {
    p.sa_handler(signo);
    return;
  }
  // Default action: restore it and deliver the signal again. For a CPU trap,
  // returning re-executes the faulting instruction (SIGILL) or the signal
  // pending from the re-raise fires at once (SIGTRAP): the process dies with
  // the same signal it would have died of without libpatch.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(signo, &dfl, nullptr);
  syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), signo);
}

void on_trap(int signo, siginfo_t *si, void *uc) {
  const int saved = errno;
  TrapDispatch d = g_dispatch.load(std::memory_order_acquire);
  if (!d || !d(signo, si, uc)) chain(signo, si, uc);
  errno = saved;
}

bool ours(const struct sigaction &sa) {
  return (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == on_trap;
}

} // namespace

int trap_signal_install(int signo, TrapDispatch dispatch) {
  std::lock_guard lk(g_mu);
  g_dispatch.store(dispatch, std::memory_order_release);
  if (g_signo == signo) return 0;
  struct sigaction sa {}, prev{};
  sa.sa_sigaction = on_trap;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(signo, nullptr, &prev) != 0) return LP_ESIGNAL;
  if (!ours(prev)) g_prev = prev;
  if (sigaction(signo, &sa, nullptr) != 0) return LP_ESIGNAL;
  g_signo = signo;
  return 0;
}

void trap_signal_uninstall() {
  std::lock_guard lk(g_mu);
  if (!g_signo) return;
  struct sigaction cur {};
  sigaction(g_signo, nullptr, &cur);
  if (ours(cur)) sigaction(g_signo, &g_prev, nullptr);
  g_dispatch.store(nullptr, std::memory_order_release);
  g_signo = 0;
}

int trap_signal_reassert() {
  std::lock_guard lk(g_mu);
  if (!g_signo) return LP_ESIGNAL;
  struct sigaction cur {};
  if (sigaction(g_signo, nullptr, &cur) != 0) return LP_ESIGNAL;
  if (ours(cur)) return 0;
  g_prev = cur;
  struct sigaction sa {};
  sa.sa_sigaction = on_trap;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  return sigaction(g_signo, &sa, nullptr) == 0 ? 0 : LP_ESIGNAL;
}

unsigned long trap_signal_chained_count() { return g_chained.load(); }

} // namespace lp::linux_platform
