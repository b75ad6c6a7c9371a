// farmd + agents + client in one process, on loopback with port 0:
// scheduling, leases, idempotent completion, auth, TLS, cancellation,
// quarantine, persistence across a restart, watch streams, the schema
// migration. On both stores (farm.* SQLite, farm.postgres.* PostgreSQL).
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "farm/agent/agent.hpp"
#include "farm/common/names.hpp"
#include "farm/ctl/client.hpp"
#include "farm_store.hpp"
#include "farm_test_util.hpp"
#include "farmd/farm.hpp"
#include "farmd/server.hpp"
#include "farmd/store.hpp"

namespace v1 = farm::v1;
using farm::agent::JobContext;
using farm::ctl::Client;
using farm::ctl::RpcError;
using namespace std::chrono_literals;

namespace {

const char* kClientTok = "client-token-0001";
const char* kAgentTok = "agent-token-0001";

v1::JobResult pass_result(uint64_t calls = 1000) {
  v1::JobResult r;
  r.set_outcome(v1::OUTCOME_PASS);
  r.set_verdict("pass");
  r.set_calls(calls);
  r.set_hits(calls / 2);
  r.set_batches(10);
  r.set_duration_s(0.01);
  r.set_result_json("{\"verdict\":\"pass\",\"calls\":" + std::to_string(calls) + "}");
  r.set_message("pass");
  return r;
}

v1::JobResult outcome(v1::Outcome o, const std::string& msg) {
  v1::JobResult r;
  r.set_outcome(o);
  r.set_message(msg);
  return r;
}

v1::JobResult wait_for_cancel(JobContext& ctx, std::chrono::milliseconds max = 20s) {
  farmtest::wait_until([&] { return ctx.cancel->cancelled(); }, max, 5ms);
  return outcome(ctx.cancel->cancelled() ? v1::OUTCOME_CANCELLED : v1::OUTCOME_PASS, "stopped");
}

// A handler the test may replace while agent threads call it.
template <class F>
class Guarded {
 public:
  Guarded& operator=(std::function<F> f) {
    std::lock_guard lk(mu_);
    fn_ = std::move(f);
    return *this;
  }
  std::function<F> get() const {
    std::lock_guard lk(mu_);
    return fn_;
  }

 private:
  mutable std::mutex mu_;
  std::function<F> fn_;
};

class FakeExecutor : public farm::agent::Executor {
 public:
  std::string kind() const override { return "native"; }
  std::vector<std::string> workloads() const override { return {"patch-stress", "command"}; }
  v1::JobResult run(JobContext& ctx) override {
    {
      std::lock_guard lk(mu);
      ran.push_back(ctx.spec.name());
      seen_cancel_ptr = ctx.cancel;
    }
    if (ctx.output) {
      ctx.output("stdout", "hello from " + ctx.job_id + "\n");
      ctx.output("stdout", "{\"progress\":0.5,\"calls\":7,\"hits\":3,\"batches\":1}\n");
    }
    auto fn = on_run.get();
    return fn ? fn(ctx) : pass_result();
  }
  v1::JobResult health_check(JobContext& ctx) override {
    ++health_checks;
    auto fn = on_health.get();
    return fn ? fn(ctx) : pass_result(0);
  }
  std::vector<std::string> names() {
    std::lock_guard lk(mu);
    return ran;
  }
  Guarded<v1::JobResult(JobContext&)> on_run, on_health;
  std::atomic<int> health_checks{0};
  std::mutex mu;
  std::vector<std::string> ran;
  farm::agent::Cancel* seen_cancel_ptr = nullptr;
};

class FarmService : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg.db_path = farmtest::db(dir);
    cfg.tokens = {{farmd::Role::client, kClientTok, "ci"}, {farmd::Role::agent, kAgentTok, "lab"}};
    cfg.lease_ttl_ms = 2000;  // generous: CI machines can be heavily loaded
    cfg.health_recheck_ms = 200;
  }
  void TearDown() override {
    agents.clear();
    if (server) server->shutdown(500);
  }
  void start() {
    server = std::make_unique<farmd::Server>(cfg);
    server->start();
  }
  farm::ChannelOptions chan(const std::string& tok) {
    farm::ChannelOptions o;
    o.address = server->address();
    o.token = tok;
    return o;
  }
  Client client() { return Client(chan(kClientTok)); }

  FakeExecutor* add_agent(const std::string& name, std::function<void(farm::agent::AgentConfig&)> tweak = nullptr) {
    auto ex = std::make_unique<FakeExecutor>();
    auto* raw = ex.get();
    farm::agent::AgentConfig ac;
    ac.channel = chan(kAgentTok);
    ac.name = name;
    ac.work_dir = dir / ("work-" + name);
    ac.acquire_wait_ms = 2000;
    ac.progress_interval_ms = 50;
    if (tweak) tweak(ac);
    auto a = std::make_unique<farm::agent::Agent>(ac, std::move(ex));
    a->start();
    EXPECT_TRUE(farmtest::wait_until([&] { return a->registered(); }, 10s));
    agents.push_back(std::move(a));
    return raw;
  }

  static v1::JobSpec stress(const std::string& name) {
    v1::JobSpec s;
    s.set_name(name);
    s.mutable_workload()->mutable_patch_stress()->set_threads(2);
    s.set_timeout_s(30);
    return s;
  }

  v1::Job wait_state(Client& c, const std::string& id, std::function<bool(v1::JobState)> pred,
                     std::chrono::milliseconds t = 20s) {
    v1::Job j;
    farmtest::wait_until([&] {
      j = c.get(id, true);
      return pred(j.state());
    }, t);
    return j;
  }
  v1::Job wait_terminal(Client& c, const std::string& id, std::chrono::milliseconds t = 20s) {
    return wait_state(c, id, [](v1::JobState s) { return farm::is_terminal(s); }, t);
  }

  farmtest::TempDir dir;
  farmd::Config cfg;
  std::unique_ptr<farmd::Server> server;
  std::vector<std::unique_ptr<farm::agent::Agent>> agents;
};

