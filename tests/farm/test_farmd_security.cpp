// Issue 12, farmd side: every bad input gets a clear error, and a test.
//  * service API (farmd in-process on 127.0.0.1:0): SubmitJob refuses what
//    would let a client token choose what runs on an agent, out-of-range and
//    unbounded fields; CompleteJob checks the session and the outcome; agent
//    tokens are bound to worker names; one live session per worker name;
//    HANDED_BACK; WatchJob caps; messages never echo unbounded input.
//  * real farmd processes for start-up: port in use, database lock, TLS and
//    token files, the database directory, flags, foreign and corrupted
//    databases, the port file, the audit trail in the log.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "farm/common/channel.hpp"
#include "farm/common/names.hpp"
#include "farm/common/util.hpp"
#include "farm/ctl/client.hpp"
#include "farm/v1/farm.grpc.pb.h"
#include "farm_store.hpp"
#include "farm_test_util.hpp"
#include "farmd/config.hpp"
#include "farmd/farm.hpp"
#include "farmd/server.hpp"
#include "farmd/sqlite.hpp"
#include "farmd/store.hpp"

namespace v1 = farm::v1;
using farm::ctl::Client;
using farmtest::CmdResult;
using farmtest::Proc;
using grpc::StatusCode;
using namespace std::chrono_literals;

namespace {

const std::string kClient = "sec-client-token-1";
const std::string kClient2 = "sec-client-token-2";
const std::string kAgent = "sec-agent-token-any";
const std::string kLab3 = "sec-agent-token-lab3";
const std::string kLab4 = "sec-agent-token-lab4";

// ---------------------------------------------------------------- helpers

std::string big(size_t n, char c = 'x') { return std::string(n, c); }

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

#define EXPECT_REFUSED(status, code, needle)                                                   \
  do {                                                                                         \
    const grpc::Status _st = (status);                                                         \
    EXPECT_EQ(_st.error_code(), code) << _st.error_message();                                 \
    EXPECT_TRUE(has(_st.error_message(), needle)) << "message: " << _st.error_message() << "\n" \
                                                  << "expected: " << (needle);                 \
    EXPECT_LT(_st.error_message().size(), 1100u);                                             \
  } while (0)

v1::JobSpec stress(const std::string& name = "s") {
  v1::JobSpec s;
  s.set_name(name);
  s.mutable_workload()->mutable_patch_stress()->set_threads(2);
  s.set_timeout_s(30);
  return s;
}

v1::JobSpec bm(const std::string& image = "baremetal-rv64gc.elf") {
  v1::JobSpec s;
  s.mutable_workload()->mutable_baremetal()->set_image(image);
  return s;
}

v1::JobResult res(v1::Outcome o, const std::string& msg = "", const std::string& verdict = "") {
  v1::JobResult r;
  r.set_outcome(o);
  r.set_message(msg);
  r.set_verdict(verdict);
  return r;
}

// An agent speaking the raw protocol, so that a test can forge any field.
struct RawAgent {
  std::unique_ptr<v1::FarmAgent::Stub> stub;
  std::string token, id, session;

  RawAgent(const std::string& address, std::string tok) : token(std::move(tok)) {
    farm::ChannelOptions o;
    o.address = address;
    stub = v1::FarmAgent::NewStub(farm::make_channel(o));
  }
  grpc::Status reg(const std::string& name) {
    v1::RegisterRequest rr;
    rr.set_name(name);
    rr.mutable_capabilities()->set_arch(farm::machine_arch());
    rr.mutable_capabilities()->set_kind("native");
    rr.mutable_capabilities()->add_workloads("patch-stress");
    rr.mutable_capabilities()->add_workloads("command");
    v1::RegisterResponse resp;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, token, 5s);
    auto s = stub->Register(&ctx, rr, &resp);
    if (s.ok()) {
      id = resp.worker_id();
      session = resp.session();
    }
    return s;
  }
  grpc::Status acquire(v1::Lease* lease, uint32_t wait_ms = 3000, const std::string* as = nullptr) {
    v1::AcquireJobRequest req;
    req.set_worker_id(as ? *as : id);
    req.set_session(session);
    req.set_wait_ms(wait_ms);
    v1::AcquireJobResponse resp;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, token, 10s);
    auto s = stub->AcquireJob(&ctx, req, &resp);
    if (lease) *lease = resp.lease();
    return s;
  }
  grpc::Status heartbeat(const std::vector<v1::Lease>& leases = {}, bool leaving = false,
                         v1::HeartbeatResponse* out = nullptr, const std::string* as = nullptr) {
    v1::HeartbeatRequest req;
    req.set_worker_id(as ? *as : id);
    req.set_session(session);
    req.set_leaving(leaving);
    for (const auto& l : leases) {
      auto* r = req.add_leases();
      r->set_job_id(l.job_id());
      r->set_attempt(l.attempt());
    }
    v1::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, token, 5s);
    auto s = stub->Heartbeat(&ctx, req, out ? out : &resp);
    return s;
  }
  grpc::Status progress(const v1::Lease& l, const std::string* as = nullptr) {
    v1::ReportProgressRequest req;
    req.set_worker_id(as ? *as : id);
    req.set_session(session);
    req.mutable_lease()->set_job_id(l.job_id());
    req.mutable_lease()->set_attempt(l.attempt());
    req.mutable_progress()->set_calls(1);
    v1::ReportProgressResponse resp;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, token, 5s);
    return stub->ReportProgress(&ctx, req, &resp);
  }
  grpc::Status complete(const v1::Lease& l, const v1::JobResult& r, v1::CompleteJobResponse* out = nullptr,
                        const std::string* worker = nullptr, const std::string* sess = nullptr) {
    v1::CompleteJobRequest req;
    req.set_worker_id(worker ? *worker : id);
    req.set_session(sess ? *sess : session);
    req.mutable_lease()->set_job_id(l.job_id());
    req.mutable_lease()->set_attempt(l.attempt());
    *req.mutable_result() = r;
    v1::CompleteJobResponse resp;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, token, 5s);
    return stub->CompleteJob(&ctx, req, out ? out : &resp);
  }
};

class FarmdSecurity : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg.db_path = farmtest::db(dir);
    cfg.tokens = {{farmd::Role::client, kClient, "ci"},
                  {farmd::Role::client, kClient2, "ci2"},
                  {farmd::Role::agent, kAgent, "lab"},
                  {farmd::Role::agent, kLab3, "lab3", {"lab3-*"}},
                  {farmd::Role::agent, kLab4, "lab4", {"lab4-*", "board-4?"}}};
    cfg.lease_ttl_ms = 5000;
  }
  void TearDown() override {
    if (server) server->shutdown(500);
  }
  void start() {
    server = std::make_unique<farmd::Server>(cfg);
    server->start();
    farm::ChannelOptions o;
    o.address = server->address();
    client_stub = v1::FarmClient::NewStub(farm::make_channel(o));
  }
  Client client(const std::string& tok = kClient) {
    farm::ChannelOptions o;
    o.address = server->address();
    o.token = tok;
    return Client(o);
  }
  RawAgent agent(const std::string& tok = kAgent) { return RawAgent(server->address(), tok); }

  grpc::Status submit(const v1::JobSpec& spec, v1::Job* out = nullptr, bool allow_unmatched = true,
                      const std::string& tok = kClient) {
    v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    req.set_allow_unmatched(allow_unmatched);
    v1::SubmitJobResponse resp;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, tok, 10s);
    auto s = client_stub->SubmitJob(&ctx, req, &resp);
    if (out) *out = resp.job();
    return s;
  }
  v1::JobState state_of(const std::string& id) { return client().get(id).state(); }

  farmtest::TempDir dir;
  farmd::Config cfg;
  std::unique_ptr<farmd::Server> server;
  std::unique_ptr<v1::FarmClient::Stub> client_stub;
};

}  // namespace

