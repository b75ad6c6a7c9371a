// The PostgreSQL store: the --db URL, connecting, whether the database is
// farmd's, and the one-farmd-per-database lock, before the migrations run
// (postgres_schema.cpp). Every refusal names the database (the URL without
// its password) and the reason.
#include <chrono>
#include <thread>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <set>
#include <stdexcept>

#include "farm/common/util.hpp"
#include "postgres_store.hpp"

namespace farmd {

namespace {

std::string join(const std::vector<std::string>& v, size_t max_items = 8) {
  std::string r;
  for (size_t i = 0; i < v.size() && i < max_items; ++i) r += (i ? ", " : "") + farm::clip(v[i], 40);
  if (v.size() > max_items) r += ", ... (" + std::to_string(v.size()) + " tables)";
  return r;
}

// Defaults for farmd's connections; the URL's own settings win.
const std::vector<std::pair<std::string, std::string>> kDefaults = {
    {"connect_timeout", "10"},                // an unreachable host fails in seconds, not minutes
    {"fallback_application_name", "farmd"},   // pg_stat_activity shows who is connected
    {"keepalives", "1"}, {"keepalives_idle", "30"}, {"keepalives_interval", "10"}, {"keepalives_count", "3"},
};

// `text` (a message of libpq's) with `url` and its password masked as in `shown`.
std::string mask(std::string text, const std::string& url, const std::string& shown, const std::string& password) {
  auto replace_all = [&](const std::string& from, const std::string& to) {
    for (size_t p = 0; (p = text.find(from, p)) != std::string::npos; p += to.size()) text.replace(p, from.size(), to);
  };
  if (!url.empty() && url != shown) replace_all(url, shown);
  if (password.size() >= 3) replace_all(password, "***");
  return text;
}

// The URL parses (libpq's own parser: the message says what is wrong);
// returns its password (to keep it out of messages).
std::string check_url(const std::string& url, const std::string& shown) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (!opts) {
    std::string why = err ? pg_message(err) : "out of memory";
    if (err) PQfreemem(err);
    // (libpq quotes the URL: the password is masked here too)
    throw std::runtime_error("invalid --db URL " + farm::clip(shown, 200) + ": " +
                             farm::clip(mask(why, url, shown, ""), 300));
  }
  std::string password;
  for (auto* o = opts; o->keyword; ++o)
    if (std::string(o->keyword) == "password" && o->val) password = o->val;
  PQconninfoFree(opts);
  return password;
}

}  // namespace

void pg_prepare_session(Pg& pg, bool sync_full) {
  pg.exec("SET client_encoding = 'UTF8'");
  // As SQLite's synchronous=NORMAL: a commit survives a farmd crash (the
  // server has it) and a crash of the server loses at most its last
  // moments (3 x wal_writer_delay), never consistency. --sync-full keeps the
  // server's setting (on: each commit waits for its WAL flush).
  if (!sync_full) pg.exec("SET synchronous_commit = off");
  // A statement that waits (a lock, a stuck server) must not hold farmd's
  // writer forever: 60 s unless the database or role sets its own limit.
  auto r = pg.query("SELECT current_setting('statement_timeout')");
  if (r.rows() == 1 && r.text(0, 0) == "0") pg.exec("SET statement_timeout = '60s'");
}

std::unique_ptr<Pg> pg_connect(const std::string& url, const std::string& name, bool sync_full) {
  const std::string shown = redact_url(url);
  const std::string password = check_url(url, shown);
  std::unique_ptr<Pg> pg;
  try {
    pg = std::make_unique<Pg>(url, kDefaults);
  } catch (const PgError& e) {
    throw std::runtime_error("cannot connect to " + name + ": " + farm::clip(mask(e.what(), url, shown, password), 400));
  }
  try {
    pg_prepare_session(*pg, sync_full);
  } catch (const PgError& e) {
    throw std::runtime_error(name + ": cannot set up the session: " + farm::clip(e.what(), 400));
  }
  return pg;
}

