// The store interface: transactions, and which implementation --db names.
#include "farmd/store.hpp"

#include <cctype>

#include "farm/common/util.hpp"
#include "postgres_store.hpp"
#include "sqlite_store.hpp"

namespace farmd {

Store::~Store() = default;

Store::Txn::Txn(Store& s) : s_(s), lk_(s.wmu_) {
  if (s_.depth_ == 0) {
    s_.begin();
    outer_ = true;
  }
  ++s_.depth_;
}

Store::Txn::~Txn() {
  --s_.depth_;
  if (outer_ && !done_) s_.rollback();
}

void Store::Txn::commit() {
  if (outer_) s_.commit();
  done_ = true;
}

bool is_database_url(const std::string& db) {
  auto p = db.find("://");
  if (p == std::string::npos || p == 0) return false;
  for (size_t i = 0; i < p; ++i) {
    unsigned char c = static_cast<unsigned char>(db[i]);
    if (!std::isalnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return std::isalpha(static_cast<unsigned char>(db[0])) != 0;
}

std::string redact_url(const std::string& url) {
  std::string s = url;
  // user info: scheme://user:password@host...
  if (auto p = s.find("://"); p != std::string::npos) {
    size_t start = p + 3;
    size_t end = s.find_first_of("/?", start);
    if (end == std::string::npos) end = s.size();
    size_t at = s.rfind('@', end == 0 ? 0 : end - 1);
    if (at != std::string::npos && at >= start && at < end) {
      size_t colon = s.find(':', start);
      if (colon != std::string::npos && colon < at) s.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // parameters: ...?password=...&...
  for (size_t q = s.find('?'); q != std::string::npos && q < s.size();) {
    size_t key = q + 1;
    size_t amp = s.find('&', key);
    size_t eq = s.find('=', key);
    if (eq != std::string::npos && (amp == std::string::npos || eq < amp) && s.compare(key, eq - key, "password") == 0) {
      size_t vend = amp == std::string::npos ? s.size() : amp;
      s.replace(eq + 1, vend - eq - 1, "***");
      amp = s.find('&', eq);
    }
    q = amp;
  }
  return s;
}

std::unique_ptr<Store> open_store(const Config& cfg, const StoreOptions& opt) {
  const std::string& db = cfg.db_path;
  if (is_database_url(db)) {
    std::string scheme = db.substr(0, db.find("://"));
    for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "postgresql" || scheme == "postgres") return std::make_unique<PostgresStore>(cfg, opt);
    throw std::runtime_error("--db " + farm::clip(redact_url(db), 200) + ": unsupported database URL scheme '" +
                             farm::clip(scheme, 32) +
                             "' (farmd's stores: an SQLite file path, or a postgresql:// URL)");
  }
  return std::make_unique<SqliteStore>(cfg, opt);
}

}  // namespace farmd
