#pragma once
// Minimal RAII wrapper over libpq (Debian's libpq-dev): one connection,
// parameterised statements prepared once per connection, results read by
// row and column in text format. Not thread-safe: callers serialize access
// per Pg (like farmd::Db for SQLite).
#include <libpq-fe.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace farmd {

struct PgError : std::runtime_error {
  PgError(const std::string& what, std::string state = {}) : std::runtime_error(what), sqlstate(std::move(state)) {}
  std::string sqlstate;  // e.g. "42P01" (undefined table); empty for connection errors
};

class PgResult {
 public:
  explicit PgResult(PGresult* r = nullptr) : r_(r) {}
  ~PgResult() {
    if (r_) PQclear(r_);
  }
  PgResult(PgResult&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  PgResult& operator=(PgResult&& o) noexcept {
    if (this != &o) {
      if (r_) PQclear(r_);
      r_ = std::exchange(o.r_, nullptr);
    }
    return *this;
  }
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;

  int rows() const { return r_ ? PQntuples(r_) : 0; }
  bool is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::string text(int row, int col) const {
    return std::string(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
  }
  int64_t i64(int row, int col) const;   // an integer column (0 if NULL)
  double dbl(int row, int col) const;    // a double precision column
  std::string blob(int row, int col) const;  // a bytea column
  int64_t affected() const;              // rows an INSERT/UPDATE/DELETE touched

 private:
  PGresult* r_;
};

// Parameters $1, $2, ... of one statement.
class PgParams {
 public:
  PgParams& add(int64_t v) { return text_value(std::to_string(v)); }
  PgParams& add(int v) { return add(static_cast<int64_t>(v)); }
  PgParams& add(uint32_t v) { return add(static_cast<int64_t>(v)); }
  PgParams& add(uint64_t v) { return add(static_cast<int64_t>(v)); }  // as SQLite stores it
  PgParams& add(double v);
  // Text: PostgreSQL text holds neither NUL bytes nor invalid UTF-8; each
  // such byte is stored as U+FFFD (farmd's blobs keep the exact bytes).
  PgParams& add(std::string_view v);
  PgParams& add(const char* v) { return add(std::string_view(v)); }
  PgParams& add(const std::string& v) { return add(std::string_view(v)); }
  PgParams& add_blob(std::string_view v);  // bytea, sent in binary
  PgParams& add_null();

  int size() const { return static_cast<int>(values_.size()); }
  std::vector<const char*> pointers() const;
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  PgParams& text_value(std::string s);
  std::vector<std::string> values_;
  std::vector<bool> null_;
  std::vector<int> lengths_, formats_;
};

// `s` as valid UTF-8 without NUL bytes (each offending byte becomes U+FFFD).
std::string pg_text(std::string_view s);

class Pg {
 public:
  // `conninfo`: a postgresql:// URL or "key=value ..." string. `defaults`
  // apply unless conninfo sets them (connect_timeout, application_name, ...).
  // Throws PgError with libpq's reason.
  explicit Pg(const std::string& conninfo, const std::vector<std::pair<std::string, std::string>>& defaults = {});
  ~Pg();
  Pg(const Pg&) = delete;
  Pg& operator=(const Pg&) = delete;

  // Statements without parameters or results (may hold several, separated by ';').
  void exec(const std::string& sql);
  // One statement with parameters: prepared on first use, cached by its text.
  PgResult query(const std::string& sql, const PgParams& params = {});
  // Whether the connection is up; reconnects (same parameters) if it is not.
  bool ok() const { return PQstatus(c_) == CONNECTION_OK; }
  bool reconnect();
  bool in_transaction() const { return PQtransactionStatus(c_) != PQTRANS_IDLE; }
  PGconn* raw() { return c_; }

 private:
  [[noreturn]] void fail(PGresult* r, const std::string& what);
  PGconn* c_ = nullptr;
  std::unordered_map<std::string, std::string> prepared_;  // sql -> statement name
};

// libpq's message without its "ERROR:  " prefix, on one line.
std::string pg_message(const char* raw);

}  // namespace farmd
