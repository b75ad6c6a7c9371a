// How farmctl shows jobs: the live watch display, the final line per job and
// the result JSON. Every string that came from farmd (names, ids, messages,
// workload output) goes through term_safe() before it reaches the terminal;
// JSON output is escaped by the JSON libraries instead.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli.hpp"
#include "farm/common/names.hpp"
#include "farm/common/result.hpp"
#include "farm/common/util.hpp"

namespace farm::ctl::cli {

std::string dump(const json& j, int indent) {
  return json_term_safe(j.dump(indent, ' ', false, json::error_handler_t::replace));
}

json to_j(const google::protobuf::Message& m) { return json::parse(farm::to_json(m), nullptr, false); }

std::string age(int64_t ms) {
  if (ms <= 0) return "-";
  int64_t s = (farm::now_ms() - ms) / 1000;
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  if (s < 172800) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string fmt_double(double d, const char* f) {
  char b[64];
  std::snprintf(b, sizeof b, f, d);
  return b;
}

bool passed(const v1::Job& j) { return j.state() == v1::JOB_STATE_PASSED; }

std::string job_label(const v1::Job& j) {
  return term_safe(j.spec().name().empty() ? describe_workload(j.spec()) : j.spec().name());
}

json result_json(const v1::Job& j) {
  json r;
  r["job_id"] = j.id();
  r["name"] = j.spec().name();
  r["state"] = farm::job_state_name(j.state());
  r["attempts"] = j.attempts();
  r["worker_id"] = j.worker_id();
  r["message"] = j.message();
  const auto& res = j.result();
  r["outcome"] = farm::outcome_name(res.outcome());
  r["verdict"] = res.verdict();
  r["exit_code"] = res.exit_code();
  r["calls"] = res.calls();
  r["hits"] = res.hits();
  r["batches"] = res.batches();
  r["syncs"] = res.syncs();
  r["unexpected_signals"] = res.unexpected_signals();
  r["wrong_results"] = res.wrong_results();
  r["duration_s"] = res.duration_s();
  r["result"] = res.result_json().empty() ? json(nullptr) : json::parse(res.result_json(), nullptr, false);
  return r;
}

namespace {

class Watcher {
 public:
  Watcher(bool json, bool logs) : json_(json), logs_(logs), tty_(::isatty(1) && !json) {}

  bool on_event(const v1::JobEvent& ev) {
    if (json_) {
      std::cout << json_term_safe(farm::to_json(ev)) << std::endl;
      return true;
    }
    const std::string id = term_safe(ev.job_id());
    if (ev.has_state()) {
      clear_line();
      const auto& s = ev.state();
      std::string line = "[" + id + "] " + std::string(farm::job_state_name(s.state()));
      if (s.attempt()) line += " (attempt " + std::to_string(s.attempt()) + ")";
      if (!s.worker_id().empty()) line += " on " + term_safe(s.worker_id());
      if (!s.message().empty()) line += ": " + term_safe(s.message());
      std::cout << line << std::endl;
    } else if (ev.has_progress()) {
      const auto& p = ev.progress();
      std::string line = "[" + id + "] running " + fmt_double(p.elapsed_s(), "%.1f") + "s";
      if (p.calls() || p.hits() || p.batches())
        line += "  calls=" + human(p.calls()) + " hits=" + human(p.hits()) + " batches=" + human(p.batches());
      if (p.fraction() > 0) line += "  " + fmt_double(100 * p.fraction(), "%.0f") + "%";
      line += "  out=" + human(p.output_bytes()) + "B";
      if (tty_) {
        std::cout << "\r\033[K" << line << std::flush;  // our own control sequence, around sanitised text
        progress_shown_ = true;
      } else if (farm::now_ms() - last_progress_ms_ >= 5000) {
        std::cout << line << std::endl;
        last_progress_ms_ = farm::now_ms();
      }
    } else if (ev.has_log() && logs_) {
      clear_line();
      std::string data = term_safe(ev.log().data(), /*multiline=*/true);
      std::cout << data;
      if (!data.empty() && data.back() != '\n') std::cout << "\n";
      std::cout << std::flush;
    }
    return true;
  }

  void clear_line() {
    if (progress_shown_) {
      std::cout << "\r\033[K";
      progress_shown_ = false;
    }
  }

 private:
  bool json_, logs_, tty_;
  bool progress_shown_ = false;
  int64_t last_progress_ms_ = 0;
};

}  // namespace

void print_final(const v1::Job& j) {
  const auto& r = j.result();
  std::cout << term_safe(j.id()) << " " << farm::job_state_name(j.state());
  if (!r.verdict().empty()) std::cout << " verdict=" << term_safe(r.verdict());
  if (r.calls() || r.hits()) std::cout << " calls=" << r.calls() << " hits=" << r.hits() << " batches=" << r.batches();
  if (r.duration_s() > 0) std::cout << " duration=" << fmt_double(r.duration_s()) << "s";
  if (!j.worker_id().empty()) std::cout << " worker=" << term_safe(j.worker_id());
  std::string msg = j.message().empty() ? r.message() : j.message();
  if (!msg.empty() && j.state() != v1::JOB_STATE_PASSED) std::cout << " (" << term_safe(msg) << ")";
  std::cout << std::endl;
}

int watch_jobs(Client& c, const std::vector<std::string>& ids, bool as_json, bool logs) {
  bool all_passed = true;
  for (const auto& id : ids) {
    Watcher w(as_json, logs);
    auto job = c.watch(id, logs, [&](const v1::JobEvent& ev) { return w.on_event(ev); });
    w.clear_line();
    if (as_json) std::cout << dump(result_json(job), -1) << std::endl;
    else print_final(job);
    all_passed = all_passed && passed(job);
  }
  return all_passed ? kExitOk : kExitNotPassed;
}

}  // namespace farm::ctl::cli
