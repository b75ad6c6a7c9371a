// Issue 12, agent side: a client token must never choose what runs on an
// agent. These tests hold whatever farmd does at SubmitJob:
//  * AgentPolicy*: the agent's own rules (farm/agent/policy.hpp), on hand-built
//    JobSpecs, one hostile value per field and the legitimate values beside them;
//  * AgentExecutorRefuses: the real executors with hostile specs; programs that
//    would leave a marker file if they ran;
//  * AgentForgedLease: the real farm-agent binary fed hostile leases by a fake
//    farmd (a farmd bug or a forged lease), and its robustness against farmd
//    answers (wrong token, name taken, SIGTERM hand-back);
//  * AgentSecurityE2E: real farmd + farm-agent, hostile jobs submitted through
//    the client API with a client token (farmd may refuse them first: both are
//    fine, nothing may run), plus positive controls;
//  * AgentCli: start-up checks and --help.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <set>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>
#include <gtest/gtest.h>

#include "farm/agent/executor.hpp"
#include "farm/agent/policy.hpp"
#include "farm/common/names.hpp"
#include "farm/ctl/client.hpp"
#include "farm/v1/farm.grpc.pb.h"
#include "farm_store.hpp"
#include "farm_test_util.hpp"

namespace v1 = farm::v1;
namespace fs = std::filesystem;
using farm::agent::Admission;
using farm::agent::Admitted;
using farm::agent::CommandHost;
using farm::agent::ExecutorConfig;
using farm::agent::JobContext;
using farm::agent::Policy;
using farmtest::Proc;
using namespace std::chrono_literals;

namespace {

const std::string kScripts = FARM_SCRIPTS;
const std::string kFake = kScripts + "/fake-workload.sh";
const std::string kClientTok = "sec-client-token";
const std::string kAgentTok = "sec-agent-token";

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

void add_all(google::protobuf::RepeatedPtrField<std::string>* field, const std::vector<std::string>& values) {
  for (const auto& v : values) *field->Add() = v;
}

std::string write_script(const std::string& path, const std::string& body) {
  std::ofstream(path) << "#!/bin/sh\n" << body;
  ::chmod(path.c_str(), 0755);
  return path;
}

JobContext job(const v1::JobSpec& spec, const std::string& id = "j-test01") {
  JobContext c;
  c.job_id = id;
  c.worker = "unit";
  c.attempt = 1;
  c.spec = spec;
  return c;
}

v1::JobSpec stress_spec() {
  v1::JobSpec s;
  s.set_seed(7);
  s.mutable_workload()->mutable_patch_stress();
  return s;
}

ExecutorConfig native_cfg() {
  ExecutorConfig c;
  c.binaries["patch-stress"] = kFake;
  return c;
}

// Refused, and the message names `field`.
#define EXPECT_REFUSED(adm, field)                                                       \
  do {                                                                                   \
    const Admission& a_ = (adm);                                                         \
    EXPECT_FALSE(a_) << "accepted; argv: " << (a_.job ? farm::agent::shell_join(a_.job->argv()) : ""); \
    EXPECT_EQ(a_.refusal.rfind("refused", 0), 0u) << a_.refusal;                         \
    EXPECT_TRUE(contains(a_.refusal, field)) << a_.refusal;                              \
  } while (0)

// ---------------------------------------------------------------- a fake farmd

// FarmAgent service handing out whatever leases a test pushes (forged ones
// included) and recording what the agent reports.
class FakeFarmd final : public v1::FarmAgent::Service {
 public:
  grpc::Status Register(grpc::ServerContext*, const v1::RegisterRequest* req, v1::RegisterResponse* resp) override {
    std::lock_guard lk(mu_);
    ++registrations_;
    if (!register_status_.ok()) return register_status_;
    resp->set_worker_id(req->name());
    resp->set_session("session-" + std::to_string(registrations_));
    resp->set_heartbeat_interval_ms(200);
    resp->set_lease_ttl_ms(5000);
    caps_ = req->capabilities();
    cv_.notify_all();
    return grpc::Status::OK;
  }
  grpc::Status AcquireJob(grpc::ServerContext*, const v1::AcquireJobRequest* req,
                          v1::AcquireJobResponse* resp) override {
    std::unique_lock lk(mu_);
    if (!acquire_status_.ok()) return acquire_status_;
    auto wait = std::chrono::milliseconds(std::min<uint32_t>(req->wait_ms(), 300));  // short: quick shutdown
    cv_.wait_for(lk, wait, [&] { return !queue_.empty(); });
    if (!queue_.empty()) {
      *resp->mutable_lease() = queue_.front();
      queue_.pop_front();
    }
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req, v1::HeartbeatResponse*) override {
    std::lock_guard lk(mu_);
    if (req->leaving()) ++leaving_;
    return grpc::Status::OK;
  }
  grpc::Status ReportProgress(grpc::ServerContext*, const v1::ReportProgressRequest* req,
                              v1::ReportProgressResponse*) override {
    std::lock_guard lk(mu_);
    for (const auto& l : req->logs()) logs_[req->lease().job_id()] += l.data();
    running_.insert(req->lease().job_id());
    cv_.notify_all();
    return grpc::Status::OK;
  }
  grpc::Status CompleteJob(grpc::ServerContext*, const v1::CompleteJobRequest* req,
                           v1::CompleteJobResponse* resp) override {
    std::lock_guard lk(mu_);
    results_[req->lease().job_id()] = req->result();
    resp->set_job_state(farm::state_for_outcome(req->result().outcome()));
    cv_.notify_all();
    return grpc::Status::OK;
  }

  void push(const std::string& id, const v1::JobSpec& spec) {
    v1::Lease l;
    l.set_job_id(id);
    l.set_attempt(1);
    *l.mutable_spec() = spec;
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(l));
    cv_.notify_all();
  }
  std::optional<v1::JobResult> result(const std::string& id, std::chrono::milliseconds t = 20s) {
    std::unique_lock lk(mu_);
    if (!cv_.wait_for(lk, t, [&] { return results_.count(id) > 0; })) return std::nullopt;
    return results_[id];
  }
  bool wait_running(const std::string& id, std::chrono::milliseconds t = 20s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, t, [&] { return running_.count(id) > 0; });
  }
  bool wait_registered(std::chrono::milliseconds t = 15s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, t, [&] { return registrations_ > 0 && register_status_.ok(); });
  }
  std::string logs(const std::string& id) {
    std::lock_guard lk(mu_);
    return logs_[id];
  }
  v1::Capabilities caps() {
    std::lock_guard lk(mu_);
    return caps_;
  }
  void set_register_status(grpc::Status s) {
    std::lock_guard lk(mu_);
    register_status_ = std::move(s);
  }
  void set_acquire_status(grpc::Status s) {
    std::lock_guard lk(mu_);
    acquire_status_ = std::move(s);
  }
  int registrations() {
    std::lock_guard lk(mu_);
    return registrations_;
  }
  int leaving() {
    std::lock_guard lk(mu_);
    return leaving_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::Lease> queue_;
  std::map<std::string, v1::JobResult> results_;
  std::map<std::string, std::string> logs_;
  std::set<std::string> running_;
  v1::Capabilities caps_;
  grpc::Status register_status_ = grpc::Status::OK, acquire_status_ = grpc::Status::OK;
  int registrations_ = 0, leaving_ = 0;
};

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  ::close(fd);
  return ntohs(a.sin_port);
}

int exit_code(int wait_status) { return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1; }

// ---------------------------------------------------------------- fixture

class AgentSecurity : public ::testing::Test {
 protected:
  void TearDown() override {
    agents.clear();
    if (farmd) {
      farmd->kill(SIGTERM);
      farmd->wait(5s);
    }
    if (fake_server) fake_server->Shutdown(std::chrono::system_clock::now() + 2s);
  }

