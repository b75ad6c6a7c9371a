// farm-dispatch: how fast farmd hands trivial jobs to many agents.
//
// In-process farmd (real gRPC on loopback, SQLite WAL store or --db
// postgresql://..., auth on) and N
// real farm::agent::Agent instances whose executor returns "pass" at once.
//  phase 1 (throughput): J jobs submitted by C client threads as fast as
//          possible; jobs/s = J / (first submit -> last completion);
//          dispatch latency = submit call -> executor start, under load.
//  phase 2 (latency): L jobs submitted open-loop at R jobs/s (below
//          capacity); dispatch latency p50/p99 without queueing.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "farm/agent/agent.hpp"
#include "farm/ctl/client.hpp"
#include "farmd/server.hpp"
#include "farmd/store.hpp"

namespace v1 = farm::v1;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct Timing {
  std::mutex mu;
  std::unordered_map<std::string, Clock::time_point> submitted, started;
  std::atomic<uint64_t> done{0};
};

class TrivialExecutor : public farm::agent::Executor {
 public:
  explicit TrivialExecutor(Timing& t) : t_(t) {}
  std::string kind() const override { return "native"; }
  std::vector<std::string> workloads() const override { return {"command"}; }
  v1::JobResult run(farm::agent::JobContext& ctx) override {
    auto now = Clock::now();
    {
      std::lock_guard lk(t_.mu);
      t_.started.emplace(ctx.spec.name(), now);
    }
    ++t_.done;
    v1::JobResult r;
    r.set_outcome(v1::OUTCOME_PASS);
    r.set_verdict("pass");
    r.set_result_json("{\"verdict\":\"pass\"}");
    return r;
  }
  v1::JobResult health_check(farm::agent::JobContext&) override {
    v1::JobResult r;
    r.set_outcome(v1::OUTCOME_PASS);
    return r;
  }

 private:
  Timing& t_;
};

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

