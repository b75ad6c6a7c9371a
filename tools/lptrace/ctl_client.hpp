// lptrace's side of the control socket (agent/ctl_protocol.hpp).
#pragma once

#include <string>
#include <sys/types.h>

#include <nlohmann/json.hpp>

namespace lptrace {

// Sends one request to the agent in `pid`; the reply, or false with `why`
// ("no agent in process PID" when nothing listens).
bool ctl_request(pid_t pid, const std::string &line, nlohmann::json *reply, std::string *why);

} // namespace lptrace
