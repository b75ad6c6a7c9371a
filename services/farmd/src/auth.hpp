#pragma once
#include <grpcpp/grpcpp.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "farmd/config.hpp"

namespace farmd {

class Auth {
 public:
  explicit Auth(const std::vector<Token>& tokens);
  bool enabled() const { return !tokens_.empty(); }
  // OK, UNAUTHENTICATED (missing/unknown token) or PERMISSION_DENIED (wrong role).
  grpc::Status check(const grpc::ServerContext* ctx, Role need) const;

 private:
  std::unordered_map<std::string, Token> tokens_;
};

}  // namespace farmd
