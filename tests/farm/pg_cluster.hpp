#pragma once
// A throwaway PostgreSQL cluster for the farm tests (Debian's postgresql-15:
// /usr/lib/postgresql/15/bin/initdb and postgres):
//  * in a new directory /tmp/farm-pg-XXXXXX: data/, the server's log, its
//    Unix socket;
//  * listening on that Unix socket (trust: only the directory's owner, 0700,
//    gets in) and on 127.0.0.1 at a free port it picks (scram-sha-256, the
//    role farm with a random password): never any other address;
//  * PostgreSQL refuses to run as root: when the tests run as root (CI does),
//    initdb and postgres run as the user `nobody`, which owns the directory
//    (the tests, root, still reach the socket);
//  * fsync off (throwaway data).
// stop() ends the server (SIGQUIT: immediate shutdown) and removes the
// directory. The ctest fixture (pg_fixture.cpp: farm.postgres.start/stop)
// runs one cluster for the whole suite; a test binary run by hand with
// FARM_TEST_STORE=postgresql starts its own (farm_store.hpp).
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace farmtest {

inline const char* kPgBin = "/usr/lib/postgresql/15/bin";

struct PgCluster {
  std::string dir;       // /tmp/farm-pg-XXXXXX
  int port = 0;          // 127.0.0.1:port and the socket's .s.PGSQL.port
  pid_t pid = 0;         // the postmaster
  std::string password;  // of the role farm over TCP

  // The socket's URL (trust) and the TCP one (password).
  std::string url(const std::string& db) const {
    return "postgresql:///" + db + "?host=" + dir + "&port=" + std::to_string(port) + "&user=farm";
  }
  std::string tcp_url(const std::string& db, const std::string& pw) const {
    return "postgresql://farm:" + pw + "@127.0.0.1:" + std::to_string(port) + "/" + db;
  }
  std::string conninfo(const std::string& db) const {
    return "host=" + dir + " port=" + std::to_string(port) + " user=farm dbname=" + db;
  }

  // Starts a cluster. detached: the server outlives this process (the ctest
  // fixture); otherwise it gets SIGQUIT when this thread's process dies.
  static PgCluster start(bool detached);
  // Ends the server (if it is the postgres of this cluster) and removes dir.
  void stop();

  void save(const std::string& path) const {
    std::ofstream f(path + ".tmp");
    f << "dir=" << dir << "\nport=" << port << "\npid=" << pid << "\npassword=" << password << "\n";
    f.close();
    std::filesystem::rename(path + ".tmp", path);
  }
  static std::optional<PgCluster> load(const std::string& path) {
    std::ifstream f(path);
    if (!f) return std::nullopt;
    std::map<std::string, std::string> kv;
    for (std::string line; std::getline(f, line);)
      if (auto eq = line.find('='); eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
    PgCluster c;
    c.dir = kv["dir"];
    c.port = std::atoi(kv["port"].c_str());
    c.pid = static_cast<pid_t>(std::atol(kv["pid"].c_str()));
    c.password = kv["password"];
    if (c.dir.rfind("/tmp/farm-pg-", 0) != 0 || c.port <= 0 || c.pid <= 0) return std::nullopt;
    return c;
  }
};

namespace pgdetail {

inline std::string tail(const std::string& path, size_t n = 3000) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  return s.size() > n ? s.substr(s.size() - n) : s;
}

// Who the server runs as: nobody when we are root, else ourselves.
struct RunAs {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};
inline RunAs run_as() {
  RunAs r;
  if (::geteuid() != 0) return r;
  struct passwd* pw = ::getpwnam("nobody");
  if (!pw) throw std::runtime_error("running as root, and there is no user 'nobody' to run PostgreSQL as");
  r.drop = true;
  r.uid = pw->pw_uid;
  r.gid = pw->pw_gid;
  return r;
}

// Forks and execs argv as `as`, output appended to `log`. In the child only
// async-signal-safe calls (the tests are multi-threaded).
inline pid_t spawn(const std::vector<std::string>& argv, const RunAs& as, const std::string& log, bool detached) {
  std::vector<char*> a;
  for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + log);
  static char lc[] = "LC_ALL=C";
  pid_t pid = ::fork();
  if (pid == 0) {
    if (detached) ::setsid();
    if (as.drop && (::setgroups(0, nullptr) != 0 || ::setgid(as.gid) != 0 || ::setuid(as.uid) != 0)) ::_exit(126);
    if (!detached) ::prctl(PR_SET_PDEATHSIG, SIGQUIT);  // after setuid (a credential change clears it)
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    ::putenv(lc);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  ::close(fd);
  if (pid < 0) throw std::runtime_error("fork failed");
  return pid;
}

inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) throw std::runtime_error("bind 127.0.0.1:0");
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

inline std::string random_password() {
  std::ifstream u("/dev/urandom", std::ios::binary);
  std::string s;
  static const char* hex = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    unsigned char c = static_cast<unsigned char>(u.get());
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

// True while `pid` exists and is not a zombie.
inline bool alive(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  auto rp = line.rfind(')');
  return rp != std::string::npos && rp + 2 < line.size() && line[rp + 2] != 'Z';
}

// Is `pid` the postgres of data directory `data`? (a stale state file must not kill a reused pid)
inline bool is_postgres_of(pid_t pid, const std::string& data) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string cmd = ss.str();
  return cmd.find("postgres") != std::string::npos && cmd.find(data) != std::string::npos;
}

}  // namespace pgdetail

