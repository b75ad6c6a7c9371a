// Reading the agent's per-process reports and printing them: a table per
// process (function, calls, and with exits total/mean/p50/p99/max), or JSON.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lptrace {

// Every PREFIX.PID.json the agent wrote under `dir`, by pid.
std::vector<nlohmann::json> read_reports(const std::string &dir, const std::string &prefix, std::string *why);
// per_thread: each process's table is followed by one per thread.
std::string format_table(const std::vector<nlohmann::json> &reports, bool per_thread = false);
std::string format_json(const std::vector<nlohmann::json> &reports);
// --record: merges every process's PREFIX.PID.events under `dir` into one
// Chrome trace-event JSON file (loads in Perfetto / chrome://tracing):
// complete events ("X": ts, dur in microseconds) for calls with exits,
// instant events ("i") for entries, "M" metadata naming processes and
// threads. Returns the number of events written, or -1 with `why`.
long write_trace(const std::string &dir, const std::string &prefix, const std::vector<nlohmann::json> &reports,
                 const std::string &file, std::string *why);

} // namespace lptrace
