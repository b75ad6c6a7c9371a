// End-to-end farm tests with real processes on loopback: farmd, farm-agent
// and farmctl binaries; SIGKILLed agents, a farmd restart, bad tokens, TLS,
// cancellation, the ssh (fake ssh + pty serial + power switch script),
// qemu-system and qemu-user executors, and the real patch-stress workload.
#include <pty.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <boost/asio.hpp>
#include <regex>

#include "farm/common/names.hpp"
#include "farm/ctl/client.hpp"
#include "farm_store.hpp"
#include "farm_test_util.hpp"
#include "prom_parse.hpp"

namespace v1 = farm::v1;
using farm::ctl::Client;
using farmtest::CmdResult;
using farmtest::Proc;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

const std::string kClientTok = "e2e-client-token";
const std::string kAgentTok = "e2e-agent-token";
const std::string kScripts = FARM_SCRIPTS;
const std::string kFake = kScripts + "/fake-workload.sh";

class FarmE2E : public ::testing::Test {
 protected:
  void TearDown() override {
    agents.clear();
    if (farmd) {
      farmd->kill(SIGTERM);
      farmd->wait(5s);
    }
  }

  void start_farmd(std::vector<std::string> extra = {}, int fixed_port = 0) {
    std::error_code ec;
    std::filesystem::remove(dir / "port", ec);
    std::vector<std::string> a{FARMD_BIN, "--listen", "127.0.0.1:" + std::to_string(fixed_port), "--db",
                               farmtest::db(dir), "--client-token", kClientTok, "--agent-token", kAgentTok,
                               "--port-file", dir / "port", "--lease-ttl-ms", "2000", "--exit-with-parent"};
    a.insert(a.end(), extra.begin(), extra.end());
    farmd = std::make_unique<Proc>(a, dir / "farmd.log");
    port = farmtest::read_port_file(dir / "port");
    ASSERT_GT(port, 0) << "farmd did not start; see " << (dir / "farmd.log");
    address = "127.0.0.1:" + std::to_string(port);
  }

  Proc* start_agent(const std::string& name, std::vector<std::string> extra = {},
                    std::map<std::string, std::string> env = {}, bool wait_registered = true) {
    std::vector<std::string> a{FARM_AGENT_BIN, "--server", address, "--token", kAgentTok, "--name", name,
                               "--work-dir", dir / ("work-" + name), "--acquire-wait-ms", "1000",
                               "--exit-with-parent", "--kill-grace-ms", "500"};
    bool has_exec = false;
    for (auto& e : extra) has_exec = has_exec || e == "--executor" || e == "--patch-stress";
    // farmd refuses client-chosen workload arguments (extra_args): the tests
    // steer the fake workload with Command workloads of the allow-listed kFake.
    if (!has_exec) a.insert(a.end(), {"--patch-stress", kFake, "--allow-command", "--allow-command-binary", kFake});
    a.insert(a.end(), extra.begin(), extra.end());
    agents.push_back(std::make_unique<Proc>(a, dir / ("agent-" + name + ".log"), env));
    if (wait_registered) {
      EXPECT_TRUE(farmtest::wait_until([&] {
        try {
          for (auto& w : client().workers())
            if (w.id() == name && w.state() != v1::WORKER_STATE_OFFLINE) return true;
        } catch (...) {
        }
        return false;
      }, 15s)) << "agent " << name << " did not register";
    }
    return agents.back().get();
  }

  farm::ChannelOptions chan(const std::string& tok = kClientTok) {
    farm::ChannelOptions o;
    o.address = address;
    o.token = tok;
    o.ca_file = ca;  // TLS tests
    return o;
  }
  Client client() { return Client(chan()); }

  CmdResult ctl(std::vector<std::string> args, const std::string& tok = kClientTok) {
    std::vector<std::string> a{FARMCTL_BIN, "--server", address};
    if (!tok.empty()) a.insert(a.end(), {"--token", tok});
    a.insert(a.end(), args.begin(), args.end());
    return farmtest::run(a, 60s);
  }

  std::string submit(std::vector<std::string> args) {
    std::vector<std::string> a{"submit"};
    a.insert(a.end(), args.begin(), args.end());
    auto r = ctl(a);
    EXPECT_EQ(r.code, 0) << r.err;
    return farm::trim(r.out.substr(0, r.out.find(' ')));
  }

  // A Command workload running the fake workload with `args`: farmd refuses
  // client-chosen patch-stress arguments (extra_args), and the agents here
  // allow-list kFake as a command (--allow-command-binary).
  std::string submit_fake(const std::vector<std::string>& args, const std::function<void(v1::JobSpec&)>& tweak = nullptr) {
    v1::JobSpec s;
    auto* c = s.mutable_workload()->mutable_command();
    c->add_argv(kFake);
    for (const auto& a : args) c->add_argv(a);
    if (tweak) tweak(s);
    return client().submit(s).id();
  }

