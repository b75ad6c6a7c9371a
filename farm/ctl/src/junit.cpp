#include <cstdio>
#include <ctime>
#include <map>
#include <sstream>

#include "farm/common/names.hpp"
#include "farm/common/select.hpp"
#include "farm/ctl/client.hpp"
#include "farm/ctl/text.hpp"

namespace farm::ctl {

namespace {

std::string esc(std::string_view s) { return xml_escape(s); }

std::string secs(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", s);
  return b;
}

std::string iso(int64_t ms) {
  std::time_t t = ms / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  return b;
}

struct Suite {
  std::vector<const v1::Job*> jobs;
  int failures = 0, errors = 0, skipped = 0;
  double time = 0;
  int64_t first_ms = 0;
};

}  // namespace

std::string junit_xml(const v1::Report& report, const std::string& suite_name) {
  std::map<std::string, Suite> suites;
  // A job's suite is the target of the worker it ran on (else its selector).
  for (const auto& j : report.jobs()) {
    std::string target = farm::target_name(j.spec().selector());
    if (auto it = report.worker_targets().find(j.worker_id()); it != report.worker_targets().end()) target = it->second;
    auto& s = suites[target];
    s.jobs.push_back(&j);
    s.time += j.result().duration_s();
    if (!s.first_ms || j.created_ms() < s.first_ms) s.first_ms = j.created_ms();
    switch (j.state()) {
      case v1::JOB_STATE_FAILED: case v1::JOB_STATE_TIMED_OUT: ++s.failures; break;
      case v1::JOB_STATE_ERROR: ++s.errors; break;
      case v1::JOB_STATE_PASSED: break;
      default: ++s.skipped; break;
    }
  }
  int tests = 0, failures = 0, errors = 0, skipped = 0;
  double time = 0;
  for (auto& [_, s] : suites) {
    tests += static_cast<int>(s.jobs.size());
    failures += s.failures;
    errors += s.errors;
    skipped += s.skipped;
    time += s.time;
  }
  std::ostringstream o;
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o << "<testsuites name=\"" << esc(suite_name) << "\" tests=\"" << tests << "\" failures=\"" << failures
    << "\" errors=\"" << errors << "\" skipped=\"" << skipped << "\" time=\"" << secs(time) << "\">\n";
  for (auto& [target, s] : suites) {
    o << "  <testsuite name=\"" << esc(target) << "\" tests=\"" << s.jobs.size() << "\" failures=\"" << s.failures
      << "\" errors=\"" << s.errors << "\" skipped=\"" << s.skipped << "\" time=\"" << secs(s.time)
      << "\" timestamp=\"" << iso(s.first_ms) << "\">\n";
    for (const auto* j : s.jobs) {
      std::string name = j->spec().name().empty() ? describe_workload(j->spec()) : j->spec().name();
      name += " [" + j->id() + "]";
      const auto& r = j->result();
      o << "    <testcase name=\"" << esc(name) << "\" classname=\"farm." << esc(target) << "\" time=\""
        << secs(r.duration_s()) << "\">\n";
      o << "      <properties>\n";
      auto prop = [&](const char* k, const std::string& v) {
        o << "        <property name=\"" << k << "\" value=\"" << esc(v) << "\"/>\n";
      };
      prop("job_id", j->id());
      prop("state", std::string(farm::job_state_name(j->state())));
      prop("worker", j->worker_id());
      prop("attempts", std::to_string(j->attempts()));
      prop("seed", std::to_string(j->spec().seed()));
      prop("calls", std::to_string(r.calls()));
      prop("hits", std::to_string(r.hits()));
      prop("batches", std::to_string(r.batches()));
      o << "      </properties>\n";
      std::string msg = r.message().empty() ? j->message() : r.message();
      switch (j->state()) {
        case v1::JOB_STATE_FAILED:
          o << "      <failure type=\"fail\" message=\"" << esc(msg) << "\">" << esc(r.log_tail()) << "</failure>\n";
          break;
        case v1::JOB_STATE_TIMED_OUT:
          o << "      <failure type=\"timeout\" message=\"" << esc(msg) << "\">" << esc(r.log_tail()) << "</failure>\n";
          break;
        case v1::JOB_STATE_ERROR:
          o << "      <error type=\"infrastructure\" message=\"" << esc(j->message()) << "\">" << esc(r.log_tail())
            << "</error>\n";
          break;
        case v1::JOB_STATE_CANCELLED:
          o << "      <skipped message=\"" << esc(msg.empty() ? "cancelled" : msg) << "\"/>\n";
          break;
        case v1::JOB_STATE_PASSED:
          break;
        default:
          o << "      <skipped message=\"not finished (" << farm::job_state_name(j->state()) << ")\"/>\n";
      }
      if (!r.result_json().empty()) o << "      <system-out>" << esc(r.result_json()) << "</system-out>\n";
      o << "    </testcase>\n";
    }
    o << "  </testsuite>\n";
  }
  o << "</testsuites>\n";
  return o.str();
}

}  // namespace farm::ctl
