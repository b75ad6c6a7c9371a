// The agent's control server (ctl_protocol.hpp): one thread per process, one
// request per connection, peers of the traced process's uid only. The same
// thread writes the report when a fatal signal arrives (hooks.cpp's handler
// only writes the signal's number into the wake-up pipe: writing JSON from a
// signal handler could deadlock on a lock the interrupted code holds).
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "agent.hpp"
#include "ctl_protocol.hpp"

namespace lptrace {
namespace {

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
  else if (cmd == "record") {
    // Before the first probe of an attach: every thread's events from then on.
    char *end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(arg.c_str(), &end, 10);
    if (arg.empty() || *end || errno || n == 0 || n > 100000000ull)
      r = {{"ok", false}, {"error", "record needs N, 1..100000000 events per thread, not '" + arg + "'"}};
    else if (g_rings.on()) r = {{"ok", false}, {"error", "already recording"}};
    else {
      g_rings.set_capacity(n);
      r = {{"ok", true}};
    }
  } else if (cmd == "events") r = {{"ok", true}, {"events", events_json(a)}};
  else if (cmd == "detach") r = detach(a);
  else r = {{"ok", false}, {"error", "unknown request '" + cmd + "' (enable, disable, stats, record, events, detach)"}};
  return r.dump() + "\n";
}

void answer(Agent *a, int c) {
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
  for (size_t off = 0; off < reply.size();) {
    const ssize_t w = write(c, reply.data() + off, reply.size() - off);
    if (w <= 0 && errno != EINTR) break;
    if (w > 0) off += size_t(w);
  }
}

// Ends after a detach (or with the process).
void serve(Agent *a, int listen_fd, int wake_rd) {
  while (!a->detached) {
    pollfd pf[2] = {{listen_fd, POLLIN, 0}, {wake_rd, POLLIN, 0}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pf[1].revents & POLLIN) {
      unsigned char sig = 0;
      if (read(wake_rd, &sig, 1) == 1) report_then_die(sig);
    }
    if (!(pf[0].revents & POLLIN)) continue;
    const int c = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    answer(a, c);
    close(c);
  }
  uninstall_signal_reports(); // nobody reads the pipe any more: the signals' default again
  close(listen_fd);
  unlink(ctl_socket_path(getpid()).c_str());
}

struct ServerArgs {
  Agent *a;
  int listen_fd, wake_rd;
};

} // namespace

void report_then_die(int sig) {
  write_report();
  stop_server_files();
  // The default action, as the program would have had it without the agent;
  // this thread blocks every signal, so another thread takes it and dies.
  signal(sig, SIG_DFL);
  kill(getpid(), sig);
}

void stop_server_files() {
  if (g_agent && g_agent->listen_fd >= 0 && getpid() == g_pid) unlink(ctl_socket_path(getpid()).c_str());
}

bool start_server(Agent *a) {
  const std::string dir = ctl_dir(), path = ctl_socket_path(getpid());
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return false;
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) return false;
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) {
    close(fd);
    return false;
  }
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  unlink(path.c_str());
  const mode_t old = umask(077);
  const int rc = bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa);
  umask(old);
  int wake[2];
  if (rc != 0 || chmod(path.c_str(), 0600) != 0 || listen(fd, 8) != 0 || pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    close(fd);
    return false;
  }
  a->listen_fd = fd;
  a->wake_rd = wake[0];
  a->wake_fd = wake[1];
  // A plain thread (std::thread would need the agent's C++ runtime to
  // outlive it): detached, it ends with the process or after a detach.
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  // The program's signals go to its own threads -- all but libpatch's round
  // signal: a commit of instruction-site probes made by another thread (a
  // dlopen hook, hooks.cpp) visits every thread of the process, this one too,
  // and would time out (LP_ESYNC) on a thread that blocks it.
  sigset_t all, old_mask;
  sigfillset(&all);
  if (g_sync_signal > 0) sigdelset(&all, g_sync_signal);
  pthread_sigmask(SIG_SETMASK, &all, &old_mask);
  auto *args = new ServerArgs{a, fd, wake[0]};
  const int prc = pthread_create(
      &t, &at,
      [](void *p) -> void * {
        auto *s = static_cast<ServerArgs *>(p);
        const ServerArgs copy = *s;
        delete s;
        serve(copy.a, copy.listen_fd, copy.wake_rd);
        return nullptr;
      },
      args);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  pthread_attr_destroy(&at);
  if (prc != 0) {
    delete args;
    close(fd);
    close(wake[0]);
    close(wake[1]);
    a->listen_fd = a->wake_fd = a->wake_rd = -1;
    unlink(path.c_str());
    return false;
  }
  return true;
}

} // namespace lptrace
