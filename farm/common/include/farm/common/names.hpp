#pragma once
// Human/CLI names for the farm.v1 enums, and their inverses.
#include <optional>
#include <string>
#include <string_view>

#include "farm/v1/farm.pb.h"

namespace farm {

std::string_view job_state_name(v1::JobState s);        // "queued", "running", "passed", ...
std::optional<v1::JobState> parse_job_state(std::string_view s);
bool is_terminal(v1::JobState s);
std::string_view outcome_name(v1::Outcome o);           // "pass", "fail", "timeout", ...
std::optional<v1::Outcome> parse_outcome(std::string_view s);
std::string_view worker_state_name(v1::WorkerState s);  // "idle", "busy", "quarantined", "offline"
// Job state a terminal attempt outcome leads to (ignoring retries).
v1::JobState state_for_outcome(v1::Outcome o);

}  // namespace farm
