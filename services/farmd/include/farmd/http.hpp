#pragma once
// farmd's plain HTTP endpoint (`--metrics-listen HOST:PORT`): Prometheus'
// /metrics and the live page at /, over Boost.Beast. Read-only: GET and HEAD
// of a fixed set of paths; nothing a request says reaches the farm's state.
//
// Every request is hostile until checked (docs/farm.md, "Metrics and the web
// page"): the header block is capped (kMaxHeaderBytes) and a request with a
// body is refused (413); a connection that does not send a whole request in
// HttpLimits::read_timeout (10 s), or sits idle between keep-alive requests
// that long, is closed; at most HttpLimits::max_connections (64) are open at once (the next one is accepted and
// closed at once, so a flood cannot exhaust file descriptors); a method other
// than GET/HEAD gets 405 with Allow, an unknown path 404, a target that is not
// origin-form ("/path?query") 400. A handler that throws gives 500 with no
// detail in the body (the reason goes to the log).
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace farmd {

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::map<std::string, std::string> headers;  // extra headers (e.g. Refresh)
};

struct HttpRequest {
  std::string path;   // the target's path, "/metrics"
  std::string query;  // after '?', undecoded; "" when absent
};

// Called on the server's thread; must not block for long.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// What a connection may take (the defaults; tests shorten the timeout).
struct HttpLimits {
  std::chrono::milliseconds read_timeout{std::chrono::seconds(10)};
  size_t max_connections = 64;
};

class HttpServer {
 public:
  static constexpr size_t kMaxHeaderBytes = 8 * 1024;
  static constexpr size_t kMaxTargetBytes = 2 * 1024;

  // Binds HOST:PORT (farmd::parse_listen's syntax; port 0 picks a free one)
  // and starts serving on a thread of its own. Throws std::runtime_error
  // naming the address and the reason ("address in use", "cannot resolve").
  HttpServer(const std::string& listen, std::map<std::string, HttpHandler> routes,
             std::function<void(const std::string&)> log = {}, HttpLimits limits = HttpLimits());
  ~HttpServer();  // stops accepting, closes every connection, joins the thread
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  std::string address() const;  // "127.0.0.1:PORT", "[::1]:PORT"

  struct Impl;  // opaque (http.cpp); named here so its connections can refer to it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace farmd