// ================================================================ SubmitJob

TEST_F(FarmdSecurity, SubmitRefusesAClientChosenBinaryOrArguments) {
  start();
  auto s = stress();
  s.mutable_workload()->mutable_patch_stress()->set_binary("/bin/sh");
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "binary is chosen by the agent");
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "patch_stress.binary");

  s = stress();
  s.mutable_workload()->mutable_patch_stress()->add_extra_args("--evil");
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "patch_stress.extra_args");

  auto b = bm();
  b.mutable_workload()->mutable_baremetal()->add_extra_args("-device");
  EXPECT_REFUSED(submit(b), StatusCode::INVALID_ARGUMENT, "baremetal.extra_args");

  // 200,000 extra arguments: refused by the same rule, with a short message
  s = stress();
  for (int i = 0; i < 200000; ++i) s.mutable_workload()->mutable_patch_stress()->add_extra_args("x");
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "extra_args");

  // the typed way is accepted
  v1::Job j;
  ASSERT_TRUE(submit(stress(), &j).ok());
  EXPECT_EQ(j.state(), v1::JOB_STATE_QUEUED);
  b = bm();
  b.mutable_workload()->mutable_baremetal()->set_append("sync=rfence batch=all burst=2 toggles=1000 seed=7");
  EXPECT_TRUE(submit(b).ok());
}

TEST_F(FarmdSecurity, SubmitRefusesImagePathsOnlyNamesAreAccepted) {
  start();
  for (const std::string& img :
       std::vector<std::string>{"/srv/images/x.elf", "../x.elf", "dir/x.elf", "x elf", ".hidden", "-M", big(65, 'a')})
    EXPECT_REFUSED(submit(bm(img)), StatusCode::INVALID_ARGUMENT, "baremetal.image");
  EXPECT_REFUSED(submit(bm("")), StatusCode::INVALID_ARGUMENT, "baremetal.image");
  for (const std::string& img : std::vector<std::string>{"baremetal-rv64gc.elf", "rv64g", "img_2.bin", big(64, 'a')})
    EXPECT_TRUE(submit(bm(img)).ok()) << img;
}

TEST_F(FarmdSecurity, SubmitRefusesTypedFieldsOutOfRange) {
  start();
  auto ps = [&](std::function<void(v1::PatchStress&)> f) {
    auto s = stress();
    f(*s.mutable_workload()->mutable_patch_stress());
    return submit(s);
  };
  auto bmf = [&](std::function<void(v1::BaremetalImage&)> f) {
    auto s = bm();
    f(*s.mutable_workload()->mutable_baremetal());
    return submit(s);
  };
  EXPECT_REFUSED(ps([](auto& p) { p.set_threads(257); }), StatusCode::INVALID_ARGUMENT, "patch_stress.threads is 257");
  EXPECT_REFUSED(ps([](auto& p) { p.set_functions(257); }), StatusCode::INVALID_ARGUMENT,
                 "patch_stress.functions is 257; it must be 1..256");
  EXPECT_REFUSED(ps([](auto& p) { p.set_batches(100'000'001); }), StatusCode::INVALID_ARGUMENT, "patch_stress.batches");
  EXPECT_REFUSED(ps([](auto& p) { p.set_duration_s(std::nan("")); }), StatusCode::INVALID_ARGUMENT,
                 "patch_stress.duration_s is nan");
  EXPECT_REFUSED(ps([](auto& p) { p.set_duration_s(std::numeric_limits<double>::infinity()); }),
                 StatusCode::INVALID_ARGUMENT, "finite");
  EXPECT_REFUSED(ps([](auto& p) { p.set_duration_s(-1); }), StatusCode::INVALID_ARGUMENT, "duration_s");
  EXPECT_REFUSED(ps([](auto& p) { p.set_duration_s(86401); }), StatusCode::INVALID_ARGUMENT, "duration_s");
  EXPECT_REFUSED(ps([](auto& p) { p.set_writer("bogus"); }), StatusCode::INVALID_ARGUMENT, "patch_stress.writer");
  EXPECT_REFUSED(ps([](auto& p) { p.set_sync("bogus"); }), StatusCode::INVALID_ARGUMENT, "patch_stress.sync");
  EXPECT_REFUSED(ps([](auto& p) { p.set_probe_kind("bogus"); }), StatusCode::INVALID_ARGUMENT, "patch_stress.probe_kind");
  EXPECT_REFUSED(ps([](auto& p) { p.set_sites("bogus"); }), StatusCode::INVALID_ARGUMENT, "patch_stress.sites");
  EXPECT_REFUSED(bmf([](auto& b) { b.set_smp(65); }), StatusCode::INVALID_ARGUMENT, "baremetal.smp is 65");
  for (const std::string m : {"256K", "1234567M", "M", "1g", "abc", "64 M"})
    EXPECT_REFUSED(bmf([&](auto& b) { b.set_memory(m); }), StatusCode::INVALID_ARGUMENT, "baremetal.memory");
  EXPECT_REFUSED(bmf([](auto& b) { b.set_machine("sifive_u"); }), StatusCode::INVALID_ARGUMENT, "baremetal.machine");
  EXPECT_REFUSED(bmf([](auto& b) { b.set_append("x=1;reboot"); }), StatusCode::INVALID_ARGUMENT, "baremetal.append");
  EXPECT_REFUSED(bmf([](auto& b) { b.set_append("initrd=/etc/shadow"); }), StatusCode::INVALID_ARGUMENT,
                 "baremetal.append");
  EXPECT_REFUSED(bmf([](auto& b) { b.set_append(big(257, 'a')); }), StatusCode::INVALID_ARGUMENT, "baremetal.append");
  // the edges of each range are accepted; 0 / "" is the default
  EXPECT_TRUE(ps([](auto& p) { p.set_threads(256); p.set_functions(256); p.set_batches(100'000'000); }).ok());
  EXPECT_TRUE(ps([](auto& p) { p.set_threads(1); p.set_functions(1); p.set_duration_s(86400); }).ok());
  EXPECT_TRUE(ps([](auto& p) { p.set_writer("procmem"); p.set_sync("signal"); p.set_probe_kind("trap"); p.set_sites("body"); }).ok());
  EXPECT_TRUE(bmf([](auto& b) { b.set_smp(64); b.set_memory("999999M"); b.set_machine("virt"); }).ok());
  EXPECT_TRUE(bmf([](auto& b) { b.set_smp(1); b.set_memory("1G"); }).ok());
}

