#pragma once
// Input checks for every RPC: a clear INVALID_ARGUMENT naming the field, and
// never an echo of unbounded input (farm::clip). Nothing is clamped.
//
// SubmitJob's rule: a client token never chooses what executes on an agent.
// The patch-stress binary and the emulator are the agent's configuration; a
// bare-metal image is a NAME the agent maps to one of its configured files;
// no client-supplied argument reaches a command line except through typed,
// range-checked fields. Command workloads stay allowed at submit: they only
// run on agents whose operator opted in, and the agent enforces its own
// allow-list (the server still bounds them and refuses loader variables).
#include <grpcpp/grpcpp.h>

#include <string>
#include <string_view>

#include "farm/v1/farm.pb.h"
#include "farmd/config.hpp"

namespace farmd::check {

namespace v1 = ::farm::v1;

constexpr size_t kMaxJobIdLen = 64;
constexpr size_t kMaxWorkerNameLen = 128;
constexpr size_t kMaxSessionLen = 64;

// The whole JobSpec of a SubmitJob.
grpc::Status spec(const v1::JobSpec& spec, const Config& cfg);

// A job id ("j-0123456789ab"): required, at most 64 chars of [A-Za-z0-9._-].
grpc::Status job_id(std::string_view field, const std::string& id);
// A worker name/id: 1-128 chars of [A-Za-z0-9._@:-] (optional ones may be empty).
grpc::Status worker_id(std::string_view field, const std::string& id, bool required = true);
bool valid_worker_name(std::string_view s);
// An agent session token (hex, at most 64 chars).
grpc::Status session(const std::string& s);
// Tag filters of ListJobs / GetReport (same rules as JobSpec.tags).
grpc::Status tags(std::string_view field, const google::protobuf::Map<std::string, std::string>& tags);
// Free text stored with a job (cancel reasons): at most `max` chars, no control characters.
grpc::Status text(std::string_view field, const std::string& s, size_t max);
// RegisterRequest.capabilities.
grpc::Status capabilities(const v1::Capabilities& caps);
// A CompleteJobRequest.result: a known outcome an agent may report, consistent
// with its verdict, bounded strings. (CANCELLED without a cancel request is
// checked against the lease by the farm.)
grpc::Status result(const v1::JobResult& r);

bool known_kind(std::string_view k);

}  // namespace farmd::check
