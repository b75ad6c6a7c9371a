#include "thread_round.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <mutex>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <vector>

#include "libpatch/patch.h"

namespace lp::linux_platform {
namespace {

constexpr size_t kMaxSlots = 1 << 14;

// constinit: usable from a constructor that runs before ours (none exist).
constinit int g_signo = 0;
constinit struct sigaction g_prev {};
constinit std::mutex g_mu;
constinit std::atomic<RoundVisitor> g_visit{nullptr};
constinit std::atomic<void *> g_arg{nullptr};
constinit std::atomic<uint32_t> g_round{0};
// Slot i acknowledges round r by storing r. Static storage: the handler can't allocate.
constinit std::atomic<uint32_t> g_ack[kMaxSlots] = {};
// The round the threads are held in (round_hold), 0 when none: a futex word.
constinit std::atomic<uint32_t> g_hold_round{0};

// The held side of round_hold: the acknowledgement is stored (so the holder
// knows this thread is here, past its visitor), then the thread sleeps on the
// futex until the holder clears the word. Reader-side argument: the holder
// writes the text only after seeing every acknowledgement (acquire), and a
// thread leaves this loop only after seeing the word cleared, which the
// holder stores (release) after its writes and their cache maintenance; the
// return from the handler that follows is the context synchronisation that
// makes this core fetch the new instructions (Arm ARM B2.2.5: no thread was
// executing the modified words while they changed).
void hold_until_released(uint32_t round) {
  while (g_hold_round.load(std::memory_order_acquire) == round) {
    struct timespec ts{1, 0}; // re-check now and then: a wake-up is never required for progress
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(&g_hold_round), FUTEX_WAIT_PRIVATE, round, &ts, nullptr, 0);
  }
}

void on_round_signal(int, siginfo_t *si, void *uc) {
  const int saved_errno = errno;
  // The value carries (round << 32 | slot): a signal left over from an earlier,
  // timed-out round must not acknowledge the current one for another thread.
  const uint64_t v = uint64_t(uintptr_t(si->si_value.sival_ptr));
  const size_t slot = size_t(v & 0xffffffffu);
  const uint32_t round = g_round.load(std::memory_order_acquire);
  if (si->si_code == SI_QUEUE && slot < kMaxSlots && round != 0 && uint32_t(v >> 32) == round) {
    if (RoundVisitor v = g_visit.load(std::memory_order_acquire)) v(g_arg.load(std::memory_order_acquire), uc);
    g_ack[slot].store(round, std::memory_order_release);
    if (g_hold_round.load(std::memory_order_acquire) == round) hold_until_released(round);
  }
  errno = saved_errno;
}

// ---- qemu-user (cross-built tests run under qemu-riscv64) ----
// qemu-user runs helper threads of its own (RCU) in the guest's thread group.
// They never run guest code and block every host signal, so they would never
// acknowledge a round: every round would time out. Under qemu-user only, a
// thread whose host mask blocks every asynchronous signal is skipped.
// Natively such a thread is NOT skipped (it could still run patched code): the
// round fails with LP_ESYNC as before.
// Detected by the host executable's name: /proc/self/comm when qemu-user was
// run directly, /proc/thread-self/exe (which qemu 7.2 does not redirect to the
// guest binary, unlike /proc/self/exe) when it was started through binfmt_misc.
bool under_qemu_user() {
  static const bool q = [] {
    char buf[256] = {};
    const int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      const ssize_t n = read(fd, buf, sizeof buf - 1);
      close(fd);
      if (n >= 5 && std::strncmp(buf, "qemu-", 5) == 0) return true;
    }
    const ssize_t n = readlink("/proc/thread-self/exe", buf, sizeof buf - 1);
    if (n <= 0) return false;
    buf[n] = 0;
    const char *base = std::strrchr(buf, '/');
    base = base ? base + 1 : buf;
    return std::strncmp(base, "qemu-", 5) == 0;
  }();
  return q;
}

