// The ssh executor against a real OpenSSH server (issue 15). Each test starts
// Debian's /usr/sbin/sshd itself, on 127.0.0.1 only, on a port picked at run
// time, with a throwaway host key, a throwaway user key and a configuration
// of its own (public keys only, no PAM), everything in a scratch directory of
// the build tree; the "board" is this machine seen through that sshd.
//
//  * FarmSshd.PatchStressRunsOnTheBoard: the native patch-stress binary is
//    copied with scp (scp needs the port: ssh -p becomes scp -P) and run with
//    ssh; its JSON line is the result; the remote directory is removed.
//  * FarmSshd.HungBoardIsPowerCycled: a job that runs far longer than its
//    timeout: TIMEOUT, the operator's power-cycle command (sshd-power-cycle.sh)
//    runs with FARM_BOARD/FARM_JOB_ID/FARM_REASON, kills the hung workload
//    over ssh and stops sshd; the test's keeper starts sshd again (the
//    "boot"), the executor waits for ssh and reports "board power-cycled".
//  * FarmSshd.UnknownKeyIsAnInfrastructureError: sshd refuses a key that is
//    not in its authorized_keys: INFRA_ERROR naming ssh and the host.
//
// The sshd cannot outlive the test: it is the child of a keeper process that
// dies with the test (PR_SET_PDEATHSIG) or after kSshdLifetimeS (alarm), and
// sshd dies with its keeper (PR_SET_PDEATHSIG). The keeper is a subreaper
// (sshd's session processes it outlives are reaped there, not left to init).
// TearDown kills any process left running from the scratch directory, then
// SIGTERMs the keeper (it stops sshd and exits; SIGKILL after 5 s).
//
// As root (CI: a fresh Debian 12 root), the board user is root; sshd needs
// its privilege separation directory /run/sshd (created when missing). As
// another user, sshd runs unprivileged and can only log that same user in
// (the board user is then the current user; it needs a login shell).
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mutex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "farm/agent/executor.hpp"
#include "farm_test_util.hpp"

namespace v1 = farm::v1;
namespace fs = std::filesystem;
using farm::agent::ExecutorConfig;
using farm::agent::JobContext;
using namespace std::chrono_literals;

namespace {

const std::string kScripts = FARM_SCRIPTS;
const std::string kSshd = "/usr/sbin/sshd";
const std::string kSsh = "/usr/bin/ssh";
const std::string kScp = "/usr/bin/scp";
const std::string kKeygen = "/usr/bin/ssh-keygen";
constexpr unsigned kSshdLifetimeS = 120;  // the keeper (and so sshd) dies after this, whatever happens
constexpr int kPortAttempts = 8;

#ifdef PATCH_STRESS_BIN
const std::string kPatchStress = PATCH_STRESS_BIN;
#else
const std::string kPatchStress;
#endif

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + needle.size())) ++n;
  return n;
}

