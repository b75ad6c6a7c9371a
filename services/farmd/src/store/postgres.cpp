#include "farmd/postgres.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace farmd {

// ------------------------------------------------------------------ text

std::string pg_message(const char* raw) {
  std::string s = raw ? raw : "";
  for (const char* prefix : {"ERROR:  ", "FATAL:  "})
    if (s.rfind(prefix, 0) == 0) s.erase(0, std::strlen(prefix));
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == '\n' || c == '\t' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string pg_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && c != 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && n > 1) {
      // no overlong forms, no surrogates, nothing above U+10FFFF
      uint32_t cp = c & (0x7F >> n);
      for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[n] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out += kReplacement;
      i += 1;
    }
  }
  return out;
}

// ------------------------------------------------------------------ results

int64_t PgResult::i64(int row, int col) const {
  if (is_null(row, col)) return 0;
  return std::strtoll(PQgetvalue(r_, row, col), nullptr, 10);
}

double PgResult::dbl(int row, int col) const {
  if (is_null(row, col)) return 0;
  return std::strtod(PQgetvalue(r_, row, col), nullptr);
}

std::string PgResult::blob(int row, int col) const {
  if (is_null(row, col)) return {};
  size_t n = 0;
  unsigned char* p = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_, row, col)), &n);
  if (!p) throw PgError("postgresql: cannot decode a bytea value (out of memory)");
  std::string s(reinterpret_cast<const char*>(p), n);
  PQfreemem(p);
  return s;
}

int64_t PgResult::affected() const {
  const char* n = r_ ? PQcmdTuples(r_) : "";
  return *n ? std::strtoll(n, nullptr, 10) : 0;
}

// ------------------------------------------------------------------ parameters

PgParams& PgParams::text_value(std::string s) {
  lengths_.push_back(static_cast<int>(s.size()));
  values_.push_back(std::move(s));
  null_.push_back(false);
  formats_.push_back(0);
  return *this;
}

PgParams& PgParams::add(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return text_value(b);
}

PgParams& PgParams::add(std::string_view v) { return text_value(pg_text(v)); }

PgParams& PgParams::add_blob(std::string_view v) {
  values_.emplace_back(v);
  lengths_.push_back(static_cast<int>(v.size()));
  null_.push_back(false);
  formats_.push_back(1);
  return *this;
}

PgParams& PgParams::add_null() {
  values_.emplace_back();
  lengths_.push_back(0);
  null_.push_back(true);
  formats_.push_back(0);
  return *this;
}

std::vector<const char*> PgParams::pointers() const {
  std::vector<const char*> p;
  for (size_t i = 0; i < values_.size(); ++i) p.push_back(null_[i] ? nullptr : values_[i].c_str());
  return p;
}

// ------------------------------------------------------------------ connection

Pg::Pg(const std::string& conninfo, const std::vector<std::pair<std::string, std::string>>& defaults) {
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : defaults) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  // conninfo last but one: its settings override the defaults (libpq's rule for expand_dbname)
  keys.push_back("dbname");
  values.push_back(conninfo.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  c_ = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (!c_) throw PgError("out of memory");
  if (PQstatus(c_) != CONNECTION_OK) {
    std::string msg = pg_message(PQerrorMessage(c_));
    PQfinish(c_);
    c_ = nullptr;
    throw PgError(msg);
  }
}

Pg::~Pg() {
  if (c_) PQfinish(c_);
}

bool Pg::reconnect() {
  prepared_.clear();
  PQreset(c_);
  return ok();
}

void Pg::fail(PGresult* r, const std::string& what) {
  std::string state;
  std::string msg;
  if (r) {
    if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) state = s;
    msg = pg_message(PQresultErrorMessage(r));
    PQclear(r);
  }
  if (msg.empty()) msg = pg_message(PQerrorMessage(c_));
  if (msg.empty()) msg = "unknown error";
  throw PgError(msg + " (in: " + what.substr(0, 80) + ")", state);
}

void Pg::exec(const std::string& sql) {
  PGresult* r = PQexec(c_, sql.c_str());
  auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) fail(r, sql);
  PQclear(r);
}

PgResult Pg::query(const std::string& sql, const PgParams& params) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "farmd_" + std::to_string(prepared_.size() + 1);
    PGresult* r = PQprepare(c_, name.c_str(), sql.c_str(), 0, nullptr);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) fail(r, sql);
    PQclear(r);
    it = prepared_.emplace(sql, name).first;
  }
  auto ptrs = params.pointers();
  PGresult* r = PQexecPrepared(c_, it->second.c_str(), params.size(), ptrs.data(), params.lengths(), params.formats(),
                               /*resultFormat=*/0);
  auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(r, sql);
  return PgResult(r);
}

}  // namespace farmd
