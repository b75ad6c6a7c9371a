#include "farm/agent/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>  // Boost 1.74 asio needs it in C++20 (std::exchange)
#include <boost/asio.hpp>

#include <cerrno>
#include <cstring>
#include <memory>

extern char** environ;

namespace farm::agent {

namespace asio = boost::asio;

void Cancel::cancel(const std::string& reason) {
  // Subscribers run under the lock so that unsubscribe() guarantees none is
  // still running afterwards; they must only post work, never call back.
  std::lock_guard lk(mu_);
  if (cancelled_) return;
  cancelled_ = true;
  reason_ = reason;
  for (auto& [_, fn] : subs_) fn();
}
bool Cancel::cancelled() const {
  std::lock_guard lk(mu_);
  return cancelled_;
}
std::string Cancel::reason() const {
  std::lock_guard lk(mu_);
  return reason_;
}
int Cancel::subscribe(std::function<void()> fn) {
  std::unique_lock lk(mu_);
  int h = next_++;
  if (cancelled_) {
    lk.unlock();
    fn();
    return h;
  }
  subs_[h] = std::move(fn);
  return h;
}
void Cancel::unsubscribe(int h) {
  std::lock_guard lk(mu_);
  subs_.erase(h);
}

std::string shell_quote(std::string_view s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") ==
                        std::string_view::npos)
    return std::string(s);
  std::string r = "'";
  for (char c : s) {
    if (c == '\'') r += "'\\''";
    else r += c;
  }
  return r + "'";
}

std::string shell_join(const std::vector<std::string>& argv) {
  std::string r;
  for (const auto& a : argv) {
    if (!r.empty()) r += ' ';
    r += shell_quote(a);
  }
  return r;
}

namespace {

void append_tail(std::string& buf, std::string_view data, size_t keep) {
  buf.append(data);
  if (buf.size() > keep * 2) buf.erase(0, buf.size() - keep);
}

struct Pipe {
  int r = -1, w = -1;
  bool open() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    r = fds[0];
    w = fds[1];
    return true;
  }
  void close_all() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
    r = w = -1;
  }
};

}  // namespace

