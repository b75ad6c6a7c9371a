#pragma once
// The farm's state machine: jobs, attempts, leases, workers, events.
// Everything is persisted in the store (store.hpp: SQLite or PostgreSQL)
// before a call returns; the in-memory indexes (queue, leases, workers) are
// rebuilt from it at startup. Each change of a job's state is claimed in the
// store first (Store::claim, end_attempt, end_queued: compare-and-set), and
// the indexes follow what the store accepted.
// Sources, one concept each:
//   farm.cpp       setup, shutdown, the housekeeping thread
//   recovery.cpp   rebuilding the indexes from the store at start
//   events.cpp     the event log: emit, publish, watch, prune
//   jobs.cpp       the client side: submit, get, list, cancel
//   report.cpp     GetReport
//   workers.cpp    registration, sessions, quarantine, health checks
//   scheduler.cpp  the queue: matching, claiming, long polls (acquire)
//   leases.cpp     heartbeats, progress, completion, expiry, timeouts
//   observe.cpp    what /metrics and the live page read (metrics_snapshot, web_snapshot)
//   validation.cpp request checks; store/ all SQL
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "farm/v1/farm.pb.h"
#include "farmd/config.hpp"
#include "farmd/metrics.hpp"
#include "farmd/web_page.hpp"

namespace farmd {

namespace v1 = ::farm::v1;

class Store;

// A target selector as one deterministic line of text, the label value of
// farm_queue_depth: "arch=riscv64,isa=rv64gc,kind=qemu-user,labels.lab=north,
// min_cores=4,worker=w1" (fields in that order, labels sorted by key, empty
// fields left out; "any" when nothing is set), at most kSelectorTextMax bytes
// (longer ones end in "...").
constexpr size_t kSelectorTextMax = 200;
std::string selector_text(const v1::TargetSelector& s);

class Farm {
 public:
  // Throws std::invalid_argument for a bad Config (validate_config) and
  // std::runtime_error if the database cannot be used (store.hpp: open_store).
  explicit Farm(Config cfg);
  ~Farm();
  Farm(const Farm&) = delete;
  Farm& operator=(const Farm&) = delete;

  const Config& config() const { return cfg_; }
  uint32_t heartbeat_interval_ms() const;

  // ---- client side
  grpc::Status submit(const v1::SubmitJobRequest& req, v1::Job* out);
  grpc::Status get_job(const std::string& id, bool history, v1::Job* out);
  grpc::Status list_jobs(const v1::ListJobsRequest& req, v1::ListJobsResponse* out);
  grpc::Status cancel(const std::string& id, const std::string& reason, v1::Job* out);
  void list_workers(v1::ListWorkersResponse* out);
  grpc::Status remove_worker(const std::string& id, bool force);
  grpc::Status report(const v1::GetReportRequest& req, v1::Report* out);

  // Events of a job with seq > after (at most `limit`).
  std::vector<v1::JobEvent> events_after(const std::string& job_id, uint64_t after, bool include_logs,
                                         size_t limit = 512);
  uint64_t last_event_seq() const { return last_event_seq_.load(); }
  // Blocks until an event newer than `seen` exists, the deadline passes or the farm stops.
  void wait_event(uint64_t seen, std::chrono::steady_clock::time_point deadline);

  // ---- agent side
  // `who` is recorded with the session (named when a second agent is refused).
  grpc::Status register_worker(const v1::RegisterRequest& req, const Caller& who, v1::RegisterResponse* out);
  // Long poll: waits up to req.wait_ms (or until `cancelled()` returns true).
  grpc::Status acquire(const v1::AcquireJobRequest& req, v1::AcquireJobResponse* out,
                       const std::function<bool()>& cancelled);
  grpc::Status heartbeat(const v1::HeartbeatRequest& req, v1::HeartbeatResponse* out);
  grpc::Status progress(const v1::ReportProgressRequest& req, v1::ReportProgressResponse* out);
  grpc::Status complete(const v1::CompleteJobRequest& req, v1::CompleteJobResponse* out);

  // Housekeeping: expire leases, schedule health checks. Called by the
  // background thread every few hundred ms; public for tests.
  void tick();
  // Wakes every waiter; subsequent long polls return immediately.
  void stop();

  // ---- observing (observe.cpp; any thread, the store's reader + memory)
  // What this farmd counted (counters, histograms) and, at each scrape, the
  // farm's state from metrics_snapshot().
  FarmMetrics& metrics() { return *metrics_; }
  // The farm's state for /metrics: jobs by state and queue depth by selector
  // from the store (farm-wide), workers from memory.
  MetricsSnapshot metrics_snapshot();
  // The live page: workers (memory), the queue, the recent finished jobs with
  // their log tails, the conformance runs (the store).
  WebSnapshot web_snapshot();
  static constexpr size_t kWebRecentJobs = 20;
  static constexpr size_t kWebQueueJobs = 100;
  static constexpr size_t kWebLogTailLines = 20;
  static constexpr size_t kWebLogTailBytes = 4096;
  static constexpr size_t kWebConformanceRuns = 20;

