// What /metrics and the live page read: the farm's state from the store's
// reader connection where it is in the store (jobs, the queue, logs,
// conformance runs: the same on every replica of one database), from memory
// where it only lives there (workers' health, current jobs, last contact).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "farm/common/names.hpp"
#include "farm/common/select.hpp"
#include "farm/common/util.hpp"
#include "farmd/farm.hpp"
#include "farmd/store.hpp"

namespace farmd {

using ::farm::now_ms;

std::string selector_text(const v1::TargetSelector& s) {
  std::string r = ::farm::format_selector(s, ',', "labels.");
  if (r.size() > kSelectorTextMax) r = r.substr(0, kSelectorTextMax - 3) + "...";
  return r;
}

namespace {

const char* health_name(v1::WorkerState st) {
  switch (st) {
    case v1::WORKER_STATE_OFFLINE: return "offline";
    case v1::WORKER_STATE_QUARANTINED: return "quarantined";
    default: return "healthy";
  }
}

// The last `lines` lines of `text`, at most `bytes` bytes (from a line start when one is in reach).
std::string tail(const std::string& text, size_t lines, size_t bytes) {
  size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;
  size_t pos = end;
  for (size_t n = 0; n < lines && pos > 0; ++n) {
    size_t nl = text.rfind('\n', pos - 1);
    pos = nl == std::string::npos ? 0 : nl;
    if (nl == std::string::npos) break;
  }
  if (pos < text.size() && text[pos] == '\n') ++pos;
  std::string r = text.substr(pos);
  if (r.size() > bytes) {
    r = r.substr(r.size() - bytes);
    if (auto nl = r.find('\n'); nl != std::string::npos && nl + 1 < r.size()) r = r.substr(nl + 1);
  }
  return r;
}

}  // namespace

MetricsSnapshot Farm::metrics_snapshot() {
  MetricsSnapshot s;
  for (int st = v1::JobState_MIN; st <= v1::JobState_MAX; ++st)
    if (st != v1::JOB_STATE_UNSPECIFIED && v1::JobState_IsValid(st))
      s.jobs_by_state[std::string(::farm::job_state_name(static_cast<v1::JobState>(st)))] = 0;
  for (const auto& [st, n] : store_->count_jobs_by_state())
    s.jobs_by_state[std::string(::farm::job_state_name(static_cast<v1::JobState>(st)))] += n;
  std::map<std::string, int64_t> depth;
  JobQuery q;
  q.states = {v1::JOB_STATE_QUEUED};
  store_->scan_jobs(q, [&](const std::string&, const std::string& blob) {
    v1::JobSpec spec;
    spec.ParseFromString(blob);
    ++depth[selector_text(spec.selector())];
    return true;
  });
  for (const auto& [sel, n] : depth) s.queue.push_back({sel, n});
  std::lock_guard lk(mu_);
  const int64_t now = now_ms();
  for (const auto& [id, w] : workers_) {
    MetricsSnapshot::Worker o;
    o.name = id;
    auto lab = w.w.capabilities().labels().find("lab");
    if (lab != w.w.capabilities().labels().end()) o.lab = lab->second;
    o.health = health_name(worker_state(w, now));
    o.last_seen_ms = w.w.last_seen_ms();
    s.workers.push_back(std::move(o));
  }
  return s;
}

WebSnapshot Farm::web_snapshot() {
  WebSnapshot s;
  s.now_ms = now_ms();
  s.farm_name = cfg_.listen;
  {
    std::lock_guard lk(mu_);
    for (const auto& [id, w] : workers_) {
      WebSnapshot::Worker o;
      o.id = id;
      o.name = w.w.name().empty() ? id : w.w.name();
      o.health = health_name(worker_state(w, s.now_ms));
      o.target = ::farm::target_name(w.w.capabilities());
      std::map<std::string, std::string> labels(w.w.capabilities().labels().begin(),
                                                w.w.capabilities().labels().end());
      for (const auto& [k, v] : labels) o.labels.push_back(k + "=" + v);
      for (const auto& jid : w.running) {
        auto ri = running_.find(jid);
        o.current_jobs.push_back(jid + (ri != running_.end() && !ri->second.job.spec.name().empty()
                                            ? ": " + ri->second.job.spec.name()
                                            : std::string()));
      }
      o.last_seen_ms = w.w.last_seen_ms();
      o.slots = std::max<uint32_t>(1, w.w.capabilities().slots());
      s.workers.push_back(std::move(o));
    }
  }
  auto job_of = [&](const JobRow& row, const v1::JobSpec& spec) {
    WebSnapshot::Job j;
    j.id = row.id;
    j.name = spec.name();
    j.state = std::string(::farm::job_state_name(static_cast<v1::JobState>(row.state)));
    j.worker = row.worker_id;
    j.selector = selector_text(spec.selector());
    j.priority = spec.priority();
    j.attempts = row.attempts;
    j.created_ms = row.created_ms;
    j.finished_ms = row.finished_ms;
    if (row.result) {
      v1::JobResult r;
      if (r.ParseFromString(*row.result)) j.verdict = r.verdict();
    }
    return j;
  };
  // The queue, in submission order.
  {
    std::vector<std::string> ids;
    JobQuery q;
    q.states = {v1::JOB_STATE_QUEUED};
    store_->scan_jobs(q, [&](const std::string& id, const std::string&) {
      ids.push_back(id);
      return ids.size() < kWebQueueJobs;
    });
    for (const auto& id : ids)
      if (auto row = store_->job(id, false)) {
        v1::JobSpec spec;
        spec.ParseFromString(row->spec);
        s.queue.push_back(job_of(*row, spec));
      }
  }
  // The most recently submitted finished jobs, the latest to end first, with their log tails.
  {
    std::vector<std::string> ids;
    JobQuery q;
    q.states = {v1::JOB_STATE_PASSED, v1::JOB_STATE_FAILED, v1::JOB_STATE_TIMED_OUT, v1::JOB_STATE_ERROR,
                v1::JOB_STATE_CANCELLED};
    q.newest_first = true;
    store_->scan_jobs(q, [&](const std::string& id, const std::string&) {
      ids.push_back(id);
      return ids.size() < kWebRecentJobs;
    });
    for (const auto& id : ids) {
      auto row = store_->job(id, false);
      if (!row) continue;
      v1::JobSpec spec;
      spec.ParseFromString(row->spec);
      auto j = job_of(*row, spec);
      std::string log;
      for (const auto& ev : store_->last_log_events(id, 4 * kWebLogTailLines)) {
        v1::JobEvent e;
        if (e.ParseFromString(ev.event) && e.has_log()) log += e.log().data();
      }
      j.log_tail = tail(log, kWebLogTailLines, kWebLogTailBytes);
      s.recent.push_back(std::move(j));
    }
    std::stable_sort(s.recent.begin(), s.recent.end(),
                     [](const auto& a, const auto& b) { return a.finished_ms > b.finished_ms; });
  }
  // Conformance runs: jobs tagged suite=conformance, run=<id> by farmctl
  // conformance (farm/ctl/src/conformance_matrix.cpp), counted like its
  // history (passed; failed or timed out; failed with LP_ENOTSUP: unsupported).
  {
    struct Acc {
      WebSnapshot::ConformanceRun run;
      std::string first_id;
    };
    std::map<std::string, Acc> runs;
    std::vector<std::pair<std::string, std::string>> failed;  // (job id, run)
    const std::pair<int, int> kinds[] = {{v1::JOB_STATE_PASSED, 0},    {v1::JOB_STATE_FAILED, 1},
                                         {v1::JOB_STATE_TIMED_OUT, 2}, {v1::JOB_STATE_ERROR, 3},
                                         {v1::JOB_STATE_CANCELLED, 3}, {v1::JOB_STATE_QUEUED, 3},
                                         {v1::JOB_STATE_RUNNING, 3}};
    size_t scanned = 0;
    for (const auto& [state, kind] : kinds) {
      JobQuery q;
      q.states = {state};
      q.newest_first = true;
      store_->scan_jobs(q, [&](const std::string& id, const std::string& blob) {
        v1::JobSpec spec;
        if (!spec.ParseFromString(blob)) return true;
        auto suite = spec.tags().find("suite");
        auto run = spec.tags().find("run");
        if (suite == spec.tags().end() || suite->second != "conformance" || run == spec.tags().end()) return true;
        auto& a = runs[run->second];
        a.run.run = run->second;
        if (a.first_id.empty() || id < a.first_id) a.first_id = id;
        switch (kind) {
          case 0: ++a.run.passed; break;
          case 1: failed.emplace_back(id, run->second); break;  // (the reader is busy with the scan)
          case 2: ++a.run.failed; break;
          default: ++a.run.other; break;
        }
        return ++scanned < 20000;
      });
    }
    // A failed job whose patch-stress stopped at LP_ENOTSUP is "unsupported" (as in farmctl's history).
    for (const auto& [id, run] : failed) {
      auto row = store_->job(id, false);
      v1::JobResult r;
      if (row && row->result && r.ParseFromString(*row->result) &&
          r.result_json().find("\"LP_ENOTSUP") != std::string::npos)
        ++runs[run].run.unsupported;
      else
        ++runs[run].run.failed;
    }
    std::vector<WebSnapshot::ConformanceRun> v;
    for (auto& [name, a] : runs) v.push_back(a.run);
    // The run's start: the creation of one of its jobs (each run's jobs are submitted together).
    for (auto& r : v)
      if (auto row = store_->job(runs[r.run].first_id, false)) r.started_ms = row->created_ms;
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
      return a.started_ms != b.started_ms ? a.started_ms > b.started_ms : a.run < b.run;
    });
    if (v.size() > kWebConformanceRuns) v.resize(kWebConformanceRuns);
    s.conformance = std::move(v);
  }
  return s;
}

}  // namespace farmd