TEST_F(FarmdSecurity, SubmitBoundsStringsTagsLabelsAndCommands) {
  start();
  auto s = stress();
  for (int i = 0; i < 50000; ++i) (*s.mutable_tags())["k" + std::to_string(i)] = "v";
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "tags has 50000 entries; at most 64");
  s = stress();
  (*s.mutable_tags())["../etc"] = "x";
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "tags key");
  s = stress();
  (*s.mutable_tags())["suite"] = big(257);
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "tags value of 'suite'");
  s = stress();
  (*s.mutable_tags())["suite"] = "a\nb";
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "tags value");
  s = stress();
  (*s.mutable_selector()->mutable_labels())["board"] = "x/../../y";
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "selector.labels value of 'board'");
  s = stress();
  for (int i = 0; i < 33; ++i) (*s.mutable_selector()->mutable_labels())["l" + std::to_string(i)] = "v";
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "selector.labels has 33 entries");
  s = stress();
  s.mutable_selector()->set_arch("../x86_64");
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "selector.arch");
  s = stress();
  s.mutable_selector()->set_isa("rv64gc;rm");
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "selector.isa");
  s = stress();
  s.mutable_selector()->set_worker_id("a/b");
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "selector.worker_id");
  s = stress();
  s.set_name("line\nbreak");
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "name");
  s = stress();
  s.set_priority(1'000'000);
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "priority");
  s = stress();
  s.set_max_attempts(11);
  EXPECT_REFUSED(submit(s), StatusCode::INVALID_ARGUMENT, "max_attempts");

  // command workloads stay allowed at submit (agents decide), but bounded
  v1::JobSpec c;
  auto* cmd = c.mutable_workload()->mutable_command();
  cmd->add_argv("/usr/bin/true");
  (*cmd->mutable_env())["FOO"] = "bar";
  v1::Job j;
  ASSERT_TRUE(submit(c, &j).ok());
  EXPECT_EQ(j.state(), v1::JOB_STATE_QUEUED);
  for (int i = 0; i < 200000; ++i) cmd->add_argv("x");
  EXPECT_REFUSED(submit(c), StatusCode::INVALID_ARGUMENT, "command.argv has 200001 elements; at most 256");
  cmd->clear_argv();
  cmd->add_argv("/usr/bin/true");
  cmd->add_argv(big(5000));
  EXPECT_REFUSED(submit(c), StatusCode::INVALID_ARGUMENT, "command.argv[1]");
  cmd->clear_argv();
  cmd->add_argv("/usr/bin/true");
  for (const std::string k : {"LD_PRELOAD", "LD_LIBRARY_PATH", "PATH", "BASH_ENV", "PYTHONPATH"}) {
    v1::JobSpec e = c;
    (*e.mutable_workload()->mutable_command()->mutable_env())[k] = "/tmp/evil";
    EXPECT_REFUSED(submit(e), StatusCode::INVALID_ARGUMENT, "command.env " + k + " is not accepted");
  }
  v1::JobSpec e = c;
  (*e.mutable_workload()->mutable_command()->mutable_env())["A=B"] = "x";
  EXPECT_REFUSED(submit(e), StatusCode::INVALID_ARGUMENT, "command.env name");
}

TEST_F(FarmdSecurity, MessagesNeverEchoUnboundedInput) {
  start();
  auto c = client();
  const std::string id = big(100000, 'j');
  // GetJob / CancelJob / WatchJob with a 100 KB id: a short INVALID_ARGUMENT,
  // not a RESOURCE_EXHAUSTED from a 100 KB status message
  for (auto call : {0, 1, 2}) {
    try {
      if (call == 0) c.get(id);
      if (call == 1) c.cancel(id);
      if (call == 2) c.watch(id, false, [](const v1::JobEvent&) { return true; });
      ADD_FAILURE() << "accepted";
    } catch (const farm::ctl::RpcError& e) {
      EXPECT_REFUSED(e.status, StatusCode::INVALID_ARGUMENT, "job_id is 100000 characters long; job ids are at most 64");
    }
  }
  try {
    c.remove_worker(id);
    ADD_FAILURE() << "accepted";
  } catch (const farm::ctl::RpcError& e) {
    EXPECT_REFUSED(e.status, StatusCode::INVALID_ARGUMENT, "worker names are at most 128");
  }
  // a 100 KB enum value is echoed clipped, with an ellipsis
  auto s = stress();
  s.mutable_workload()->mutable_patch_stress()->set_writer(big(100000, 'w'));
  auto st = submit(s);
  EXPECT_REFUSED(st, StatusCode::INVALID_ARGUMENT, "patch_stress.writer");
  EXPECT_TRUE(has(st.error_message(), big(64, 'w') + "\u2026")) << st.error_message();
  EXPECT_FALSE(has(st.error_message(), big(65, 'w')));
  // ListJobs / GetReport filters are bounded too
  v1::ListJobsRequest lr;
  lr.set_limit(200000);
  try {
    c.list(lr);
    ADD_FAILURE() << "accepted";
  } catch (const farm::ctl::RpcError& e) {
    EXPECT_REFUSED(e.status, StatusCode::INVALID_ARGUMENT, "limit");
  }
  lr = {};
  lr.add_states(static_cast<v1::JobState>(99));
  try {
    c.list(lr);
    ADD_FAILURE() << "accepted";
  } catch (const farm::ctl::RpcError& e) {
    EXPECT_REFUSED(e.status, StatusCode::INVALID_ARGUMENT, "not a job state");
  }
  v1::GetReportRequest rr;
  rr.add_job_ids(id);
  try {
    c.report(rr);
    ADD_FAILURE() << "accepted";
  } catch (const farm::ctl::RpcError& e) {
    EXPECT_REFUSED(e.status, StatusCode::INVALID_ARGUMENT, "job_ids entry");
  }
  try {
    c.cancel("j-1", big(2000));
    ADD_FAILURE() << "accepted";
  } catch (const farm::ctl::RpcError& e) {
    EXPECT_REFUSED(e.status, StatusCode::INVALID_ARGUMENT, "reason is 2000 bytes; at most 1024");
  }
}

// ================================================================ agents

TEST_F(FarmdSecurity, CompleteJobChecksWorkerAndSession) {
  start();
  RawAgent a = agent(), b = agent();
  ASSERT_TRUE(a.reg("worker-a").ok());
  ASSERT_TRUE(b.reg("worker-b").ok());
  v1::Job job;
  ASSERT_TRUE(submit(stress(), &job).ok());
  v1::Lease lease;
  ASSERT_TRUE(a.acquire(&lease).ok());
  ASSERT_EQ(lease.job_id(), job.id());
  auto forged = res(v1::OUTCOME_FAIL, "forged", "fail");
  const std::string wa = "worker-a", empty, garbage = "garbage";
  // the right worker id with no / a made-up session: refused like a stale Heartbeat
  EXPECT_REFUSED(b.complete(lease, forged, nullptr, &wa, &empty), StatusCode::FAILED_PRECONDITION, "stale session");
  EXPECT_REFUSED(b.complete(lease, forged, nullptr, &wa, &garbage), StatusCode::FAILED_PRECONDITION, "stale session");
  EXPECT_REFUSED(a.complete(lease, forged, nullptr, nullptr, &garbage), StatusCode::FAILED_PRECONDITION, "stale session");
  // another worker, in its own valid session: not its lease
  EXPECT_REFUSED(b.complete(lease, forged), StatusCode::PERMISSION_DENIED, "leased to another worker");
  // Heartbeat and ReportProgress check the session the same way
  std::string s0 = a.session;
  a.session = "garbage";
  EXPECT_REFUSED(a.heartbeat({lease}), StatusCode::FAILED_PRECONDITION, "stale session");
  EXPECT_REFUSED(a.progress(lease), StatusCode::FAILED_PRECONDITION, "stale session");
  a.session = "";
  EXPECT_REFUSED(a.acquire(nullptr, 10), StatusCode::FAILED_PRECONDITION, "stale session");
  a.session = s0;
  EXPECT_EQ(state_of(job.id()), v1::JOB_STATE_RUNNING);  // nothing changed
  v1::CompleteJobResponse cr;
  ASSERT_TRUE(a.complete(lease, res(v1::OUTCOME_PASS, "ok", "pass"), &cr).ok());
  EXPECT_EQ(cr.job_state(), v1::JOB_STATE_PASSED);
  // a retry of the real completion is a duplicate; other workers still may not touch it
  EXPECT_TRUE(a.complete(lease, res(v1::OUTCOME_PASS, "ok"), &cr).ok());
  EXPECT_TRUE(cr.duplicate());
  EXPECT_REFUSED(b.complete(lease, forged), StatusCode::PERMISSION_DENIED, "belongs to another worker");
  EXPECT_EQ(state_of(job.id()), v1::JOB_STATE_PASSED);
}

