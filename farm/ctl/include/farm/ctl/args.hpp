#pragma once
// farmctl's argument checks. Every function throws UsageError with a message
// naming the argument and the accepted range or set; farmctl prints it as
// "farmctl: <message>" and exits 2.
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>

#include "farm/common/workload_limits.hpp"
#include "farm/v1/farm.pb.h"

namespace farm::ctl {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Ranges shared with farmd's own checks (farmd refuses the same values).
namespace limits {
inline constexpr uint64_t kMaxThreads = farm::limits::kMaxStressThreads;
inline constexpr uint64_t kMaxFunctions = farm::limits::kMaxStressFunctions;
inline constexpr double kMaxDurationS = farm::limits::kMaxStressDurationS;
inline constexpr uint64_t kMaxTimeoutS = 7 * 24 * 3600;  // farmd's default maximum job timeout
inline constexpr uint64_t kMaxAttempts = 10;
inline constexpr uint64_t kMaxCount = 10000;             // jobs per `farmctl submit`
inline constexpr uint64_t kMaxBatches = farm::limits::kMaxStressBatches;
inline constexpr uint64_t kMaxSmp = farm::limits::kMaxBaremetalSmp;
inline constexpr int64_t kMaxPriority = 999'999;         // farmd: health checks run above
inline constexpr uint64_t kMaxMinCores = 65536;
inline constexpr uint64_t kMaxListLimit = 100000;
inline constexpr size_t kMaxNameLen = 256;
inline constexpr size_t kMaxImageNameLen = 64;     // farm-agent: one path component
}  // namespace limits

// A decimal integer in lo..hi: digits only (no sign, no spaces, no 0x), no
// wrap-around ("-1" is refused, not read as 2^64-1).
uint64_t parse_uint(std::string_view opt, std::string_view text, uint64_t lo, uint64_t hi);
// A decimal integer with an optional '-' in lo..hi.
int64_t parse_int(std::string_view opt, std::string_view text, int64_t lo, int64_t hi);

// A duration: a number of seconds ("90", "1.5") or a number with a unit
// s, m, h, d or w ("30s", "5m", "24h", "7d"), in seconds. Returns -1 if the
// syntax is wrong (never throws; no sign, exponent, inf or nan); callers
// check the range and word the message.
double parse_duration_s(std::string_view text);
// A duration in (0, max_s] (finite), as parse_duration_s.
double parse_seconds(std::string_view opt, std::string_view text, double max_s);
// A whole number of seconds in 1..max_s, as parse_duration_s ("120", "2m", "1h").
uint64_t parse_whole_seconds(std::string_view opt, std::string_view text, uint64_t max_s);

// `report --since`: an RFC 3339 time (2026-12-01T08:00:00Z, ...+02:00,
// fractional seconds allowed, 'T' or a space), a date YYYY-MM-DD (00:00 UTC)
// or a duration back from `now_ms` (30m, 24h, 7d). Returns ms since the epoch.
int64_t parse_since(std::string_view text, int64_t now_ms);

// `value` must be one of `ok`.
void check_one_of(std::string_view opt, std::string_view value, std::initializer_list<const char*> ok);

// key=value with a non-empty key.
std::pair<std::string, std::string> parse_kv(std::string_view opt, std::string_view text);

// `farmctl submit --image NAME`: the name of an image an agent's operator
// configured (farm-agent --image NAME=PATH); never a path.
void check_image_name(std::string_view opt, std::string_view name);

// Identifiers and free text, as farmd accepts them (each throws UsageError
// naming `opt` and the rule):
void check_job_id(std::string_view opt, std::string_view id);       // 1-64 of [A-Za-z0-9._-]
void check_worker_id(std::string_view opt, std::string_view id);    // 1-128 of [A-Za-z0-9._@:-]
void check_label(std::string_view opt, std::string_view key, std::string_view value);
void check_tag(std::string_view opt, std::string_view key, std::string_view value);
void check_text(std::string_view opt, std::string_view s, size_t max);  // no control characters
void check_append(std::string_view opt, std::string_view s);        // bare-metal kernel command line

// The whole spec as farmctl would submit it (flags merged into --spec):
// the same ranges and sets as the flags, and none of the fields a client
// must not set (patch_stress.binary, patch_stress.extra_args,
// baremetal.extra_args). `origin` prefixes the messages ("--spec job.json").
void check_spec(const v1::JobSpec& spec, std::string_view origin);

}  // namespace farm::ctl