  // A fake farmd in this process (hands out forged leases).
  void start_fake() {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&fake);
    fake_server = b.BuildAndStart();
    ASSERT_TRUE(fake_server);
    address = "127.0.0.1:" + std::to_string(port);
  }

  // The real farmd.
  void start_farmd(int fixed_port = 0) {
    std::error_code ec;
    fs::remove(dir / "port", ec);
    farmd = std::make_unique<Proc>(
        std::vector<std::string>{FARMD_BIN, "--listen", "127.0.0.1:" + std::to_string(fixed_port), "--db",
                                 farmtest::db(dir), "--client-token", kClientTok, "--agent-token", kAgentTok,
                                 "--port-file", dir / "port", "--lease-ttl-ms", "3000", "--exit-with-parent"},
        dir / "farmd.log");
    port = farmtest::read_port_file(dir / "port");
    ASSERT_GT(port, 0) << "farmd did not start; see " << (dir / "farmd.log");
    address = "127.0.0.1:" + std::to_string(port);
  }

  std::vector<std::string> agent_argv(const std::string& name, const std::vector<std::string>& extra,
                                      const std::string& token = kAgentTok) {
    std::vector<std::string> a{FARM_AGENT_BIN, "--server", address, "--token", token, "--name", name,
                               "--acquire-wait-ms", "300", "--kill-grace-ms", "500", "--exit-with-parent"};
    if (std::find(extra.begin(), extra.end(), "--work-dir") == extra.end())
      a.insert(a.end(), {"--work-dir", dir / ("work-" + name)});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  Proc* start_agent(const std::string& name, std::vector<std::string> extra,
                    std::map<std::string, std::string> env = {}, const std::string& token = kAgentTok) {
    agents.push_back(std::make_unique<Proc>(agent_argv(name, extra, token), log_of(name), env));
    return agents.back().get();
  }
  std::string log_of(const std::string& name) { return dir / ("agent-" + name + ".log"); }
  std::string read_log(const std::string& name) {
    try {
      return farm::read_file(log_of(name));
    } catch (...) {
      return {};
    }
  }

  farm::ChannelOptions chan() {
    farm::ChannelOptions o;
    o.address = address;
    o.token = kClientTok;
    return o;
  }
  bool wait_worker(const std::string& name, std::chrono::milliseconds t = 15s) {
    return farmtest::wait_until([&] {
      try {
        for (auto& w : farm::ctl::Client(chan()).workers())
          if (w.id() == name && w.state() != v1::WORKER_STATE_OFFLINE) return true;
      } catch (...) {
      }
      return false;
    }, t);
  }

  // Submits with a client token through the client API (no farmctl). farmd
  // may refuse the job itself (nullopt); otherwise the terminal job.
  std::optional<v1::Job> submit_and_wait(const v1::JobSpec& spec, std::string* submit_error = nullptr) {
    farm::ctl::Client c(chan());
    v1::Job j;
    try {
      j = c.submit(spec);
    } catch (const farm::ctl::RpcError& e) {
      if (submit_error) *submit_error = e.what();
      return std::nullopt;
    }
    farmtest::wait_until([&] {
      j = c.get(j.id(), true);
      return farm::is_terminal(j.state());
    }, 30s, 50ms);
    return j;
  }

  farmtest::TempDir dir;
  FakeFarmd fake;
  std::unique_ptr<grpc::Server> fake_server;
  std::unique_ptr<Proc> farmd;
  int port = 0;
  std::string address;
  std::vector<std::unique_ptr<Proc>> agents;
};

// The agent refused the job itself, or farmd refused it at submit (also
// fine): either way the job did not pass and did not burn attempts.
void expect_refused_somewhere(const std::optional<v1::Job>& j, const std::string& submit_error,
                              const std::string& field) {
  if (!j) {
    EXPECT_TRUE(contains(submit_error, "INVALID_ARGUMENT") || contains(submit_error, "FAILED_PRECONDITION") ||
                contains(submit_error, "PERMISSION_DENIED"))
        << submit_error;
    return;
  }
  EXPECT_EQ(j->state(), v1::JOB_STATE_ERROR) << j->message();
  EXPECT_EQ(j->result().outcome(), v1::OUTCOME_REFUSED) << j->result().message();
  EXPECT_EQ(j->attempts(), 1u) << "a refused job must not be retried";
  EXPECT_EQ(j->result().message().rfind("refused", 0), 0u) << j->result().message();
  EXPECT_TRUE(contains(j->result().message(), field)) << j->result().message();
}

}  // namespace

// ================================================================ policy (unit)

TEST(AgentPolicy, PatchStressBinaryIsNeverHonoured) {
  Policy p(native_cfg(), CommandHost::local);
  for (const std::string& bin : std::vector<std::string>{"/usr/bin/qemu-x86_64", "/bin/sh", "patch-stress", kFake}) {
    auto s = stress_spec();
    s.mutable_workload()->mutable_patch_stress()->set_binary(bin);
    EXPECT_REFUSED(p.admit(job(s)), "PatchStress.binary is chosen by the agent");
  }
}

TEST(AgentPolicy, ExtraArgsNeedTheOperatorsOptIn) {
  Policy p(native_cfg(), CommandHost::local);
  auto s = stress_spec();
  add_all(s.mutable_workload()->mutable_patch_stress()->mutable_extra_args(), {"/bin/sh", "-c", "id > owned.txt"});
  auto adm = p.admit(job(s));
  EXPECT_REFUSED(adm, "PatchStress.extra_args");
  EXPECT_TRUE(contains(adm.refusal, "--allow-command")) << adm.refusal;
}

TEST(AgentPolicy, ExtraArgsMustMatchTheAllowList) {
  auto cfg = native_cfg();
  cfg.allow_command = true;
  cfg.allow_args = {"--mode", "pass|fail|hang", "--sleep", "[0-9]+(\\.[0-9]+)?"};
  Policy p(cfg, CommandHost::local);
  auto with = [&](std::vector<std::string> args) {
    auto s = stress_spec();
    for (auto& a : args) s.mutable_workload()->mutable_patch_stress()->add_extra_args(a);
    return p.admit(job(s));
  };
  auto ok = with({"--mode", "fail", "--sleep", "1.5"});
  ASSERT_TRUE(ok) << ok.refusal;
  EXPECT_EQ(ok.job->argv(), (std::vector<std::string>{kFake, "--seed", "7", "--mode", "fail", "--sleep", "1.5"}));
  // whole-argument matches: a prefix that matches is not enough
  EXPECT_REFUSED(with({"--mode", "pass; touch /tmp/owned"}), "PatchStress.extra_args[1]");
  EXPECT_REFUSED(with({"-c"}), "PatchStress.extra_args[0]");
  EXPECT_REFUSED(with({"--mode", std::string("pass\0x", 6)}), "NUL");
  EXPECT_REFUSED(with({std::string(2000, '1')}), "longer than");
  EXPECT_REFUSED(with(std::vector<std::string>(65, "--mode")), "more than 64");
}