TEST_F(FarmdSecurity, CompleteJobRefusesOutcomesAnAgentMayNotReport) {
  start();
  RawAgent a = agent();
  ASSERT_TRUE(a.reg("worker-a").ok());
  v1::Job job;
  ASSERT_TRUE(submit(stress(), &job).ok());
  v1::Lease lease;
  ASSERT_TRUE(a.acquire(&lease).ok());
  ASSERT_EQ(lease.job_id(), job.id());
  EXPECT_REFUSED(a.complete(lease, res(v1::OUTCOME_UNSPECIFIED)), StatusCode::INVALID_ARGUMENT,
                 "result.outcome is required");
  EXPECT_REFUSED(a.complete(lease, res(v1::OUTCOME_LOST)), StatusCode::INVALID_ARGUMENT, "result.outcome LOST");
  EXPECT_REFUSED(a.complete(lease, res(static_cast<v1::Outcome>(99))), StatusCode::INVALID_ARGUMENT,
                 "result.outcome 99 is not a known outcome");
  EXPECT_REFUSED(a.complete(lease, res(v1::OUTCOME_PASS, "", "fail")), StatusCode::INVALID_ARGUMENT,
                 "PASS contradicts result.verdict 'fail'");
  EXPECT_REFUSED(a.complete(lease, res(v1::OUTCOME_CANCELLED)), StatusCode::INVALID_ARGUMENT, "no cancel request");
  auto huge = res(v1::OUTCOME_PASS);
  huge.set_message(big(20000));
  EXPECT_REFUSED(a.complete(lease, huge), StatusCode::INVALID_ARGUMENT, "result.message");
  EXPECT_EQ(state_of(job.id()), v1::JOB_STATE_RUNNING);
  // once a client asks for it, CANCELLED is accepted
  client().cancel(job.id(), "test");
  v1::CompleteJobResponse cr;
  ASSERT_TRUE(a.complete(lease, res(v1::OUTCOME_CANCELLED, "stopped")).ok());
  EXPECT_EQ(state_of(job.id()), v1::JOB_STATE_CANCELLED);
}

