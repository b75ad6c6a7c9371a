#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace farmd {

enum class Role { client, agent, admin };  // admin may call both services

struct Token {
  Role role;
  std::string token;
  std::string name;  // for logs ("ci", "board-lab-3", ...)
};

// Parses a tokens file: one "<role> <token> [name]" per line, '#' comments.
std::vector<Token> load_tokens(const std::string& path);

struct Config {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  std::string db_path = "farmd.db";     // SQLite database (WAL); ":memory:" for throwaway
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
  bool sync_full = false;                 // PRAGMA synchronous=FULL (default NORMAL: WAL-safe)
};

}  // namespace farmd
