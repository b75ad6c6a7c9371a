#pragma once
// farm-agent as a library: connects to farmd (pull model), registers its
// capabilities, long-polls for leases, runs each job with its executor,
// heartbeats while running, streams progress/logs, completes the attempt.
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "farm/agent/executor.hpp"
#include "farm/common/channel.hpp"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::agent {

struct AgentConfig {
  farm::ChannelOptions channel;
  std::string name;                  // unique per agent; the worker id
  v1::Capabilities caps;             // kind/workloads/slots are filled from the executor if empty
  ExecutorConfig exec;
  std::string work_dir;              // default: $TMPDIR/farm-agent-<name>
  uint32_t acquire_wait_ms = 10000;  // long-poll length
  uint32_t progress_interval_ms = 500;
  uint32_t complete_retry_s = 120;   // keep retrying CompleteJob this long (farmd restarts)
  bool keep_work_dirs = false;
};

class Agent {
 public:
  Agent(AgentConfig cfg, std::unique_ptr<Executor> exec = nullptr);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  void start();  // background threads
  void run();    // start() + wait until stop()
  // Stops acquiring; running jobs are cancelled and handed back
  // (OUTCOME_HANDED_BACK) so farmd requeues them right away without using
  // up an attempt.
  void stop();
  // Joins the agent's threads; after stop(), also ends the session at farmd
  // (Heartbeat leaving) so that the name is free for the next agent at once.
  void wait();

  std::string worker_id() const;
  uint64_t jobs_completed() const { return completed_.load(); }
  bool registered() const;
  // Set when farmd refused this agent for good (wrong or revoked token, the
  // name taken by another live agent, capabilities it rejects): the agent
  // stopped by itself instead of retrying forever. farm-agent exits non-zero
  // with this message.
  std::optional<std::string> fatal_error() const;

 private:
  struct Active {
    std::string job_id;
    uint32_t attempt = 0;
    std::shared_ptr<Cancel> cancel;
    std::atomic<bool> lost{false};
    std::atomic<bool> completing{false};  // result computed, being reported
  };

  bool ensure_registered(uint64_t seen_generation);
  std::shared_ptr<v1::FarmAgent::Stub> stub() const;
  // A new channel if the current one is failing (see agent.cpp); the stub to use.
  std::shared_ptr<v1::FarmAgent::Stub> reconnect_if_failed();
  // Records why the agent cannot go on and stops it.
  void fail(std::string message);
  void leave();
  void slot_loop(int slot);
  void heartbeat_loop();
  // Runs one job; returns the next lease farmd handed out with the completion.
  std::optional<v1::Lease> run_job(const v1::Lease& lease);
  bool complete(const v1::LeaseRef& ref, const v1::JobResult& result, const std::shared_ptr<Active>& active,
                std::optional<v1::Lease>* next);
  void sleep_for(std::chrono::milliseconds d);

  AgentConfig cfg_;
  std::unique_ptr<Executor> exec_;
  std::shared_ptr<grpc::Channel> channel_;      // guarded by mu_ (replaced while unregistered)
  std::shared_ptr<v1::FarmAgent::Stub> stub_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string worker_id_, session_;
  uint64_t generation_ = 0;  // bumped at each successful registration
  uint32_t heartbeat_ms_ = 1000;
  std::map<std::string, std::shared_ptr<Active>> active_;
  std::vector<grpc::ClientContext*> inflight_;  // long polls (and registrations) to cancel on stop
  std::optional<std::string> fatal_;
  bool left_ = false;

  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> completed_{0};
  std::vector<std::thread> threads_;
};

// Capabilities of this machine for an executor config (arch from uname for
// native, cores, kernel...); fields already set in `base` win.
v1::Capabilities detect_capabilities(const ExecutorConfig& exec, const Executor& executor, v1::Capabilities base);

}  // namespace farm::agent
