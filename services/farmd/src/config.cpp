// Configuration checks: every setting has a range, and farmd refuses to start
// outside it (a 0 lease TTL or 0 attempts used to be clamped or accepted).
#include <cctype>
#include <map>
#include <stdexcept>

#include "farm/common/util.hpp"
#include "farmd/config.hpp"

namespace farmd {

const char* role_name(Role r) {
  switch (r) {
    case Role::client: return "client";
    case Role::agent: return "agent";
    case Role::admin: return "admin";
  }
  return "?";
}

bool glob_match(std::string_view p, std::string_view s) {
  // Iterative matcher with one backtrack point (the last '*'): linear enough
  // for the short patterns of a tokens file.
  size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++pi;
      ++si;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

ListenAddress parse_listen(const std::string& listen) {
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("invalid listen address '" + farm::clip(listen) + "': " + why);
  };
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) throw bad("expected HOST:PORT");
  ListenAddress a;
  a.host = listen.substr(0, colon);
  std::string port = listen.substr(colon + 1);
  if (a.host.empty()) throw bad("the host is empty (use 0.0.0.0 or 127.0.0.1)");
  if (a.host.front() == '[' ? a.host.back() != ']' : a.host.find(':') != std::string::npos)
    throw bad("an IPv6 host must be in brackets, e.g. [::1]:7443");
  for (unsigned char c : a.host)
    if (!(std::isalnum(c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '%'))
      throw bad("the host has a character that is not allowed");
  if (port.empty() || port.size() > 5) throw bad("the port must be a number in 0-65535");
  for (unsigned char c : port)
    if (!std::isdigit(c)) throw bad("the port must be a number in 0-65535");
  a.port = std::stoi(port);
  if (a.port > 65535) throw bad("the port must be a number in 0-65535");
  return a;
}

namespace {

void range(const char* what, uint64_t v, uint64_t lo, uint64_t hi, const char* note = "") {
  if (v < lo || v > hi)
    throw std::invalid_argument(std::string(what) + " is " + std::to_string(v) + "; it must be in " +
                                std::to_string(lo) + ".." + std::to_string(hi) + note);
}

bool token_name_ok(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (unsigned char c : s)
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '@' || c == ':')) return false;
  return true;
}

}  // namespace

void check_tokens(const std::vector<Token>& tokens) {
  std::map<std::string, const Token*> seen;
  for (const auto& t : tokens) {
    if (!token_name_ok(t.name))
      throw std::invalid_argument("token name '" + farm::clip(t.name) + "' must be 1-64 chars of [A-Za-z0-9._@:-]");
    if (t.token.size() < 8)
      throw std::invalid_argument("token '" + t.name + "' is shorter than 8 characters");
    if (t.token.size() > 1024) throw std::invalid_argument("token '" + t.name + "' is longer than 1024 characters");
    for (unsigned char c : t.token)
      if (c <= 0x20 || c >= 0x7f)
        throw std::invalid_argument("token '" + t.name + "' has a space, control or non-ASCII character");
    if (!t.workers.empty() && t.role == Role::client)
      throw std::invalid_argument("token '" + t.name + "': workers= applies to agent and admin tokens only");
    for (const auto& p : t.workers) {
      bool ok = !p.empty() && p.size() <= 128;
      for (unsigned char c : p)
        ok = ok && (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '@' || c == ':' || c == '*' || c == '?');
      if (!ok)
        throw std::invalid_argument("token '" + t.name + "': worker pattern '" + farm::clip(p) +
                                    "' must be 1-128 chars of [A-Za-z0-9._@:-] and the wildcards * ?");
    }
    auto [it, fresh] = seen.emplace(t.token, &t);
    if (!fresh)
      throw std::invalid_argument("the same token is listed twice: as " + std::string(role_name(it->second->role)) +
                                  " '" + it->second->name + "' and as " + role_name(t.role) + " '" + t.name +
                                  "' (one token, one role; use role admin for both services)");
  }
}

void validate_config(const Config& c) {
  parse_listen(c.listen);
  if (!c.metrics_listen.empty()) {
    try {
      parse_listen(c.metrics_listen);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--metrics-listen: ") + e.what());
    }
  }
  if (c.db_path.empty())
    throw std::invalid_argument("--db is empty: give an SQLite database file or a postgresql:// URL");
  range("--lease-ttl-ms", c.lease_ttl_ms, 100, 3'600'000);
  if (c.heartbeat_interval_ms != 0 && (c.heartbeat_interval_ms < 10 || c.heartbeat_interval_ms >= c.lease_ttl_ms))
    throw std::invalid_argument("--heartbeat-ms is " + std::to_string(c.heartbeat_interval_ms) +
                                "; it must be 0 (lease TTL / 3) or in 10.." + std::to_string(c.lease_ttl_ms - 1) +
                                " (shorter than the lease TTL)");
  range("max timeout (s)", c.max_timeout_s, 1, 366u * 86400);
  range("--default-timeout", c.default_timeout_s, 1, c.max_timeout_s, " (the maximum job timeout)");
  range("--timeout-grace", c.timeout_grace_s, 0, 86400);
  range("max attempts limit", c.max_attempts_limit, 1, 1000);
  range("--max-attempts", c.default_max_attempts, 1, c.max_attempts_limit, " (the per-job limit)");
  range("--quarantine-after", c.quarantine_threshold, 0, 1000, " (0: never)");
  range("--health-recheck-ms", c.health_recheck_ms, 100, 86'400'000);
  range("health check timeout (s)", c.health_timeout_s, 1, c.max_timeout_s);
  range("offline after (ms)", c.offline_after_ms, 0, 86'400'000, " (0: 3 x lease TTL)");
  range("max acquire wait (ms)", c.max_acquire_wait_ms, 0, 600'000);
  range("max log bytes per attempt", c.max_log_bytes_per_attempt, 1024, uint64_t{1} << 34);
  range("--event-retention-days", c.event_retention_days, 0, 36500, " (0: keep forever)");
  range("--max-watches-per-token", c.max_watches_per_token, 1, 100000);
  range("--max-watches", c.max_watches, 1, 100000);
  range("max hand-backs", c.max_hand_backs, 0, 1000);
  if (c.tls_cert.empty() != c.tls_key.empty())
    throw std::invalid_argument("TLS needs both a certificate (--tls-cert) and a key (--tls-key)");
  check_tokens(c.tokens);
}

}  // namespace farmd