ProcResult run_process(const ProcSpec& spec, const OutputFn& on_output, Cancel* cancel) {
  ProcResult res;
  if (spec.argv.empty()) {
    res.error = "empty command line";
    return res;
  }
  // Everything the child needs is built before fork (no allocation after it).
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos && spec.env.count(std::string(kv.substr(0, eq)))) continue;
    env_store.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env) env_store.push_back(k + "=" + v);
  std::vector<char*> envp, argv;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_store = spec.argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);

  Pipe out, err, errp;
  if (!out.open() || !err.open() || !errp.open()) {
    res.error = std::string("pipe: ") + std::strerror(errno);
    out.close_all();
    err.close_all();
    errp.close_all();
    return res;
  }
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) {
    res.error = std::string("fork: ") + std::strerror(errno);
    out.close_all();
    err.close_all();
    errp.close_all();
    if (devnull >= 0) ::close(devnull);
    return res;
  }
  if (pid == 0) {
    // child: own process group, default signals, die with the agent thread
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s = 1; s < NSIG; ++s) ::signal(s, SIG_DFL);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out.w, 1);
    ::dup2(err.w, 2);
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) {
      int e = errno;
      (void)!::write(errp.w, &e, sizeof e);
      ::_exit(127);
    }
    ::execvpe(argv[0], argv.data(), envp.data());
    int e = errno;
    (void)!::write(errp.w, &e, sizeof e);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also in the parent: no race with kill(-pid)
  ::close(out.w);
  ::close(err.w);
  ::close(errp.w);
  if (devnull >= 0) ::close(devnull);
  {
    int e = 0;
    ssize_t n;
    do n = ::read(errp.r, &e, sizeof e);
    while (n < 0 && errno == EINTR);
    ::close(errp.r);
    if (n == static_cast<ssize_t>(sizeof e)) {
      ::waitpid(pid, nullptr, 0);
      ::close(out.r);
      ::close(err.r);
      res.error = "cannot run " + spec.argv[0] + ": " + std::strerror(e);
      return res;
    }
  }
  res.started = true;

  asio::io_context io;
  asio::posix::stream_descriptor sout(io, out.r), serr(io, err.r);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  std::unique_ptr<asio::posix::stream_descriptor> pfd;
  if (pidfd >= 0) pfd = std::make_unique<asio::posix::stream_descriptor>(io, pidfd);
  asio::steady_timer timeout_timer(io), kill_timer(io), poll_timer(io), drain_timer(io);
  bool exited = false, out_eof = false, err_eof = false, killing = false;
  int status = 0;

  auto finish_if_done = [&] {
    if (exited && out_eof && err_eof) {
      timeout_timer.cancel();
      kill_timer.cancel();
      poll_timer.cancel();
      drain_timer.cancel();
    }
  };
  auto reap = [&] {
    // The leader is a zombie (its pid cannot be reused yet): kill any group
    // members it left behind, then reap it.
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    exited = true;
    // Output still buffered in the pipes is read to EOF; a process that
    // escaped the group could hold them open, so bound the drain.
    drain_timer.expires_after(std::chrono::seconds(2));
    drain_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      boost::system::error_code ig;
      sout.close(ig);
      serr.close(ig);
      out_eof = err_eof = true;
      finish_if_done();
    });
    finish_if_done();
  };
  std::function<void()> wait_exit = [&] {
    if (pfd) {
      pfd->async_wait(asio::posix::stream_descriptor::wait_read, [&](const boost::system::error_code& ec) {
        if (ec) return;
        reap();
      });
    } else {
      poll_timer.expires_after(std::chrono::milliseconds(20));
      poll_timer.async_wait([&](const boost::system::error_code& ec) {
        if (ec) return;
        siginfo_t si{};
        if (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) {
          reap();
        } else {
          wait_exit();
        }
      });
    }
  };
  auto start_kill = [&](bool is_timeout) {
    if (exited || killing) return;
    killing = true;
    if (is_timeout) res.timed_out = true;
    else res.cancelled = true;
    ::kill(-pid, SIGTERM);
    kill_timer.expires_after(spec.kill_grace);
    kill_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec && !exited) ::kill(-pid, SIGKILL);
    });
  };

  std::array<char, 16384> obuf{}, ebuf{};
  std::function<void()> read_out = [&] {
    sout.async_read_some(asio::buffer(obuf), [&](const boost::system::error_code& ec, size_t n) {
      if (n) {
        std::string_view d(obuf.data(), n);
        append_tail(res.out, d, spec.keep_stdout_bytes);
        if (on_output) on_output("stdout", d);
      }
      if (ec) {
        out_eof = true;
        finish_if_done();
        return;
      }
      read_out();
    });
  };
  std::function<void()> read_err = [&] {
    serr.async_read_some(asio::buffer(ebuf), [&](const boost::system::error_code& ec, size_t n) {
      if (n) {
        std::string_view d(ebuf.data(), n);
        append_tail(res.err, d, spec.keep_stderr_bytes);
        if (on_output) on_output("stderr", d);
      }
      if (ec) {
        err_eof = true;
        finish_if_done();
        return;
      }
      read_err();
    });
  };
  read_out();
  read_err();
  wait_exit();
  if (spec.timeout.count() > 0) {
    timeout_timer.expires_after(spec.timeout);
    timeout_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) start_kill(true);
    });
  }
  int sub = -1;
  if (cancel) {
    sub = cancel->subscribe([&io, &start_kill] { asio::post(io, [&start_kill] { start_kill(false); }); });
  }
  io.run();
  if (cancel) cancel->unsubscribe(sub);
  // Close descriptors while `io` is alive.
  boost::system::error_code ig;
  sout.close(ig);
  serr.close(ig);
  if (pfd) pfd->close(ig);

  res.duration_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (WIFEXITED(status)) {
    res.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    res.exit_code = -1;
    res.term_signal = WTERMSIG(status);
  }
  if (res.out.size() > spec.keep_stdout_bytes) res.out.erase(0, res.out.size() - spec.keep_stdout_bytes);
  if (res.err.size() > spec.keep_stderr_bytes) res.err.erase(0, res.err.size() - spec.keep_stderr_bytes);
  return res;
}

}  // namespace farm::agent
