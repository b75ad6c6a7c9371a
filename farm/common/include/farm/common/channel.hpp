#pragma once
// Client side connection setup shared by farm-agent and farmctl.
#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

namespace farm {

struct ChannelOptions {
  std::string address = "127.0.0.1:7443";  // host:port
  std::string token;                        // bearer token ("" = none)
  bool tls = false;                         // use TLS (implied by ca_file)
  std::string ca_file;                      // PEM roots to verify farmd (default: system roots)
  std::string server_name;                  // override the name checked in the server cert
};

std::shared_ptr<grpc::Channel> make_channel(const ChannelOptions& o);

// Adds "authorization: Bearer <token>" and a deadline to a call context.
void prepare_context(grpc::ClientContext& ctx, const std::string& token,
                     std::chrono::milliseconds deadline = std::chrono::milliseconds(0));

// "UNAUTHENTICATED", "PERMISSION_DENIED", ...
std::string status_code_name(grpc::StatusCode c);

}  // namespace farm