bool emulator_helper_thread(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/status", int(tid));
  FILE *f = std::fopen(path, "re");
  if (!f) return false;
  char line[256];
  bool helper = false;
  while (std::fgets(line, sizeof line, f)) {
    unsigned long long blk = 0;
    if (std::sscanf(line, "SigBlk: %llx", &blk) == 1) {
      // Every asynchronous signal qemu could deliver a guest signal through:
      // HUP INT QUIT USR1 USR2 ALRM TERM and all host real-time signals.
      unsigned long long async = 0;
      for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM}) async |= 1ull << (sig - 1);
      for (int sig = 34; sig <= 64; ++sig) async |= 1ull << (sig - 1);
      helper = (blk & async) == async;
      break;
    }
  }
  std::fclose(f);
  return helper;
}

// The threads of this process, read with the getdents64 system call rather
// than libc's opendir/readdir: a round runs inside lp_commit, while probes are
// being switched on, and a tracer probing opendir (a natural thing to trace)
// would otherwise see libpatch's own calls among the program's.
// Threads list_threads skipped (qemu-user's helpers), for same_threads.
constexpr size_t kMaxSkipped = 64;
constinit pid_t g_skipped[kMaxSkipped] = {};
constinit size_t g_nskipped = 0;

struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

pid_t parse_tid(const char *s) {
  pid_t v = 0;
  for (; *s >= '0' && *s <= '9'; ++s) v = pid_t(v * 10 + (*s - '0'));
  return v;
}

std::vector<pid_t> list_threads() {
  std::vector<pid_t> tids;
  g_nskipped = 0;
  const int fd = int(syscall(SYS_openat, AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd < 0) return tids;
  const bool qemu = under_qemu_user();
  alignas(8) char buf[4096];
  for (;;) {
    const long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      const auto *e = reinterpret_cast<const linux_dirent64 *>(buf + off);
      off += e->d_reclen;
      if (e->d_name[0] == '.') continue;
      const pid_t tid = pid_t(std::atol(e->d_name));
      if (qemu && emulator_helper_thread(tid)) {
        if (g_nskipped < kMaxSkipped) g_skipped[g_nskipped++] = tid;
        continue;
      }
      tids.push_back(tid);
    }
  }
  syscall(SYS_close, fd);
  return tids;
}

// Whether /proc/self/task lists exactly the threads of `sorted` (plus those
// list_threads skipped). Allocation-free: called while threads are held.
bool same_threads(const std::vector<pid_t> &sorted) {
  const int fd = int(syscall(SYS_openat, AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd < 0) return false;
  alignas(8) char buf[4096];
  bool same = true;
  for (;;) {
    const long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n; ) {
      const auto *e = reinterpret_cast<const linux_dirent64 *>(buf + off);
      off += e->d_reclen;
      if (e->d_name[0] == '.') continue;
      const pid_t tid = parse_tid(e->d_name);
      bool known = std::binary_search(sorted.begin(), sorted.end(), tid);
      for (size_t i = 0; !known && i < g_nskipped; ++i) known = g_skipped[i] == tid;
      if (!known) same = false;
    }
  }
  syscall(SYS_close, fd);
  return same;
}

int send(pid_t pid, pid_t tid, int sig, uint32_t round, size_t slot) {
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  info.si_signo = sig;
  info.si_code = SI_QUEUE;
  info.si_pid = pid;
  info.si_uid = getuid();
  info.si_value.sival_ptr = reinterpret_cast<void *>(uintptr_t(uint64_t(round) << 32 | slot));
  return int(syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, &info));
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

} // namespace

int round_init(int signo) {
  std::lock_guard lk(g_mu);
  if (g_signo == signo) return 0;
  struct sigaction sa {};
  sa.sa_sigaction = on_round_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(signo, &sa, &g_prev) != 0) return LP_ESIGNAL;
  g_signo = signo;
  return 0;
}