grpc::StatusCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const RpcError& e) {
    return e.status.error_code();
  }
  return grpc::StatusCode::OK;
}

}  // namespace

TEST_F(FarmService, SubmitRunsOnAgentAndStoresResult) {
  start();
  auto* ex = add_agent("a1");
  auto c = client();
  auto job = c.submit(stress("s1"));
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  auto done = wait_terminal(c, job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_PASSED) << done.message();
  EXPECT_EQ(done.worker_id(), "a1");
  EXPECT_EQ(done.attempts(), 1u);
  EXPECT_EQ(done.result().calls(), 1000u);
  EXPECT_EQ(done.result().hits(), 500u);
  EXPECT_EQ(done.result().batches(), 10u);
  EXPECT_EQ(done.result().verdict(), "pass");
  EXPECT_NE(done.result().result_json().find("\"calls\":1000"), std::string::npos);
  ASSERT_EQ(done.attempt_history_size(), 1);
  EXPECT_EQ(done.attempt_history(0).outcome(), v1::OUTCOME_PASS);
  EXPECT_EQ(ex->names(), std::vector<std::string>{"s1"});

  auto ws = c.workers();
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_EQ(ws[0].id(), "a1");
  EXPECT_EQ(ws[0].jobs_done(), 1u);
  EXPECT_EQ(ws[0].capabilities().kind(), "native");

  auto rep = c.report({});
  EXPECT_EQ(rep.total(), 1u);
  EXPECT_EQ(rep.passed(), 1u);
  EXPECT_EQ(rep.total_calls(), 1000u);
  ASSERT_EQ(rep.targets_size(), 1);
}