TEST(AgentPolicy, TypedFieldsFollowExactRules) {
  Policy p(native_cfg(), CommandHost::local);
  using PS = v1::PatchStress;
  struct Case {
    const char* field;
    std::function<void(PS&)> set;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  std::vector<Case> hostile = {
      {"PatchStress.threads", [](PS& s) { s.set_threads(257); }},
      {"PatchStress.threads", [](PS& s) { s.set_threads(4000000000u); }},
      {"PatchStress.functions", [](PS& s) { s.set_functions(257); }},
      {"PatchStress.batches", [](PS& s) { s.set_batches(100'000'001); }},
      {"PatchStress.duration_s", [&](PS& s) { s.set_duration_s(nan); }},
      {"PatchStress.duration_s", [&](PS& s) { s.set_duration_s(inf); }},
      {"PatchStress.duration_s", [&](PS& s) { s.set_duration_s(-inf); }},
      {"PatchStress.duration_s", [](PS& s) { s.set_duration_s(-1); }},
      {"PatchStress.duration_s", [](PS& s) { s.set_duration_s(86400.5); }},
      {"exclusive", [](PS& s) { s.set_duration_s(1); s.set_batches(5); }},
      {"PatchStress.writer", [](PS& s) { s.set_writer("mprotect; touch /tmp/owned"); }},
      {"PatchStress.writer", [](PS& s) { s.set_writer("--help"); }},
      {"PatchStress.sync", [](PS& s) { s.set_sync("membarrier\n"); }},
      {"PatchStress.sync", [](PS& s) { s.set_sync("$(id)"); }},
      {"PatchStress.probe_kind", [](PS& s) { s.set_probe_kind("jump trap"); }},
      {"PatchStress.sites", [](PS& s) { s.set_sites("middle"); }},
      {"PatchStress.exit_probes", [](PS& s) { s.set_exit_probes(true); s.set_sites("body"); }},
  };
  for (const auto& c : hostile) {
    auto s = stress_spec();
    c.set(*s.mutable_workload()->mutable_patch_stress());
    SCOPED_TRACE(c.field);
    EXPECT_REFUSED(p.admit(job(s)), c.field);
  }
  // Boundary values and every accepted word pass.
  std::vector<std::function<void(PS&)>> fine = {
      [](PS& s) { s.set_threads(256); s.set_functions(256); s.set_batches(100'000'000); },
      [](PS& s) { s.set_threads(1); s.set_functions(1); s.set_duration_s(86400); },
      [](PS& s) { s.set_duration_s(0.25); },
  };
  for (const char* w : {"mprotect", "procmem", "default"}) fine.push_back([w](PS& s) { s.set_writer(w); });
  for (const char* y : {"default", "membarrier", "flush_icache", "signal"})
    fine.push_back([y](PS& s) { s.set_sync(y); });
  for (const char* k : {"jump", "trap", "auto"}) fine.push_back([k](PS& s) { s.set_probe_kind(k); });
  for (const char* i : {"entry", "body"}) fine.push_back([i](PS& s) { s.set_sites(i); });
  for (const char* i : {"", "entry"}) fine.push_back([i](PS& s) { s.set_sites(i); s.set_exit_probes(true); });
  for (const auto& f : fine) {
    auto s = stress_spec();
    f(*s.mutable_workload()->mutable_patch_stress());
    auto a = p.admit(job(s));
    EXPECT_TRUE(a) << a.refusal << " for " << s.ShortDebugString();
  }
}

TEST(AgentPolicy, ArgvIsBuiltFromTheConfiguredBinaryAndTypedFieldsOnly) {
  Policy p(native_cfg(), CommandHost::local);
  auto s = stress_spec();
  auto* ps = s.mutable_workload()->mutable_patch_stress();
  ps->set_threads(4);
  ps->set_functions(64);
  ps->set_batches(1000);
  ps->set_writer("procmem");
  ps->set_sync("signal");
  ps->set_probe_kind("trap");
  ps->set_sites("body");
  auto a = p.admit(job(s));
  ASSERT_TRUE(a) << a.refusal;
  EXPECT_EQ(a.job->argv(), (std::vector<std::string>{kFake, "--threads", "4", "--functions", "64", "--batches", "1000",
                                                     "--seed", "7", "--writer", "procmem", "--sync", "signal",
                                                     "--kind", "trap", "--sites", "body"}));
  EXPECT_TRUE(a.job->require_json);
  ps->set_sites("entry");
  ps->set_exit_probes(true);
  auto e = p.admit(job(s));
  ASSERT_TRUE(e) << e.refusal;
  EXPECT_EQ(e.job->argv().back(), "--exit-probes");
  EXPECT_EQ(e.job->argv()[e.job->argv().size() - 2], "entry");
  EXPECT_TRUE(a.job->env.empty());
}

TEST(AgentPolicy, PatchStressBinaryPerIsaIsTheOperatorsChoice) {
  farmtest::TempDir d;
  auto rv64g = write_script(d / "ps-rv64g", "exit 0\n");
  auto cfg = native_cfg();
  cfg.binaries["patch-stress@rv64g"] = rv64g;
  Policy p(cfg, CommandHost::local);
  auto for_isa = [&](const std::string& isa) {
    auto s = stress_spec();
    s.mutable_selector()->set_isa(isa);
    auto a = p.admit(job(s));
    EXPECT_TRUE(a) << a.refusal;
    return a.job ? a.job->program : std::string();
  };
  EXPECT_EQ(for_isa("rv64g"), rv64g);
  EXPECT_EQ(for_isa("rv64gc"), kFake);
  EXPECT_EQ(for_isa(""), kFake);
  EXPECT_EQ(for_isa("../../bin/sh"), kFake);  // only ever a key into the operator's map
  Policy none(ExecutorConfig{}, CommandHost::local);
  EXPECT_REFUSED(none.admit(job(stress_spec())), "no patch-stress binary");
}

TEST(AgentPolicy, BaremetalImageIsTheNameOfAConfiguredImage) {
  farmtest::TempDir d;
  std::ofstream(d / "good.img") << "pass\n";
  ExecutorConfig cfg;
  cfg.images["bm-rv64gc"] = d / "good.img";
  Policy p(cfg, CommandHost::local);
  auto image = [&](const std::string& name) {
    v1::JobSpec s;
    s.mutable_workload()->mutable_baremetal()->set_image(name);
    return p.admit(job(s));
  };
  auto ok = image("bm-rv64gc");
  ASSERT_TRUE(ok) << ok.refusal;
  EXPECT_EQ(ok.job->image_path, d / "good.img");
  EXPECT_EQ(ok.job->machine, "virt");
  EXPECT_EQ(ok.job->memory, "256M");
  EXPECT_EQ(ok.job->smp, 4u);
  auto path = image("/etc/shadow");
  EXPECT_REFUSED(path, "BaremetalImage.image");
  EXPECT_TRUE(contains(path.refusal, "paths are the agent's")) << path.refusal;
  EXPECT_TRUE(contains(path.refusal, "bm-rv64gc")) << path.refusal;  // lists the known names
  EXPECT_REFUSED(image(d / "good.img"), "BaremetalImage.image");
  EXPECT_REFUSED(image("../good.img"), "BaremetalImage.image");
  EXPECT_REFUSED(image(""), "BaremetalImage.image");
  EXPECT_REFUSED(image("-kernel"), "BaremetalImage.image");
  auto unknown = image("bm-rv64g");
  EXPECT_REFUSED(unknown, "not an image of this agent; known: bm-rv64gc");
}

TEST(AgentPolicy, BaremetalMachineMemoryAndSmpAreChecked) {
  farmtest::TempDir d;
  std::ofstream(d / "i.img") << "pass\n";
  ExecutorConfig cfg;
  cfg.images["img"] = d / "i.img";
  cfg.allow_machines = {"sifive_u"};
  Policy p(cfg, CommandHost::local);
  auto bm = [&](std::function<void(v1::BaremetalImage&)> f) {
    v1::JobSpec s;
    auto* b = s.mutable_workload()->mutable_baremetal();
    b->set_image("img");
    f(*b);
    return p.admit(job(s));
  };
  EXPECT_REFUSED(bm([](auto& b) { b.set_machine("virt,dumpdtb=/tmp/x"); }), "BaremetalImage.machine");
  EXPECT_REFUSED(bm([](auto& b) { b.set_machine("none"); }), "BaremetalImage.machine");
  EXPECT_REFUSED(bm([](auto& b) { b.set_memory("1T"); }), "BaremetalImage.memory");
  EXPECT_REFUSED(bm([](auto& b) { b.set_memory("256M -monitor stdio"); }), "BaremetalImage.memory");
  EXPECT_REFUSED(bm([](auto& b) { b.set_memory("1234567M"); }), "BaremetalImage.memory");
  EXPECT_REFUSED(bm([](auto& b) { b.set_smp(65); }), "BaremetalImage.smp");
  auto fine = bm([](auto& b) {
    b.set_machine("sifive_u");
    b.set_memory("2G");
    b.set_smp(64);
  });
  ASSERT_TRUE(fine) << fine.refusal;
  EXPECT_EQ(fine.job->machine, "sifive_u");
  EXPECT_EQ(fine.job->memory, "2G");
  EXPECT_EQ(fine.job->smp, 64u);
  EXPECT_TRUE(bm([](auto& b) { b.set_machine("virt"); }));
}

TEST(AgentPolicy, BaremetalAppendIsAKernelCommandLineOfKeyValueWords) {
  farmtest::TempDir d;
  std::ofstream(d / "i.img") << "pass\n";
  ExecutorConfig cfg;
  cfg.images["img"] = d / "i.img";
  Policy p(cfg, CommandHost::local);
  auto with = [&](const std::string& append) {
    v1::JobSpec s;
    s.mutable_workload()->mutable_baremetal()->set_image("img");
    s.mutable_workload()->mutable_baremetal()->set_append(append);
    return p.admit(job(s));
  };
  auto ok = with("sync=rfence batch=all burst=2 toggles=2000 seed=1");
  ASSERT_TRUE(ok) << ok.refusal;
  EXPECT_EQ(ok.job->append, "sync=rfence batch=all burst=2 toggles=2000 seed=1");
  for (const char* bad : {"x=1; touch /tmp/owned", "$(id)", "a=`id`", "x=1\n-monitor", "x='1'", "a|b", "x=/etc"}) {
    SCOPED_TRACE(bad);
    EXPECT_REFUSED(with(bad), "BaremetalImage.append");
  }
  EXPECT_REFUSED(with(std::string(257, 'a')), "BaremetalImage.append is longer than 256");
}

TEST(AgentPolicy, BaremetalExtraArgsNeedOptInAndAllowList) {
  farmtest::TempDir d;
  std::ofstream(d / "i.img") << "pass\n";
  ExecutorConfig cfg;
  cfg.images["img"] = d / "i.img";
  auto with = [&](const Policy& p, std::vector<std::string> args) {
    v1::JobSpec s;
    auto* b = s.mutable_workload()->mutable_baremetal();
    b->set_image("img");
    for (auto& a : args) b->add_extra_args(a);
    return p.admit(job(s));
  };
  Policy closed(cfg, CommandHost::local);
  EXPECT_REFUSED(with(closed, {"-append", "toggles=10"}), "BaremetalImage.extra_args");
  cfg.allow_command = true;
  cfg.allow_args = {"-append", "([a-z_]+=[A-Za-z0-9._-]+ ?)+"};
  Policy open(cfg, CommandHost::local);
  auto ok = with(open, {"-append", "sync=rfence toggles=2000 seed=1"});
  ASSERT_TRUE(ok) << ok.refusal;
  EXPECT_EQ(ok.job->emulator_args, (std::vector<std::string>{"-append", "sync=rfence toggles=2000 seed=1"}));
  EXPECT_REFUSED(with(open, {"-kernel", "/etc/shadow"}), "BaremetalImage.extra_args[0] '-kernel'");
  EXPECT_REFUSED(with(open, {"-append", "x=1", "-monitor", "tcp::4444,server"}), "BaremetalImage.extra_args[2]");
}

TEST(AgentPolicy, CommandsNeedOptInAndAnAllowedProgram) {
  farmtest::TempDir d;
  auto cmd = [](std::vector<std::string> argv) {
    v1::JobSpec s;
    s.mutable_workload()->mutable_command();
    for (auto& a : argv) s.mutable_workload()->mutable_command()->add_argv(a);
    return s;
  };
  Policy closed(native_cfg(), CommandHost::local);
  EXPECT_REFUSED(closed.admit(job(cmd({"/bin/true"}))), "--allow-command");

  auto cfg = native_cfg();
  cfg.allow_command = true;
  cfg.allow_command_binaries = {"/bin/true"};
  Policy p(cfg, CommandHost::local);
  auto ok = p.admit(job(cmd({"/bin/true", "a", "b"})));
  ASSERT_TRUE(ok) << ok.refusal;
  EXPECT_EQ(ok.job->argv(), (std::vector<std::string>{"/bin/true", "a", "b"}));
  // the same file under another name runs the operator's path
  ::symlink("/bin/true", (d / "alias").c_str());
  auto alias = p.admit(job(cmd({d / "alias"})));
  ASSERT_TRUE(alias) << alias.refusal;
  EXPECT_EQ(alias.job->program, "/bin/true");
  ::symlink("/bin/sh", (d / "sh-alias").c_str());
  EXPECT_REFUSED(p.admit(job(cmd({d / "sh-alias", "-c", "touch /tmp/owned"}))), "Command.argv[0]");
  EXPECT_REFUSED(p.admit(job(cmd({"/bin/sh", "-c", "id"}))),
                 "not on this agent's --allow-command-binary list (/bin/true)");
  EXPECT_REFUSED(p.admit(job(cmd({"true"}))), "must be an absolute path");
  EXPECT_REFUSED(p.admit(job(cmd({d / "missing"}))), "Command.argv[0]");
  EXPECT_REFUSED(p.admit(job(cmd({}))), "Command.argv is empty");
  // on a board the list is compared literally (no local realpath)
  auto rcfg = cfg;
  rcfg.binaries.clear();
  rcfg.allow_command_binaries = {"/usr/local/bin/board-test"};
  Policy remote(rcfg, CommandHost::remote);
  EXPECT_TRUE(remote.admit(job(cmd({"/usr/local/bin/board-test"}))));
  EXPECT_REFUSED(remote.admit(job(cmd({"/bin/sh"}))), "Command.argv[0]");
}

TEST(AgentPolicy, CommandEnvironmentIsChecked) {
  auto cfg = native_cfg();
  cfg.allow_command = true;
  cfg.allow_command_binaries = {"/bin/true"};
  auto env_job = [](const std::string& k, const std::string& v) {
    v1::JobSpec s;
    auto* c = s.mutable_workload()->mutable_command();
    c->add_argv("/bin/true");
    (*c->mutable_env())[k] = v;
    return s;
  };
  Policy p(cfg, CommandHost::local);
  for (const char* k : {"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PATH", "QEMU_GDB", "QEMU_LD_PREFIX",
                        "FARM_JOB_ID", "BASH_ENV", "ENV", "IFS", "PYTHONPATH", "GLIBC_TUNABLES", "GCONV_PATH"}) {
    SCOPED_TRACE(k);
    EXPECT_REFUSED(p.admit(job(env_job(k, "/tmp/evil.so"))), std::string("Command.env ") + k);
  }
  for (const char* k : {"A B", "X=1;touch /tmp/owned;Y", "1X", "", "$(id)"}) {
    SCOPED_TRACE(k);
    EXPECT_REFUSED(p.admit(job(env_job(k, "v"))), "Command.env name");
  }
  EXPECT_REFUSED(p.admit(job(env_job("GOOD", std::string("a\0b", 3)))), "NUL");
  auto fine = p.admit(job(env_job("STRESS_LEVEL", "3; rm -rf / # quoted, never interpreted")));
  ASSERT_TRUE(fine) << fine.refusal;
  EXPECT_EQ(fine.job->env.at("STRESS_LEVEL"), "3; rm -rf / # quoted, never interpreted");
  cfg.allow_env = {"LD_LIBRARY_PATH"};
  Policy opted(cfg, CommandHost::local);
  EXPECT_TRUE(opted.admit(job(env_job("LD_LIBRARY_PATH", "/opt/lib"))));
  EXPECT_FALSE(opted.admit(job(env_job("LD_PRELOAD", "/opt/lib/x.so"))));
}

TEST(AgentPolicy, JobIdsMustBeOnePathComponent) {
  for (const char* id : {"../x", "../../etc", "a/b", "/abs", "", ".", "..", "-rf", ".hidden", "x\ny", "a b"})
    EXPECT_FALSE(farm::agent::job_id_problem(id).empty()) << id;
  EXPECT_FALSE(farm::agent::job_id_problem(std::string(200, 'a')).empty());
  for (const char* id : {"j-0123456789ab", "job.1", "A_b-c"}) EXPECT_EQ(farm::agent::job_id_problem(id), "") << id;
  EXPECT_EQ(farm::agent::printable("a\nb\x1b"), "a\\x0ab\\x1b");
}

TEST(AgentPolicy, OperatorConfigurationIsCheckedAtStart) {
  farmtest::TempDir d;
  std::ofstream(d / "plain") << "not executable\n";
  auto throws = [](const ExecutorConfig& c, const std::string& want, CommandHost h = CommandHost::local) {
    try {
      Policy p(c, h);
      ADD_FAILURE() << "accepted; expected: " << want;
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(contains(e.what(), want)) << e.what();
    }
  };
  ExecutorConfig c;
  c.binaries["patch-stress"] = d / "missing";
  throws(c, "cannot execute " + (d / "missing") + ": No such file or directory");
  c.binaries["patch-stress"] = d / "plain";
  throws(c, "cannot execute " + (d / "plain") + ": Permission denied");
  c.binaries["patch-stress"] = d.path;
  throws(c, "is a directory");
  c.binaries.clear();
  c.binaries["python"] = "/usr/bin/python3";
  throws(c, "unknown workload");
  c.binaries.clear();
  c.binaries["patch-stress@../x"] = kFake;
  throws(c, "the ISA after '@'");

  ExecutorConfig i;
  i.images["../../etc/passwd"] = "/etc/passwd";
  throws(i, "an image name is");
  i.images.clear();
  i.images["img"] = d / "missing.img";
  throws(i, "cannot read image");

  ExecutorConfig a;
  a.allow_command = true;
  throws(a, "--allow-command needs an allow-list");
  a.allow_command = false;
  a.allow_args = {".*"};
  throws(a, "only with --allow-command");
  a.allow_command = true;
  a.allow_args = {"(unclosed"};
  throws(a, "not a valid regular expression");
  a.allow_args.clear();
  a.allow_command_binaries = {"sh"};
  throws(a, "must be an absolute path");
  a.allow_command_binaries = {d / "plain"};
  throws(a, "cannot execute");
  a.allow_command_binaries = {"/bin/true"};
  a.allow_env = {"BAD NAME"};
  throws(a, "--allow-env");
}

// ================================================================ executors

TEST(AgentExecutorRefuses, HostileSpecsRunNothingOnAnyExecutor) {
  farmtest::TempDir d;
  const std::string marker = d / "owned.txt";
  // A program that leaves the marker whenever it is run, whatever its arguments.
  auto trap = write_script(d / "trap", "echo \"$0 $*\" >> " + marker + "\n");
  auto run = [&](ExecutorConfig cfg, const v1::JobSpec& spec, const std::string& field) {
    auto ex = farm::agent::make_executor(cfg);
    auto ctx = job(spec);
    ctx.work_dir = d.path;
    std::string notes;
    ctx.output = [&](std::string_view st, std::string_view data) {
      if (st == "agent") notes.append(data);
    };
    auto r = ex->run(ctx);
    EXPECT_EQ(r.outcome(), v1::OUTCOME_REFUSED) << r.message();
    EXPECT_TRUE(farm::agent::is_refused(r)) << r.message();
    EXPECT_TRUE(contains(r.message(), field)) << r.message();
    EXPECT_TRUE(contains(notes, "refused")) << "the job's own log says why: " << notes;
    EXPECT_FALSE(fs::exists(marker)) << "something ran: " << farm::read_file(marker);
  };
  // The tester's finding: binary = qemu-x86_64 running a shell.
  auto rce = stress_spec();
  rce.mutable_workload()->mutable_patch_stress()->set_binary("/usr/bin/qemu-x86_64");
  add_all(rce.mutable_workload()->mutable_patch_stress()->mutable_extra_args(), {"/bin/sh", "-c", "id > " + marker});
  for (std::string kind : {"native", "qemu-user"}) {
    SCOPED_TRACE(kind);
    ExecutorConfig cfg;
    cfg.kind = kind;
    cfg.qemu = trap;
    cfg.binaries["patch-stress"] = trap;
    run(cfg, rce, "PatchStress.binary");
    auto extra = stress_spec();
    extra.mutable_workload()->mutable_patch_stress()->add_extra_args("--anything");
    run(cfg, extra, "PatchStress.extra_args");
    auto word = stress_spec();
    word.mutable_workload()->mutable_patch_stress()->set_writer("mprotect\n--evil");
    run(cfg, word, "PatchStress.writer");
    v1::JobSpec cmd;
    add_all(cmd.mutable_workload()->mutable_command()->mutable_argv(), {"/bin/sh", "-c", "touch " + marker});
    run(cfg, cmd, "Command workloads need");
  }
  // qemu-system: image paths, machine words, emulator arguments.
  std::ofstream(d / "ok.img") << "pass\n";
  ExecutorConfig qs;
  qs.kind = "qemu-system";
  qs.qemu = trap;
  qs.images["ok"] = d / "ok.img";
  v1::JobSpec bm;
  bm.mutable_workload()->mutable_baremetal()->set_image("/etc/shadow");
  run(qs, bm, "BaremetalImage.image");
  bm.mutable_workload()->mutable_baremetal()->set_image("ok");
  bm.mutable_workload()->mutable_baremetal()->set_machine("virt -monitor stdio");
  run(qs, bm, "BaremetalImage.machine");
  bm.mutable_workload()->mutable_baremetal()->clear_machine();
  bm.mutable_workload()->mutable_baremetal()->add_extra_args("-monitor");
  run(qs, bm, "BaremetalImage.extra_args");
  // ssh: nothing is sent to the board for a refused job; env names cannot inject shell.
  ExecutorConfig sc;
  sc.kind = "ssh";
  sc.ssh = trap;
  sc.scp = trap;
  sc.ssh_host = "root@board";
  sc.remote_dir = d / "board";
  sc.binaries["patch-stress"] = kFake;
  sc.allow_command = true;
  sc.allow_command_binaries = {"/bin/true"};
  run(sc, rce, "PatchStress.binary");
  v1::JobSpec envj;
  envj.mutable_workload()->mutable_command()->add_argv("/bin/true");
  (*envj.mutable_workload()->mutable_command()->mutable_env())["X=1;touch " + marker + ";Y"] = "v";
  run(sc, envj, "Command.env name");
  v1::JobSpec shj;
  shj.mutable_workload()->mutable_command()->add_argv("/bin/sh");
  run(sc, shj, "Command.argv[0]");
}

TEST(AgentExecutorRefuses, SshSettingsCannotBecomeOptionsOrShell) {
  auto throws = [](ExecutorConfig c, const std::string& want) {
    c.kind = "ssh";
    try {
      farm::agent::make_executor(c);
      ADD_FAILURE() << "accepted; expected: " << want;
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(contains(e.what(), want)) << e.what();
    }
  };
  ExecutorConfig c;
  throws(c, "needs --ssh-host");
  c.ssh_host = "-oProxyCommand=touch /tmp/owned";
  throws(c, "--ssh-host");
  c.ssh_host = "root@board;id";
  throws(c, "--ssh-host");
  c.ssh_host = "root@board";
  c.remote_dir = "tmp/x";
  throws(c, "absolute");
  c.remote_dir = "/tmp/$(id)";
  throws(c, "--remote-dir");
  c.remote_dir = "/tmp/../etc";
  throws(c, "..");
  c.remote_dir = "/tmp/farm-agent";
  EXPECT_NO_THROW(farm::agent::make_executor([&] { auto k = c; k.kind = "ssh"; return k; }()));
}

TEST(AgentExecutorRefuses, SshRunsTheAdmittedCommandLineOnly) {
  // A legitimate board job through fake ssh/scp: the remote command line is
  // the quoted, admitted one, the env value stays a value.
  farmtest::TempDir d;
  fs::create_directories(d / "board");
  ::setenv("FAKE_SSH_LOG", (d / "ssh.log").c_str(), 1);
  ExecutorConfig sc;
  sc.kind = "ssh";
  sc.ssh = kScripts + "/fake-ssh";
  sc.scp = kScripts + "/fake-scp";
  sc.ssh_host = "root@board";
  sc.remote_dir = d / "board";
  sc.binaries["patch-stress"] = kFake;
  sc.allow_command = true;
  sc.allow_command_binaries = {"/bin/echo"};
  auto ex = farm::agent::make_executor(sc);
  v1::JobSpec s;
  s.mutable_workload()->mutable_command()->add_argv("/bin/echo");
  s.mutable_workload()->mutable_command()->add_argv("$(touch " + (d / "owned") + ")");
  (*s.mutable_workload()->mutable_command()->mutable_env())["GREETING"] = "`touch " + (d / "owned2") + "`";
  auto ctx = job(s);
  ctx.work_dir = d.path;
  std::string out;
  ctx.output = [&](std::string_view st, std::string_view data) {
    if (st == "stdout") out.append(data);
  };
  auto r = ex->run(ctx);
  ::unsetenv("FAKE_SSH_LOG");
  EXPECT_EQ(r.outcome(), v1::OUTCOME_PASS) << r.message() << r.log_tail();
  EXPECT_TRUE(contains(out, "$(touch ")) << out;  // printed, not executed
  EXPECT_FALSE(fs::exists(d / "owned"));
  EXPECT_FALSE(fs::exists(d / "owned2"));
}

// ================================================================ forged leases (fake farmd)

TEST_F(AgentSecurity, ForgedLeasesRunNothing) {
  start_fake();
  const std::string marker = dir / "owned.txt";
  fs::create_directories(dir / "a/b");
  // --work-dir two levels down so that "../../x" would land inside `dir`
  Proc* a = start_agent("forged", {"--patch-stress", kFake, "--work-dir", dir / "a/b/work"});
  ASSERT_TRUE(fake.wait_registered()) << read_log("forged");

  struct Hostile {
    std::string id, field;
    v1::JobSpec spec;
  };
  std::vector<Hostile> jobs;
  {
    auto s = stress_spec();  // the tester's command, verbatim
    s.mutable_workload()->mutable_patch_stress()->set_binary("/usr/bin/qemu-x86_64");
    add_all(s.mutable_workload()->mutable_patch_stress()->mutable_extra_args(), {"/bin/sh", "-c", "id > " + marker});
    jobs.push_back({"j-binary", "PatchStress.binary", s});
  }
  {
    auto s = stress_spec();  // fake-workload.sh writes --pidfile if it runs
    add_all(s.mutable_workload()->mutable_patch_stress()->mutable_extra_args(), {"--pidfile", marker});
    jobs.push_back({"j-extra", "PatchStress.extra_args", s});
  }
  {
    auto s = stress_spec();
    s.mutable_workload()->mutable_patch_stress()->set_sync("signal --pidfile " + marker);
    jobs.push_back({"j-sync", "PatchStress.sync", s});
  }
  {
    v1::JobSpec s;
    add_all(s.mutable_workload()->mutable_command()->mutable_argv(), {"/bin/sh", "-c", "touch " + marker});
    jobs.push_back({"j-command", "Command workloads need", s});
  }
  {
    v1::JobSpec s;
    s.mutable_workload()->mutable_baremetal()->set_image("/etc/shadow");
    jobs.push_back({"j-image", "BaremetalImage.image", s});
  }
  jobs.push_back({"../../escape", "job id", stress_spec()});
  jobs.push_back({"x/../../../escape2", "job id", stress_spec()});
  for (const auto& h : jobs) fake.push(h.id, h.spec);
  for (const auto& h : jobs) {
    SCOPED_TRACE(h.id);
    auto r = fake.result(h.id);
    ASSERT_TRUE(r) << "no completion; agent log:\n" << read_log("forged");
    EXPECT_EQ(r->outcome(), v1::OUTCOME_REFUSED) << r->message();
    EXPECT_EQ(r->message().rfind("refused", 0), 0u) << r->message();
    EXPECT_TRUE(contains(r->message(), h.field)) << r->message();
  }
  EXPECT_FALSE(fs::exists(marker)) << "a hostile lease ran something";
  EXPECT_FALSE(fs::exists(dir / "a/escape-1")) << "a job id escaped the work dir";
  EXPECT_FALSE(fs::exists(dir / "escape2-1"));
  // still in service: a legitimate lease runs the configured workload
  auto good = stress_spec();
  good.mutable_workload()->mutable_patch_stress()->set_threads(2);
  fake.push("j-good", good);
  auto r = fake.result("j-good");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome(), v1::OUTCOME_PASS) << r->message() << r->log_tail();
  EXPECT_TRUE(contains(r->result_json(), "\"threads\":2")) << r->result_json();
  EXPECT_TRUE(a->alive());
  // outcomes are logged by name, refusals with their reason
  auto log = read_log("forged");
  EXPECT_TRUE(contains(log, "job j-good attempt 1: pass")) << log;
  EXPECT_TRUE(contains(log, "job j-binary attempt 1: refused (refused: PatchStress.binary")) << log;
  EXPECT_FALSE(contains(log, "attempt 1: 1 ")) << log;
}