 private:
  struct QueueKey {
    int32_t neg_priority;
    int64_t seq;
    bool operator<(const QueueKey& o) const {
      return neg_priority != o.neg_priority ? neg_priority < o.neg_priority : seq < o.seq;
    }
  };
  struct Queued {
    std::string id;
    v1::JobSpec spec;
    uint32_t attempts = 0;
    uint32_t max_attempts = 0;
    std::string health_for;  // worker id if this is a health-check job
    uint32_t free_attempts = 0;  // attempts handed back that did not count (OUTCOME_HANDED_BACK)
    int64_t queued_ms = 0;       // when it was queued (submitted, requeued, or recovered at a start)
  };
  struct Running {
    std::string job_id;
    uint32_t attempt = 0;
    std::string worker_id;
    int64_t expires_ms = 0;
    int64_t stored_expires_ms = 0;  // the lease deadline the store has (renewed at most every half heartbeat)
    int64_t started_ms = 0;
    bool cancel_requested = false;
    QueueKey key{};
    Queued job;
    v1::Progress progress;
    uint64_t log_bytes = 0;
    bool log_truncated = false;
    int64_t last_progress_event_ms = 0;
  };
  struct WorkerRec {
    v1::Worker w;  // capabilities, counters, quarantine flag via state
    std::string session;
    bool quarantined = false;
    std::set<std::string> running;  // job ids
    int64_t last_persist_ms = 0;
    int64_t last_health_ms = 0;
    std::string health_job;  // pending/running health-check job id
    // Last contact in this process (0: none since a restart or since the agent
    // left). The session is alive, and the name taken, while this is within
    // the lease TTL.
    int64_t contact_ms = 0;
    std::string holder;  // who registered the session ("agent 'lab' from ipv4:...")
  };

  void recover();
  void bg_loop();

  // all below require mu_ held
  // The worker exists and `session` is its live session; records the contact.
  grpc::Status check_session(const std::string& worker_id, const std::string& session, WorkerRec** out);
  bool session_alive(const WorkerRec& w, int64_t now) const;
  bool worker_can_take(const WorkerRec& w, const Queued& q) const;
  bool try_pick(WorkerRec& w, v1::Lease* lease);
  void emit_state(const std::string& job_id, v1::JobState st, uint32_t attempt, const std::string& worker,
                  const std::string& msg);
  void emit(const v1::JobEvent& ev);
  void publish_events();
  std::string insert_job(const v1::JobSpec& spec, uint32_t max_attempts, const std::string& health_for,
                         const std::string& message, QueueKey* key);
  // Ends a running attempt. Returns the job's new state.
  v1::JobState finish_attempt(Running r, v1::JobResult result);
  // Ends every attempt `w` is running as LOST, with `why` + its attempt number
  // (mu_ held, inside the caller's transaction).
  void lose_running(WorkerRec& w, const std::string& why);
  void set_worker_failures(WorkerRec& w, uint32_t failures, const std::string& last_error);
  void enqueue_health_check(WorkerRec& w);
  void schedule_health_checks(int64_t now);
  void persist_worker(WorkerRec& w);
  // The lease of `r` lasts until now + TTL; the store's copy is renewed when
  // it is half a heartbeat behind (inside the caller's transaction, if any).
  // Returns true if the store was written.
  bool renew_lease(Running& r, int64_t now);
  v1::WorkerState worker_state(const WorkerRec& w, int64_t now) const;

  // reading (the store's reader; takes mu_ only for a running job's progress)
  bool load_job(const std::string& id, bool history, v1::Job* out);

  Config cfg_;
  std::unique_ptr<Store> store_;  // its writer is used under mu_
  std::mutex mu_;
  std::condition_variable sched_cv_;   // queue changed
  std::mutex ev_mu_;
  std::condition_variable ev_cv_;      // new events
  std::atomic<uint64_t> last_event_seq_{0};
  std::atomic<bool> stopping_{false};
  std::vector<uint64_t> pending_notify_;

  std::map<QueueKey, Queued> queue_;
  std::unordered_map<std::string, QueueKey> queued_index_;
  std::unordered_map<std::string, Running> running_;
  std::map<std::string, WorkerRec> workers_;

  // Agents long-polling in acquire(): each new job wakes one waiter that can
  // take it (no thundering herd with hundreds of idle agents).
  struct Waiter {
    std::string worker_id;
    std::condition_variable cv;
    bool woken = false;
  };
  std::list<Waiter*> waiters_;
  void wake_one_for(const Queued& q);

  int64_t last_prune_ms_ = 0;
  void prune_events(int64_t now);

  std::unique_ptr<FarmMetrics> metrics_;

  std::thread bg_;
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
};

}  // namespace farmd