TEST_F(FarmService, RejectsMalformedSpecs) {
  start();
  add_agent("a1");
  auto c = client();
  v1::JobSpec none;
  EXPECT_EQ(code_of([&] { c.submit(none); }), grpc::StatusCode::INVALID_ARGUMENT);
  auto bad = stress("x");
  bad.mutable_workload()->mutable_patch_stress()->set_writer("bogus");
  EXPECT_EQ(code_of([&] { c.submit(bad); }), grpc::StatusCode::INVALID_ARGUMENT);
  bad = stress("x");
  bad.mutable_workload()->mutable_patch_stress()->set_sites("middle");
  EXPECT_EQ(code_of([&] { c.submit(bad); }), grpc::StatusCode::INVALID_ARGUMENT);
  bad = stress("x");  // call probes sit on entry sleds: not with instruction sites
  bad.mutable_workload()->mutable_patch_stress()->set_exit_probes(true);
  bad.mutable_workload()->mutable_patch_stress()->set_sites("body");
  EXPECT_EQ(code_of([&] { c.submit(bad); }), grpc::StatusCode::INVALID_ARGUMENT);
  bad = stress("x");
  bad.mutable_workload()->mutable_patch_stress()->set_duration_s(1);
  bad.mutable_workload()->mutable_patch_stress()->set_batches(1);
  EXPECT_EQ(code_of([&] { c.submit(bad); }), grpc::StatusCode::INVALID_ARGUMENT);
  bad = stress("x");
  bad.set_timeout_s(100000000);
  EXPECT_EQ(code_of([&] { c.submit(bad); }), grpc::StatusCode::INVALID_ARGUMENT);
  bad = stress("x");
  bad.mutable_selector()->set_kind("mainframe");
  EXPECT_EQ(code_of([&] { c.submit(bad); }), grpc::StatusCode::INVALID_ARGUMENT);
  v1::JobSpec cmd;
  cmd.mutable_workload()->mutable_command();
  EXPECT_EQ(code_of([&] { c.submit(cmd); }), grpc::StatusCode::INVALID_ARGUMENT);
  v1::JobSpec bm;
  bm.mutable_workload()->mutable_baremetal();
  EXPECT_EQ(code_of([&] { c.submit(bm); }), grpc::StatusCode::INVALID_ARGUMENT);
  try {
    c.submit(bad);
  } catch (const RpcError& e) {
    EXPECT_NE(e.status.error_message().find("mainframe"), std::string::npos);
  }
  EXPECT_EQ(code_of([&] { c.get("j-nope"); }), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(c.list({}).empty());
  auto fine = stress("exit probes");  // with entry sites (explicit or default) it is accepted
  fine.mutable_workload()->mutable_patch_stress()->set_exit_probes(true);
  fine.mutable_workload()->mutable_patch_stress()->set_sites("entry");
  EXPECT_NO_THROW(c.submit(fine));
  EXPECT_EQ(c.list({}).size(), 1u);
}

TEST_F(FarmService, UnmatchableJobIsRefusedWithAReason) {
  start();
  auto c = client();
  // no workers at all
  try {
    c.submit(stress("x"));
    FAIL() << "accepted";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(e.status.error_message().find("no workers are registered"), std::string::npos);
  }
  add_agent("x86", [](farm::agent::AgentConfig& a) { a.caps.set_arch("x86_64"); });
  auto rv = stress("rv");
  rv.mutable_selector()->set_arch("riscv64");
  try {
    c.submit(rv);
    FAIL() << "accepted";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(e.status.error_message().find("arch x86_64 != riscv64"), std::string::npos) << e.what();
  }
  auto bm = stress("bm");
  bm.mutable_workload()->mutable_baremetal()->set_image("img.elf");  // a name (paths are refused)
  EXPECT_EQ(code_of([&] { c.submit(bm); }), grpc::StatusCode::FAILED_PRECONDITION);
  // explicitly allowed to wait for a worker that does not exist yet
  v1::Job q = c.submit(rv, /*allow_unmatched=*/true);
  EXPECT_EQ(q.state(), v1::JOB_STATE_QUEUED);
  EXPECT_NE(q.message().find("waiting"), std::string::npos);
  add_agent("rv", [](farm::agent::AgentConfig& a) {
    a.caps.set_arch("riscv64");
    a.caps.set_isa("rv64gc");
  });
  EXPECT_EQ(wait_terminal(c, q.id()).state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(c.get(q.id()).worker_id(), "rv");
}

TEST_F(FarmService, AuthRejectsMissingWrongAndCrossRoleTokens) {
  start();
  add_agent("a1");
  Client anon(chan(""));
  Client wrong(chan("not-a-valid-token"));
  Client agent_as_client(chan(kAgentTok));
  EXPECT_EQ(code_of([&] { anon.submit(stress("x")); }), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code_of([&] { anon.workers(); }), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code_of([&] { wrong.list({}); }), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code_of([&] { agent_as_client.submit(stress("x")); }), grpc::StatusCode::PERMISSION_DENIED);

  // a client token cannot register an agent
  auto stub = v1::FarmAgent::NewStub(farm::make_channel(chan(kClientTok)));
  v1::RegisterRequest rr;
  rr.set_name("evil");
  rr.mutable_capabilities()->set_arch("x86_64");
  rr.mutable_capabilities()->set_kind("native");
  v1::RegisterResponse resp;
  grpc::ClientContext ctx;
  farm::prepare_context(ctx, kClientTok, 5s);
  EXPECT_EQ(stub->Register(&ctx, rr, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  grpc::ClientContext ctx2;
  EXPECT_EQ(stub->Register(&ctx2, rr, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto ws = client().workers();
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_EQ(ws[0].id(), "a1");
}

namespace {
struct RawAgent {
  std::unique_ptr<v1::FarmAgent::Stub> stub;
  std::string id, session;
  RawAgent(const farm::ChannelOptions& o, const std::string& name) : stub(v1::FarmAgent::NewStub(farm::make_channel(o))) {
    v1::RegisterRequest rr;
    rr.set_name(name);
    rr.mutable_capabilities()->set_arch(farm::machine_arch());
    rr.mutable_capabilities()->set_kind("native");
    rr.mutable_capabilities()->add_workloads("patch-stress");
    v1::RegisterResponse resp;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, kAgentTok, 5s);
    auto s = stub->Register(&ctx, rr, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    id = resp.worker_id();
    session = resp.session();
  }
  v1::Lease acquire(uint32_t wait_ms = 3000) {
    v1::AcquireJobRequest req;
    req.set_worker_id(id);
    req.set_session(session);
    req.set_wait_ms(wait_ms);
    v1::AcquireJobResponse resp;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, kAgentTok, 10s);
    auto s = stub->AcquireJob(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.lease();
  }
  grpc::Status complete(const v1::Lease& l, const v1::JobResult& r, v1::CompleteJobResponse* out,
                        bool acquire_next = false) {
    v1::CompleteJobRequest req;
    req.set_acquire_next(acquire_next);
    req.set_worker_id(id);
    req.set_session(session);
    req.mutable_lease()->set_job_id(l.job_id());
    req.mutable_lease()->set_attempt(l.attempt());
    *req.mutable_result() = r;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, kAgentTok, 5s);
    return stub->CompleteJob(&ctx, req, out);
  }
};
}  // namespace

TEST_F(FarmService, ExpiredLeaseRequeuesToAnotherWorker) {
  cfg.lease_ttl_ms = 600;
  start();
  auto c = client();
  RawAgent ghost(chan(kAgentTok), "ghost");
  EXPECT_TRUE(ghost.acquire(100).job_id().empty());  // nothing queued: no lease
  auto job = c.submit(stress("lease"));
  auto lease = ghost.acquire();
  ASSERT_EQ(lease.job_id(), job.id());
  EXPECT_EQ(lease.attempt(), 1u);
  EXPECT_EQ(c.get(job.id()).state(), v1::JOB_STATE_RUNNING);
  // the ghost never heartbeats: after the TTL the attempt is lost and the job requeued
  auto q = wait_state(c, job.id(), [](v1::JobState s) { return s == v1::JOB_STATE_QUEUED; }, 5s);
  ASSERT_EQ(q.state(), v1::JOB_STATE_QUEUED);
  EXPECT_NE(q.message().find("lost"), std::string::npos) << q.message();
  add_agent("good");
  auto done = wait_terminal(c, job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(done.worker_id(), "good");
  EXPECT_EQ(done.attempts(), 2u);
  ASSERT_EQ(done.attempt_history_size(), 2);
  EXPECT_EQ(done.attempt_history(0).worker_id(), "ghost");
  EXPECT_EQ(done.attempt_history(0).outcome(), v1::OUTCOME_LOST);
  EXPECT_EQ(done.attempt_history(1).outcome(), v1::OUTCOME_PASS);
  // the ghost's late completion is refused and changes nothing
  v1::CompleteJobResponse cr;
  EXPECT_EQ(ghost.complete(lease, outcome(v1::OUTCOME_FAIL, "late"), &cr).error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(c.get(job.id()).state(), v1::JOB_STATE_PASSED);
  auto ws = c.workers();
  for (auto& w : ws) {
    if (w.id() == "ghost") {
      EXPECT_EQ(w.infra_failures(), 1u);
    }
  }
  // what this farmd counted (issue 17, /metrics): the expiry, the requeue
  // with its reason, both attempts by outcome, two leases out of the queue
  const std::string m = server->farm().metrics().exposition();
  for (const char* want : {"farm_lease_expiries_total 1\n", "farm_requeues_total{reason=\"lost\"} 1\n",
                           "farm_attempts_total{outcome=\"lost\"} 1\n", "farm_attempts_total{outcome=\"pass\"} 1\n",
                           "farm_queue_wait_seconds_count 2\n", "farm_jobs_submitted_total 1\n",
                           "farm_jobs{state=\"passed\"} 1\n"})
    EXPECT_NE(m.find(want), std::string::npos) << want << " not in\n" << m;
}

TEST_F(FarmService, CompletionIsIdempotentPerAttempt) {
  cfg.lease_ttl_ms = 10000;
  start();
  auto c = client();
  RawAgent ra(chan(kAgentTok), "raw");
  auto job = c.submit(stress("idem"));
  auto lease = ra.acquire();
  ASSERT_EQ(lease.job_id(), job.id());
  v1::CompleteJobResponse r1, r2, r3;
  ASSERT_TRUE(ra.complete(lease, pass_result(5), &r1).ok());
  EXPECT_FALSE(r1.duplicate());
  EXPECT_EQ(r1.job_state(), v1::JOB_STATE_PASSED);
  ASSERT_TRUE(ra.complete(lease, pass_result(5), &r2).ok());
  EXPECT_TRUE(r2.duplicate());
  ASSERT_TRUE(ra.complete(lease, outcome(v1::OUTCOME_FAIL, "different"), &r3).ok());
  EXPECT_TRUE(r3.duplicate());
  auto j = c.get(job.id());
  EXPECT_EQ(j.state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(j.result().calls(), 5u);
  // completion can hand out the next job in the same round trip
  auto j2 = c.submit(stress("idem2"));
  auto j3 = c.submit(stress("idem3"));
  auto l2 = ra.acquire();
  ASSERT_EQ(l2.job_id(), j2.id());
  v1::CompleteJobResponse r4, r5;
  ASSERT_TRUE(ra.complete(l2, pass_result(), &r4, /*acquire_next=*/true).ok());
  EXPECT_EQ(r4.next().job_id(), j3.id());
  EXPECT_EQ(c.get(j3.id()).state(), v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(ra.complete(l2, pass_result(), &r5, true).ok());  // a retry gets no second lease
  EXPECT_TRUE(r5.duplicate());
  EXPECT_FALSE(r5.has_next());
  ASSERT_TRUE(ra.complete(r4.next(), pass_result(), &r5, true).ok());
  EXPECT_FALSE(r5.has_next());  // queue empty

  auto bogus = lease;
  bogus.set_attempt(7);
  EXPECT_EQ(ra.complete(bogus, pass_result(), &r3).error_code(), grpc::StatusCode::NOT_FOUND);
  auto ws = c.workers();
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_EQ(ws[0].jobs_done(), 3u);
}

TEST_F(FarmService, InfraFailuresAreRetriedThenGiveUp) {
  cfg.quarantine_threshold = 0;  // this test is about attempts, not quarantine
  start();
  auto* ex = add_agent("flaky");
  ex->on_run = [](JobContext&) { return outcome(v1::OUTCOME_INFRA_ERROR, "disk full"); };
  auto c = client();
  auto spec = stress("retry");
  spec.set_max_attempts(2);
  auto job = c.submit(spec);
  auto done = wait_terminal(c, job.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_ERROR);
  EXPECT_EQ(done.attempts(), 2u);
  EXPECT_NE(done.message().find("gave up after 2"), std::string::npos) << done.message();
  EXPECT_NE(done.message().find("disk full"), std::string::npos);
}

TEST_F(FarmService, CancelQueuedAndRunningJobs) {
  start();
  auto c = client();
  // queued (no worker can take it yet): cancelled at once
  auto held = stress("held");
  held.mutable_selector()->set_arch("riscv64");
  auto q = c.submit(held, true);
  auto cq = c.cancel(q.id(), "not needed");
  EXPECT_EQ(cq.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_NE(cq.message().find("not needed"), std::string::npos);
  EXPECT_EQ(code_of([&] { c.cancel(q.id()); }), grpc::StatusCode::OK);  // cancelling twice is harmless

  // running: the cancel reaches the agent, which stops the workload
  auto* ex = add_agent("a1");
  std::atomic<bool> started{false};
  ex->on_run = [&](JobContext& ctx) {
    started = true;
    return wait_for_cancel(ctx);
  };
  auto r = c.submit(stress("long"));
  ASSERT_TRUE(farmtest::wait_until([&] { return started.load(); }, 10s));
  auto t0 = std::chrono::steady_clock::now();
  auto cr = c.cancel(r.id(), "user abort");
  EXPECT_TRUE(cr.cancel_requested());
  auto done = wait_terminal(c, r.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  // a finished job cannot be cancelled
  // (the hook goes first: the quick job may be leased the moment it is submitted)
  ex->on_run = nullptr;
  auto p = c.submit(stress("quick"));
  EXPECT_EQ(wait_terminal(c, p.id()).state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(code_of([&] { c.cancel(p.id()); }), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(FarmService, QuarantineAfterInfraFailuresUntilHealthCheckPasses) {
  cfg.quarantine_threshold = 2;
  start();
  auto* bad = add_agent("bad");
  std::atomic<bool> healed{false};
  bad->on_run = [&](JobContext&) {
    return healed ? pass_result() : outcome(v1::OUTCOME_INFRA_ERROR, "qemu crashed");
  };
  bad->on_health = [&](JobContext&) { return healed ? pass_result(0) : outcome(v1::OUTCOME_FAIL, "still broken"); };
  auto c = client();
  auto spec = stress("q");
  spec.set_max_attempts(5);
  auto job = c.submit(spec);
  ASSERT_TRUE(farmtest::wait_until([&] {
    for (auto& w : c.workers())
      if (w.id() == "bad" && w.state() == v1::WORKER_STATE_QUARANTINED) return true;
    return false;
  }, 10s));
  auto w = c.workers()[0];
  EXPECT_NE(w.quarantine_reason().find("qemu crashed"), std::string::npos) << w.quarantine_reason();
  // while quarantined it only gets health checks, and the job waits
  ASSERT_TRUE(farmtest::wait_until([&] { return bad->health_checks >= 2; }, 10s));
  EXPECT_EQ(c.get(job.id()).state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(c.get(job.id()).attempts(), 2u);
  healed = true;
  auto done = wait_terminal(c, job.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(done.attempts(), 3u) << done.DebugString();
  w = c.workers()[0];
  EXPECT_NE(w.state(), v1::WORKER_STATE_QUARANTINED);
  EXPECT_EQ(w.infra_failures(), 0u);
  // health checks are visible as jobs, tagged farm=health-check
  v1::ListJobsRequest lr;
  (*lr.mutable_tags())["farm"] = "health-check";
  lr.set_newest_first(true);
  auto hc = c.list(lr);
  ASSERT_GE(hc.size(), 2u);
  EXPECT_EQ(hc.front().state(), v1::JOB_STATE_PASSED);  // newest first
}

TEST_F(FarmService, FarmdTimesOutAStuckAgent) {
  cfg.timeout_grace_s = 1;
  start();
  auto* ex = add_agent("stuck");
  std::atomic<bool> told{false};
  ex->on_run = [&](JobContext& ctx) {
    // ignores its own timeout; only farmd's verdict (lease lost) stops it
    auto r = wait_for_cancel(ctx, 15s);
    told = ctx.cancel->cancelled();
    return r;
  };
  auto c = client();
  auto spec = stress("stuck");
  spec.set_timeout_s(1);
  auto job = c.submit(spec);
  auto done = wait_terminal(c, job.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_TIMED_OUT);
  EXPECT_NE(done.message().find("farmd: no result"), std::string::npos) << done.message();
  EXPECT_TRUE(farmtest::wait_until([&] { return told.load(); }, 5s));
  EXPECT_EQ(c.get(job.id()).state(), v1::JOB_STATE_TIMED_OUT);  // the agent's late report changes nothing
}

TEST_F(FarmService, OfflineAndRemovedWorkers) {
  cfg.offline_after_ms = 300;
  start();
  auto* ex = add_agent("old");
  auto c = client();
  std::atomic<bool> started{false};
  ex->on_run = [&](JobContext& ctx) {
    started = true;
    return wait_for_cancel(ctx);
  };
  auto busy = c.submit(stress("busy"));
  ASSERT_TRUE(farmtest::wait_until([&] { return started.load(); }, 10s));
  EXPECT_EQ(code_of([&] { c.remove_worker("old"); }), grpc::StatusCode::FAILED_PRECONDITION);
  agents.clear();  // the agent goes away (its job is handed back)
  ASSERT_TRUE(farmtest::wait_until([&] { return c.workers()[0].state() == v1::WORKER_STATE_OFFLINE; }, 10s));
  auto waiting = c.submit(stress("later"));
  EXPECT_NE(waiting.message().find("offline (old)"), std::string::npos) << waiting.message();
  c.remove_worker("old");
  EXPECT_TRUE(c.workers().empty());
  EXPECT_EQ(code_of([&] { c.submit(stress("nobody")); }), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(code_of([&] { c.remove_worker("old"); }), grpc::StatusCode::NOT_FOUND);
  // queued jobs wait for a new worker
  add_agent("new");
  EXPECT_EQ(wait_terminal(c, busy.id()).state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(wait_terminal(c, waiting.id()).state(), v1::JOB_STATE_PASSED);
}

TEST_F(FarmService, PriorityThenFifo) {
  start();
  auto c = client();
  // queue while no worker exists yet
  std::vector<std::string> ids;
  for (auto [name, prio] : std::vector<std::pair<std::string, int>>{{"a", 0}, {"b", 0}, {"c", 5}, {"d", -1}, {"e", 5}}) {
    auto s = stress(name);
    s.set_priority(prio);
    ids.push_back(c.submit(s, true).id());
  }
  auto* ex = add_agent("one");
  for (auto& id : ids) EXPECT_EQ(wait_terminal(c, id).state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(ex->names(), (std::vector<std::string>{"c", "e", "a", "b", "d"}));
}

// A database written by a farmd of schema version 1 (before the lease
// deadline moved into the store): the farmd of today migrates it at start,
// keeps its jobs, workers and events, and runs what was queued.
TEST_F(FarmService, MigratesASchema1Database) {
  const std::string db = farmtest::db(dir, "schema1.db");
  {
    farmd::Config old = cfg;
    old.db_path = db;
    auto store = farmd::open_store(old, farmd::StoreOptions{1});  // the schema as a version-1 farmd left it
  }
  auto b = [&](const google::protobuf::Message& m) { return farmtest::blob_literal(db, m.SerializeAsString()); };
  v1::Capabilities caps;
  caps.set_arch(farm::machine_arch());
  caps.set_kind("native");
  v1::JobResult passed = pass_result(4242);
  passed.set_worker_id("a1");
  passed.set_attempt(1);
  v1::JobEvent queued_ev;
  queued_ev.set_job_id("j-old000000q1");
  queued_ev.set_time_ms(1000);
  queued_ev.mutable_state()->set_state(v1::JOB_STATE_QUEUED);
  // the columns of schema 1 only (no jobs.lease_expires_ms)
  farmtest::sql(db,
                "INSERT INTO jobs(id, name, spec, state, priority, attempts, max_attempts, worker_id, created_ms, "
                "started_ms, finished_ms, message, result) VALUES "
                "('j-old000000p1', 'old-passed', " + b(stress("old-passed")) + ", 3, 0, 1, 3, 'a1', 1000, 1001, 1002, "
                "'pass', " + b(passed) + "), "
                "('j-old000000q1', 'old-queued', " + b(stress("old-queued")) + ", 1, 0, 0, 3, '', 1000, 0, 0, '', NULL);"
                "INSERT INTO attempts(job_id, attempt, worker_id, outcome, started_ms, finished_ms, message) VALUES "
                "('j-old000000p1', 1, 'a1', 1, 1001, 1002, 'pass');"
                "INSERT INTO results(job_id, attempt, outcome, verdict, exit_code, calls, hits, batches, duration_s, "
                "result) VALUES ('j-old000000p1', 1, 1, 'pass', 0, 4242, 2121, 10, 0.5, " + b(passed) + ");"
                "INSERT INTO workers(id, name, capabilities, session, registered_ms, last_seen_ms, jobs_done) VALUES "
                "('a1', 'a1', " + b(caps) + ", '', 900, 1002, 1);"
                "INSERT INTO events(job_id, kind, time_ms, event) VALUES ('j-old000000q1', 0, 1000, " + b(queued_ev) +
                ");");
  const std::string version_query = db.rfind("postgresql://", 0) == 0
                                        ? "SELECT value FROM meta WHERE key = 'schema'"
                                        : "PRAGMA user_version";
  ASSERT_EQ(farmtest::sql_value(db, version_query), "1");

  cfg.db_path = db;
  start();
  EXPECT_EQ(farmtest::sql_value(db, version_query), std::to_string(farmd::kSchemaVersion));
  auto c = client();
  auto old = c.get("j-old000000p1", true);
  EXPECT_EQ(old.state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(old.result().calls(), 4242u);
  ASSERT_EQ(old.attempt_history_size(), 1);
  EXPECT_EQ(old.attempt_history(0).worker_id(), "a1");
  auto ws = c.workers();
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_EQ(ws[0].jobs_done(), 1u);
  EXPECT_EQ(c.get("j-old000000q1").state(), v1::JOB_STATE_QUEUED);
  // what was queued runs, with a lease deadline in the new column
  auto* ex = add_agent("a1");
  auto done = wait_terminal(c, "j-old000000q1");
  EXPECT_EQ(done.state(), v1::JOB_STATE_PASSED) << done.message();
  EXPECT_EQ(ex->names(), std::vector<std::string>{"old-queued"});
  EXPECT_EQ(farmtest::sql_value(db, "SELECT COUNT(*) FROM jobs WHERE lease_expires_ms <> 0"), "0");  // none running
  EXPECT_EQ(c.list({}).size(), 2u);
}

TEST_F(FarmService, StateSurvivesRestart) {
  start();
  auto* ex = add_agent("a1");
  auto c = client();
  std::vector<std::string> done_ids;
  for (int i = 0; i < 3; ++i) done_ids.push_back(c.submit(stress("done" + std::to_string(i))).id());
  for (auto& id : done_ids) ASSERT_EQ(wait_terminal(c, id).state(), v1::JOB_STATE_PASSED);
  std::atomic<bool> started{false};
  ex->on_run = [&](JobContext& ctx) {
    started = true;
    return wait_for_cancel(ctx);
  };
  auto running = c.submit(stress("running"));
  ASSERT_TRUE(farmtest::wait_until([&] { return started.load(); }, 10s));
  auto held = stress("held");
  held.mutable_selector()->set_arch("riscv64");
  auto queued = c.submit(held, true);
  agents.clear();  // agent stops: its job goes back to the queue
  server->shutdown(200);
  server.reset();

  start();  // same database file
  auto c2 = client();
  for (auto& id : done_ids) {
    auto j = c2.get(id, true);
    EXPECT_EQ(j.state(), v1::JOB_STATE_PASSED);
    EXPECT_EQ(j.result().calls(), 1000u);
  }
  EXPECT_EQ(c2.get(queued.id()).state(), v1::JOB_STATE_QUEUED);
  auto rj = c2.get(running.id(), true);
  EXPECT_TRUE(rj.state() == v1::JOB_STATE_QUEUED || rj.state() == v1::JOB_STATE_RUNNING) << rj.state();
  auto ws = c2.workers();
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_EQ(ws[0].jobs_done(), 3u);
  add_agent("a1");
  add_agent("rv", [](farm::agent::AgentConfig& a) { a.caps.set_arch("riscv64"); });
  EXPECT_EQ(wait_terminal(c2, running.id()).state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(wait_terminal(c2, queued.id()).state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(c2.list({}).size(), 5u);
}

TEST_F(FarmService, WatchStreamsStatesProgressAndLogs) {
  start();
  auto* ex = add_agent("a1");
  ex->on_run = [](JobContext& ctx) {
    std::this_thread::sleep_for(300ms);  // let a progress report go out
    if (ctx.output) ctx.output("stderr", "bye\n");
    return pass_result();
  };
  auto c = client();
  auto job = c.submit(stress("w"));
  std::vector<v1::JobState> states;
  std::string logs;
  bool progress = false;
  auto fin = c.watch(job.id(), true, [&](const v1::JobEvent& ev) {
    if (ev.has_state()) states.push_back(ev.state().state());
    if (ev.has_log()) logs += ev.log().data();
    if (ev.has_progress() && ev.progress().calls() == 7) progress = true;
    return true;
  });
  EXPECT_EQ(fin.state(), v1::JOB_STATE_PASSED);
  ASSERT_GE(states.size(), 3u);
  EXPECT_EQ(states.front(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(states.back(), v1::JOB_STATE_PASSED);
  EXPECT_NE(logs.find("hello from " + job.id()), std::string::npos) << logs;
  EXPECT_NE(logs.find("bye"), std::string::npos) << logs;
  EXPECT_TRUE(progress);
  // watching a finished job replays its history and ends
  int n = 0;
  c.watch(job.id(), false, [&](const v1::JobEvent&) { ++n; return true; });
  EXPECT_GE(n, 3);
}

TEST_F(FarmService, TlsWithSelfSignedCertificate) {
  std::string cert, key;
  ASSERT_TRUE(farmtest::make_cert(dir.path, &cert, &key));
  cfg.tls_cert = cert;
  cfg.tls_key = key;
  start();
  auto tls = [&](const std::string& tok) {
    auto o = chan(tok);
    o.ca_file = cert;
    return o;
  };
  add_agent("tls-agent", [&](farm::agent::AgentConfig& a) { a.channel = tls(kAgentTok); });
  Client c(tls(kClientTok));
  auto job = c.submit(stress("tls"));
  auto done = wait_state(c, job.id(), [](v1::JobState s) { return farm::is_terminal(s); });
  EXPECT_EQ(done.state(), v1::JOB_STATE_PASSED);
  // plaintext against a TLS port fails
  auto plain = chan(kClientTok);
  Client p(plain);
  EXPECT_EQ(code_of([&] { p.workers(); }), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(FarmService, SlotsRunJobsConcurrently) {
  start();
  std::atomic<int> running{0}, peak{0};
  auto* ex = add_agent("wide", [](farm::agent::AgentConfig& a) { a.caps.set_slots(3); });
  ex->on_run = [&](JobContext&) {
    int now = ++running;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {}
    // hold the slot until three jobs run at once (or give up after a while)
    farmtest::wait_until([&] { return peak.load() >= 3; }, 15s, 5ms);
    --running;
    return pass_result();
  };
  auto c = client();
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(c.submit(stress("p" + std::to_string(i))).id());
  for (auto& id : ids) EXPECT_EQ(wait_terminal(c, id).state(), v1::JOB_STATE_PASSED);
  EXPECT_EQ(peak.load(), 3);
}