TEST_F(AgentSecurity, OptInExtraArgsAreMatchedAndLogged) {
  start_fake();
  const std::string marker = dir / "pid";
  start_agent("optin", {"--patch-stress", kFake, "--allow-command", "--allow-arg=--mode", "--allow-arg", "pass|fail"});
  ASSERT_TRUE(fake.wait_registered()) << read_log("optin");
  auto fail = stress_spec();
  for (const char* x : {"--mode", "fail"}) fail.mutable_workload()->mutable_patch_stress()->add_extra_args(x);
  fake.push("j-fail", fail);
  auto hostile = stress_spec();
  add_all(hostile.mutable_workload()->mutable_patch_stress()->mutable_extra_args(), {"--pidfile", marker});
  fake.push("j-pidfile", hostile);
  auto r = fake.result("j-fail");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome(), v1::OUTCOME_FAIL) << r->message();  // the workload's own verdict: the args reached it
  EXPECT_EQ(r->verdict(), "fail");
  auto h = fake.result("j-pidfile");
  ASSERT_TRUE(h);
  EXPECT_TRUE(contains(h->message(), "refused: PatchStress.extra_args[0] '--pidfile' matches no --allow-arg"))
      << h->message();
  EXPECT_FALSE(fs::exists(marker));
  auto log = read_log("optin");
  EXPECT_TRUE(contains(
      log, "job j-fail: --allow-command: accepted PatchStress.extra_args[1] 'fail' (--allow-arg 'pass|fail')"))
      << log;
  // the capabilities say what this agent runs: no "command" without --allow-command-binary
  auto caps = fake.caps();
  EXPECT_EQ(std::vector<std::string>(caps.workloads().begin(), caps.workloads().end()),
            std::vector<std::string>{"patch-stress"});
}

