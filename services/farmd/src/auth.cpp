#include "auth.hpp"

#include <openssl/crypto.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace farmd {

static const char* role_name(Role r) {
  switch (r) {
    case Role::client: return "client";
    case Role::agent: return "agent";
    case Role::admin: return "admin";
  }
  return "?";
}

std::vector<Token> load_tokens(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read tokens file " + path);
  std::vector<Token> out;
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    std::istringstream ss(line);
    std::string role, tok, name;
    if (!(ss >> role)) continue;
    if (!(ss >> tok)) throw std::runtime_error(path + ":" + std::to_string(n) + ": expected '<role> <token> [name]'");
    ss >> name;
    Token t;
    if (role == "client") t.role = Role::client;
    else if (role == "agent") t.role = Role::agent;
    else if (role == "admin") t.role = Role::admin;
    else throw std::runtime_error(path + ":" + std::to_string(n) + ": unknown role '" + role + "'");
    if (tok.size() < 8) throw std::runtime_error(path + ":" + std::to_string(n) + ": token shorter than 8 chars");
    t.token = tok;
    t.name = name.empty() ? role + "-" + std::to_string(n) : name;
    out.push_back(std::move(t));
  }
  return out;
}

Auth::Auth(const std::vector<Token>& tokens) {
  for (const auto& t : tokens) tokens_[t.token] = t;
}

grpc::Status Auth::check(const grpc::ServerContext* ctx, Role need) const {
  if (tokens_.empty()) return grpc::Status::OK;
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end())
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing 'authorization: Bearer <token>' metadata");
  std::string v(it->second.data(), it->second.size());
  constexpr std::string_view kBearer = "bearer ";
  if (v.size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), v.begin(), [](char a, char b) { return a == std::tolower(b); }))
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "authorization metadata is not a bearer token");
  std::string tok = v.substr(kBearer.size());
  // Hash lookup leaks nothing useful about other tokens; compare the hit in constant time anyway.
  auto t = tokens_.find(tok);
  if (t == tokens_.end() || CRYPTO_memcmp(t->first.data(), tok.data(), tok.size()) != 0)
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid token");
  if (t->second.role != need && t->second.role != Role::admin)
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        std::string("token '") + t->second.name + "' has role " + role_name(t->second.role) +
                            "; this call needs role " + role_name(need));
  return grpc::Status::OK;
}

}  // namespace farmd
