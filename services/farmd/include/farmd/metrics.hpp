#pragma once
// farmd's Prometheus metrics (`--metrics-listen`, GET /metrics), with
// prometheus-cpp's registry and text serializer (exposition format 0.0.4).
//
// Two kinds, documented in docs/farm.md ("Metrics"):
//  * what this farmd did, counted as it happens (counters, histograms):
//    every replica counts its own, so a sum over instances is the farm's;
//  * the farm's state, read from the store at each scrape (gauges: queue
//    depth, jobs by state, workers by health, last seen): the same on every
//    replica of one database, so take one instance's value (max by ...),
//    never the sum.
// Names follow Prometheus' conventions: the farm_ prefix, base units
// (seconds), _total for counters, label values bounded by the farm's own
// data (states, outcomes, selectors, worker names), never by a request.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace farmd {

// What a scrape reads from the store, at that moment.
struct MetricsSnapshot {
  struct Queue {
    std::string selector;  // the queued jobs' target selector, rendered (farmd::selector_text)
    int64_t depth = 0;
  };
  struct Worker {
    std::string name;
    std::string lab;     // its "lab" label, "" when it has none
    std::string health;  // "healthy" | "quarantined" | "offline"
    int64_t last_seen_ms = 0;  // unix ms
  };
  std::vector<Queue> queue;
  std::map<std::string, int64_t> jobs_by_state;  // "queued", "running", "passed", ... (every state, 0 included)
  std::vector<Worker> workers;
};

class FarmMetrics {
 public:
  // Upper bounds of the histograms' buckets, seconds.
  static const std::vector<double>& queue_wait_buckets();
  static const std::vector<double>& run_time_buckets();

  // `snapshot` is called at each scrape (exposition()), on the HTTP thread.
  explicit FarmMetrics(std::function<MetricsSnapshot()> snapshot);
  ~FarmMetrics();
  FarmMetrics(const FarmMetrics&) = delete;
  FarmMetrics& operator=(const FarmMetrics&) = delete;

  // Thread-safe; cheap (no allocation once a label value has been seen).
  void job_submitted();
  void job_leased(double queue_wait_s);                        // queued -> running
  void attempt_ended(const std::string& outcome, double run_s);  // "pass", "fail", "lost", ...
  void lease_expired();
  void job_requeued(const std::string& reason);  // "lost", "infra-error", "handed-back" (the outcomes' names, as farmctl spells them)

  // Everything, in the Prometheus text format (Content-Type kContentType).
  std::string exposition() const;
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace farmd
