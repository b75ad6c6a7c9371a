// Bearer tokens: the tokens file, the role check of every call, and which
// worker names an agent token may act for.
#include "auth.hpp"

#include <openssl/crypto.h>

#include <sstream>
#include <stdexcept>

#include "farm/common/util.hpp"

namespace farmd {

// The tokens file (farmd --tokens FILE): one token per line, '#' starts a
// comment, blank lines are ignored.
//
//   <role> <token> [name] [workers=PATTERN[,PATTERN...]]
//
//   role      client | agent | admin   (admin tokens may call both services)
//   token     the bearer secret: 8-1024 printable ASCII characters, no spaces
//   name      shown in logs and audit lines; [A-Za-z0-9._@:-]{1,64}
//             (default: <role>-<line number>)
//   workers=  agent and admin tokens only: comma-separated glob patterns ('*'
//             any run of characters, '?' one) of the worker names (farm-agent
//             --name) the token may register and act for. Without it the token
//             may act for any worker (files written before this option keep
//             working). Register, AcquireJob, Heartbeat, ReportProgress and
//             CompleteJob for any other worker name are PERMISSION_DENIED.
//
//   client  3c0f6a1b9e2d44f1  ci
//   agent   9d8e7f60a1b2c3d4  lab3   workers=lab3-*,board-lab3-?
//   agent   5a4b3c2d1e0f9a8b         workers=x86-1
//
// A token may appear once: the same secret under two roles (or twice) is an
// error, as is anything else malformed; farmd then refuses to start.
std::vector<Token> load_tokens(const std::string& path) {
  std::string text = farm::read_file(path);  // "cannot read PATH: reason"
  std::istringstream f(text);
  std::vector<Token> out;
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    auto where = [&] { return path + ":" + std::to_string(n) + ": "; };
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    std::istringstream ss(line);
    std::vector<std::string> fields;
    for (std::string w; ss >> w;) fields.push_back(w);
    if (fields.empty()) continue;
    if (fields.size() < 2) throw std::runtime_error(where() + "expected '<role> <token> [name] [workers=PATTERNS]'");
    Token t;
    const std::string& role = fields[0];
    if (role == "client") t.role = Role::client;
    else if (role == "agent") t.role = Role::agent;
    else if (role == "admin") t.role = Role::admin;
    else throw std::runtime_error(where() + "unknown role '" + farm::clip(role) + "' (client, agent or admin)");
    t.token = fields[1];
    bool have_workers = false;
    for (size_t i = 2; i < fields.size(); ++i) {
      const std::string& f2 = fields[i];
      if (auto eq = f2.find('='); eq != std::string::npos) {
        std::string key = f2.substr(0, eq), val = f2.substr(eq + 1);
        if (key != "workers") throw std::runtime_error(where() + "unknown option '" + farm::clip(key) + "=' (workers=)");
        if (have_workers) throw std::runtime_error(where() + "workers= given twice");
        have_workers = true;
        std::istringstream ps(val);
        for (std::string p; std::getline(ps, p, ',');) t.workers.push_back(p);
        if (t.workers.empty() || val.back() == ',')
          throw std::runtime_error(where() + "workers= needs at least one pattern and no empty ones");
      } else if (i == 2) {
        t.name = f2;
      } else {
        throw std::runtime_error(where() + "unexpected '" + farm::clip(f2) +
                                 "' (expected '<role> <token> [name] [workers=PATTERNS]')");
      }
    }
    if (t.name.empty()) t.name = role + "-" + std::to_string(n);
    try {
      check_tokens({t});
    } catch (const std::exception& e) {
      throw std::runtime_error(where() + e.what());
    }
    for (const auto& o : out)
      if (o.token == t.token)
        throw std::runtime_error(where() + "this token is already listed (as " + role_name(o.role) + " '" + o.name +
                                 "'); one token, one role (use role admin for both services)");
    out.push_back(std::move(t));
  }
  return out;
}

bool Caller::may_act_for(std::string_view worker) const {
  if (!token || token->workers.empty()) return true;
  for (const auto& p : token->workers)
    if (glob_match(p, worker)) return true;
  return false;
}

std::string Caller::describe() const {
  std::string w = token                ? std::string(role_name(token->role)) + " '" + token->name + "'"
                  : auth_enabled       ? std::string("unauthenticated caller")
                                       : std::string("anonymous (--no-auth)");
  return w + " from " + (peer.empty() ? "?" : farm::clip(peer, 96));
}

Auth::Auth(const std::vector<Token>& tokens) {
  check_tokens(tokens);
  for (const auto& t : tokens) tokens_[t.token] = t;
}

grpc::Status Auth::check(const grpc::ServerContext* ctx, Role need, Caller* who) const {
  who->token = nullptr;
  who->auth_enabled = !tokens_.empty();
  who->peer = ctx->peer();
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
  who->token = &t->second;
  if (t->second.role != need && t->second.role != Role::admin)
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        std::string("token '") + t->second.name + "' has role " + role_name(t->second.role) +
                            "; this call needs role " + role_name(need));
  return grpc::Status::OK;
}

}  // namespace farmd