TEST_F(AgentSecurity, SigtermHandsBackTheRunningJob) {
  start_fake();
  auto sleeper = write_script(dir / "sleeper", "echo started; exec sleep 30\n");
  Proc* a = start_agent("leaving", {"--patch-stress", sleeper});
  ASSERT_TRUE(fake.wait_registered());
  fake.push("j-long", stress_spec());
  ASSERT_TRUE(fake.wait_running("j-long"));
  std::this_thread::sleep_for(200ms);
  a->kill(SIGTERM);
  auto r = fake.result("j-long", 10s);
  ASSERT_TRUE(r) << read_log("leaving");
  EXPECT_EQ(r->outcome(), v1::OUTCOME_HANDED_BACK) << r->message();
  EXPECT_TRUE(contains(r->message(), "agent shut down")) << r->message();
  EXPECT_EQ(exit_code(a->wait(10s)), 0);
  EXPECT_TRUE(contains(read_log("leaving"), "handed-back")) << read_log("leaving");
  EXPECT_EQ(fake.leaving(), 1) << "the session is ended at farmd (Heartbeat leaving)";
}

TEST_F(AgentSecurity, NameTakenByALiveAgentStopsWithAClearError) {
  start_fake();
  fake.set_register_status(grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "worker twin has a live session"));
  Proc* a = start_agent("twin", {"--patch-stress", kFake});
  int st = a->wait(15s);
  ASSERT_NE(st, -1) << "kept retrying; log:\n" << read_log("twin");
  EXPECT_EQ(exit_code(st), 1);
  auto log = read_log("twin");
  EXPECT_TRUE(contains(log, "another agent is registered as twin")) << log;
  EXPECT_TRUE(contains(log, "farm-agent: error:")) << log;
  EXPECT_EQ(fake.registrations(), 1);
}

