#include "inject.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace lptrace {
namespace {

std::string read_first_line(const std::string &path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

// The start of `file`'s mapping at offset 0 in `pid`, or 0.
uintptr_t mapping_base(pid_t pid, const std::string &file) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string range, perms, offset, dev, inode, path;
    ls >> range >> perms >> offset >> dev >> inode;
    std::getline(ls >> std::ws, path);
    if (path == file && std::strtoull(offset.c_str(), nullptr, 16) == 0)
      return uintptr_t(std::strtoull(range.c_str(), nullptr, 16));
  }
  return 0;
}

std::string ptrace_refusal(pid_t pid, int err) {
  const std::string scope = read_first_line("/proc/sys/kernel/yama/ptrace_scope");
  std::string s = "not permitted to ptrace process " + std::to_string(pid) + " (" + std::strerror(err) + ")";
  if (!scope.empty()) s += "; /proc/sys/kernel/yama/ptrace_scope is " + scope;
  if (scope == "1") s += " (only a parent may ptrace: run as root, give lptrace CAP_SYS_PTRACE, or set it to 0)";
  else if (scope == "2") s += " (only CAP_SYS_PTRACE may ptrace: run as root)";
  else s += " (run lptrace as the process's user, or as root)";
  return s;
}

bool wait_stop(pid_t pid, int *sig, std::string *why) {
  for (;;) {
    int st = 0;
    if (waitpid(pid, &st, __WALL) < 0) {
      if (errno == EINTR) continue;
      *why = std::string("waitpid: ") + std::strerror(errno);
      return false;
    }
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      *why = "the process ended while lptrace was loading its agent";
      return false;
    }
    if (WIFSTOPPED(st)) {
      *sig = WSTOPSIG(st);
      return true;
    }
  }
}

bool peek(pid_t pid, uintptr_t addr, void *data, size_t len) {
  const int fd = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = pread(fd, data, len, off_t(addr)) == ssize_t(len);
  close(fd);
  return ok;
}

bool poke(pid_t pid, uintptr_t addr, const void *data, size_t len) {
  const int fd = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = pwrite(fd, data, len, off_t(addr)) == ssize_t(len);
  close(fd);
  return ok;
}

} // namespace

