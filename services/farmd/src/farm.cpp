// The farm's life: setup (the store opened and migrated, the indexes
// recovered from it), the housekeeping thread, shutdown.
#include "farmd/farm.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "farmd/store.hpp"

namespace farmd {

Farm::Farm(Config cfg) : cfg_(std::move(cfg)) {
  validate_config(cfg_);  // refuses out-of-range settings; nothing is clamped
  if (cfg_.offline_after_ms == 0) cfg_.offline_after_ms = 3 * cfg_.lease_ttl_ms;
  // The path or URL checked, farmd's schema (migrated), not corrupted, one farmd per database.
  store_ = open_store(cfg_);
  metrics_ = std::make_unique<FarmMetrics>([this] { return metrics_snapshot(); });
  recover();
  bg_ = std::thread([this] { bg_loop(); });
}

Farm::~Farm() {
  stop();
  if (bg_.joinable()) bg_.join();
}

uint32_t Farm::heartbeat_interval_ms() const {
  return cfg_.heartbeat_interval_ms ? cfg_.heartbeat_interval_ms : std::max<uint32_t>(50, cfg_.lease_ttl_ms / 3);
}

void Farm::stop() {
  stopping_ = true;
  {
    std::lock_guard lk(mu_);
    for (auto* w : waiters_) {
      w->woken = true;
      w->cv.notify_one();
    }
  }
  sched_cv_.notify_all();
  {
    std::lock_guard lk(ev_mu_);
  }
  ev_cv_.notify_all();
  {
    std::lock_guard lk(bg_mu_);
  }
  bg_cv_.notify_all();
}

void Farm::bg_loop() {
  auto period = std::chrono::milliseconds(std::clamp<uint32_t>(cfg_.lease_ttl_ms / 10, 20, 500));
  while (!stopping_) {
    {
      std::unique_lock lk(bg_mu_);
      bg_cv_.wait_for(lk, period, [&] { return stopping_.load(); });
    }
    if (stopping_) break;
    try {
      tick();
    } catch (const std::exception& e) {
      spdlog::error("farmd: housekeeping failed: {}", e.what());
    }
  }
}

}  // namespace farmd