TEST_F(AgentSecurity, TokenRevokedLaterStopsWithAClearError) {
  start_fake();
  Proc* a = start_agent("revoked", {"--patch-stress", kFake});
  ASSERT_TRUE(fake.wait_registered());
  fake.set_acquire_status(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown token"));
  int st = a->wait(15s);
  ASSERT_NE(st, -1) << read_log("revoked");
  EXPECT_EQ(exit_code(st), 1);
  EXPECT_TRUE(contains(read_log("revoked"), "farmd refused the agent token (UNAUTHENTICATED: unknown token)"))
      << read_log("revoked");
}

// ================================================================ real farmd

TEST_F(AgentSecurity, TheTestersRemoteCodeExecutionIsRefused) {
  start_farmd();
  // An agent started without --allow-command, as in the report.
  start_agent("a1", {"--patch-stress", kFake});
  ASSERT_TRUE(wait_worker("a1")) << read_log("a1");
  const std::string owned = dir / "owned.txt";
  v1::JobSpec s;
  s.mutable_selector()->set_worker_id("a1");
  auto* p = s.mutable_workload()->mutable_patch_stress();
  p->set_binary("/usr/bin/qemu-x86_64");
  add_all(p->mutable_extra_args(), {"/bin/sh", "-c", "id > " + owned});
  std::string err;
  auto j = submit_and_wait(s, &err);
  expect_refused_somewhere(j, err, "PatchStress.binary");
  EXPECT_FALSE(fs::exists(owned)) << farm::read_file(owned);
  // the refusal neither quarantined the agent nor counted as an infrastructure failure
  auto ws = farm::ctl::Client(chan()).workers();
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_NE(ws[0].state(), v1::WORKER_STATE_QUARANTINED);
  EXPECT_EQ(ws[0].infra_failures(), 0u);
}

TEST_F(AgentSecurity, EveryHostileFieldThroughFarmdIsRefused) {
  start_farmd();
  std::ofstream(dir / "ok.img") << "pass\n";
  const std::string marker = dir / "owned";
  auto qemu_log = dir / "qemu.log";
  auto qemu = write_script(dir / "qemu", "echo \"$*\" >> " + qemu_log + "\nexec " + kScripts +
                                             "/fake-qemu-system.sh \"$@\"\n");
  start_agent("n1", {"--patch-stress", kFake, "--allow-command", "--allow-command-binary", "/bin/true"});
  start_agent("q1", {"--executor", "qemu-system", "--arch", "riscv64", "--qemu", qemu, "--image",
                     "ok=" + (dir / "ok.img")});
  ASSERT_TRUE(wait_worker("n1")) << read_log("n1");
  ASSERT_TRUE(wait_worker("q1")) << read_log("q1");

  struct Case {
    std::string what, worker, field;
    std::function<void(v1::JobSpec&)> set;
  };
  auto ps = [](v1::JobSpec& s) { return s.mutable_workload()->mutable_patch_stress(); };
  auto bm = [](v1::JobSpec& s) {
    auto* b = s.mutable_workload()->mutable_baremetal();
    b->set_image("ok");
    return b;
  };
  std::vector<Case> cases = {
      {"binary", "n1", "PatchStress.binary", [&](auto& s) { ps(s)->set_binary("/bin/sh"); }},
      {"extra_args", "n1", "PatchStress.extra_args",
       [&](auto& s) { add_all(ps(s)->mutable_extra_args(), {"--pidfile", marker}); }},
      {"writer", "n1", "PatchStress.writer", [&](auto& s) { ps(s)->set_writer("mprotect --pidfile " + marker); }},
      {"sync", "n1", "PatchStress.sync", [&](auto& s) { ps(s)->set_sync("x"); }},
      {"probe_kind", "n1", "PatchStress.probe_kind", [&](auto& s) { ps(s)->set_probe_kind("x"); }},
      {"sites", "n1", "PatchStress.sites", [&](auto& s) { ps(s)->set_sites("x"); }},
      {"threads", "n1", "PatchStress.threads", [&](auto& s) { ps(s)->set_threads(100000); }},
      {"functions", "n1", "PatchStress.functions", [&](auto& s) { ps(s)->set_functions(100000); }},
      {"duration", "n1", "PatchStress.duration_s", [&](auto& s) { ps(s)->set_duration_s(std::nan("")); }},
      {"command", "n1", "Command.argv[0]", [&](auto& s) {
         add_all(s.mutable_workload()->mutable_command()->mutable_argv(),
                 {"/bin/sh", "-c", "touch " + marker});
       }},
      {"command env", "n1", "Command.env LD_PRELOAD", [&](auto& s) {
         s.mutable_workload()->mutable_command()->add_argv("/bin/true");
         (*s.mutable_workload()->mutable_command()->mutable_env())["LD_PRELOAD"] = marker;
       }},
      {"image path", "q1", "BaremetalImage.image", [&](auto& s) { bm(s)->set_image(dir / "ok.img"); }},
      {"image name", "q1", "BaremetalImage.image", [&](auto& s) { bm(s)->set_image("../ok.img"); }},
      {"image extra_args", "q1", "BaremetalImage.extra_args",
       [&](auto& s) { add_all(bm(s)->mutable_extra_args(), {"-monitor", "stdio"}); }},
      {"machine", "q1", "BaremetalImage.machine", [&](auto& s) { bm(s)->set_machine("virt,dumpdtb=" + marker); }},
      {"memory", "q1", "BaremetalImage.memory", [&](auto& s) { bm(s)->set_memory("256M -monitor"); }},
      {"smp", "q1", "BaremetalImage.smp", [&](auto& s) { bm(s)->set_smp(200); }},
      {"append", "q1", "BaremetalImage.append", [&](auto& s) { bm(s)->set_append("x=1;touch " + marker); }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    v1::JobSpec s;
    s.set_name("hostile " + c.what);
    s.mutable_selector()->set_worker_id(c.worker);
    s.set_max_attempts(3);
    c.set(s);
    std::string err;
    auto j = submit_and_wait(s, &err);
    expect_refused_somewhere(j, err, c.field);
  }
  EXPECT_FALSE(fs::exists(marker));
  EXPECT_FALSE(fs::exists(qemu_log)) << "the emulator ran: " << farm::read_file(qemu_log);

  // Positive controls on the same agents: the configured workload and image run.
  v1::JobSpec good;
  good.mutable_selector()->set_worker_id("n1");
  good.mutable_workload()->mutable_patch_stress()->set_threads(3);
  auto gj = submit_and_wait(good);
  ASSERT_TRUE(gj);
  EXPECT_EQ(gj->state(), v1::JOB_STATE_PASSED) << gj->message();
  EXPECT_TRUE(contains(gj->result().result_json(), "\"threads\":3"));
  v1::JobSpec img;
  img.mutable_selector()->set_worker_id("q1");
  img.mutable_workload()->mutable_baremetal()->set_image("ok");
  img.mutable_workload()->mutable_baremetal()->set_smp(2);
  img.mutable_workload()->mutable_baremetal()->set_append("sync=rfence toggles=10");
  auto ij = submit_and_wait(img);
  ASSERT_TRUE(ij);
  EXPECT_EQ(ij->state(), v1::JOB_STATE_PASSED) << ij->message() << ij->result().log_tail();
  EXPECT_TRUE(contains(farm::read_file(qemu_log), "-kernel " + (dir / "ok.img") + " -append sync=rfence toggles=10"))
      << farm::read_file(qemu_log);
  v1::JobSpec cmd;
  cmd.mutable_selector()->set_worker_id("n1");
  cmd.mutable_workload()->mutable_command()->add_argv("/bin/true");
  auto cj = submit_and_wait(cmd);
  ASSERT_TRUE(cj);
  EXPECT_EQ(cj->state(), v1::JOB_STATE_PASSED) << cj->message();
  EXPECT_TRUE(contains(read_log("n1"), "--allow-command: running command /bin/true")) << read_log("n1");
  for (const auto& w : farm::ctl::Client(chan()).workers())
    EXPECT_NE(w.state(), v1::WORKER_STATE_QUARANTINED) << w.id();
}

TEST_F(AgentSecurity, RealPatchStressRunsFromTypedFields) {
#ifndef PATCH_STRESS_BIN
  GTEST_SKIP() << "patch-stress is not built in this tree";
#else
  start_farmd();
  start_agent("stress", {"--patch-stress", PATCH_STRESS_BIN});
  ASSERT_TRUE(wait_worker("stress")) << read_log("stress");
  v1::JobSpec s;
  s.set_seed(3);
  s.set_timeout_s(60);
  auto* p = s.mutable_workload()->mutable_patch_stress();
  p->set_threads(2);
  p->set_functions(16);
  p->set_batches(100);
  p->set_writer("mprotect");
  p->set_probe_kind("jump");
  auto j = submit_and_wait(s);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->state(), v1::JOB_STATE_PASSED) << j->message() << j->result().log_tail();
  EXPECT_TRUE(contains(j->result().result_json(), "\"workload\":\"patch-stress\"")) << j->result().result_json();
#endif
}

namespace {
// The real bare-metal image next to this test in the build tree, if built.
std::string built_baremetal_image() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  auto p = exe.parent_path().parent_path().parent_path() / "farm/workloads/baremetal/baremetal-rv64gc.elf";
  return fs::exists(p) ? p.string() : std::string();
}
}  // namespace

