#pragma once
// The audit trail: one log line per call that changes the farm (submission,
// cancellation, worker removal, registration, lease, completion) at info, and
// per refused call (authentication failures, bad input, forged or stale
// sessions, completions for someone else's lease) at warn. Each line says
// who (token name and role), what, and from where (the gRPC peer). Request
// fields are clipped (farm::clip): a line never echoes unbounded input.
#include <grpcpp/grpcpp.h>

#include <string>
#include <string_view>

#include "farmd/config.hpp"

namespace farmd::audit {

// "farmd audit: client 'ci' from ipv4:127.0.0.1:5555: SubmitJob: queued j-1"
void done(const Caller& who, std::string_view call, std::string_view what);
// "farmd audit: agent 'lab' from ...: CompleteJob refused: PERMISSION_DENIED: ..."
void refused(const Caller& who, std::string_view call, const grpc::Status& s);

}  // namespace farmd::audit