TEST_F(FarmdSecurity, AgentTokensAreBoundToTheirWorkerNames) {
  start();
  RawAgent lab3 = agent(kLab3), lab4 = agent(kLab4), any = agent(kAgent);
  EXPECT_REFUSED(lab3.reg("lab4-x"), StatusCode::PERMISSION_DENIED, "token 'lab3' may not act for worker 'lab4-x'");
  EXPECT_REFUSED(lab3.reg("lab3"), StatusCode::PERMISSION_DENIED, "lab3-*");
  EXPECT_REFUSED(lab4.reg("board-40x"), StatusCode::PERMISSION_DENIED, "board-4?");
  ASSERT_TRUE(lab4.reg("board-41").ok());
  ASSERT_TRUE(lab3.reg("lab3-a").ok());
  ASSERT_TRUE(any.reg("lab3-free").ok());  // a token without workers= may use any name
  v1::Job job;
  ASSERT_TRUE(submit([] {
                auto s = stress();
                s.mutable_selector()->set_worker_id("lab3-a");
                return s;
              }(), &job).ok());
  v1::Lease lease;
  ASSERT_TRUE(lab3.acquire(&lease).ok());
  ASSERT_EQ(lease.job_id(), job.id());
  // lab4's token, even with lab3-a's (stolen) session, cannot act for lab3-a
  lab4.session = lab3.session;
  const std::string victim = "lab3-a";
  EXPECT_REFUSED(lab4.acquire(nullptr, 10, &victim), StatusCode::PERMISSION_DENIED, "may not act for worker 'lab3-a'");
  EXPECT_REFUSED(lab4.heartbeat({lease}, false, nullptr, &victim), StatusCode::PERMISSION_DENIED, "lab3-a");
  EXPECT_REFUSED(lab4.progress(lease, &victim), StatusCode::PERMISSION_DENIED, "lab3-a");
  EXPECT_REFUSED(lab4.complete(lease, res(v1::OUTCOME_FAIL, "forged"), nullptr, &victim), StatusCode::PERMISSION_DENIED,
                 "lab3-a");
  EXPECT_EQ(state_of(job.id()), v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(lab3.complete(lease, res(v1::OUTCOME_PASS)).ok());
  EXPECT_EQ(state_of(job.id()), v1::JOB_STATE_PASSED);
}

TEST(FarmdTokens, TokensFileSyntax) {
  farmtest::TempDir d;
  auto write = [&](const std::string& text) {
    std::ofstream(d / "tokens") << text;
    return d / "tokens";
  };
  auto toks = farmd::load_tokens(write(
      "# farm tokens\n"
      "client  sec-client-token-1  ci\n"
      "\n"
      "agent   sec-agent-token-lab3  lab3  workers=lab3-*,board-lab3-?   # lab 3\n"
      "agent   sec-agent-token-nameless workers=x86-1\n"
      "admin   sec-admin-token-0001\n"));
  ASSERT_EQ(toks.size(), 4u);
  EXPECT_EQ(toks[0].role, farmd::Role::client);
  EXPECT_EQ(toks[0].name, "ci");
  EXPECT_TRUE(toks[0].workers.empty());
  EXPECT_EQ(toks[1].name, "lab3");
  EXPECT_EQ(toks[1].workers, (std::vector<std::string>{"lab3-*", "board-lab3-?"}));
  EXPECT_EQ(toks[2].name, "agent-5");
  EXPECT_EQ(toks[2].workers, std::vector<std::string>{"x86-1"});
  EXPECT_EQ(toks[3].role, farmd::Role::admin);
  EXPECT_TRUE(farmd::glob_match("lab3-*", "lab3-board-7"));
  EXPECT_FALSE(farmd::glob_match("lab3-*", "lab4-x"));
  EXPECT_TRUE(farmd::glob_match("board-lab3-?", "board-lab3-a"));
  EXPECT_FALSE(farmd::glob_match("board-lab3-?", "board-lab3-ab"));
  EXPECT_TRUE(farmd::glob_match("*", "anything"));

  auto error_of = [&](const std::string& text) {
    try {
      farmd::load_tokens(write(text));
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_TRUE(has(error_of("client sec-client-token-1 ci\nagent sec-client-token-1 lab\n"), ":2: this token is already listed (as client 'ci')"));
  EXPECT_TRUE(has(error_of("superuser sec-token-00001\n"), ":1: unknown role 'superuser'"));
  EXPECT_TRUE(has(error_of("client short\n"), "shorter than 8"));
  EXPECT_TRUE(has(error_of("client sec-client-token-1 ci workers=x\n"), "workers= applies to agent and admin tokens only"));
  EXPECT_TRUE(has(error_of("agent sec-agent-token-1 lab workers=\n"), "workers= needs at least one pattern"));
  EXPECT_TRUE(has(error_of("agent sec-agent-token-1 lab workers=a,\n"), "workers= needs at least one pattern"));
  EXPECT_TRUE(has(error_of("agent sec-agent-token-1 lab workers=a/b\n"), "worker pattern 'a/b'"));
  EXPECT_TRUE(has(error_of("agent sec-agent-token-1 lab extra\n"), "unexpected 'extra'"));
  EXPECT_TRUE(has(error_of("agent sec-agent-token-1 lab foo=bar\n"), "unknown option 'foo='"));
  EXPECT_TRUE(has(error_of("agent sec-agent-token-1 lab workers=a workers=b\n"), "workers= given twice"));
  EXPECT_TRUE(has(error_of("agent\n"), ":1: expected '<role> <token> [name] [workers=PATTERNS]'"));
  std::string missing = d / "nope";
  try {
    farmd::load_tokens(missing);
    ADD_FAILURE() << "accepted";
  } catch (const std::exception& e) {
    EXPECT_EQ(std::string(e.what()), "cannot read " + missing + ": No such file or directory");
  }
}

TEST_F(FarmdSecurity, SecondAgentWithTheSameNameIsRefusedWhileTheFirstIsAlive) {
  cfg.lease_ttl_ms = 2000;  // generous: a loaded machine may stall a call for a while
  start();
  RawAgent first = agent(), second = agent();
  ASSERT_TRUE(first.reg("twin").ok());
  EXPECT_REFUSED(second.reg("twin"), StatusCode::ALREADY_EXISTS, "worker name 'twin' is in use by a live agent");
  EXPECT_REFUSED(second.reg("twin"), StatusCode::ALREADY_EXISTS, "lease TTL of 2000 ms");
  // while the first keeps talking, the name stays its own
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(500ms);
    ASSERT_TRUE(first.heartbeat().ok());
    EXPECT_EQ(second.reg("twin").error_code(), StatusCode::ALREADY_EXISTS);
  }
  // silent for longer than the lease TTL: the session expired, the name is free
  std::this_thread::sleep_for(2600ms);
  ASSERT_TRUE(second.reg("twin").ok());
  // and the first learns its session is gone (it would register again, refused while the second lives)
  EXPECT_EQ(first.heartbeat().error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(first.reg("twin").error_code(), StatusCode::ALREADY_EXISTS);
  // an agent that says it is leaving frees its name at once
  ASSERT_TRUE(second.heartbeat({}, /*leaving=*/true).ok());
  EXPECT_EQ(second.heartbeat().error_code(), StatusCode::FAILED_PRECONDITION);  // the session ended
  ASSERT_TRUE(first.reg("twin").ok());
  auto ws = client().workers();
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_NE(ws[0].state(), v1::WORKER_STATE_OFFLINE);
}

// An agent's refusal (OUTCOME_REFUSED: the job asked for something this agent
// does not run) ends the job at once, as ERROR with the agent's reason, and is
// held against no one: no retry elsewhere, no quarantine count, no jobs_done.
TEST_F(FarmdSecurity, RefusedJobsEndWithoutRetryOrQuarantine) {
  cfg.quarantine_threshold = 1;  // one counted infrastructure failure would quarantine
  start();
  RawAgent a = agent();
  ASSERT_TRUE(a.reg("careful").ok());
  for (int i = 0; i < 3; ++i) {  // more refusals than the threshold
    auto spec = stress("refused-" + std::to_string(i));
    spec.set_max_attempts(3);
    v1::Job job;
    ASSERT_TRUE(submit(spec, &job).ok());
    v1::Lease l;
    ASSERT_TRUE(a.acquire(&l).ok());
    ASSERT_EQ(l.job_id(), job.id());
    v1::CompleteJobResponse cr;
    ASSERT_TRUE(a.complete(l, res(v1::OUTCOME_REFUSED, "refused: BaremetalImage.image 'x' is not configured"), &cr).ok());
    EXPECT_EQ(cr.job_state(), v1::JOB_STATE_ERROR);
    auto j = client().get(job.id(), true);
    EXPECT_EQ(j.state(), v1::JOB_STATE_ERROR);
    EXPECT_EQ(j.attempts(), 1u) << "a refused job is not retried";
    EXPECT_EQ(j.result().outcome(), v1::OUTCOME_REFUSED);
    EXPECT_TRUE(has(j.result().message(), "is not configured")) << j.result().message();
    auto w = client().workers().at(0);
    EXPECT_EQ(w.infra_failures(), 0u);
    EXPECT_NE(w.state(), v1::WORKER_STATE_QUARANTINED);
    EXPECT_EQ(w.jobs_done(), 0u);
  }
  EXPECT_EQ(farm::outcome_name(v1::OUTCOME_REFUSED), "refused");
}

TEST_F(FarmdSecurity, HandedBackJobsAreRequeuedWithoutUsingAnAttempt) {
  cfg.quarantine_threshold = 1;  // one counted infrastructure failure would quarantine
  cfg.max_hand_backs = 3;
  start();
  RawAgent a = agent();
  ASSERT_TRUE(a.reg("leaver").ok());
  auto spec = stress("handed");
  spec.set_max_attempts(1);
  v1::Job job;
  ASSERT_TRUE(submit(spec, &job).ok());
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    v1::Lease l;
    ASSERT_TRUE(a.acquire(&l).ok());
    ASSERT_EQ(l.job_id(), job.id());
    EXPECT_EQ(l.attempt(), attempt);
    v1::CompleteJobResponse cr;
    ASSERT_TRUE(a.complete(l, res(v1::OUTCOME_HANDED_BACK, "agent shut down during the job"), &cr).ok());
    EXPECT_EQ(cr.job_state(), v1::JOB_STATE_QUEUED);
    auto j = client().get(job.id());
    EXPECT_EQ(j.state(), v1::JOB_STATE_QUEUED);
    EXPECT_TRUE(has(j.message(), "handed back by leaver: agent shut down during the job; requeued (not counted"))
        << j.message();
    auto w = client().workers().at(0);
    EXPECT_EQ(w.infra_failures(), 0u);
    EXPECT_NE(w.state(), v1::WORKER_STATE_QUARANTINED);
    EXPECT_EQ(w.jobs_done(), 0u);
  }
  // beyond max_hand_backs a hand-back counts: with max_attempts 1 the job gives up
  v1::Lease l;
  ASSERT_TRUE(a.acquire(&l).ok());
  EXPECT_EQ(l.attempt(), 4u);
  ASSERT_TRUE(a.complete(l, res(v1::OUTCOME_HANDED_BACK, "again")).ok());
  auto j = client().get(job.id(), true);
  EXPECT_EQ(j.state(), v1::JOB_STATE_ERROR);
  EXPECT_TRUE(has(j.message(), "gave up after 1 attempt(s)")) << j.message();
  ASSERT_EQ(j.attempt_history_size(), 4);
  for (const auto& h : j.attempt_history()) EXPECT_EQ(h.outcome(), v1::OUTCOME_HANDED_BACK);
  EXPECT_EQ(farm::outcome_name(v1::OUTCOME_HANDED_BACK), "handed-back");

  // a hand-back then a pass: PASSED, one counted attempt, the worker is clean
  auto p = stress("then-pass");
  p.set_max_attempts(1);
  v1::Job job2;
  ASSERT_TRUE(submit(p, &job2).ok());
  RawAgent b = agent();
  ASSERT_TRUE(b.reg("fine").ok());
  ASSERT_TRUE(b.acquire(&l).ok());
  ASSERT_EQ(l.job_id(), job2.id());
  ASSERT_TRUE(b.complete(l, res(v1::OUTCOME_HANDED_BACK, "stopping")).ok());
  // leaving with a lease still held also hands it back
  ASSERT_TRUE(b.acquire(&l).ok());
  ASSERT_EQ(l.attempt(), 2u);
  ASSERT_TRUE(b.heartbeat({l}, /*leaving=*/true).ok());
  EXPECT_EQ(state_of(job2.id()), v1::JOB_STATE_QUEUED);
  ASSERT_TRUE(b.reg("fine").ok());
  ASSERT_TRUE(b.acquire(&l).ok());
  ASSERT_EQ(l.attempt(), 3u);
  ASSERT_TRUE(b.complete(l, res(v1::OUTCOME_PASS, "ok", "pass")).ok());
  EXPECT_EQ(state_of(job2.id()), v1::JOB_STATE_PASSED);
  for (auto& w : client().workers())
    if (w.id() == "fine") {
      EXPECT_EQ(w.infra_failures(), 0u);
      EXPECT_EQ(w.jobs_done(), 1u);
    }
}

TEST_F(FarmdSecurity, HandBacksAreRememberedAcrossARestart) {
  start();
  RawAgent a = agent();
  ASSERT_TRUE(a.reg("r1").ok());
  auto spec = stress("restart");
  spec.set_max_attempts(1);
  v1::Job job;
  ASSERT_TRUE(submit(spec, &job).ok());
  v1::Lease l;
  ASSERT_TRUE(a.acquire(&l).ok());
  ASSERT_TRUE(a.complete(l, res(v1::OUTCOME_HANDED_BACK, "bye")).ok());
  server->shutdown(200);
  server.reset();
  start();
  RawAgent b = agent();
  ASSERT_TRUE(b.reg("r1").ok());  // a recovered idle session does not hold the name
  ASSERT_TRUE(b.acquire(&l).ok());
  ASSERT_EQ(l.attempt(), 2u);
  ASSERT_TRUE(b.complete(l, res(v1::OUTCOME_INFRA_ERROR, "disk full")).ok());
  // the hand-back was free, this failure is the one counted attempt: gave up
  auto j = client().get(job.id());
  EXPECT_EQ(j.state(), v1::JOB_STATE_ERROR);
  EXPECT_TRUE(has(j.message(), "gave up after 1 attempt(s)")) << j.message();
}

namespace {
struct Watch {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader;
  bool open = false;
  grpc::Status status;
};
}  // namespace

TEST_F(FarmdSecurity, WatchStreamsAreCappedPerTokenAndInTotal) {
  cfg.max_watches_per_token = 2;
  cfg.max_watches = 3;
  start();
  v1::Job job;  // never runs: no worker matches
  ASSERT_TRUE(submit(stress(), &job).ok());
  auto open = [&](const std::string& tok) {
    auto w = std::make_unique<Watch>();
    farm::prepare_context(w->ctx, tok, 60s);
    v1::WatchJobRequest req;
    req.set_job_id(job.id());
    w->reader = client_stub->WatchJob(&w->ctx, req);
    v1::JobEvent ev;
    w->open = w->reader->Read(&ev);  // the QUEUED event: the stream holds its slot
    if (!w->open) w->status = w->reader->Finish();
    return w;
  };
  auto a1 = open(kClient), a2 = open(kClient);
  ASSERT_TRUE(a1->open && a2->open);
  auto a3 = open(kClient);
  ASSERT_FALSE(a3->open);
  EXPECT_REFUSED(a3->status, StatusCode::RESOURCE_EXHAUSTED,
                 "token 'ci' has 2 WatchJob streams open, the limit per token (--max-watches-per-token 2)");
  auto b1 = open(kClient2);
  ASSERT_TRUE(b1->open);
  auto b2 = open(kClient2);
  ASSERT_FALSE(b2->open);
  EXPECT_REFUSED(b2->status, StatusCode::RESOURCE_EXHAUSTED, "farmd has 3 WatchJob streams open, its limit (--max-watches 3)");
  // other calls still work
  EXPECT_EQ(state_of(job.id()), v1::JOB_STATE_QUEUED);
  // closing a stream frees its slot
  a1->ctx.TryCancel();
  a1->reader->Finish();
  std::unique_ptr<Watch> again;
  EXPECT_TRUE(farmtest::wait_until([&] {
    again = open(kClient);
    return again->open;
  }, 10s, 100ms));
  // the streams end with the job
  client().cancel(job.id());
  v1::JobEvent ev;
  for (auto* w : {a2.get(), b1.get(), again.get()}) {
    while (w->reader->Read(&ev)) {
    }
    EXPECT_TRUE(w->reader->Finish().ok());
  }
}

TEST(FarmdConfig, OutOfRangeSettingsAreRefusedNotClamped) {
  farmtest::TempDir d;
  auto error_of = [&](std::function<void(farmd::Config&)> f) {
    farmd::Config c;
    c.db_path = d / "farm.db";
    c.tokens = {{farmd::Role::client, kClient, "ci"}};
    f(c);
    try {
      farmd::Server s(c);
      s.start();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(error_of([](auto& c) { c.lease_ttl_ms = 0; }), "--lease-ttl-ms is 0; it must be in 100..3600000");
  EXPECT_TRUE(has(error_of([](auto& c) { c.default_max_attempts = 0; }), "--max-attempts is 0"));
  EXPECT_TRUE(has(error_of([](auto& c) { c.listen = "127.0.0.1:99999"; }), "the port must be a number in 0-65535"));
  EXPECT_TRUE(has(error_of([](auto& c) { c.listen = "127.0.0.1:80x"; }), "the port must be a number"));
  EXPECT_TRUE(has(error_of([](auto& c) { c.listen = "::1:7443"; }), "in brackets"));
  EXPECT_TRUE(has(error_of([](auto& c) { c.listen = "7443"; }), "expected HOST:PORT"));
  EXPECT_TRUE(has(error_of([](auto& c) { c.heartbeat_interval_ms = c.lease_ttl_ms; }), "--heartbeat-ms"));
  EXPECT_TRUE(has(error_of([](auto& c) { c.max_watches = 0; }), "--max-watches is 0"));
  EXPECT_TRUE(has(error_of([](auto& c) { c.tls_cert = "x.pem"; }), "TLS needs both"));
  EXPECT_TRUE(has(error_of([](auto& c) { c.tokens.push_back({farmd::Role::agent, kClient, "lab"}); }),
                  "the same token is listed twice: as client 'ci' and as agent 'lab'"));
  EXPECT_TRUE(has(error_of([](auto& c) { c.tokens.push_back({farmd::Role::client, "short", "x"}); }), "shorter than 8"));
  EXPECT_EQ(error_of([](auto&) {}), "(accepted)");
}

// ================================================================ farmd processes

namespace {

class FarmdProcess : public ::testing::Test {
 protected:
  void TearDown() override {
    for (auto& p : procs) {
      p->kill(SIGTERM);
      p->wait(5s);
    }
  }
  // farmd to completion (it is expected to refuse to start).
  CmdResult run_farmd(std::vector<std::string> args, bool with_auth = true) {
    std::vector<std::string> a{FARMD_BIN, "--exit-with-parent"};
    if (with_auth) a.insert(a.end(), {"--client-token", kClient, "--agent-token", kAgent});
    a.insert(a.end(), args.begin(), args.end());
    return farmtest::run(a, 30s);
  }
  // farmd in the background on 127.0.0.1:<port>; returns the bound port.
  int start_farmd(const std::string& db, int port = 0, std::vector<std::string> extra = {},
                  const std::string& log_name = "farmd.log") {
    std::string pf = dir / ("port-" + std::to_string(procs.size()));
    std::vector<std::string> a{FARMD_BIN, "--exit-with-parent", "--listen", "127.0.0.1:" + std::to_string(port),
                               "--db", db, "--port-file", pf};
    if (std::find(extra.begin(), extra.end(), "--tokens") == extra.end())
      a.insert(a.end(), {"--client-token", kClient, "--agent-token", kAgent});
    a.insert(a.end(), extra.begin(), extra.end());
    procs.push_back(std::make_unique<Proc>(a, dir / log_name));
    return farmtest::read_port_file(pf);
  }
  Client client(int port, const std::string& tok = kClient) {
    farm::ChannelOptions o;
    o.address = "127.0.0.1:" + std::to_string(port);
    o.token = tok;
    return Client(o);
  }
  // The --db of this test's database `name` (farmtest::db: a file or a PostgreSQL URL).
  std::string db(const std::string& name) const { return farmtest::db(dir, name); }
  static void expect_refusal(const CmdResult& r, int code, const std::string& needle) {
    EXPECT_EQ(r.code, code) << r.out << r.err;
    EXPECT_TRUE(has(r.err, needle)) << "stderr: " << r.err << "\nexpected: " << needle;
  }

  farmtest::TempDir dir;
  std::vector<std::unique_ptr<Proc>> procs;
};

// A farmd database with a few jobs, written through the library.
void make_farm_db(const std::string& path, int jobs = 0) {
  farmd::Config c;
  c.db_path = path;
  c.tokens = {{farmd::Role::client, kClient, "ci"}};
  farmd::Server s(c);
  s.start();
  farm::ChannelOptions o;
  o.address = s.address();
  o.token = kClient;
  Client cl(o);
  for (int i = 0; i < jobs; ++i) cl.submit(stress("job" + std::to_string(i)), true);
  s.shutdown(200);
}

void sql(const std::string& path, const std::string& statements) {
  farmd::Db db(path);
  db.exec(statements);
}

}  // namespace

TEST_F(FarmdProcess, ASecondFarmdOnAPortInUseFailsWithAddressInUse) {
  int port = start_farmd(db("a.db"));
  ASSERT_GT(port, 0);
  auto r = run_farmd({"--listen", "127.0.0.1:" + std::to_string(port), "--db", db("b.db")});
  expect_refusal(r, 1, "cannot listen on 127.0.0.1:" + std::to_string(port) + ": address already in use");
  // the first one still owns the port (with SO_REUSEPORT the kernel would have split the connections)
  for (int i = 0; i < 20; ++i) EXPECT_NO_THROW(client(port).workers());
  // not only against another farmd: any listener
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  int other = ntohs(sa.sin_port);
  r = run_farmd({"--listen", "127.0.0.1:" + std::to_string(other), "--db", db("c.db")});
  expect_refusal(r, 1, "address already in use");
  ::close(fd);
}

TEST_F(FarmdProcess, ASecondFarmdOnTheSameDatabaseIsRefused) {
  int port = start_farmd(db("farm.db"));
  ASSERT_GT(port, 0);
  auto r = run_farmd({"--listen", "127.0.0.1:0", "--db", db("farm.db")});
  expect_refusal(r, 1, "database " + db("farm.db") + " is in use by another farmd (pid " +
                           std::to_string(procs[0]->pid()) + " on host ");
  if (farmtest::on_postgres())
    EXPECT_TRUE(has(r.err, "it holds PostgreSQL's advisory lock (1179798852, 1) on this database")) << r.err;
  else
    EXPECT_TRUE(has(r.err, "lock file " + dir / "farm.db.lock")) << r.err;
  // in-process too (flock is per open file, PostgreSQL's lock per session: not per process)
  farmd::Config c;
  c.db_path = db("farm.db");
  c.tokens = {{farmd::Role::client, kClient, "ci"}};
  farmd::Server s(c);
  try {
    s.start();
    ADD_FAILURE() << "started";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(has(e.what(), "is in use by another farmd")) << e.what();
  }
  // once the holder stops, the database is free (even after a SIGKILL: the kernel drops the lock)
  procs[0]->kill(SIGKILL);
  procs[0]->wait(5s);
  EXPECT_GT(start_farmd(db("farm.db")), 0);
}

TEST_F(FarmdProcess, UnreadableFilesAreNamedWithTheReason) {
  auto r = run_farmd({"--db", db("farm.db"), "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"});
  expect_refusal(r, 1, "farmd: cannot read /nonexistent.pem: No such file or directory");
  std::string cert, key, cert2, key2;
  ASSERT_TRUE(farmtest::make_cert(dir.path, &cert, &key));
  std::filesystem::create_directories(dir / "other");
  ASSERT_TRUE(farmtest::make_cert(dir / "other", &cert2, &key2));
  r = run_farmd({"--db", db("farm.db"), "--tls-cert", cert, "--tls-key", "/nonexistent.key"});
  expect_refusal(r, 1, "cannot read /nonexistent.key: No such file or directory");
  r = run_farmd({"--db", db("farm.db"), "--tls-cert", cert, "--tls-key", key2});
  expect_refusal(r, 1, "the TLS key " + key2 + " does not match the certificate " + cert);
  r = run_farmd({"--db", db("farm.db"), "--tls-cert", key, "--tls-key", key});
  expect_refusal(r, 1, key + " holds no PEM certificate");
  r = run_farmd({"--db", db("farm.db"), "--tls-cert", dir.path, "--tls-key", key});
  expect_refusal(r, 1, "cannot read " + dir.path + ": Is a directory");
  r = run_farmd({"--db", db("farm.db"), "--tokens", dir / "no-tokens"}, false);
  expect_refusal(r, 1, "cannot read " + dir / "no-tokens" + ": No such file or directory");
  if (!farmtest::on_postgres()) {
    // the database file: docs/farm.md's path on a machine without /var/lib/farm
    // (PostgreSQL's bad --db: PostgresStore.* and StoreUrl.*)
    r = run_farmd({"--db", "/var/lib/farm-does-not-exist/farm.db"});
    expect_refusal(r, 1,
                   "cannot open database /var/lib/farm-does-not-exist/farm.db: directory /var/lib/farm-does-not-exist "
                   "does not exist");
    r = run_farmd({"--db", dir.path});
    expect_refusal(r, 1, "cannot open database " + dir.path + ": it is a directory");
    std::ofstream(dir / "file") << "x";
    r = run_farmd({"--db", dir / "file" + "/farm.db"});
    expect_refusal(r, 1, "is not a directory");
  }
  r = run_farmd({"--db", db("farm.db"), "--port-file", dir / "nodir/port"});
  expect_refusal(r, 1, "cannot write the port file " + dir / "nodir/port");
  // and TLS with a good pair starts
  EXPECT_GT(start_farmd(db("tls.db"), 0, {"--tls-cert", cert, "--tls-key", key}), 0);
}

TEST_F(FarmdProcess, BadFlagsAreRefused) {
  expect_refusal(run_farmd({"--listen", "127.0.0.1:99999"}), 2,
                 "invalid listen address '127.0.0.1:99999': the port must be a number in 0-65535");
  expect_refusal(run_farmd({"--log-level", "bogus"}), 2, "unknown --log-level 'bogus'");
  expect_refusal(run_farmd({"--lease-ttl-ms", "0"}), 2, "--lease-ttl-ms is 0; it must be in 100..3600000");
  expect_refusal(run_farmd({"--max-attempts", "0"}), 2, "--max-attempts is 0; it must be in 1..10");
  expect_refusal(run_farmd({"--max-attempts", "11"}), 2, "--max-attempts is 11");
  expect_refusal(run_farmd({"--heartbeat-ms", "20000"}), 2, "--heartbeat-ms is 20000");
  expect_refusal(run_farmd({"--client-token", "same-token-123", "--agent-token", "same-token-123"}, false), 2,
                 "the same token is listed twice: as client 'cli-client' and as agent 'cli-agent'");
  std::ofstream(dir / "tokens") << "client dup-token-0001 ci\nagent dup-token-0001 lab\n";
  expect_refusal(run_farmd({"--tokens", dir / "tokens"}, false), 1,
                 dir / "tokens" + ":2: this token is already listed (as client 'ci')");
  // --help documents the tokens syntax
  auto h = run_farmd({"--help"}, false);
  EXPECT_EQ(h.code, 0);
  EXPECT_TRUE(has(h.out, "workers=")) << h.out;
}

TEST_F(FarmdProcess, ForeignNewerAndCorruptedDatabasesAreRefused) {
  if (farmtest::on_postgres()) GTEST_SKIP() << "SQLite files; PostgreSQL's: PostgresStore.*";
  // an unrelated SQLite database: farmd does not add its tables to it
  sql(dir / "shop.db", "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers(name) VALUES('x');");
  expect_refusal(run_farmd({"--db", dir / "shop.db"}), 1,
                 "database " + dir / "shop.db" + " is not a farmd database: it has the tables customers");
  {
    farmd::Db db(dir / "shop.db");
    auto st = db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'jobs'");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.i64(0), 0);  // untouched
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "shop.db.lock"));
  sql(dir / "app.db", "PRAGMA application_id = 1234; CREATE TABLE t(x);");
  expect_refusal(run_farmd({"--db", dir / "app.db"}), 1, "belongs to another application (PRAGMA application_id 0x000004d2");
  std::ofstream(dir / "text.db") << std::string(8192, 'z');
  expect_refusal(run_farmd({"--db", dir / "text.db"}), 1, "database " + dir / "text.db" + " cannot be read: file is not a database");

  // a farmd database from a newer farmd
  make_farm_db(dir / "newer.db");
  sql(dir / "newer.db", "PRAGMA user_version = 99;");
  expect_refusal(run_farmd({"--db", dir / "newer.db"}), 1, "has schema version 99, newer than this farmd's (" + std::to_string(farmd::kSchemaVersion) + ")");

  // one written before the application id (same tables): adopted and marked
  make_farm_db(dir / "old.db", 2);
  sql(dir / "old.db", "PRAGMA application_id = 0; PRAGMA user_version = 0;");
  int port = start_farmd(dir / "old.db");
  ASSERT_GT(port, 0);
  EXPECT_EQ(client(port).list({}).size(), 2u);
  procs.back()->kill(SIGTERM);
  procs.back()->wait(5s);
  {
    farmd::Db db(dir / "old.db");
    auto st = db.prepare("PRAGMA application_id");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.i64(0), 0x46524D44);
  }

  // pages overwritten: PRAGMA quick_check finds it at start
  make_farm_db(dir / "broken.db", 300);
  ASSERT_FALSE(std::filesystem::exists(dir / "broken.db-wal") && std::filesystem::file_size(dir / "broken.db-wal") > 0);
  auto size = std::filesystem::file_size(dir / "broken.db");
  ASSERT_GT(size, 4 * 4096u);
  {
    int fd = ::open((dir / "broken.db").c_str(), O_WRONLY);
    std::string junk(size - 4096, '\xA5');
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), 4096), static_cast<ssize_t>(junk.size()));
    ::close(fd);
  }
  auto r = run_farmd({"--db", dir / "broken.db"});
  expect_refusal(r, 1, "database " + dir / "broken.db" + " is corrupted (PRAGMA quick_check: ");

  // a blob that no longer parses (the record is intact, its protobuf is not)
  make_farm_db(dir / "blob.db", 1);
  sql(dir / "blob.db", "UPDATE jobs SET spec = x'ffffffffffffffffffff'");
  expect_refusal(run_farmd({"--db", dir / "blob.db"}), 1, "is corrupted: the spec of job j-");
}