std::vector<double> latencies_ms(Timing& t, const std::string& prefix) {
  std::lock_guard lk(t.mu);
  std::vector<double> out;
  for (auto& [name, ts] : t.submitted) {
    if (name.rfind(prefix, 0) != 0) continue;
    auto it = t.started.find(name);
    if (it != t.started.end()) out.push_back(std::chrono::duration<double, std::milli>(it->second - ts).count());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int agents = 100, jobs = 10000, clients = 4, latency_jobs = 1000;
  double rate = 200;
  std::string db;
  bool sync_full = false, json_out = false;
  CLI::App app{"farm-dispatch: farmd dispatch throughput and latency"};
  app.add_option("--agents", agents, "in-process agents")->capture_default_str();
  app.add_option("--jobs", jobs, "jobs in the throughput phase")->capture_default_str();
  app.add_option("--clients", clients, "submitting client threads")->capture_default_str();
  app.add_option("--latency-jobs", latency_jobs, "jobs in the open-loop latency phase (0: skip)")->capture_default_str();
  app.add_option("--rate", rate, "open-loop submission rate (jobs/s) of the latency phase")->capture_default_str();
  app.add_option("--db", db, "database file or postgresql:// URL (default: a temporary SQLite file)");
  app.add_flag("--sync-full", sync_full, "PRAGMA synchronous=FULL (fsync every commit)");
  app.add_flag("--json", json_out, "print one JSON line");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  std::string tmpdir;
  if (db.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "farm-dispatch-XXXXXX").string();
    tmpdir = ::mkdtemp(tmpl.data());
    db = tmpdir + "/farm.db";
  }
  farmd::Config cfg;
  cfg.db_path = db;
  cfg.sync_full = sync_full;
  cfg.tokens = {{farmd::Role::client, "bench-client-token", "bench"}, {farmd::Role::agent, "bench-agent-token", "bench"}};
  farmd::Server server(cfg);
  server.start();

  Timing timing;
  std::vector<std::unique_ptr<farm::agent::Agent>> fleet;
  for (int i = 0; i < agents; ++i) {
    farm::agent::AgentConfig ac;
    ac.channel.address = server.address();
    ac.channel.token = "bench-agent-token";
    ac.name = "bench-" + std::to_string(i);
    ac.work_dir = (tmpdir.empty() ? std::string("/tmp") : tmpdir) + "/w" + std::to_string(i);
    ac.acquire_wait_ms = 5000;
    auto a = std::make_unique<farm::agent::Agent>(ac, std::make_unique<TrivialExecutor>(timing));
    a->start();
    fleet.push_back(std::move(a));
  }
  for (auto& a : fleet)
    while (!a->registered()) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(200ms);  // every agent is now long-polling

  farm::ChannelOptions co;
  co.address = server.address();
  co.token = "bench-client-token";
  auto spec_for = [](const std::string& name) {
    v1::JobSpec s;
    s.set_name(name);
    s.mutable_workload()->mutable_command()->add_argv("true");
    s.set_timeout_s(60);
    return s;
  };

  // ---- phase 1: throughput
  auto t0 = Clock::now();
  std::atomic<int> next{0};
  std::vector<std::thread> submitters;
  for (int c = 0; c < clients; ++c) {
    submitters.emplace_back([&] {
      farm::ctl::Client client(co);
      for (int i; (i = next++) < jobs;) {
        std::string name = "t-" + std::to_string(i);
        {
          std::lock_guard lk(timing.mu);
          timing.submitted.emplace(name, Clock::now());
        }
        client.submit(spec_for(name));
      }
    });
  }
  for (auto& t : submitters) t.join();
  auto t_submitted = Clock::now();
  while (timing.done.load() < static_cast<uint64_t>(jobs)) std::this_thread::sleep_for(1ms);
  // completion is reported after the executor returns; wait until farmd has them all
  farm::ctl::Client checker(co);
  for (;;) {
    v1::ListJobsRequest lr;
    lr.add_states(v1::JOB_STATE_QUEUED);
    lr.add_states(v1::JOB_STATE_RUNNING);
    lr.set_limit(1);
    if (checker.list(lr).empty()) break;
    std::this_thread::sleep_for(1ms);
  }
  auto t1 = Clock::now();
  double secs = std::chrono::duration<double>(t1 - t0).count();
  double submit_secs = std::chrono::duration<double>(t_submitted - t0).count();
  auto lat1 = latencies_ms(timing, "t-");

  // ---- phase 2: open-loop latency
  std::vector<double> lat2;
  if (latency_jobs > 0) {
    farm::ctl::Client client(co);
    auto start = Clock::now();
    for (int i = 0; i < latency_jobs; ++i) {
      auto due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / rate));
      std::this_thread::sleep_until(due);
      std::string name = "l-" + std::to_string(i);
      {
        std::lock_guard lk(timing.mu);
        timing.submitted.emplace(name, Clock::now());
      }
      client.submit(spec_for(name));
    }
    while (timing.done.load() < static_cast<uint64_t>(jobs + latency_jobs)) std::this_thread::sleep_for(1ms);
    lat2 = latencies_ms(timing, "l-");
  }

  v1::GetReportRequest rr;
  auto rep = checker.report(rr);
  bool all_passed = rep.passed() == rep.total() && rep.total() == static_cast<uint32_t>(jobs + latency_jobs);

  for (auto& a : fleet) a->stop();
  fleet.clear();
  server.shutdown(500);
  if (!tmpdir.empty()) std::filesystem::remove_all(tmpdir);

  double tput = jobs / secs;
  if (json_out) {
    std::printf(
        "{\"agents\":%d,\"jobs\":%d,\"clients\":%d,\"seconds\":%.3f,\"jobs_per_s\":%.1f,\"submit_per_s\":%.1f,"
        "\"load_dispatch_p50_ms\":%.2f,\"load_dispatch_p99_ms\":%.2f,\"rate\":%.0f,\"latency_jobs\":%d,"
        "\"dispatch_p50_ms\":%.2f,\"dispatch_p99_ms\":%.2f,\"all_passed\":%s}\n",
        agents, jobs, clients, secs, tput, jobs / submit_secs, pct(lat1, 0.5), pct(lat1, 0.99), rate, latency_jobs,
        pct(lat2, 0.5), pct(lat2, 0.99), all_passed ? "true" : "false");
  } else {
    if (farmd::is_database_url(db))
      std::printf("farm-dispatch: %d agents, %d jobs, %d submitting clients, PostgreSQL (%s)\n", agents, jobs,
                  clients, farmd::redact_url(db).c_str());
    else
      std::printf("farm-dispatch: %d agents, %d jobs, %d submitting clients, SQLite WAL (synchronous=%s)\n", agents,
                  jobs, clients, sync_full ? "FULL" : "NORMAL");
    std::printf("  throughput          %8.1f jobs/s  (%d jobs in %.2f s; submissions %.1f/s)\n", tput, jobs, secs,
                jobs / submit_secs);
    std::printf("  dispatch under load p50 %7.2f ms  p99 %7.2f ms\n", pct(lat1, 0.5), pct(lat1, 0.99));
    if (latency_jobs > 0)
      std::printf("  dispatch at %4.0f/s  p50 %7.2f ms  p99 %7.2f ms  (%d jobs, open loop)\n", rate, pct(lat2, 0.5),
                  pct(lat2, 0.99), latency_jobs);
    std::printf("  all jobs passed: %s\n", all_passed ? "yes" : "NO");
  }
  return all_passed ? 0 : 1;
}