  v1::Job wait_job(const std::string& id, std::function<bool(const v1::Job&)> pred, std::chrono::milliseconds t = 30s) {
    v1::Job j;
    farmtest::wait_until([&] {
      try {
        j = client().get(id, true);
        return pred(j);
      } catch (...) {
        return false;
      }
    }, t, 50ms);
    return j;
  }
  v1::Job wait_terminal(const std::string& id, std::chrono::milliseconds t = 30s) {
    return wait_job(id, [](const v1::Job& j) { return farm::is_terminal(j.state()); }, t);
  }

  std::string logs_of(const std::string& id, const std::string& stream = "") {
    std::string out;
    client().watch(id, true, [&](const v1::JobEvent& ev) {
      if (ev.has_log() && (stream.empty() || ev.log().stream() == stream)) out += ev.log().data();
      return true;
    });
    return out;
  }

  farmtest::TempDir dir;
  std::unique_ptr<Proc> farmd;
  int port = 0;
  std::string address;
  std::string ca;
  std::vector<std::unique_ptr<Proc>> agents;
};

}  // namespace

TEST_F(FarmE2E, FarmctlSubmitWatchResultsReport) {
  start_farmd();
  start_agent("local");
  auto r = ctl({"submit", "--threads", "4", "--functions", "64", "--batches", "100", "--seed", "42", "--name",
                "smoke", "--tag", "suite=e2e", "--wait", "--logs"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("passed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fake-workload: mode=pass seed=42"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("calls=1000 hits=500 batches=10"), std::string::npos) << r.out;

  auto fail_id = submit_fake({"--mode", "fail", "--seed", "1"}, [](v1::JobSpec& s) { (*s.mutable_tags())["suite"] = "e2e"; });
  auto w = ctl({"watch", fail_id});
  EXPECT_EQ(w.code, 1) << w.out;
  EXPECT_NE(w.out.find("failed"), std::string::npos);

  auto jobs = ctl({"--json", "jobs", "--tag", "suite=e2e"});
  ASSERT_EQ(jobs.code, 0) << jobs.err;
  auto ja = json::parse(jobs.out);
  ASSERT_EQ(ja.size(), 2u);

  auto res = ctl({"--json", "results", fail_id});
  EXPECT_EQ(res.code, 1);
  auto rj = json::parse(res.out);
  EXPECT_EQ(rj[0]["state"], "failed");
  EXPECT_EQ(rj[0]["verdict"], "fail");
  EXPECT_EQ(rj[0]["result"]["seed"], 1);

  auto ws = ctl({"--json", "workers"});
  ASSERT_EQ(ws.code, 0);
  EXPECT_EQ(json::parse(ws.out)[0]["id"], "local");

  auto junit = dir / "junit.xml";
  auto rep = ctl({"report", "--tag", "suite=e2e", "--junit", junit});
  EXPECT_EQ(rep.code, 1);  // one job failed
  EXPECT_NE(rep.out.find("total"), std::string::npos) << rep.out;
  auto xml = farm::read_file(junit);
  EXPECT_NE(xml.find("tests=\"2\" failures=\"1\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("smoke ["), std::string::npos);

  // bad input from the CLI: refused by farmctl itself, before anything is sent
  auto bad = ctl({"submit", "--writer", "nonsense"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--writer must be one of mprotect, procmem, default; got 'nonsense'"), std::string::npos)
      << bad.err;
  auto unmatched = ctl({"submit", "--arch", "riscv64", "--executor", "board"});
  EXPECT_EQ(unmatched.code, 2);
  EXPECT_NE(unmatched.err.find("FAILED_PRECONDITION"), std::string::npos) << unmatched.err;
  EXPECT_NE(unmatched.err.find("no registered worker"), std::string::npos) << unmatched.err;
}

TEST_F(FarmE2E, AgentSigkilledMidJobIsRequeuedOnAnotherAgent) {
  start_farmd();
  Proc* a = start_agent("victim");
  auto pidfile = dir / "workload.pid";
  auto id = submit_fake({"--sleep", "2", "--pidfile", pidfile}, [](v1::JobSpec& s) { s.set_timeout_s(60); });
  auto running = wait_job(id, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; });
  ASSERT_EQ(running.worker_id(), "victim");
  int wpid = farmtest::read_port_file(pidfile);  // (reads an integer)
  ASSERT_GT(wpid, 0);
  a->kill(SIGKILL);
  a->wait(5s);
  // the workload dies with its agent
  EXPECT_TRUE(farmtest::wait_until([&] { return !farmtest::process_alive(wpid); }, 5s));
  start_agent("rescuer");
  auto done = wait_terminal(id);
  ASSERT_EQ(done.state(), v1::JOB_STATE_PASSED) << done.message();
  EXPECT_EQ(done.worker_id(), "rescuer");
  ASSERT_EQ(done.attempt_history_size(), 2);
  EXPECT_EQ(done.attempt_history(0).worker_id(), "victim");
  EXPECT_EQ(done.attempt_history(0).outcome(), v1::OUTCOME_LOST);
  EXPECT_NE(done.attempt_history(0).message().find("lease expired"), std::string::npos);
  EXPECT_EQ(done.attempt_history(1).outcome(), v1::OUTCOME_PASS);
  EXPECT_EQ(done.result().calls(), 1000u);
}

TEST_F(FarmE2E, AgentSigtermHandsBackItsJob) {
  start_farmd();
  Proc* a = start_agent("leaving");
  auto id = submit_fake({"--sleep", "30"}, [](v1::JobSpec& s) { s.set_max_attempts(3); });
  wait_job(id, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; });
  auto t0 = std::chrono::steady_clock::now();
  a->kill(SIGTERM);
  EXPECT_EQ(a->wait(10s), 0);
  auto q = wait_job(id, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_QUEUED; }, 10s);
  EXPECT_EQ(q.state(), v1::JOB_STATE_QUEUED);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);
  EXPECT_NE(q.message().find("agent shut down"), std::string::npos) << q.message();
}

TEST_F(FarmE2E, FarmdKilledAndRestartedLosesNothing) {
  start_farmd();
  start_agent("steady");
  std::vector<std::string> done;
  for (int i = 0; i < 3; ++i) done.push_back(submit({"--seed", std::to_string(100 + i)}));
  for (auto& id : done) ASSERT_EQ(wait_terminal(id).state(), v1::JOB_STATE_PASSED);
  auto long_id = submit_fake({"--sleep", "3", "--seed", "7"}, [](v1::JobSpec& s) { s.set_seed(7); });
  wait_job(long_id, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; });
  auto queued = submit({"--arch", "riscv64", "--allow-unmatched"});
  if (!farmtest::on_postgres()) EXPECT_TRUE(std::filesystem::exists(dir / "farm.db-wal"));  // WAL mode

  farmd->kill(SIGKILL);
  farmd->wait(5s);
  std::this_thread::sleep_for(300ms);
  start_farmd({}, port);  // same port and database; the agent reconnects by itself

  for (auto& id : done) {
    auto j = client().get(id, true);
    EXPECT_EQ(j.state(), v1::JOB_STATE_PASSED);
    EXPECT_EQ(j.result().calls(), 1000u);
  }
  EXPECT_EQ(client().get(queued).state(), v1::JOB_STATE_QUEUED);
  // the job that was running during the crash finishes (same attempt, or a retry)
  auto lj = wait_terminal(long_id, 30s);
  EXPECT_EQ(lj.state(), v1::JOB_STATE_PASSED) << lj.message();
  EXPECT_NE(lj.result().result_json().find("\"seed\":7"), std::string::npos);
  auto all = client().list({});
  EXPECT_EQ(all.size(), 5u);
  auto ws = client().workers();
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_GE(ws[0].jobs_done(), 4u);
}

TEST_F(FarmE2E, WrongOrMissingTokensAreRejected) {
  start_farmd();
  auto none = ctl({"jobs"}, "");
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("UNAUTHENTICATED"), std::string::npos) << none.err;
  auto wrong = ctl({"jobs"}, "wrong-token-123");
  EXPECT_EQ(wrong.code, 2);
  EXPECT_NE(wrong.err.find("UNAUTHENTICATED"), std::string::npos) << wrong.err;
  auto role = ctl({"submit"}, kAgentTok);
  EXPECT_EQ(role.code, 2);
  EXPECT_NE(role.err.find("PERMISSION_DENIED"), std::string::npos) << role.err;
  // an agent holding a client token cannot register
  std::vector<std::string> a{FARM_AGENT_BIN, "--server", address, "--token", kClientTok, "--name", "intruder",
                             "--patch-stress", kFake, "--exit-with-parent"};
  Proc intruder(a, dir / "intruder.log");
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(client().workers().empty());
  intruder.kill(SIGTERM);
  intruder.wait(5s);
  EXPECT_NE(farm::read_file(dir / "intruder.log").find("PERMISSION_DENIED"), std::string::npos);
}

TEST_F(FarmE2E, CancelDuringRunStopsTheWorkload) {
  start_farmd();
  start_agent("busy");
  auto pidfile = dir / "cancel.pid";
  auto id = submit_fake({"--mode", "hang", "--pidfile", pidfile});
  wait_job(id, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; });
  int wpid = farmtest::read_port_file(pidfile);
  ASSERT_GT(wpid, 0);
  ASSERT_TRUE(farmtest::process_alive(wpid));
  auto t0 = std::chrono::steady_clock::now();
  auto c = ctl({"cancel", id, "--reason", "test"});
  ASSERT_EQ(c.code, 0) << c.err;
  auto w = ctl({"watch", id});
  EXPECT_EQ(w.code, 1);
  EXPECT_NE(w.out.find("cancelled"), std::string::npos) << w.out;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_TRUE(farmtest::wait_until([&] { return !farmtest::process_alive(wpid); }, 5s));
  EXPECT_EQ(client().get(id).state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(FarmE2E, TimeoutKillsAHungWorkload) {
  start_farmd();
  start_agent("t");
  auto id = submit_fake({"--mode", "hang"}, [](v1::JobSpec& s) { s.set_timeout_s(1); });
  auto j = wait_terminal(id);
  EXPECT_EQ(j.state(), v1::JOB_STATE_TIMED_OUT);
  EXPECT_EQ(j.attempts(), 1u);  // a hang is a result, not retried
  EXPECT_NE(j.result().log_tail().find("fake-workload: mode=hang"), std::string::npos) << j.result().log_tail();
}

TEST_F(FarmE2E, TlsEndToEnd) {
  std::string cert, key;
  ASSERT_TRUE(farmtest::make_cert(dir.path, &cert, &key));
  start_farmd({"--tls-cert", cert, "--tls-key", key});
  ca = cert;
  start_agent("secure", {"--ca", cert});
  auto r = farmtest::run({FARMCTL_BIN, "--server", address, "--token", kClientTok, "--ca", cert, "submit", "--wait"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("passed"), std::string::npos) << r.out;
  ca.clear();
  auto plain = ctl({"jobs"});
  EXPECT_EQ(plain.code, 2);
  EXPECT_NE(plain.err.find("UNAVAILABLE"), std::string::npos) << plain.err;
}

TEST_F(FarmE2E, SshExecutorWithSerialConsoleAndPowerCycle) {
  int master = -1, slave = -1;
  char name[256] = {};
  ASSERT_EQ(::openpty(&master, &slave, name, nullptr, nullptr), 0);
  start_farmd({"--quarantine-after", "0"});
  std::string board = dir / "board";
  std::filesystem::create_directories(board);
  std::map<std::string, std::string> env{{"POWER_LOG", dir / "power.log"},
                                         {"FAKE_SSH_LOG", dir / "ssh.log"},
                                         {"FAKE_SSH_DOWN", dir / "board-down"}};
  start_agent("board1",
              {"--executor", "ssh", "--arch", "riscv64", "--isa", "rv64gc", "--label", "board=visionfive2",
               "--ssh-host", "root@board1", "--ssh", kScripts + "/fake-ssh", "--scp", kScripts + "/fake-scp",
               "--remote-dir", board, "--serial", name, "--power-cycle", kScripts + "/power-cycle.sh",
               "--boot-poll-ms", "100", "--boot-timeout", "10", "--patch-stress", kFake, "--kernel", "6.6.0-vf2",
               "--allow-command", "--allow-command-binary", kFake},
              env);
  auto ws = client().workers();
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_EQ(ws[0].capabilities().kind(), "board");
  EXPECT_EQ(ws[0].capabilities().kernel(), "6.6.0-vf2");

  // 1. a passing patch-stress run: the agent's binary is copied to the board and run there
  auto quick = submit({"--executor", "board", "--label", "board=visionfive2", "--isa", "rv64gc"});
  auto qj = wait_terminal(quick);
  ASSERT_EQ(qj.state(), v1::JOB_STATE_PASSED) << qj.message() << qj.result().log_tail();
  // 1b. a longer run (a command on the operator's list): the serial console is logged while it runs
  auto id = submit_fake({"--sleep", "1.5"}, [](v1::JobSpec& s) {
    s.mutable_selector()->set_kind("board");
    (*s.mutable_selector()->mutable_labels())["board"] = "visionfive2";
    s.mutable_selector()->set_isa("rv64gc");
  });
  wait_job(id, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; });
  std::this_thread::sleep_for(300ms);
  std::string msg = "[ 12.345] visionfive2 kernel: serial says hello\r\n";
  ASSERT_EQ(::write(master, msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
  auto j = wait_terminal(id);
  ASSERT_EQ(j.state(), v1::JOB_STATE_PASSED) << j.message() << j.result().log_tail();
  EXPECT_NE(logs_of(id, "serial").find("serial says hello"), std::string::npos);
  auto ssh_log = farm::read_file(dir / "ssh.log");
  EXPECT_NE(ssh_log.find("scp " + kFake + " root@board1:" + board), std::string::npos) << ssh_log;
  EXPECT_NE(ssh_log.find("./patch-stress"), std::string::npos) << ssh_log;
  EXPECT_NE(ssh_log.find("rm -rf"), std::string::npos) << ssh_log;

  // 2. a hung board: timeout, then the power-cycle command runs
  auto hang = submit_fake({"--mode", "hang"}, [](v1::JobSpec& s) {
    s.mutable_selector()->set_kind("board");
    s.set_timeout_s(1);
  });
  auto hj = wait_terminal(hang);
  EXPECT_EQ(hj.state(), v1::JOB_STATE_TIMED_OUT);
  EXPECT_NE(hj.result().message().find("power-cycled"), std::string::npos) << hj.result().message();
  auto power = farm::read_file(dir / "power.log");
  EXPECT_NE(power.find("reason=job timed out"), std::string::npos) << power;
  EXPECT_NE(power.find("job=" + hang), std::string::npos) << power;

  // 3. an unreachable board: power-cycled, the attempt is an infrastructure
  //    error and the job is retried (and passes once the board is back)
  { std::ofstream(dir / "board-down") << "x"; }
  auto down = submit({"--executor", "board"});
  auto dj = wait_terminal(down);
  ASSERT_EQ(dj.state(), v1::JOB_STATE_PASSED) << dj.message();
  ASSERT_EQ(dj.attempt_history_size(), 2);
  EXPECT_EQ(dj.attempt_history(0).outcome(), v1::OUTCOME_INFRA_ERROR);
  EXPECT_NE(farm::read_file(dir / "power.log").find("board unreachable"), std::string::npos);
  ::close(master);
  ::close(slave);
}

TEST_F(FarmE2E, QemuSystemExecutorBootsImages) {
  start_farmd();
  // jobs name images; the agent maps the names to its files (farmd refuses paths)
  std::vector<std::string> images;
  for (std::string what : {"pass", "fail", "hang", "missing"}) {
    std::string p = dir / (what + ".img");
    std::ofstream(p) << what << "\n";
    images.insert(images.end(), {"--image", what + "=" + p});
  }
  std::vector<std::string> args{"--executor", "qemu-system", "--arch", "riscv64", "--qemu",
                                kScripts + "/fake-qemu-system.sh", "--smp", "4"};
  args.insert(args.end(), images.begin(), images.end());
  start_agent("qsys", args);
  std::filesystem::remove(dir / "missing.img");  // gone after the agent checked it at start
  auto pass = submit({"--image", "pass", "--smp", "2"});
  auto fail = submit({"--image", "fail"});
  auto hang = submit({"--image", "hang", "--timeout", "1"});
  auto pj = wait_terminal(pass);
  EXPECT_EQ(pj.state(), v1::JOB_STATE_PASSED) << pj.message();
  EXPECT_EQ(pj.result().calls(), 400u);
  EXPECT_NE(pj.result().result_json().find("\"harts\":2"), std::string::npos);
  EXPECT_NE(logs_of(pass, "console").find("OpenSBI (fake)"), std::string::npos);
  EXPECT_EQ(wait_terminal(fail).state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(wait_terminal(hang).state(), v1::JOB_STATE_TIMED_OUT);
  // an image that does not exist on the agent is an infrastructure error
  auto missing = submit({"--image", "missing", "--max-attempts", "1"});
  auto mj = wait_terminal(missing);
  EXPECT_EQ(mj.state(), v1::JOB_STATE_ERROR);
  EXPECT_NE(mj.message().find("not readable"), std::string::npos) << mj.message();
}

namespace {
// A raw RISC-V S-mode payload for `qemu-system-riscv64 -M virt -bios default
// -kernel`: prints a JSON line on the UART and exits through the sifive_test
// device (pass), or spins forever (hang).
std::string riscv_image(bool hang, const std::string& line) {
  auto lui = [](uint32_t rd, uint32_t imm20) { return (imm20 << 12) | (rd << 7) | 0x37u; };
  auto addi = [](uint32_t rd, uint32_t rs1, int32_t imm) {
    return (static_cast<uint32_t>(imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13u;
  };
  auto store = [](uint32_t f3, uint32_t rs2, uint32_t rs1) { return (rs2 << 20) | (rs1 << 15) | (f3 << 12) | 0x23u; };
  std::vector<uint32_t> code;
  const uint32_t t0 = 5, t1 = 6, t2 = 7, a0 = 10;
  if (!hang) {
    code.push_back(lui(t2, 0x10000));  // ns16550 UART at 0x10000000
    for (char ch : line) {
      code.push_back(addi(a0, 0, ch));
      code.push_back(store(0, a0, t2));  // sb a0, 0(t2)
    }
    code.push_back(lui(t0, 0x100));      // sifive_test at 0x100000
    code.push_back(lui(t1, 0x5));
    code.push_back(addi(t1, t1, 0x555)); // FINISHER_PASS
    code.push_back(store(2, t1, t0));    // sw t1, 0(t0)
  }
  code.push_back(0x0000006f);            // j .
  return std::string(reinterpret_cast<const char*>(code.data()), code.size() * 4);
}
}  // namespace

TEST_F(FarmE2E, QemuSystemRealEmulator) {
  if (::access("/usr/bin/qemu-system-riscv64", X_OK) != 0) GTEST_SKIP() << "qemu-system-riscv64 not installed";
  start_farmd();
  std::string good = dir / "good.bin", spin = dir / "spin.bin";
  std::ofstream(good, std::ios::binary)
      << riscv_image(false, "{\"workload\":\"baremetal\",\"harts\":2,\"calls\":77,\"hits\":33,\"batches\":4,\"verdict\":\"pass\"}\n");
  std::ofstream(spin, std::ios::binary) << riscv_image(true, "");
  start_agent("qemu-rv", {"--executor", "qemu-system", "--arch", "riscv64", "--smp", "2", "--image", "good=" + good,
                          "--image", "spin=" + spin});
  auto ok = submit({"--image", "good", "--smp", "2", "--timeout", "30"});
  auto hung = submit({"--image", "spin", "--timeout", "3"});
  auto oj = wait_terminal(ok, 40s);
  EXPECT_EQ(oj.state(), v1::JOB_STATE_PASSED) << oj.message() << oj.result().log_tail();
  EXPECT_EQ(oj.result().calls(), 77u);
  EXPECT_EQ(oj.result().exit_code(), 0);
  auto hj = wait_terminal(hung, 40s);
  EXPECT_EQ(hj.state(), v1::JOB_STATE_TIMED_OUT);
  EXPECT_NE(logs_of(hung, "console").find("OpenSBI"), std::string::npos);
}

TEST_F(FarmE2E, QemuUserRunsCrossBuiltWorkload) {
#ifndef FAKE_WORKLOAD_RISCV64
  GTEST_SKIP() << "no riscv64 cross compiler at configure time";
#else
  if (::access("/usr/bin/qemu-riscv64", X_OK) != 0) GTEST_SKIP() << "qemu-riscv64 not installed";
  start_farmd();
  start_agent("rv-user", {"--executor", "qemu-user", "--arch", "riscv64", "--isa", "rv64gc", "--patch-stress",
                          FAKE_WORKLOAD_RISCV64});
  auto r = ctl({"--json", "submit", "--arch", "riscv64", "--isa", "rv64g", "--executor", "qemu-user", "--seed", "9",
                "--wait"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto last = r.out.substr(r.out.rfind("\n{") == std::string::npos ? 0 : r.out.rfind("\n{") + 1);
  auto j = json::parse(last);
  EXPECT_EQ(j["state"], "passed");
  EXPECT_EQ(j["result"]["arch"], "riscv64");
  EXPECT_EQ(j["result"]["seed"], 9);
  EXPECT_EQ(j["calls"], 42);
#endif
}

TEST_F(FarmE2E, RealPatchStressEndToEnd) {
#ifndef PATCH_STRESS_BIN
  GTEST_SKIP() << "patch-stress is not built in this tree";
#else
  start_farmd();
  start_agent("stress", {"--patch-stress", PATCH_STRESS_BIN});
  auto r = ctl({"submit", "--threads", "2", "--functions", "16", "--batches", "200", "--seed", "1", "--timeout", "60",
                "--wait"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  auto jobs = json::parse(ctl({"--json", "jobs"}).out);
  ASSERT_EQ(jobs.size(), 1u);
  auto res = json::parse(ctl({"--json", "results", jobs[0]["id"].get<std::string>()}).out);
  EXPECT_EQ(res[0]["verdict"], "pass") << res.dump(2);
  EXPECT_EQ(res[0]["result"]["workload"], "patch-stress");
  EXPECT_GT(res[0]["calls"].get<uint64_t>(), 0u);
#endif
}

TEST_F(FarmE2E, RealBaremetalImageOnQemuSystem) {
#ifndef BAREMETAL_IMAGE
  GTEST_SKIP() << "the bare-metal image is not built in this tree";
#else
  if (::access("/usr/bin/qemu-system-riscv64", X_OK) != 0) GTEST_SKIP() << "qemu-system-riscv64 not installed";
  start_farmd();
  start_agent("rv-bm", {"--executor", "qemu-system", "--arch", "riscv64", "--isa", "rv64gc", "--smp", "2", "--image",
                        std::string("baremetal-rv64gc=") + BAREMETAL_IMAGE});
  auto r = ctl({"submit", "--image", "baremetal-rv64gc", "--smp", "2", "--arch", "riscv64", "--isa", "rv64gc",
                "--executor", "qemu-system", "--timeout", "60", "--append",
                "sync=rfence batch=all burst=2 toggles=2000 seed=1", "--wait"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  auto jobs = json::parse(ctl({"--json", "jobs"}).out);
  ASSERT_EQ(jobs.size(), 1u);
  auto res = json::parse(ctl({"--json", "results", jobs[0]["id"].get<std::string>()}).out);
  EXPECT_EQ(res[0]["verdict"], "pass") << res.dump(2);
  EXPECT_EQ(res[0]["result"]["workload"], "baremetal");
  EXPECT_EQ(res[0]["result"]["harts"], 2);
  EXPECT_GT(res[0]["calls"].get<uint64_t>(), 0u);
#endif
}

// ---- issue 17: --metrics-listen (/metrics and the live page) ----

namespace {

// One HTTP/1.1 GET on 127.0.0.1:port, read until the server closes: {head, body}.
std::pair<std::string, std::string> http_get(int port, const std::string& path) {
  namespace asio = boost::asio;
  asio::io_context ioc;
  asio::ip::tcp::socket s(ioc);
  s.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  asio::write(s, asio::buffer(req));
  std::string all;
  char buf[4096];
  boost::system::error_code ec;
  for (;;) {
    const size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) break;
    all.append(buf, n);
  }
  const size_t p = all.find("\r\n\r\n");
  if (p == std::string::npos) return {all, ""};
  return {all.substr(0, p + 2), all.substr(p + 4)};
}

// Headless Chromium with the flags of tests/conformance/browser_test.sh (the
// conformance report's browser test): "" if none is installed.
std::string find_chromium() {
  for (const char* b : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (::access(b, X_OK) == 0) return b;
  return "";
}

farmtest::CmdResult chromium(const std::string& browser, const std::string& profile, std::vector<std::string> extra,
                             const std::string& url) {
  std::vector<std::string> a{browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             "--no-first-run", "--user-data-dir=" + profile, "--virtual-time-budget=3000"};
  a.insert(a.end(), extra.begin(), extra.end());
  a.push_back(url);
  return farmtest::run(a, 60s);
}

}  // namespace

// A real farmd with --metrics-listen 127.0.0.1:0, one agent, two jobs run to
// completion (one passes, one fails) and one left queued (a selector no
// worker matches): /metrics has the counts, the farm's state and the worker;
// the live page renders in Chromium with the worker, the queue and the
// finished jobs (their log tails), and the conformance run.
TEST_F(FarmE2E, MetricsEndpointAndLivePage) {
  const double t0 = double(farm::now_ms()) / 1000.0;
  start_farmd({"--metrics-listen", "127.0.0.1:0", "--metrics-port-file", dir / "metrics-port"});
  const int mport = farmtest::read_port_file(dir / "metrics-port");
  ASSERT_GT(mport, 0) << "no metrics port; see " << (dir / "farmd.log");
  EXPECT_NE(mport, port);
  start_agent("metrics-agent", {"--label", "lab=south"});

  auto pass_id = submit_fake({"--mode", "pass", "--seed", "7"}, [](v1::JobSpec& s) {
    s.set_name("metrics-pass");
    (*s.mutable_tags())["suite"] = "conformance";
    (*s.mutable_tags())["run"] = "r-metrics-1";
  });
  auto fail_id = submit_fake({"--mode", "fail", "--seed", "8"}, [](v1::JobSpec& s) {
    s.set_name("metrics-fail");
    (*s.mutable_tags())["suite"] = "conformance";
    (*s.mutable_tags())["run"] = "r-metrics-1";
  });
  EXPECT_EQ(wait_terminal(pass_id).state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(wait_terminal(fail_id).state(), v1::JOB_STATE_FAILED);
  v1::JobSpec unmatched;
  unmatched.set_name("metrics-waits");
  unmatched.mutable_workload()->mutable_command()->add_argv(kFake);
  unmatched.mutable_selector()->set_arch("riscv64");
  unmatched.mutable_selector()->set_kind("qemu-user");
  (*unmatched.mutable_selector()->mutable_labels())["lab"] = "north";
  const std::string queued_id = client().submit(unmatched, true).id();

  auto [head, body] = http_get(mport, "/metrics");
  EXPECT_NE(head.find("HTTP/1.1 200"), std::string::npos) << head;
  EXPECT_NE(head.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"), std::string::npos) << head;
  const auto e = farmtest::parse(body);
  using farmtest::sample_value;
  EXPECT_EQ(e.type.at("farm_jobs_submitted_total"), "counter");
  EXPECT_EQ(sample_value(e, "farm_jobs_submitted_total"), 3) << body;
  EXPECT_EQ(sample_value(e, "farm_jobs", {{"state", "passed"}}), 1) << body;
  EXPECT_EQ(sample_value(e, "farm_jobs", {{"state", "failed"}}), 1) << body;
  EXPECT_EQ(sample_value(e, "farm_jobs", {{"state", "queued"}}), 1) << body;
  EXPECT_EQ(sample_value(e, "farm_jobs", {{"state", "running"}}), 0) << body;
  EXPECT_EQ(sample_value(e, "farm_queue_depth", {{"selector", "arch=riscv64,kind=qemu-user,labels.lab=north"}}), 1)
      << body;
  EXPECT_EQ(farmtest::samples_of(e, "farm_queue_depth").size(), 1u) << body;
  EXPECT_EQ(sample_value(e, "farm_attempts_total", {{"outcome", "pass"}}), 1) << body;
  EXPECT_EQ(sample_value(e, "farm_attempts_total", {{"outcome", "fail"}}), 1) << body;
  EXPECT_EQ(sample_value(e, "farm_attempt_run_seconds_count", {{"outcome", "pass"}}), 1) << body;
  EXPECT_EQ(sample_value(e, "farm_queue_wait_seconds_count"), 2) << body;
  EXPECT_EQ(sample_value(e, "farm_lease_expiries_total"), 0) << body;
  EXPECT_EQ(sample_value(e, "farm_workers", {{"health", "healthy"}}), 1) << body;
  EXPECT_EQ(sample_value(e, "farm_workers", {{"health", "offline"}}), 0) << body;
  const double seen =
      sample_value(e, "farm_worker_last_seen_timestamp_seconds", {{"worker", "metrics-agent"}, {"lab", "south"}});
  EXPECT_GE(seen, t0 - 1) << body;
  EXPECT_LE(seen, double(farm::now_ms()) / 1000.0 + 1) << body;

  auto [phead, page] = http_get(mport, "/");
  EXPECT_NE(phead.find("HTTP/1.1 200"), std::string::npos) << phead;
  EXPECT_NE(phead.find("Content-Type: text/html; charset=utf-8"), std::string::npos) << phead;
  EXPECT_NE(phead.find("Content-Security-Policy: default-src 'none'"), std::string::npos) << phead;
  EXPECT_NE(phead.find("Refresh: 5"), std::string::npos) << phead;
  EXPECT_NE(page.find("fake-workload: mode=pass seed=7"), std::string::npos) << "the log tail is on the page";

  const std::string browser = find_chromium();
  if (browser.empty()) GTEST_SKIP() << "no chromium installed (apt-get install chromium): the page was not rendered";
  const std::string url = "http://127.0.0.1:" + std::to_string(mport) + "/";
  auto dom = chromium(browser, dir / "chromium-profile", {"--dump-dom"}, url);
  ASSERT_EQ(dom.code, 0) << dom.err;
  for (const std::string& want : {std::string("metrics-agent"), std::string("lab=south"), queued_id,
                                  std::string("metrics-waits"), std::string("arch=riscv64,kind=qemu-user,labels.lab=north"),
                                  pass_id, fail_id, std::string("metrics-pass"), std::string("metrics-fail"),
                                  std::string("r-metrics-1"), std::string("<table id=\"workers\""),
                                  std::string("<table id=\"queue\""), std::string("<table id=\"recent\""),
                                  std::string("<table id=\"conformance\"")})
    EXPECT_NE(dom.out.find(want), std::string::npos) << want << " is not in the DOM:\n" << dom.out;
  // the run: one passed, one failed
  EXPECT_TRUE(std::regex_search(dom.out, std::regex("<td>r-metrics-1</td><td>[^<]*</td><td class=\"n passed\">1</td>"
                                                    "<td class=\"n failed\">1</td>")))
      << dom.out;
  const std::string png = dir / "page.png";
  auto shot = chromium(browser, dir / "chromium-profile", {"--screenshot=" + png, "--window-size=1200,900"}, url);
  ASSERT_EQ(shot.code, 0) << shot.err;
  std::string bytes;
  ASSERT_NO_THROW(bytes = farm::read_file(png)) << shot.err;
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(bytes.size(), 10000u) << "a blank page compresses to a few kB";
}

// The flags' bad values: each refused with the reason, before anything is served.
TEST(FarmdMetricsFlags, BadValuesAreRefusedWithTheReason) {
  farmtest::TempDir dir;
  auto farmd = [&](std::vector<std::string> extra) {
    std::vector<std::string> a{FARMD_BIN, "--no-auth", "--db", dir / "farm.db", "--listen", "127.0.0.1:0"};
    a.insert(a.end(), extra.begin(), extra.end());
    return farmtest::run(a, 30s);
  };
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string msg;
  };
  const std::vector<Case> cases{
      {{"--metrics-listen", "9100"}, 2, "--metrics-listen: invalid listen address '9100': expected HOST:PORT"},
      {{"--metrics-listen", ":9100"}, 2, "--metrics-listen: invalid listen address ':9100': the host is empty"},
      {{"--metrics-listen", "127.0.0.1:99999"}, 2, "the port must be a number in 0-65535"},
      {{"--metrics-listen", "::1:9100"}, 2, "an IPv6 host must be in brackets"},
      {{"--metrics-port-file", dir / "mp"}, 2, "--metrics-port-file needs --metrics-listen"},
      {{"--metrics-listen", "127.0.0.1:0", "--metrics-port-file", dir / "nodir/mp"}, 1,
       "cannot write the port file " + dir / "nodir/mp" + ": directory " + dir / "nodir" + " does not exist"},
      {{"--metrics-listen", "127.0.0.1:0", "--port-file", dir / "p", "--metrics-port-file", dir / "p"}, 2,
       "--metrics-port-file and --port-file name the same file"},
  };
  for (const auto& c : cases) {
    auto r = farmd(c.args);
    EXPECT_EQ(r.code, c.code) << c.args[0] << " " << c.args[1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.msg), std::string::npos) << r.err;
  }
  // A port in use: farmd does not start (and says which flag).
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor taken(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const std::string addr = "127.0.0.1:" + std::to_string(taken.local_endpoint().port());
  auto r = farmd({"--metrics-listen", addr});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("--metrics-listen: cannot listen for HTTP on " + addr), std::string::npos) << r.err;
}