void pg_lock(Pg& pg, const std::string& name) {
  PgParams p;
  p.add(kLockClass).add(kLockObject);
  // A farmd that was SIGKILLed (or whose host vanished) holds the lock until
  // its server backend notices the closed connection and exits: on a loaded
  // machine that takes a moment after the process is gone (flock's release is
  // immediate, this is not). So a held lock is tried again for up to
  // kLockWait before the refusal; a live farmd keeps it and is refused then.
  constexpr auto kLockWait = std::chrono::seconds(5);
  const auto until = std::chrono::steady_clock::now() + kLockWait;
  for (;;) {
    auto r = pg.query("SELECT pg_try_advisory_lock($1::int, $2::int)", p);
    if (r.rows() == 1 && r.text(0, 0) == "t") return;
    if (std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // Who has it: the holder wrote itself into meta once it had the lock.
  std::string holder;
  try {
    auto h = pg.query("SELECT value FROM meta WHERE key = 'holder'");
    if (h.rows() == 1) holder = h.text(0, 0);
  } catch (const PgError&) {
    // a new database: no meta table yet
  }
  throw std::runtime_error(name + " is in use by another farmd (" +
                           (holder.empty() ? std::string("holder unknown") : farm::clip(holder, 200)) +
                           "; it holds PostgreSQL's advisory lock (" + std::to_string(kLockClass) + ", " +
                           std::to_string(kLockObject) + ") on this database)");
}

std::unique_ptr<Pg> open_postgres(const std::string& url, const std::string& name, bool sync_full,
                                  const StoreOptions& opt) {
  auto pg = pg_connect(url, name, sync_full);
  auto refuse = [&](const std::string& why) { return std::runtime_error(name + " " + why); };

  const int server = PQserverVersion(pg->raw());
  if (server < 100000)
    throw refuse("is on PostgreSQL " + std::to_string(server / 10000) + "; farmd needs PostgreSQL 10 or newer");

  std::string schema;
  std::vector<std::string> tables;
  bool has_meta = false;
  try {
    auto enc = pg->query("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()");
    std::string encoding = enc.rows() == 1 ? enc.text(0, 0) : "";
    if (encoding != "UTF8")
      throw refuse("has the encoding " + farm::clip(encoding) +
                   "; farmd stores UTF-8 text and needs a UTF8 database (createdb -E UTF8 -T template0 NAME)");
    auto cs = pg->query("SELECT current_schema()");
    if (cs.rows() != 1 || cs.is_null(0, 0)) {
      auto sp = pg->query("SELECT current_setting('search_path')");
      throw refuse("has no schema to create farmd's tables in (search_path is '" +
                   farm::clip(sp.rows() == 1 ? sp.text(0, 0) : "", 100) + "': none of it exists)");
    }
    schema = cs.text(0, 0);
    auto t = pg->query(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.relname");
    for (int i = 0; i < t.rows(); ++i) tables.push_back(t.text(i, 0));
    has_meta = std::find(tables.begin(), tables.end(), "meta") != tables.end();
  } catch (const PgError& e) {
    throw refuse(std::string("cannot be inspected: ") + farm::clip(e.what(), 400));
  }

  bool ours = false;
  int version = 0;
  std::string version_text;
  if (has_meta) {
    try {
      auto m = pg->query("SELECT key, value FROM meta WHERE key IN ('application', 'schema')");
      for (int i = 0; i < m.rows(); ++i) {
        if (m.text(i, 0) == "application") ours = m.text(i, 1) == "farmd";
        if (m.text(i, 0) == "schema") version_text = m.text(i, 1);
      }
    } catch (const PgError&) {
      ours = false;  // a table called meta, not farmd's (other columns)
    }
  }
  const bool fresh = tables.empty();
  if (!ours && !fresh)
    throw refuse("is not a farmd database: schema " + farm::clip(schema) + " has the tables " + join(tables) +
                 " and not farmd's (no meta row application = farmd); refusing to add farmd's tables to it");
  if (ours) {
    bool digits = !version_text.empty() && version_text.size() <= 4 &&
                  std::all_of(version_text.begin(), version_text.end(), [](char c) { return c >= '0' && c <= '9'; });
    version = digits ? std::stoi(version_text) : -1;
    if (version < 0)
      throw refuse("has meta 'schema' = '" + farm::clip(version_text) +
                   "', not a schema version: it may be corrupted");
    if (version > kSchemaVersion)
      throw refuse("has schema version " + std::to_string(version) + ", newer than this farmd's (" +
                   std::to_string(kSchemaVersion) + "): run a newer farmd");
  }

  // The database is farmd's (or empty): take the lock before any write.
  pg_lock(*pg, name);
  pg_migrate(*pg, name, version, std::max(version, std::min(opt.schema_version, kSchemaVersion)));

  char when[64] = {};
  std::time_t now = std::time(nullptr);
  struct tm tm {};
  ::gmtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  try {
    PgParams p;
    p.add("pid " + std::to_string(::getpid()) + " on host " + farm::host_name() + " since " + when);
    pg->query("INSERT INTO meta(key, value) VALUES('holder', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
              p);
  } catch (const PgError& e) {
    throw refuse(std::string("cannot record this farmd as its holder: ") + farm::clip(e.what(), 400));
  }
  return pg;
}

}  // namespace farmd
