#pragma once
// Workload result parsing: a workload prints one JSON object as its last
// stdout line; the farm keeps it verbatim and copies the numbers out.
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "farm/v1/farm.pb.h"

namespace farm {

// The last line of `output` that parses as a JSON object (lines are scanned
// from the end; console noise around it is ignored). Returns the object and,
// if `raw` is given, the line itself.
std::optional<nlohmann::json> last_json_object(std::string_view output, std::string* raw = nullptr);

// Copies calls/hits/batches/syncs/unexpected_signals/wrong_results/verdict
// from a workload JSON object into `r` (missing fields stay 0/empty).
void fill_result_numbers(const nlohmann::json& j, v1::JobResult* r);

// Same for progress ({"progress":..., "calls":...} lines printed while running).
void fill_progress_numbers(const nlohmann::json& j, v1::Progress* p);

// Last `max_lines` lines / `max_bytes` bytes of a text.
std::string tail(std::string_view text, size_t max_lines, size_t max_bytes);

// Protobuf <-> JSON (proto3 JSON mapping, field names as in the .proto).
std::string to_json(const google::protobuf::Message& m, bool pretty = false);
bool from_json(std::string_view json, google::protobuf::Message* m, std::string* error = nullptr);

}  // namespace farm