inline PgCluster PgCluster::start(bool detached) {
  namespace fs = std::filesystem;
  using namespace std::chrono_literals;
  auto as = pgdetail::run_as();
  PgCluster c;
  std::string tmpl = "/tmp/farm-pg-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp /tmp/farm-pg-XXXXXX failed");
  c.dir = tmpl;
  auto own = [&](const std::string& p) {
    if (as.drop && ::chown(p.c_str(), as.uid, as.gid) != 0) throw std::runtime_error("chown " + p + " to nobody failed");
  };
  try {
    ::chmod(c.dir.c_str(), 0700);
    own(c.dir);
    c.port = pgdetail::free_port();
    c.password = pgdetail::random_password();
    std::string pwfile = c.dir + "/pwfile";
    {
      std::ofstream(pwfile) << c.password << "\n";
    }
    ::chmod(pwfile.c_str(), 0600);
    own(pwfile);
    const std::string log = c.dir + "/postgres.log";
    {
      std::ofstream(log).flush();
    }
    own(log);
    std::string initdb = std::string(kPgBin) + "/initdb";
    if (::access(initdb.c_str(), X_OK) != 0)
      throw std::runtime_error(initdb + " is missing: install Debian's postgresql-15 (ci/install-deps)");
    pid_t p = pgdetail::spawn({initdb, "-D", c.dir + "/data", "-U", "farm", "--auth-local=trust",
                               "--auth-host=scram-sha-256", "--pwfile=" + pwfile, "-E", "UTF8", "--locale=C",
                               "--no-sync", "--no-instructions"},
                              as, log, false);
    int st = 0;
    ::waitpid(p, &st, 0);
    fs::remove(pwfile);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      throw std::runtime_error("initdb failed (status " + std::to_string(st) + "):\n" + pgdetail::tail(log));
    {
      std::ofstream conf(c.dir + "/data/postgresql.conf", std::ios::app);
      conf << "\n# farm tests (tests/farm/pg_cluster.hpp)\n"
           << "listen_addresses = '127.0.0.1'\n"
           << "port = " << c.port << "\n"
           << "unix_socket_directories = '" << c.dir << "'\n"
           << "unix_socket_permissions = 0700\n"
           << "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
           << "max_connections = 200\nshared_buffers = 16MB\ndynamic_shared_memory_type = mmap\n";
    }
    c.pid = pgdetail::spawn({std::string(kPgBin) + "/postgres", "-D", c.dir + "/data"}, as, log, detached);
    std::string info = c.conninfo("postgres");
    auto end = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      if (PQping(info.c_str()) == PQPING_OK) break;
      int wst = 0;
      if (::waitpid(c.pid, &wst, WNOHANG) == c.pid)
        throw std::runtime_error("postgres exited at start (status " + std::to_string(wst) + "):\n" +
                                 pgdetail::tail(log));
      if (std::chrono::steady_clock::now() > end)
        throw std::runtime_error("postgres did not accept connections within 30 s:\n" + pgdetail::tail(log));
      std::this_thread::sleep_for(50ms);
    }
  } catch (...) {
    c.stop();
    throw;
  }
  return c;
}

inline void PgCluster::stop() {
  using namespace std::chrono_literals;
  if (pid > 0 && pgdetail::is_postgres_of(pid, dir + "/data")) {
    ::kill(pid, SIGQUIT);  // immediate shutdown: the postmaster ends its backends and exits
    auto end = std::chrono::steady_clock::now() + 10s;
    while (pgdetail::alive(pid) && std::chrono::steady_clock::now() < end) {
      int st = 0;
      ::waitpid(pid, &st, WNOHANG);  // ours (not detached): reap it
      std::this_thread::sleep_for(20ms);
    }
    if (pgdetail::alive(pid)) ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, WNOHANG);
  }
  pid = 0;
  if (dir.rfind("/tmp/farm-pg-", 0) == 0) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
}

}  // namespace farmtest