TEST_F(AgentSecurity, RealBaremetalImageRunsByName) {
  auto image = built_baremetal_image();
  if (image.empty()) GTEST_SKIP() << "the bare-metal image is not built in this tree (LP_BUILD_BAREMETAL=OFF?)";
  if (::access("/usr/bin/qemu-system-riscv64", X_OK) != 0) GTEST_SKIP() << "qemu-system-riscv64 not installed";
  start_farmd();
  start_agent("bm", {"--executor", "qemu-system", "--arch", "riscv64", "--isa", "rv64gc", "--smp", "2", "--image",
                     "baremetal-rv64gc=" + image});
  ASSERT_TRUE(wait_worker("bm")) << read_log("bm");
  v1::JobSpec s;
  s.set_timeout_s(60);
  s.mutable_workload()->mutable_baremetal()->set_image("baremetal-rv64gc");
  s.mutable_workload()->mutable_baremetal()->set_smp(2);
  s.mutable_workload()->mutable_baremetal()->set_append("sync=rfence batch=all burst=2 toggles=2000 seed=1");
  auto j = submit_and_wait(s);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->state(), v1::JOB_STATE_PASSED) << j->message() << j->result().log_tail();
  EXPECT_TRUE(contains(j->result().result_json(), "\"sync\":\"rfence\"")) << j->result().result_json();
}

