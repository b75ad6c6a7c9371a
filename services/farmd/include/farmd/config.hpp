#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace farmd {

enum class Role { client, agent, admin };  // admin may call both services
const char* role_name(Role r);

struct Token {
  Role role;
  std::string token;
  std::string name;  // for logs ("ci", "board-lab-3", ...)
  // Agent and admin tokens: the worker names this token may register and act
  // for, as glob patterns ('*' any run of characters, '?' one character).
  // Empty: any name (the tokens file without "workers=").
  std::vector<std::string> workers = {};
};

// Who is calling: the token a call authenticated with, and where it came from.
struct Caller {
  const Token* token = nullptr;  // nullptr: not authenticated, or authentication disabled
  bool auth_enabled = false;     // false: --no-auth (everyone is an anonymous admin)
  std::string peer;              // gRPC peer, e.g. "ipv4:127.0.0.1:41234"

  std::string name() const { return token ? token->name : "anonymous"; }
  Role role() const { return token ? token->role : Role::admin; }
  // May this caller register / act for the worker called `worker`?
  bool may_act_for(std::string_view worker) const;
  // "agent 'lab3' from ipv4:127.0.0.1:41234" (for audit lines and messages)
  std::string describe() const;
};

// True if `name` matches the glob `pattern` ('*' and '?', no escapes).
bool glob_match(std::string_view pattern, std::string_view name);

// Parses a tokens file (see the comment in auth.cpp for the syntax). Throws
// std::runtime_error("PATH:LINE: ...") on a malformed line and
// "cannot read PATH: reason" if the file cannot be read.
std::vector<Token> load_tokens(const std::string& path);

struct Config {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  // Plain HTTP for /metrics (Prometheus) and the live page at / (http.hpp);
  // "" (the default): not served. HOST:PORT like `listen`.
  std::string metrics_listen;
  // The store (store.hpp): an SQLite database file (WAL; ":memory:" for a
  // throwaway one) or a postgresql:// URL.
  std::string db_path = "farmd.db";
  std::vector<Token> tokens;            // empty: authentication disabled
  std::string tls_cert;                 // PEM; TLS when both cert and key are set
  std::string tls_key;

  uint32_t lease_ttl_ms = 15000;          // a lease expires this long after the last heartbeat
  uint32_t heartbeat_interval_ms = 0;     // 0: lease_ttl / 3
  uint32_t default_timeout_s = 600;
  uint32_t max_timeout_s = 7 * 24 * 3600;
  // farmd's own deadline for a running attempt: timeout_s + this. Covers an
  // agent that keeps heartbeating but never finishes (its executor is stuck).
  uint32_t timeout_grace_s = 300;
  uint32_t default_max_attempts = 3;
  uint32_t max_attempts_limit = 10;
  uint32_t quarantine_threshold = 3;      // consecutive infrastructure failures
  uint32_t health_recheck_ms = 30000;     // retry a failed health check after this long
  uint32_t health_timeout_s = 120;
  uint32_t offline_after_ms = 0;          // 0: 3 * lease_ttl
  uint32_t max_acquire_wait_ms = 30000;   // cap on long polls
  uint64_t max_log_bytes_per_attempt = 4 << 20;
  uint32_t event_retention_days = 30;     // drop events (logs, progress) of jobs finished longer ago; 0: keep
  // SQLite PRAGMA synchronous=FULL (default NORMAL: WAL-safe); PostgreSQL: the
  // server's synchronous_commit (default off for farmd's sessions).
  bool sync_full = false;
  // WatchJob streams each hold a server thread while open.
  uint32_t max_watches_per_token = 32;    // open streams per client token (all callers share one without auth)
  uint32_t max_watches = 256;             // open streams in total
  // A job handed back by a stopping agent (OUTCOME_HANDED_BACK) is requeued
  // without using up an attempt at most this many times; further hand-backs
  // count as attempts (a bound on an agent that hands everything back).
  uint32_t max_hand_backs = 20;
};

// Ranges of the settings above; throws std::invalid_argument naming the
// setting and its allowed range (farmd refuses to start, nothing is clamped).
void validate_config(const Config& cfg);
// The token part of it: names, lengths, patterns, and no token listed twice
// (under one role or two).
void check_tokens(const std::vector<Token>& tokens);

struct ListenAddress {
  std::string host;  // "127.0.0.1", "0.0.0.0", "[::1]", "localhost"
  int port = 0;      // 0..65535
};
// Parses "HOST:PORT" (IPv6 in brackets); throws std::invalid_argument.
ListenAddress parse_listen(const std::string& listen);

}  // namespace farmd
