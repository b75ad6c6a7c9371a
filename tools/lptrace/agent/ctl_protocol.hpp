// The control socket between lptrace and its agent in a traced process.
//
// Where: /tmp/lptrace-UID/PID.sock (the directory mode 0700, the socket 0600,
// and every connection's peer must have the agent's uid: SO_PEERCRED). The
// same directory holds PID.attach, the marker `lptrace attach` writes before
// it makes the process dlopen the agent (an agent loaded without LD_PRELOAD
// and without its marker does nothing).
// What: one request line, one JSON reply line, per connection:
//   enable PATTERN [exit]   probe what PATTERN selects (one batch)
//   disable PATTERN         disable the probed functions it selects (one batch)
//   stats                   the report (as written at exit)
//   detach                  remove every probe (one batch), stop the server
// Replies: {"ok":true,...} or {"ok":false,"error":"..."}.
#pragma once

#include <string>
#include <sys/types.h>
#include <unistd.h>

namespace lptrace {

inline std::string ctl_dir() { return "/tmp/lptrace-" + std::to_string(getuid()); }
inline std::string ctl_socket_path(pid_t pid) { return ctl_dir() + "/" + std::to_string(pid) + ".sock"; }
inline std::string attach_marker_path(pid_t pid) { return ctl_dir() + "/" + std::to_string(pid) + ".attach"; }

} // namespace lptrace
