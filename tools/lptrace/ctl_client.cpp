#include "ctl_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/ctl_protocol.hpp"

namespace lptrace {

bool ctl_request(pid_t pid, const std::string &line, nlohmann::json *reply, std::string *why) {
  const std::string path = ctl_socket_path(pid);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *why = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.c_str(), std::min(path.size() + 1, sizeof sa.sun_path - 1));
  if (connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) {
    const int e = errno;
    close(fd);
    *why = "no lptrace agent in process " + std::to_string(pid) + " (" + path + ": " + std::strerror(e) + ")";
    return false;
  }
  const std::string req = line + "\n";
  if (write(fd, req.data(), req.size()) != ssize_t(req.size())) {
    close(fd);
    *why = "cannot send to the agent";
    return false;
  }
  std::string text;
  char buf[65536];
  pollfd pf{fd, POLLIN, 0};
  while (poll(&pf, 1, 30000) == 1) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, size_t(n));
  }
  close(fd);
  try {
    *reply = nlohmann::json::parse(text);
  } catch (const std::exception &e) {
    *why = "unreadable reply from the agent: " + std::string(e.what());
    return false;
  }
  if (!reply->value("ok", false)) {
    *why = reply->value("error", "the agent refused");
    return false;
  }
  return true;
}

} // namespace lptrace
