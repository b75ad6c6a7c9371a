#include "farm/common/names.hpp"

namespace farm {

std::string_view job_state_name(v1::JobState s) {
  switch (s) {
    case v1::JOB_STATE_QUEUED: return "queued";
    case v1::JOB_STATE_RUNNING: return "running";
    case v1::JOB_STATE_PASSED: return "passed";
    case v1::JOB_STATE_FAILED: return "failed";
    case v1::JOB_STATE_TIMED_OUT: return "timed-out";
    case v1::JOB_STATE_ERROR: return "error";
    case v1::JOB_STATE_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

std::optional<v1::JobState> parse_job_state(std::string_view s) {
  for (int i = v1::JobState_MIN; i <= v1::JobState_MAX; ++i) {
    auto st = static_cast<v1::JobState>(i);
    if (job_state_name(st) == s) return st;
  }
  if (s == "timeout" || s == "timed_out") return v1::JOB_STATE_TIMED_OUT;
  if (s == "errored") return v1::JOB_STATE_ERROR;
  return std::nullopt;
}

bool is_terminal(v1::JobState s) {
  return s == v1::JOB_STATE_PASSED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_TIMED_OUT ||
         s == v1::JOB_STATE_ERROR || s == v1::JOB_STATE_CANCELLED;
}

std::string_view outcome_name(v1::Outcome o) {
  switch (o) {
    case v1::OUTCOME_PASS: return "pass";
    case v1::OUTCOME_FAIL: return "fail";
    case v1::OUTCOME_TIMEOUT: return "timeout";
    case v1::OUTCOME_INFRA_ERROR: return "infra-error";
    case v1::OUTCOME_CANCELLED: return "cancelled";
    case v1::OUTCOME_LOST: return "lost";
    case v1::OUTCOME_HANDED_BACK: return "handed-back";
    case v1::OUTCOME_REFUSED: return "refused";
    default: return "";
  }
}

std::optional<v1::Outcome> parse_outcome(std::string_view s) {
  for (int i = v1::Outcome_MIN; i <= v1::Outcome_MAX; ++i) {
    auto o = static_cast<v1::Outcome>(i);
    if (!outcome_name(o).empty() && outcome_name(o) == s) return o;
  }
  return std::nullopt;
}

std::string_view worker_state_name(v1::WorkerState s) {
  switch (s) {
    case v1::WORKER_STATE_IDLE: return "idle";
    case v1::WORKER_STATE_BUSY: return "busy";
    case v1::WORKER_STATE_QUARANTINED: return "quarantined";
    case v1::WORKER_STATE_OFFLINE: return "offline";
    default: return "unspecified";
  }
}

v1::JobState state_for_outcome(v1::Outcome o) {
  switch (o) {
    case v1::OUTCOME_PASS: return v1::JOB_STATE_PASSED;
    case v1::OUTCOME_FAIL: return v1::JOB_STATE_FAILED;
    case v1::OUTCOME_TIMEOUT: return v1::JOB_STATE_TIMED_OUT;
    case v1::OUTCOME_CANCELLED: return v1::JOB_STATE_CANCELLED;
    default: return v1::JOB_STATE_ERROR;
  }
}

}  // namespace farm
