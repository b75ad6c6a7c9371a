#pragma once
// Minimal RAII wrapper over the SQLite C API (prepared statement cache,
// transactions). Not thread-safe: callers serialize access per Db.
#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace farmd {

struct SqliteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~Stmt() { if (s_) { sqlite3_reset(s_); sqlite3_clear_bindings(s_); } }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_) { o.s_ = nullptr; }

  Stmt& bind(int i, int64_t v) { check(sqlite3_bind_int64(s_, i, v)); return *this; }
  Stmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, uint32_t v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, uint64_t v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, double v) { check(sqlite3_bind_double(s_, i, v)); return *this; }
  Stmt& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind_blob(int i, std::string_view v) {
    check(sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind_null(int i) { check(sqlite3_bind_null(s_, i)); return *this; }

  // true while a row is available
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw SqliteError(std::string("sqlite step: ") + sqlite3_errmsg(db_));
  }
  void exec() { while (step()) {} }

  int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  double dbl(int c) const { return sqlite3_column_double(s_, c); }
  bool is_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string text(int c) const {
    auto p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, c)) : std::string();
  }
  std::string blob(int c) const {
    auto p = sqlite3_column_blob(s_, c);
    return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(s_, c)) : std::string();
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw SqliteError(std::string("sqlite bind: ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* s_;
};

class Db {
 public:
  explicit Db(const std::string& path, bool readonly = false);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(std::string_view sql);             // no results, may hold several statements
  Stmt prepare(const std::string& sql);         // cached
  int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
  int changes() const { return sqlite3_changes(db_); }
  sqlite3* raw() { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back if not committed.
class Txn {
 public:
  explicit Txn(Db& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
  ~Txn() {
    if (!done_) {
      try { db_.exec("ROLLBACK"); } catch (...) {}
    }
  }
  void commit() { db_.exec("COMMIT"); done_ = true; }

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace farmd