std::string read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A port nobody listens on right now (the kernel's choice for port 0); sshd
// may still lose it to someone else before it binds: the caller retries.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// Processes whose program is a file under `dir` (the board's workloads).
std::vector<pid_t> processes_under(const std::string& dir) {
  std::vector<pid_t> pids;
  DIR* d = ::opendir("/proc");
  if (!d) return pids;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (!*e->d_name || *end) continue;
    char buf[4096];
    ssize_t n = ::readlink(("/proc/" + std::string(e->d_name) + "/exe").c_str(), buf, sizeof buf - 1);
    if (n <= 0) continue;
    buf[n] = 0;
    std::string exe = buf;
    if (exe.rfind(dir + "/", 0) == 0 && farmtest::process_alive(static_cast<pid_t>(pid)))
      pids.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return pids;
}

// The keeper process (FarmSshd::start_sshd) after fork: its sshd, and
// whether the test asked it to stop (SIGTERM).
volatile sig_atomic_t g_sshd = 0;
volatile sig_atomic_t g_stopping = 0;
void keeper_sigterm(int) {
  g_stopping = 1;
  if (g_sshd > 0) ::kill(g_sshd, SIGTERM);
}

// What a job printed, by stream ("stdout", "stderr", "agent").
struct Output {
  std::mutex mu;
  std::map<std::string, std::string> by_stream;
  std::string operator[](const std::string& s) {
    std::lock_guard<std::mutex> l(mu);
    return by_stream[s];
  }
};

class FarmSshd : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& b : {kSshd, kSsh, kScp, kKeygen})
      if (::access(b.c_str(), X_OK) != 0)
        GTEST_SKIP() << b << " is not installed (Debian: openssh-server openssh-client, see ci/install-deps)";
    const passwd* pw = ::getpwuid(::geteuid());
    ASSERT_NE(pw, nullptr) << "no passwd entry for uid " << ::geteuid();
    user_ = pw->pw_name;
    host_ = user_ + "@127.0.0.1";

    // The scratch directory: under the build tree (FARM_SSHD_SCRATCH overrides it).
    std::string root = std::getenv("FARM_SSHD_SCRATCH") ? std::getenv("FARM_SSHD_SCRATCH") : FARM_SSHD_SCRATCH_ROOT;
    fs::create_directories(root);
    std::string tmpl = root + "/sshd-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << root << ": " << std::strerror(errno);
    scratch_ = tmpl;
    fs::create_directories(scratch_ + "/work");
    remote_dir_ = scratch_ + "/board";

    if (::geteuid() == 0) {
      // sshd started by root chroots its pre-auth child into /run/sshd
      // (Debian's privilege separation directory): a fresh root has no /run/sshd.
      std::error_code ec;
      if (!fs::is_directory("/run/sshd", ec)) {
        fs::create_directories("/run/sshd", ec);
        ::chmod("/run/sshd", 0755);
      }
    }

    // Throwaway keys: the host's, the user's (authorized) and a stranger's (not).
    for (const char* k : {"host_ed25519", "user_ed25519", "stranger_ed25519"}) {
      auto r = farmtest::run({kKeygen, "-q", "-t", "ed25519", "-N", "", "-C", std::string("farm-sshd-test-") + k,
                              "-f", scratch_ + "/" + k});
      ASSERT_EQ(r.code, 0) << "ssh-keygen " << k << ": " << r.out << r.err;
    }
    fs::copy_file(scratch_ + "/user_ed25519.pub", scratch_ + "/authorized_keys");

    std::string why;
    for (int attempt = 0; attempt < kPortAttempts && port_ <= 0; ++attempt) {
      int port = free_port();
      ASSERT_GT(port, 0) << "no free port on 127.0.0.1";
      write_sshd_config(port);
      if (attempt == 0) {  // the configuration (and this machine's sshd set-up) first, with a clear error
        auto t = farmtest::run({kSshd, "-t", "-f", scratch_ + "/sshd_config"});
        ASSERT_EQ(t.code, 0) << "sshd -t -f " << scratch_ << "/sshd_config refuses to start: " << t.out << t.err
                             << (::geteuid() == 0 ? "(as root sshd needs /run/sshd and the user 'sshd'; "
                                                    "Debian's openssh-server creates them)"
                                                  : "");
      }
      if (start_sshd(port, &why)) port_ = port;
    }
    ASSERT_GT(port_, 0) << "sshd did not start: " << why;

    // The host key is known in advance: StrictHostKeyChecking=yes.
    write(scratch_ + "/known_hosts", "[127.0.0.1]:" + std::to_string(port_) + " " + read(scratch_ + "/host_ed25519.pub"));
    write(scratch_ + "/board.env",
          "SSH_PORT=" + std::to_string(port_) + "\n" +
          "SSH_KEY=" + farm::agent::shell_quote(scratch_ + "/user_ed25519") + "\n" +
          "KNOWN_HOSTS=" + farm::agent::shell_quote(scratch_ + "/known_hosts") + "\n" +
          "REMOTE_DIR=" + farm::agent::shell_quote(remote_dir_) + "\n" +
          "SSHD_PIDFILE=" + farm::agent::shell_quote(scratch_ + "/sshd.pid") + "\n");
  }

  void TearDown() override {
    if (!scratch_.empty())
      for (pid_t p : processes_under(scratch_)) ::kill(p, SIGKILL);  // a workload left on the "board"
    stop_sshd();
    if (!scratch_.empty()) {
      if (!HasFailure() && !std::getenv("FARM_TEST_KEEP")) {
        std::error_code ec;
        fs::remove_all(scratch_, ec);
      } else {
        std::fprintf(stderr, "kept %s (sshd.log, power.log)\n", scratch_.c_str());
      }
    }
  }

  void write_sshd_config(int port) {
    const std::string& s = scratch_;
    write(s + "/sshd_config",
          "# The real-sshd test's board (tests/farm/test_sshd.cpp): loopback only,\n"
          "# a throwaway host key, one user, public keys only.\n"
          "ListenAddress 127.0.0.1:" + std::to_string(port) + "\n"
          "AddressFamily inet\n"
          "HostKey " + s + "/host_ed25519\n"
          "PidFile " + s + "/sshd.pid\n"
          "AuthorizedKeysFile " + s + "/authorized_keys\n"
          "AllowUsers " + user_ + "@127.0.0.1\n"
          "PubkeyAuthentication yes\n"
          "PasswordAuthentication no\n"
          "KbdInteractiveAuthentication no\n"
          "HostbasedAuthentication no\n"
          "PermitEmptyPasswords no\n"
          "PermitRootLogin prohibit-password\n"
          "UsePAM no\n"
          "StrictModes no\n"
          "DisableForwarding yes\n"
          "PermitTTY no\n"
          "PermitUserEnvironment no\n"
          "PrintMotd no\n"
          "PrintLastLog no\n"
          "UseDNS no\n"
          "LoginGraceTime 15\n"
          "MaxStartups 20\n"
          "ClientAliveInterval 5\n"
          "ClientAliveCountMax 2\n"
          "Subsystem sftp internal-sftp\n"  // scp (OpenSSH 9) copies over sftp
          "LogLevel VERBOSE\n");
  }

  // Starts the keeper: a child of this process that runs sshd -D and, while
  // SCRATCH/reboot exists when sshd exits (a power cycle), starts it again.
  // Only async-signal-safe calls after fork.
  bool start_sshd(int port, std::string* why) {
    std::string cfg = scratch_ + "/sshd_config", log = scratch_ + "/sshd.log", reboot = scratch_ + "/reboot";
    std::vector<std::string> argv_s{kSshd, "-D", "-e", "-f", cfg};
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t test = ::getpid();
    ::unlink(log.c_str());
    pid_t w = ::fork();
    if (w < 0) {
      *why = std::string("fork: ") + std::strerror(errno);
      return false;
    }
    if (w == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != test) ::_exit(1);
      // sshd's orphans (its sessions, when it stops first) come to the keeper, not to init.
      ::prctl(PR_SET_CHILD_SUBREAPER, 1);
      struct sigaction sa{};
      sa.sa_handler = keeper_sigterm;
      ::sigaction(SIGTERM, &sa, nullptr);
      ::signal(SIGALRM, SIG_DFL);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::alarm(kSshdLifetimeS);  // the bounded life: SIGALRM ends the keeper, sshd follows
      const pid_t keeper = ::getpid();
      int status = 0;
      for (;;) {
        pid_t s = ::fork();
        if (s < 0) ::_exit(1);
        if (s == 0) {
          ::prctl(PR_SET_PDEATHSIG, SIGKILL);
          if (::getppid() != keeper) ::_exit(1);
          int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
          int nul = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
          if (fd >= 0) ::dup2(fd, 1), ::dup2(fd, 2);
          if (nul >= 0) ::dup2(nul, 0);
          ::signal(SIGTERM, SIG_DFL);
          ::execv(argv[0], argv.data());
          ::_exit(127);
        }
        g_sshd = s;
        if (g_stopping) ::kill(s, SIGTERM);
        for (;;) {  // until sshd itself exits, reaping its orphans on the way
          pid_t p = ::waitpid(-1, &status, 0);
          if (p == s || (p < 0 && errno != EINTR)) break;
        }
        g_sshd = 0;
        if (g_stopping || ::access(reboot.c_str(), F_OK) != 0) break;  // stopped for good (or failed)
        ::unlink(reboot.c_str());                                       // one power cycle, one boot
        timespec off{0, 700'000'000};                                    // "off" for a moment
        ::nanosleep(&off, nullptr);
      }
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      ::alarm(3);  // what is left of sshd's sessions: reaped, for a few seconds at most
      while (::waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
      }
      ::_exit(code);
    }
    keeper_ = w;
    const std::string ready = "Server listening on 127.0.0.1 port " + std::to_string(port) + ".";
    auto end = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < end) {
      std::string l = read(log);
      if (contains(l, ready)) return true;
      int st = 0;
      if (::waitpid(w, &st, WNOHANG) == w) {
        keeper_ = -1;
        *why = "port " + std::to_string(port) + ": " + l;
        return false;  // e.g. "Address already in use": the caller picks another port
      }
      std::this_thread::sleep_for(20ms);
    }
    *why = "port " + std::to_string(port) + ": not listening after 10 s: " + read(log);
    stop_sshd();
    return false;
  }

  // SIGTERM to the keeper: it stops sshd, reaps what is left and exits;
  // SIGKILL (sshd follows: PR_SET_PDEATHSIG) if it has not within 5 s.
  void stop_sshd() {
    if (keeper_ <= 0) return;
    ::kill(keeper_, SIGTERM);
    int st = 0;
    bool gone = farmtest::wait_until([&] { return ::waitpid(keeper_, &st, WNOHANG) == keeper_; }, 5s, 10ms);
    if (!gone) {
      ::kill(keeper_, SIGKILL);
      while (::waitpid(keeper_, &st, 0) < 0 && errno == EINTR) {
      }
    }
    EXPECT_TRUE(gone) << "the sshd keeper did not stop on SIGTERM";
    keeper_ = -1;
  }

  ExecutorConfig board(const std::string& key = "user_ed25519") const {
    ExecutorConfig c;
    c.kind = "ssh";
    c.ssh = kSsh;
    c.scp = kScp;
    c.ssh_host = host_;
    // The operator's ssh options, as a real board on a non-default port needs them.
    c.ssh_opts = {"-F", "none",  // no ~/.ssh/config, no /etc/ssh/ssh_config
                  "-p", std::to_string(port_),
                  "-i", scratch_ + "/" + key,
                  "-o", "UserKnownHostsFile=" + scratch_ + "/known_hosts",
                  "-o", "GlobalKnownHostsFile=/dev/null",
                  "-o", "StrictHostKeyChecking=yes",
                  "-o", "BatchMode=yes",
                  "-o", "IdentitiesOnly=yes",
                  "-o", "IdentityAgent=none",
                  "-o", "ConnectTimeout=5",
                  "-o", "LogLevel=ERROR"};
    c.remote_dir = remote_dir_;
    if (!kPatchStress.empty()) c.binaries["patch-stress"] = kPatchStress;
    c.kill_grace = 500ms;
    return c;
  }

  JobContext job(const std::string& id, const v1::JobSpec& spec, Output* out) const {
    JobContext c;
    c.job_id = id;
    c.worker = "sshd-board";
    c.attempt = 1;
    c.spec = spec;
    c.work_dir = scratch_ + "/work";
    c.output = [out](std::string_view st, std::string_view d) {
      std::lock_guard<std::mutex> l(out->mu);
      out->by_stream[std::string(st)].append(d);
    };
    return c;
  }

  static v1::JobSpec stress(uint64_t seed, uint32_t timeout_s) {
    v1::JobSpec s;
    s.set_seed(seed);
    s.set_timeout_s(timeout_s);
    auto* p = s.mutable_workload()->mutable_patch_stress();
    p->set_threads(2);
    p->set_functions(16);
    p->set_batches(200);
    return s;
  }

  std::string user_, host_, scratch_, remote_dir_;
  int port_ = -1;
  pid_t keeper_ = -1;
};

