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
// --record: merges the events of every process into one Chrome trace-event
// JSON file (loads in Perfetto / chrome://tracing): complete events ("X": ts,
// dur in microseconds) for calls with exits, instant events ("i") for
// entries, "M" metadata naming processes and threads. `process_events[i]`
// are the agent's events of `reports[i]` (null: none). Returns the number of
// events written, or -1 with `why`.
long write_trace(const std::vector<nlohmann::json> &reports, const std::vector<nlohmann::json> &process_events,
                 const std::string &file, std::string *why);
// The events files (PREFIX.PID.IMAGE.events) of `reports` under `dir`, in order.
std::vector<nlohmann::json> read_events(const std::string &dir, const std::string &prefix,
                                        const std::vector<nlohmann::json> &reports, std::string *why);
// write_trace of what `lptrace run`'s agents wrote under `dir`.
long write_trace(const std::string &dir, const std::string &prefix, const std::vector<nlohmann::json> &reports,
                 const std::string &file, std::string *why);

} // namespace lptrace