TEST_F(AgentSecurity, WrongTokenStopsTheAgentWithAClearError) {
  start_farmd();
  Proc* wrong = start_agent("wrong", {"--patch-stress", kFake}, {}, "not-a-token");
  Proc* client = start_agent("client", {"--patch-stress", kFake}, {}, kClientTok);
  int w = wrong->wait(15s), c = client->wait(15s);
  ASSERT_NE(w, -1) << "retried forever: " << read_log("wrong");
  ASSERT_NE(c, -1) << "retried forever: " << read_log("client");
  EXPECT_EQ(exit_code(w), 1);
  EXPECT_EQ(exit_code(c), 1);
  EXPECT_TRUE(contains(read_log("wrong"), "farm-agent: error: farmd refused the agent token (UNAUTHENTICATED"))
      << read_log("wrong");
  EXPECT_TRUE(contains(read_log("client"), "farmd refused the agent token (PERMISSION_DENIED")) << read_log("client");
  EXPECT_TRUE(farm::ctl::Client(chan()).workers().empty());
}

TEST_F(AgentSecurity, OneLiveAgentPerNameAndARestartRegistersAtOnce) {
  start_farmd();
  Proc* first = start_agent("same", {"--patch-stress", kFake});
  ASSERT_TRUE(wait_worker("same")) << read_log("same");
  // a second agent under the same name while the first is alive: farmd
  // refuses it (ALREADY_EXISTS) and it stops with a clear error
  agents.push_back(std::make_unique<Proc>(agent_argv("same", {"--patch-stress", kFake}), dir / "twin.log"));
  int st = agents.back()->wait(15s);
  ASSERT_NE(st, -1) << "the twin kept retrying: " << farm::read_file(dir / "twin.log");
  EXPECT_EQ(exit_code(st), 1);
  EXPECT_TRUE(contains(farm::read_file(dir / "twin.log"), "another agent is registered as same"))
      << farm::read_file(dir / "twin.log");
  EXPECT_TRUE(first->alive());
  // SIGTERM ends the session at farmd: the restarted agent registers at once
  first->kill(SIGTERM);
  EXPECT_EQ(exit_code(first->wait(10s)), 0);
  EXPECT_TRUE(contains(read_log("same"), "left farmd (session ended)")) << read_log("same");
  agents.push_back(std::make_unique<Proc>(agent_argv("same", {"--patch-stress", kFake}), dir / "restarted.log"));
  Proc* again = agents.back().get();
  ASSERT_TRUE(wait_worker("same", 5s)) << farm::read_file(dir / "restarted.log");
  v1::JobSpec s;
  s.mutable_selector()->set_worker_id("same");
  s.mutable_workload()->mutable_patch_stress()->set_threads(1);
  auto j = submit_and_wait(s);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->state(), v1::JOB_STATE_PASSED) << j->message() << farm::read_file(dir / "restarted.log");
  EXPECT_TRUE(again->alive()) << farm::read_file(dir / "restarted.log");
}

TEST_F(AgentSecurity, RegistersPromptlyOnceFarmdIsUp) {
  int p = free_port();
  address = "127.0.0.1:" + std::to_string(p);
  start_agent("early", {"--patch-stress", kFake});
  std::this_thread::sleep_for(3s);  // the agent has been retrying (and backing off) for a while
  start_farmd(p);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_worker("early", 10s)) << read_log("early");
  auto delay = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(delay, 2s) << "registered " << std::chrono::duration<double>(delay).count() << " s after farmd came up";
}

// ================================================================ command line

TEST(AgentCli, BadStartupSettingsAreRefusedWithTheReason) {
  farmtest::TempDir d;
  std::ofstream(d / "plain") << "x\n";
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--slots", "0"}, "--slots: Value 0 not in range"},
      {{"--patch-stress", d / "missing"}, "cannot execute " + (d / "missing") + ": No such file or directory"},
      {{"--patch-stress", d / "plain"}, "cannot execute " + (d / "plain") + ": Permission denied"},
      {{"--patch-stress", d.path}, "is a directory"},
      {{"--patch-stress", kFake, "--allow-command"}, "--allow-command needs an allow-list"},
      {{"--patch-stress", kFake, "--allow-arg", ".*"}, "only with --allow-command"},
      {{"--image", "../x=/etc/passwd"}, "an image name is"},
      {{"--kill-grace-ms", "-5"}, "--kill-grace-ms"},
      {{"--name", "../../etc"}, "--name"},
      {{"--executor", "ssh", "--ssh-host", "-oProxyCommand=id"}, "--ssh-host"},
      {{"--executor", "mainframe"}, "--executor"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv{FARM_AGENT_BIN, "--server", "127.0.0.1:1", "--token", "t"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    auto r = farmtest::run(argv, 10s);
    EXPECT_EQ(r.code, 2) << farm::agent::shell_join(c.args) << "\n" << r.out << r.err;
    EXPECT_TRUE(contains(r.err, c.message)) << farm::agent::shell_join(c.args) << "\n" << r.err;
  }
}

TEST(AgentCli, HelpShowsTypesDefaultsAndThePolicy) {
  auto r = farmtest::run({FARM_AGENT_BIN, "--help"}, 10s);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* want : {"--kill-grace-ms UINT", "=2000", "--slots UINT", "[1 - 1024]=1", "--acquire-wait-ms UINT",
                           "=10000", "--allow-command-binary", "--allow-arg", "--image", "PatchStress.binary",
                           "Exit status"}) {
    EXPECT_TRUE(contains(r.out, want)) << want << "\n" << r.out;
  }
}

// A hostile workload's verdict (terminal escapes, a megabyte of text) must not
// make the completion unsendable: farmd refuses control characters in
// result.verdict, and a refused CompleteJob means a lost lease, a retry and in
// the end a quarantined worker. The agent reports such a verdict as "invalid"
// (a failed job); the raw text stays in result_json.
TEST(AgentResults, HostileVerdictStillCompletesAsAFailure) {
  for (const std::string verdict : {std::string("pa\x1b[2Jss"), std::string(100000, 'x'), std::string("pass\n")}) {
    farm::agent::ProcResult p;
    p.started = true;
    p.exit_code = 0;
    nlohmann::json line = {{"workload", "patch-stress"}, {"verdict", verdict}, {"calls", 1}};
    p.out = "noise\n" + line.dump() + "\n";
    const v1::JobResult r = farm::agent::result_from_process(p, true);
    EXPECT_EQ(r.verdict(), "invalid") << farm::agent::printable(verdict, 40);
    EXPECT_EQ(r.outcome(), v1::OUTCOME_FAIL) << r.message();
    EXPECT_NE(r.result_json().find("verdict"), std::string::npos);
    for (unsigned char c : r.verdict()) EXPECT_TRUE(c > 0x20 && c < 0x7f);
  }
  // Control: an ordinary verdict is kept as it is.
  farm::agent::ProcResult ok;
  ok.started = true;
  ok.exit_code = 0;
  ok.out = "{\"workload\":\"patch-stress\",\"verdict\":\"pass\"}\n";
  EXPECT_EQ(farm::agent::result_from_process(ok, true).verdict(), "pass");
  EXPECT_EQ(farm::agent::result_from_process(ok, true).outcome(), v1::OUTCOME_PASS);
}