void round_fini() {
  std::lock_guard lk(g_mu);
  if (g_signo) sigaction(g_signo, &g_prev, nullptr);
  g_signo = 0;
}

namespace {

// One round over the threads listed now (g_mu held): 0 once each acknowledged
// `round` (or exited), LP_ESYNC at the deadline. *tids_out: the threads listed.
int run_locked(RoundVisitor visit, void *arg, unsigned timeout_ms, uint32_t hold, size_t *threads_out,
               std::vector<pid_t> *tids_out) {
  if (!g_signo) return LP_ESYNC;
  const pid_t pid = getpid();
  const pid_t self = pid_t(syscall(SYS_gettid));
  std::vector<pid_t> tids = list_threads();
  if (tids.size() > kMaxSlots) return LP_ESYNC;

  g_visit.store(visit, std::memory_order_release);
  g_arg.store(arg, std::memory_order_release);
  uint32_t round = g_round.load() + 1;
  if (round == 0) round = 1;
  g_round.store(round, std::memory_order_release);
  if (hold) g_hold_round.store(round, std::memory_order_release);

  // pending[i]: still waiting for thread i.
  std::vector<char> pending(tids.size(), 0);
  size_t waiting = 0;
  for (size_t i = 0; i < tids.size(); ++i) {
    if (tids[i] == self) continue;
    int rc;
    while ((rc = send(pid, tids[i], g_signo, round, i)) != 0 && errno == EAGAIN) sched_yield();
    if (rc == 0) {
      pending[i] = 1;
      ++waiting;
    } // ESRCH: the thread exited, nothing to sync
  }
  if (threads_out) *threads_out = waiting;

  const uint64_t deadline = now_ns() + uint64_t(timeout_ms) * 1000000ull;
  unsigned spins = 0;
  while (waiting) {
    for (size_t i = 0; i < tids.size(); ++i) {
      if (!pending[i]) continue;
      if (g_ack[i].load(std::memory_order_acquire) == round) {
        pending[i] = 0;
        --waiting;
      }
    }
    if (!waiting) break;
    if (++spins < 64) {
      sched_yield();
      continue;
    }
    // Slow path: a thread may have exited with our signal still pending.
    for (size_t i = 0; i < tids.size(); ++i) {
      if (pending[i] && syscall(SYS_tgkill, pid, tids[i], 0) != 0 && errno == ESRCH) {
        pending[i] = 0;
        --waiting;
      }
    }
    if (now_ns() > deadline) {
      g_visit.store(nullptr);
      return LP_ESYNC;
    }
    struct timespec ts{0, 50000};
    nanosleep(&ts, nullptr);
  }
  g_visit.store(nullptr, std::memory_order_release);
  if (tids_out) *tids_out = std::move(tids);
  return 0;
}

void release_locked() {
  g_hold_round.store(0, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(&g_hold_round), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}

} // namespace

int round_run(RoundVisitor visit, void *arg, unsigned timeout_ms, size_t *threads_out) {
  std::lock_guard lk(g_mu);
  return run_locked(visit, arg, timeout_ms, 0, threads_out, nullptr);
}

int round_hold(RoundVisitor visit, void *arg, unsigned timeout_ms, size_t *threads_out) {
  g_mu.lock(); // unlocked by round_release(), or here on failure
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::vector<pid_t> tids;
    int rc = run_locked(visit, arg, timeout_ms, 1, threads_out, &tids);
    if (rc != 0) {
      release_locked();
      g_mu.unlock();
      return rc;
    }
    // A thread created after the listing (by one that was not held yet) is
    // running free: release everyone and try again. The check must not
    // allocate (a held thread may hold malloc's lock): same_threads reads
    // the directory into a stack buffer and searches the sorted list.
    std::sort(tids.begin(), tids.end());
    if (same_threads(tids)) return 0;
    release_locked();
  }
  g_mu.unlock();
  return LP_ESYNC;
}

void round_release() {
  release_locked();
  g_mu.unlock();
}

} // namespace lp::linux_platform
