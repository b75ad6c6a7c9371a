// farmd's Prometheus metrics (metrics.hpp): prometheus-cpp's registry for
// what this farmd counts, a snapshot of the store for the farm's state.
#include "farmd/metrics.hpp"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>

namespace farmd {

namespace pm = prometheus;

const std::vector<double>& FarmMetrics::queue_wait_buckets() {
  // From "dispatched at once" (the bench's p99 target is 50 ms) to a job that
  // waited an hour for a board.
  static const std::vector<double> b{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                     10,    30,    60,   300,   900,  3600};
  return b;
}

const std::vector<double>& FarmMetrics::run_time_buckets() {
  // A patch-stress run takes seconds to hours; a board boot a minute.
  static const std::vector<double> b{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600};
  return b;
}

namespace {

pm::ClientMetric gauge(double v, std::vector<pm::ClientMetric::Label> labels) {
  pm::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = v;
  return m;
}

pm::MetricFamily gauge_family(const char* name, const char* help) {
  pm::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = pm::MetricType::Gauge;
  return f;
}

// The farm's state, read from the store when scraped.
class SnapshotCollector : public pm::Collectable {
 public:
  explicit SnapshotCollector(std::function<MetricsSnapshot()> f) : f_(std::move(f)) {}
  std::vector<pm::MetricFamily> Collect() const override {
    const MetricsSnapshot s = f_();
    std::vector<pm::MetricFamily> out;
    auto q = gauge_family("farm_queue_depth", "Jobs queued, by the target selector they wait for.");
    for (const auto& e : s.queue) q.metric.push_back(gauge(double(e.depth), {{"selector", e.selector}}));
    out.push_back(std::move(q));
    auto j = gauge_family("farm_jobs", "Jobs in the store, by state.");
    for (const auto& [state, n] : s.jobs_by_state) j.metric.push_back(gauge(double(n), {{"state", state}}));
    out.push_back(std::move(j));
    std::map<std::string, int64_t> by_health{{"healthy", 0}, {"quarantined", 0}, {"offline", 0}};
    auto seen = gauge_family("farm_worker_last_seen_timestamp_seconds",
                             "When each worker last called farmd (Unix time).");
    for (const auto& w : s.workers) {
      ++by_health[w.health];
      seen.metric.push_back(gauge(double(w.last_seen_ms) / 1000.0, {{"worker", w.name}, {"lab", w.lab}}));
    }
    auto h = gauge_family("farm_workers", "Registered workers, by health.");
    for (const auto& [health, n] : by_health) h.metric.push_back(gauge(double(n), {{"health", health}}));
    out.push_back(std::move(h));
    out.push_back(std::move(seen));
    return out;
  }

 private:
  std::function<MetricsSnapshot()> f_;
};

}  // namespace

struct FarmMetrics::Impl {
  std::shared_ptr<pm::Registry> registry = std::make_shared<pm::Registry>();
  SnapshotCollector snapshot;
  pm::Counter& submitted;
  pm::Histogram& queue_wait;
  pm::Family<pm::Histogram>& run_time;
  pm::Family<pm::Counter>& attempts;
  pm::Counter& lease_expiries;
  pm::Family<pm::Counter>& requeues;

  explicit Impl(std::function<MetricsSnapshot()> f)
      : snapshot(std::move(f)),
        submitted(pm::BuildCounter()
                      .Name("farm_jobs_submitted_total")
                      .Help("Jobs this farmd accepted at SubmitJob.")
                      .Register(*registry)
                      .Add({})),
        queue_wait(pm::BuildHistogram()
                       .Name("farm_queue_wait_seconds")
                       .Help("Time from a job's queueing (submission or requeue) to its lease by a worker.")
                       .Register(*registry)
                       .Add({}, queue_wait_buckets())),
        run_time(pm::BuildHistogram()
                     .Name("farm_attempt_run_seconds")
                     .Help("Time from an attempt's lease to its end, by outcome.")
                     .Register(*registry)),
        attempts(pm::BuildCounter()
                     .Name("farm_attempts_total")
                     .Help("Attempts that ended, by outcome.")
                     .Register(*registry)),
        lease_expiries(pm::BuildCounter()
                           .Name("farm_lease_expiries_total")
                           .Help("Leases this farmd found expired (the worker stopped heartbeating).")
                           .Register(*registry)
                           .Add({})),
        requeues(pm::BuildCounter()
                     .Name("farm_requeues_total")
                     .Help("Jobs put back in the queue after an attempt, by reason.")
                     .Register(*registry)) {}
};

FarmMetrics::FarmMetrics(std::function<MetricsSnapshot()> snapshot)
    : impl_(std::make_unique<Impl>(std::move(snapshot))) {}
FarmMetrics::~FarmMetrics() = default;

void FarmMetrics::job_submitted() { impl_->submitted.Increment(); }
void FarmMetrics::job_leased(double queue_wait_s) { impl_->queue_wait.Observe(queue_wait_s); }
void FarmMetrics::attempt_ended(const std::string& outcome, double run_s) {
  impl_->attempts.Add({{"outcome", outcome}}).Increment();
  impl_->run_time.Add({{"outcome", outcome}}, run_time_buckets()).Observe(run_s);
}
void FarmMetrics::lease_expired() { impl_->lease_expiries.Increment(); }
void FarmMetrics::job_requeued(const std::string& reason) { impl_->requeues.Add({{"reason", reason}}).Increment(); }

std::string FarmMetrics::exposition() const {
  std::vector<pm::MetricFamily> all = impl_->registry->Collect();
  for (auto& f : impl_->snapshot.Collect()) all.push_back(std::move(f));
  std::ostringstream out;
  pm::TextSerializer().Serialize(out, all);
  return out.str();
}

}  // namespace farmd
