// The event log of each job (state changes, progress, logs): written to the
// store with the change it describes, published to watchers after the
// commit, read back by WatchJob, pruned after the retention window.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "blob.hpp"
#include "farm/common/util.hpp"
#include "farmd/farm.hpp"
#include "farmd/store.hpp"

namespace farmd {

using ::farm::now_ms;

void Farm::emit(const v1::JobEvent& ev) {
  EventKind kind = ev.has_state() ? EventKind::state : ev.has_progress() ? EventKind::progress : EventKind::log;
  pending_notify_.push_back(store_->append_event(ev.job_id(), kind, ev.time_ms(), ser(ev)));
}

void Farm::emit_state(const std::string& job_id, v1::JobState state, uint32_t attempt, const std::string& worker,
                      const std::string& msg) {
  v1::JobEvent ev;
  ev.set_job_id(job_id);
  ev.set_time_ms(now_ms());
  auto* s = ev.mutable_state();
  s->set_state(state);
  s->set_attempt(attempt);
  s->set_worker_id(worker);
  s->set_message(msg);
  emit(ev);
}

// Call after a commit (mu_ held): publishes the events written in it.
void Farm::publish_events() {
  if (pending_notify_.empty()) return;
  uint64_t mx = *std::max_element(pending_notify_.begin(), pending_notify_.end());
  pending_notify_.clear();
  {
    std::lock_guard elk(ev_mu_);
    if (mx > last_event_seq_) last_event_seq_ = mx;
  }
  ev_cv_.notify_all();
}

void Farm::wait_event(uint64_t seen, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lk(ev_mu_);
  ev_cv_.wait_until(lk, deadline, [&] { return stopping_.load() || last_event_seq_.load() > seen; });
}

std::vector<v1::JobEvent> Farm::events_after(const std::string& job_id, uint64_t after, bool include_logs,
                                             size_t limit) {
  std::vector<v1::JobEvent> out;
  std::vector<EventRow> rows;
  try {
    rows = store_->events_after(job_id, after, include_logs, limit);
  } catch (const StoreError& e) {
    // The watcher tries again at its next wake-up (at most a second later).
    spdlog::warn("farmd: cannot read the events of {}: {}", job_id, e.what());
    return out;
  }
  for (auto& row : rows) {
    v1::JobEvent ev;
    ev.ParseFromString(row.event);
    ev.set_seq(row.seq);
    out.push_back(std::move(ev));
  }
  return out;
}

void Farm::prune_events(int64_t now) {
  // Jobs and results are kept; the bulky per-job event stream (logs,
  // progress) of long finished jobs is dropped. Runs at most hourly.
  last_prune_ms_ = now;
  if (cfg_.event_retention_days == 0) return;
  int64_t cutoff = now - static_cast<int64_t>(cfg_.event_retention_days) * 86'400'000;
  if (int64_t n = store_->prune_events(cutoff); n > 0)
    spdlog::info("farmd: pruned {} events of jobs finished before the retention window", n);
}

}  // namespace farmd
