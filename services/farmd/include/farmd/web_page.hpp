#pragma once
// farmd's live page (GET / on `--metrics-listen`): the farm at a glance,
// rendered on the server from a mustache template (kainjow-mustache), no
// script, no external asset (Content-Security-Policy default-src 'none'),
// refreshing itself every kRefreshSeconds. Every value from the farm goes
// through mustache's HTML escaping: job names, labels and logs are text a
// client or an agent sent.
#include <cstdint>
#include <string>
#include <vector>

namespace farmd {

struct WebSnapshot {
  struct Worker {
    std::string id, name, health;  // health: "healthy" | "quarantined" | "offline"
    std::string target;            // "riscv64/qemu-user/rv64gc"
    std::vector<std::string> labels;  // "lab=north", ...
    std::vector<std::string> current_jobs;  // "job-…: name"
    int64_t last_seen_ms = 0;
    uint32_t slots = 1;
  };
  struct Job {
    std::string id, name, state, worker, selector;
    int32_t priority = 0;
    uint32_t attempts = 0;
    int64_t created_ms = 0, finished_ms = 0;
    std::string verdict;
    std::string log_tail;  // the last lines of its log (recent jobs only)
  };
  struct ConformanceRun {
    std::string run;  // its tag value (conformance run id)
    int64_t started_ms = 0;
    uint32_t passed = 0, failed = 0, unsupported = 0, other = 0;
  };
  std::string farm_name;  // farmd's address
  int64_t now_ms = 0;
  std::vector<Worker> workers;
  std::vector<Job> queue;
  std::vector<Job> recent;
  std::vector<ConformanceRun> conformance;
};

constexpr int kRefreshSeconds = 5;
constexpr const char* kWebPageCsp = "default-src 'none'; style-src 'unsafe-inline'";

// The whole HTML document.
std::string render_web_page(const WebSnapshot& s);

// "4 s", "3 min", "2 h", "5 d" since `then_ms` ("never" for 0).
std::string ago(int64_t now_ms, int64_t then_ms);

}  // namespace farmd