void expect_sane_pass(const v1::JobResult& r, uint64_t seed, uint64_t batches) {
  EXPECT_EQ(r.outcome(), v1::OUTCOME_PASS) << r.message() << "\n" << r.log_tail();
  EXPECT_EQ(r.message(), "pass");
  EXPECT_EQ(r.exit_code(), 0);
  EXPECT_EQ(r.verdict(), "pass");
  EXPECT_GT(r.calls(), 0u);
  EXPECT_GT(r.hits(), 0u);
  EXPECT_LE(r.hits(), r.calls());  // a hit is a call that met an enabled probe
  EXPECT_EQ(r.batches(), batches);
  EXPECT_GE(r.syncs(), batches);
  EXPECT_EQ(r.unexpected_signals(), 0u);
  EXPECT_EQ(r.wrong_results(), 0u);
  auto j = nlohmann::json::parse(r.result_json(), nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.result_json();
  EXPECT_EQ(j.value("workload", ""), "patch-stress");
  EXPECT_EQ(j.value("seed", uint64_t{0}), seed);
  EXPECT_EQ(j.value("threads", 0), 2);
  EXPECT_EQ(j.value("functions", 0), 16);
}

TEST_F(FarmSshd, PatchStressRunsOnTheBoard) {
  if (kPatchStress.empty()) GTEST_SKIP() << "this tree does not build patch-stress";
  auto ex = farm::agent::make_executor(board());
  EXPECT_EQ(ex->kind(), "board");

  Output hc_out;
  auto hc_ctx = job("j-sshd-health", v1::JobSpec(), &hc_out);
  auto hc = ex->health_check(hc_ctx);
  EXPECT_EQ(hc.outcome(), v1::OUTCOME_PASS) << hc.message();

  Output out;
  auto ctx = job("j-sshd-pass", stress(7, 60), &out);
  auto t0 = std::chrono::steady_clock::now();
  auto r = ex->run(ctx);
  expect_sane_pass(r, 7, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  // The JSON line came back over ssh, on the job's stdout stream.
  EXPECT_TRUE(contains(out["stdout"], "\"workload\":\"patch-stress\"")) << out["stdout"];
  // scp reached the board on its port (scp -P, not ssh's -p) with the same key and known hosts.
  const std::string notes = out["agent"];
  EXPECT_TRUE(contains(notes, kScp + " -q -F none -P " + std::to_string(port_) + " -i ")) << notes;
  EXPECT_TRUE(contains(notes, "UserKnownHostsFile=")) << notes;
  EXPECT_TRUE(contains(notes, "./patch-stress --threads 2 --functions 16 --batches 200 --seed 7")) << notes;
  // The scratch directory on the board is gone, its parent (mkdir -p) stays.
  EXPECT_TRUE(fs::is_directory(remote_dir_));
  EXPECT_FALSE(fs::exists(remote_dir_ + "/j-sshd-pass-1")) << "left on the board";
  EXPECT_TRUE(processes_under(remote_dir_).empty());
  // sshd saw every connection (mkdir, scp over sftp, run, rm) authenticated with our key.
  std::string log = read(scratch_ + "/sshd.log");
  EXPECT_GE(count(log, "Accepted publickey for " + user_ + " from 127.0.0.1"), 4u) << log;
  EXPECT_TRUE(contains(log, "Starting session: subsystem 'sftp' for " + user_)) << log;
}

TEST_F(FarmSshd, HungBoardIsPowerCycled) {
  if (kPatchStress.empty()) GTEST_SKIP() << "this tree does not build patch-stress";
  auto cfg = board();
  // The operator's power switch: a command template of the agent's configuration.
  cfg.power_cycle = farm::agent::shell_quote(kScripts + "/sshd-power-cycle.sh") + " " +
                    farm::agent::shell_quote(scratch_);
  cfg.boot_timeout_s = 15;
  cfg.boot_poll_ms = 200;
  auto ex = farm::agent::make_executor(cfg);

  // The operator's patch-stress, asked (through the typed fields only) for
  // 20 s of work under a 2 s job timeout: the board "hangs" for the executor.
  // (Should this test be killed mid-run, the workload left on the board ends
  // by itself after those 20 s; sshd is gone with the test.)
  auto spec = stress(9, 2);
  spec.mutable_workload()->mutable_patch_stress()->clear_batches();
  spec.mutable_workload()->mutable_patch_stress()->set_threads(1);
  spec.mutable_workload()->mutable_patch_stress()->set_duration_s(20);
  Output out;
  auto ctx = job("j-sshd-hang", spec, &out);
  auto t0 = std::chrono::steady_clock::now();
  auto r = ex->run(ctx);
  auto took = std::chrono::steady_clock::now() - t0;

  // A hang is a result (TIMEOUT: not retried elsewhere), and the board was brought back.
  EXPECT_EQ(r.outcome(), v1::OUTCOME_TIMEOUT) << r.message() << "\n" << r.log_tail() << "\n" << out["agent"];
  EXPECT_EQ(r.message(), "timed out after 2 s; board power-cycled") << out["agent"];
  EXPECT_EQ(r.exit_code(), 255);  // the local ssh client, stopped by SIGTERM (ssh exits 255 on it)
  EXPECT_EQ(r.term_signal(), 0);
  EXPECT_TRUE(r.result_json().empty()) << r.result_json();
  EXPECT_GE(r.duration_s(), 2.0);
  EXPECT_LT(took, 20s);

  // The power switch ran once, with the executor's variables.
  std::string power = read(scratch_ + "/power.log");
  EXPECT_EQ(count(power, "FARM_BOARD="), 1u) << power;
  EXPECT_TRUE(contains(power, "FARM_BOARD=" + host_ + "\n")) << power;
  EXPECT_TRUE(contains(power, "FARM_JOB_ID=j-sshd-hang\n")) << power;
  EXPECT_TRUE(contains(power, "FARM_REASON=job timed out (board hung?)\n")) << power;
  // ... found the hung workload still running on the board and killed it, then stopped sshd.
  EXPECT_TRUE(contains(power, "killed=")) << power;
  EXPECT_FALSE(contains(power, "ssh-kill-failed")) << power;
  EXPECT_TRUE(contains(power, "sshd-stopped=")) << power;
  EXPECT_TRUE(processes_under(remote_dir_).empty());

  // The executor waited for ssh to come back: sshd started twice, probes failed while it was off.
  std::string log = read(scratch_ + "/sshd.log");
  EXPECT_EQ(count(log, "Server listening on 127.0.0.1 port " + std::to_string(port_)), 2u) << log;
  const std::string notes = out["agent"];
  EXPECT_TRUE(contains(notes, "power-cycling board: job timed out (board hung?)")) << notes;
  EXPECT_TRUE(contains(notes, "board is back")) << notes;
  EXPECT_GE(count(notes, " " + host_ + " true\n"), 2u) << notes;  // at least one failed probe before the good one
  EXPECT_TRUE(contains(out["stderr"], "Connection refused")) << out["stderr"];
  // The hung job's directory does not stay on the board.
  EXPECT_FALSE(fs::exists(remote_dir_ + "/j-sshd-hang-1")) << "left on the board";

  // The rebooted board takes the next job.
  Output next_out;
  auto next = job("j-sshd-after", stress(10, 60), &next_out);
  expect_sane_pass(ex->run(next), 10, 200);
  EXPECT_EQ(count(read(scratch_ + "/power.log"), "FARM_BOARD="), 1u);  // no second power cycle
}

TEST_F(FarmSshd, UnknownKeyIsAnInfrastructureError) {
  if (kPatchStress.empty()) GTEST_SKIP() << "this tree does not build patch-stress";
  auto ex = farm::agent::make_executor(board("stranger_ed25519"));
  Output out;
  auto ctx = job("j-sshd-denied", stress(11, 60), &out);
  auto t0 = std::chrono::steady_clock::now();
  auto r = ex->run(ctx);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  RecordProperty("message", r.message());  // in --gtest_output=json|xml
  EXPECT_EQ(r.outcome(), v1::OUTCOME_INFRA_ERROR) << r.message();
  // The first remote step (the job's directory) fails: the message names
  // ssh, the step, ssh's exit status and ssh's own line, which names the
  // user and host: "ssh mkdir -p DIR: exit 255: root@127.0.0.1: Permission denied (publickey)."
  EXPECT_EQ(r.message().rfind("ssh mkdir -p " + remote_dir_ + "/j-sshd-denied-1: exit 255: " + host_ +
                                  ": Permission denied (publickey).", 0),
            0u)
      << r.message();
  EXPECT_FALSE(fs::exists(remote_dir_)) << "nothing may reach the board";
  std::string log = read(scratch_ + "/sshd.log");
  EXPECT_EQ(count(log, "Accepted publickey"), 0u) << log;

  Output hc_out;
  auto hc_ctx = job("j-sshd-denied-hc", v1::JobSpec(), &hc_out);
  auto hc = ex->health_check(hc_ctx);
  EXPECT_EQ(hc.outcome(), v1::OUTCOME_INFRA_ERROR) << hc.message();
  EXPECT_TRUE(contains(hc.message(), "Permission denied (publickey)")) << hc.message();
}

}  // namespace
