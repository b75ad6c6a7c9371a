#pragma once
// Helpers for the farm tests: temp dirs, child processes that die with the
// test, polling, self-signed certificates, an in-process farm.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "farm/agent/process.hpp"
#include "farm/common/util.hpp"

namespace farmtest {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "farm-test-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (!p) throw std::runtime_error("mkdtemp");
    path = p;
  }
  ~TempDir() {
    std::error_code ec;
    if (!std::getenv("FARM_TEST_KEEP")) fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& f) const { return path + "/" + f; }
};

inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 20s,
                       std::chrono::milliseconds step = 20ms) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(step);
  }
  return pred();
}

// A child process killed (SIGKILL) when the object dies or the test process dies.
class Proc {
 public:
  Proc(std::vector<std::string> argv, const std::string& log, std::map<std::string, std::string> env = {}) {
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      ::execv(a[0], a.data());
      ::_exit(127);
    }
  }
  ~Proc() { kill(SIGKILL); wait(5s); }
  Proc(const Proc&) = delete;
  pid_t pid() const { return pid_; }
  void kill(int sig) {
    if (pid_ > 0 && !done_) ::kill(pid_, sig);
  }
  // Returns the wait status, or -1 on timeout.
  int wait(std::chrono::milliseconds timeout) {
    if (done_) return status_;
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        done_ = true;
        status_ = st;
        return st;
      }
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }
  bool alive() {
    if (done_) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      done_ = true;
      status_ = st;
      return false;
    }
    return true;
  }

 private:
  pid_t pid_ = -1;
  bool done_ = false;
  int status_ = 0;
};

inline int read_port_file(const std::string& path, std::chrono::milliseconds timeout = 15s) {
  int port = 0;
  wait_until([&] {
    std::ifstream f(path);
    return static_cast<bool>(f >> port) && port > 0;
  }, timeout);
  return port;
}

struct CmdResult {
  int code = -1;
  std::string out, err;
};

// Runs a command to completion (farmctl, openssl) and captures its output.
inline CmdResult run(std::vector<std::string> argv, std::chrono::seconds timeout = 60s) {
  farm::agent::ProcSpec ps;
  ps.argv = std::move(argv);
  ps.timeout = timeout;
  auto r = farm::agent::run_process(ps, nullptr, nullptr);
  CmdResult c;
  c.code = r.started ? r.exit_code : -1;
  c.out = r.out;
  c.err = r.err + r.error;
  return c;
}

// Writes a self-signed certificate for 127.0.0.1/localhost with the openssl CLI.
inline bool make_cert(const std::string& dir, std::string* cert, std::string* key) {
  *cert = dir + "/cert.pem";
  *key = dir + "/key.pem";
  auto r = run({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", *key, "-out", *cert,
                "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"});
  if (r.code != 0) std::fprintf(stderr, "openssl failed: %s\n", r.err.c_str());
  return r.code == 0;
}

// True while `pid` exists and is not a zombie.
inline bool process_alive(pid_t pid) {
  if (pid <= 0) return false;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  auto rp = line.rfind(')');
  return rp != std::string::npos && rp + 2 < line.size() && line[rp + 2] != 'Z';
}

}  // namespace farmtest