TEST_F(FarmdProcess, PortFileIsWrittenOnceListening) {
  std::string pf = dir / "ready/port";
  std::filesystem::create_directories(dir / "ready");
  procs.push_back(std::make_unique<Proc>(
      std::vector<std::string>{FARMD_BIN, "--exit-with-parent", "--listen", "127.0.0.1:0", "--db", db("farm.db"),
                               "--client-token", kClient, "--port-file", pf},
      dir / "farmd.log"));
  int port = farmtest::read_port_file(pf);
  ASSERT_GT(port, 0);
  EXPECT_EQ(farm::read_file(pf), std::to_string(port) + "\n");
  EXPECT_NO_THROW(client(port).workers());  // listening when the file appears
  for (auto& e : std::filesystem::directory_iterator(dir / "ready"))
    EXPECT_EQ(e.path().filename(), "port");  // no temporary left behind
  procs.back()->kill(SIGTERM);
  EXPECT_EQ(procs.back()->wait(10s), 0);
  EXPECT_FALSE(std::filesystem::exists(pf));  // a stopped farmd leaves no stale port
}

TEST_F(FarmdProcess, AuditTrailNamesWhoWhatAndFromWhere) {
  std::ofstream(dir / "tokens") << "client " << kClient << " ci\n"
                                << "agent " << kLab3 << " lab3 workers=lab3-*\n";
  int port = start_farmd(db("farm.db"), 0, {"--tokens", dir / "tokens"}, "audit.log");
  ASSERT_GT(port, 0);
  auto c = client(port);
  RawAgent a("127.0.0.1:" + std::to_string(port), kLab3);
  ASSERT_TRUE(a.reg("lab3-1").ok());
  auto job = c.submit(stress("audited"));
  v1::Lease l;
  ASSERT_TRUE(a.acquire(&l).ok());
  ASSERT_EQ(l.job_id(), job.id());
  std::string garbage = "garbage", other = "lab4-2";
  EXPECT_FALSE(a.complete(l, res(v1::OUTCOME_FAIL, "forged"), nullptr, nullptr, &garbage).ok());
  EXPECT_FALSE(a.complete(l, res(v1::OUTCOME_FAIL, "forged"), nullptr, &other).ok());
  RawAgent b("127.0.0.1:" + std::to_string(port), kLab3);
  EXPECT_FALSE(b.reg("lab4-x").ok());
  ASSERT_TRUE(a.complete(l, res(v1::OUTCOME_PASS, "ok", "pass")).ok());
  c.cancel(c.submit(stress("to-cancel")).id(), "audit");
  EXPECT_THROW(client(port, "wrong-token-1").workers(), farm::ctl::RpcError);
  EXPECT_THROW(client(port, kLab3).workers(), farm::ctl::RpcError);
  std::string log;
  ASSERT_TRUE(farmtest::wait_until([&] {
    log = farm::read_file(dir / "audit.log");
    return has(log, "PERMISSION_DENIED: token 'lab3' has role agent");
  }, 5s));
  const std::string from = " from ipv4:127.0.0.1:";
  auto line_with = [&](const std::string& a1, const std::string& a2) {
    std::istringstream ss(log);
    for (std::string line; std::getline(ss, line);)
      if (has(line, a1) && has(line, a2)) return line;
    return std::string();
  };
  EXPECT_TRUE(has(line_with("info farmd audit: client 'ci'" + from, "SubmitJob: queued " + job.id()), "name 'audited'")) << log;
  EXPECT_FALSE(line_with("info farmd audit: agent 'lab3'" + from, "Register: worker lab3-1 registered").empty()) << log;
  EXPECT_FALSE(line_with("agent 'lab3'" + from, "AcquireJob: leased " + job.id() + " attempt 1 to worker lab3-1").empty()) << log;
  EXPECT_FALSE(line_with("warning farmd audit: agent 'lab3'" + from, "CompleteJob refused: FAILED_PRECONDITION: stale session").empty()) << log;
  EXPECT_FALSE(line_with("warning farmd audit: agent 'lab3'", "CompleteJob refused: PERMISSION_DENIED: token 'lab3' may not act for worker 'lab4-2'").empty()) << log;
  EXPECT_FALSE(line_with("warning farmd audit: agent 'lab3'", "Register refused: PERMISSION_DENIED").empty()) << log;
  EXPECT_FALSE(line_with("CompleteJob: worker lab3-1 completed " + job.id() + " attempt 1: pass -> passed", "agent 'lab3'").empty()) << log;
  EXPECT_FALSE(line_with("client 'ci'", "CancelJob: cancel j-").empty()) << log;
  EXPECT_FALSE(line_with("warning farmd audit: unauthenticated caller" + from, "ListWorkers refused: UNAUTHENTICATED: invalid token").empty()) << log;
  EXPECT_FALSE(has(log, "wrong-token-1")) << "a token must never be logged";
  EXPECT_FALSE(has(log, kLab3)) << "a token must never be logged";
}

TEST(FarmCommon, ClipBoundsWhatMessagesEcho) {
  EXPECT_EQ(farm::clip("short"), "short");
  EXPECT_EQ(farm::clip(std::string(64, 'a')), std::string(64, 'a'));
  EXPECT_EQ(farm::clip(std::string(100000, 'a')), std::string(64, 'a') + "\u2026");
  EXPECT_EQ(farm::clip("a\nb\x01", 10), "a\\x0ab\\x01");
  // counts characters: never cuts a UTF-8 sequence in two
  std::string e_acute = "\u00e9";
  std::string s;
  for (int i = 0; i < 10; ++i) s += e_acute;
  EXPECT_EQ(farm::clip(s, 3), e_acute + e_acute + e_acute + "\u2026");
  EXPECT_TRUE(farm::valid_log_level("info"));
  EXPECT_TRUE(farm::valid_log_level("warn"));
  EXPECT_FALSE(farm::valid_log_level("bogus"));
  EXPECT_FALSE(farm::valid_log_level(""));
}
