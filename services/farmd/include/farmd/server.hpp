#pragma once
// farmd as a library: start the farm in-process (tests, benchmarks,
// `farmctl conformance --local`) or from the farmd binary.
#include <memory>
#include <string>

#include "farmd/config.hpp"

namespace farmd {

class Farm;

class Server {
 public:
  explicit Server(Config cfg);
  ~Server();  // shuts down
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts serving; throws std::runtime_error on failure.
  void start();
  int port() const { return port_; }
  // "127.0.0.1:<port>" (the host part of the listen address with the bound port).
  std::string address() const;
  // Stops accepting calls, wakes long polls and watchers, waits up to grace_ms.
  void shutdown(int grace_ms = 2000);
  // The HTTP endpoint of --metrics-listen (/metrics and the live page at /):
  // its bound port, 0 when not configured; "127.0.0.1:<port>" like address().
  int metrics_port() const;
  std::string metrics_address() const;
  // Blocks until shutdown() is called from another thread.
  void wait();
  Farm& farm();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Config cfg_;
  int port_ = 0;
};

}  // namespace farmd
