#pragma once
#include <grpcpp/grpcpp.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "farmd/config.hpp"

namespace farmd {

class Auth {
 public:
  // Throws std::invalid_argument on a bad token list (see check_tokens).
  explicit Auth(const std::vector<Token>& tokens);
  bool enabled() const { return !tokens_.empty(); }
  // OK, UNAUTHENTICATED (missing/unknown token) or PERMISSION_DENIED (wrong
  // role). Fills `who` (token and peer) on success, and the peer on failure.
  grpc::Status check(const grpc::ServerContext* ctx, Role need, Caller* who) const;

 private:
  std::unordered_map<std::string, Token> tokens_;  // node-based: Token addresses stay valid
};

}  // namespace farmd