int inject_agent(pid_t pid, const std::string &agent, std::string *why) {
#if !defined(__x86_64__)
  (void)pid;
  (void)agent;
  *why = "lptrace attach loads its agent with ptrace on x86-64 only in this version";
  return 1;
#else
  if (kill(pid, 0) != 0 && errno == ESRCH) {
    *why = "no process " + std::to_string(pid);
    return 1;
  }
  if (read_first_line("/proc/sys/kernel/yama/ptrace_scope") == "3") {
    *why = "ptrace is disabled on this machine (/proc/sys/kernel/yama/ptrace_scope is 3)";
    return 1;
  }
  // Where the target's dlopen is: ours, moved to its libc.
  void *self_dlopen = dlsym(RTLD_DEFAULT, "dlopen");
  Dl_info di{};
  if (!self_dlopen || !dladdr(self_dlopen, &di) || !di.dli_fname) {
    *why = "cannot find dlopen in lptrace's own libc";
    return 1;
  }
  char real[PATH_MAX];
  const std::string libc = realpath(di.dli_fname, real) ? real : di.dli_fname;
  // A process attached right after its start (`prog & lptrace attach $!`)
  // may still be exec'ing or in the dynamic loader: libc not mapped yet, or
  // mapped but not initialised -- a dlopen made to run then crashes it (seen:
  // glibc's allocate_stack assertion, its default thread attributes not set
  // yet). Its `__environ` is set by libc's initialisation, after the loader's
  // __libc_early_init: wait (up to 2 s) until the target's is non-null. A
  // program that cleared its environment reads null for ever: after 2 s it
  // is long past its start. Without permission to read its memory there is
  // nothing to wait for: PTRACE_ATTACH below says why.
  {
    void *self_env = dlsym(RTLD_DEFAULT, "__environ");
    const uintptr_t self_base0 = reinterpret_cast<uintptr_t>(di.dli_fbase);
    Dl_info ei{};
    const bool env_in_libc = self_env && dladdr(self_env, &ei) && ei.dli_fbase == di.dli_fbase;
    auto initialised = [&] {
      const uintptr_t base = mapping_base(pid, libc);
      if (base == 0) return false;
      if (!env_in_libc) return true;
      uint64_t v = 0;
      return peek(pid, base + (reinterpret_cast<uintptr_t>(self_env) - self_base0), &v, sizeof v) && v != 0;
    };
    const std::string mem = "/proc/" + std::to_string(pid) + "/mem";
    if (access(mem.c_str(), R_OK) == 0)
      for (int i = 0; i < 200 && !initialised() && kill(pid, 0) == 0; ++i) usleep(10000);
  }
  if (ptrace(PTRACE_ATTACH, pid, nullptr, nullptr) != 0) {
    *why = errno == ESRCH ? "no process " + std::to_string(pid) : ptrace_refusal(pid, errno);
    return 1;
  }
  int sig = 0;
  if (!wait_stop(pid, &sig, why)) return 1;
  user_regs_struct saved{};
  if (ptrace(PTRACE_GETREGS, pid, nullptr, &saved) != 0) {
    *why = std::string("PTRACE_GETREGS: ") + std::strerror(errno);
    ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
    return 1;
  }
  auto give_back = [&](const std::string &reason) {
    ptrace(PTRACE_SETREGS, pid, nullptr, &saved);
    ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
    *why = reason;
    return 1;
  };
  // The libc mapping, read again now that the process is stopped.
  const uintptr_t self_base = reinterpret_cast<uintptr_t>(di.dli_fbase);
  const uintptr_t target_base = mapping_base(pid, libc);
  if (target_base == 0) {
    return give_back("process " + std::to_string(pid) + " has no " + libc +
                     " mapped (a static program, or another libc): the agent cannot be loaded into it");
  }
  const uintptr_t target_dlopen = target_base + (reinterpret_cast<uintptr_t>(self_dlopen) - self_base);

  const uintptr_t str = (uintptr_t(saved.rsp) - 128 - 1024 - agent.size()) & ~uintptr_t(15);
  const uintptr_t sp = (str - 256) & ~uintptr_t(15);
  const uint64_t zero = 0;
  if (!poke(pid, str, agent.c_str(), agent.size() + 1) || !poke(pid, sp - 8, &zero, sizeof zero))
    return give_back("cannot write into process " + std::to_string(pid) + "'s stack (/proc/PID/mem)");
  user_regs_struct call = saved;
  call.rip = target_dlopen;
  call.rdi = str;
  call.rsi = RTLD_NOW;
  call.rsp = sp - 8; // as after a call: [rsp] = the (zero) return address
  call.rax = 0;
  call.orig_rax = uint64_t(-1);
  if (ptrace(PTRACE_SETREGS, pid, nullptr, &call) != 0) return give_back("PTRACE_SETREGS failed");
  int deliver = 0;
  for (;;) {
    if (ptrace(PTRACE_CONT, pid, nullptr, reinterpret_cast<void *>(uintptr_t(deliver))) != 0)
      return give_back(std::string("PTRACE_CONT: ") + std::strerror(errno));
    if (!wait_stop(pid, &sig, why)) return 1;
    user_regs_struct now{};
    ptrace(PTRACE_GETREGS, pid, nullptr, &now);
    if (sig == SIGSEGV && now.rip == 0) {
      const uint64_t handle = now.rax;
      ptrace(PTRACE_SETREGS, pid, nullptr, &saved);
      ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
      if (handle == 0) {
        *why = "dlopen(" + agent + ") failed inside process " + std::to_string(pid);
        return 1;
      }
      return 0;
    }
    if (sig == SIGSEGV) return give_back("the process crashed (SIGSEGV) while loading the agent");
    deliver = sig == SIGSTOP ? 0 : sig; // a signal that arrived meanwhile: delivered, as it would have been
  }
#endif
}

} // namespace lptrace
