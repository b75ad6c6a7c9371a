// The SQLite store: opening a database file (path checks, the lock, is it
// farmd's, is it intact) before the migrations run (sqlite_schema.cpp).
#include "sqlite_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <algorithm>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "farm/common/util.hpp"

namespace farmd {

namespace {

// The tables of schema 1 (how a database written before the application id is recognised).
const std::set<std::string> kTables = {"meta", "jobs", "attempts", "results", "workers", "events"};

std::string errno_text(int e) { return std::strerror(e); }

std::string join(const std::vector<std::string>& v, size_t max_items = 8) {
  std::string r;
  for (size_t i = 0; i < v.size() && i < max_items; ++i) r += (i ? ", " : "") + farm::clip(v[i], 40);
  if (v.size() > max_items) r += ", ... (" + std::to_string(v.size()) + " tables)";
  return r;
}

}  // namespace

// ------------------------------------------------------------------ lock

DbLock::DbLock(const std::string& db_path) {
  std::string path = db_path + ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot open the lock file " + path + ": " + errno_text(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    std::string holder;
    char buf[512] = {};
    ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    if (n > 0) holder = farm::trim(std::string_view(buf, static_cast<size_t>(n)));
    ::close(fd_);
    fd_ = -1;
    if (e == EWOULDBLOCK)
      throw std::runtime_error("database " + db_path + " is in use by another farmd (" +
                               (holder.empty() ? std::string("holder unknown") : farm::clip(holder, 200)) +
                               "; lock file " + path + ")");
    throw std::runtime_error("cannot lock " + path + ": " + errno_text(e));
  }
  char when[64] = {};
  std::time_t t = std::time(nullptr);
  struct tm tm {};
  ::gmtime_r(&t, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::string who = "pid " + std::to_string(::getpid()) + " on host " + farm::host_name() + " since " + when + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, who.data(), who.size(), 0) != static_cast<ssize_t>(who.size()))
    spdlog::warn("farmd: cannot write the holder into {}: {}", path, errno_text(errno));
  // The file stays when farmd exits: removing it would race with the next
  // farmd opening (and locking) the old inode while a third creates a new one.
}

DbLock::~DbLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

// ------------------------------------------------------------------ path

void check_db_path(const std::string& p) {
  namespace fs = std::filesystem;
  auto fail = [&](const std::string& why) { return std::runtime_error("cannot open database " + p + ": " + why); };
  fs::path path(p);
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) throw fail("directory " + dir.string() + " does not exist");
    throw fail("directory " + dir.string() + ": " + errno_text(errno));
  }
  if (!S_ISDIR(st.st_mode)) throw fail(dir.string() + " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw fail("directory " + dir.string() + " is not writable (" + errno_text(errno) +
               "; farmd creates the database, its -wal/-shm files and the .lock file there)");
  if (::stat(p.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) throw fail("it is a directory");
    if (!S_ISREG(st.st_mode)) throw fail("it is not a regular file");
    if (::access(p.c_str(), R_OK | W_OK) != 0) throw fail(errno_text(errno));
  } else if (errno != ENOENT) {
    throw fail(errno_text(errno));
  }
}

// ------------------------------------------------------------------ open

std::unique_ptr<Db> open_sqlite(const Config& cfg, const StoreOptions& opt, std::unique_ptr<DbLock>* lock) {
  const std::string& p = cfg.db_path;
  const bool memory = p == ":memory:";
  if (!memory) check_db_path(p);  // names the path and the reason
  auto db = std::make_unique<Db>(p);
  auto refuse = [&](const std::string& why) { return std::runtime_error("database " + p + " " + why); };
  int64_t app_id = 0, version = 0;
  std::vector<std::string> tables;
  try {
    // The first statement reads the header: "file is not a database" shows here.
    {
      auto st = db->prepare("PRAGMA application_id");
      if (st.step()) app_id = st.i64(0);
    }
    {
      auto st = db->prepare("PRAGMA user_version");
      if (st.step()) version = st.i64(0);
    }
    auto st = db->prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name");
    while (st.step()) tables.push_back(st.text(0));
  } catch (const SqliteError& e) {
    throw refuse(std::string("cannot be read: ") + sqlite3_errmsg(db->raw()) +
                 " (is it a farmd database? it may be corrupted)");
  }

  const bool ours = static_cast<int32_t>(app_id) == kApplicationId;
  bool fresh = false;
  int from = 0;  // the schema version the migrations start from
  if (ours) {
    if (version > kSchemaVersion)
      throw refuse("has schema version " + std::to_string(version) + ", newer than this farmd's (" +
                   std::to_string(kSchemaVersion) + "): run a newer farmd");
    if (version < 0) throw refuse("has schema version " + std::to_string(version) + " (PRAGMA user_version): it may be corrupted");
    from = static_cast<int>(version);
    if (from == 0 && !tables.empty()) from = 1;  // marked, version not yet recorded
    fresh = tables.empty();
  } else if (app_id != 0) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", static_cast<uint32_t>(app_id));
    throw refuse(std::string("belongs to another application (PRAGMA application_id ") + hex + ", farmd's is 0x46524d44); refusing to use it");
  } else if (tables.empty()) {
    fresh = true;
  } else {
    std::set<std::string> have(tables.begin(), tables.end());
    bool legacy = std::includes(have.begin(), have.end(), kTables.begin(), kTables.end());
    if (legacy) {
      // farmd's meta row names the schema version (1 before the application id)
      auto st = db->prepare("SELECT value FROM meta WHERE key = 'schema'");
      std::string v = st.step() ? st.text(0) : "";
      bool digits = !v.empty() && v.size() <= 4 && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
      int n = digits ? std::stoi(v) : 0;
      from = n >= 1 && n <= kSchemaVersion ? n : 0;
      legacy = from > 0;
    }
    if (!legacy)
      throw refuse("is not a farmd database: it has the tables " + join(tables) +
                   " and not farmd's (no farmd application_id); refusing to add farmd's tables to it");
    spdlog::info("farmd: {} was written by a farmd without an application id; marking it (schema {})", p, from);
  }

  // The header says the file is farmd's (or new): take the lock before
  // anything reads further or writes (no .lock file next to a foreign database).
  if (!memory) *lock = std::make_unique<DbLock>(p);

  if (!fresh) {
    // Every page of every table and index, without the slower cross-checks of
    // integrity_check: a truncated or overwritten file is refused here, not
    // found out by the first job that touches the broken page.
    std::vector<std::string> problems;
    try {
      auto st = db->prepare("PRAGMA quick_check(8)");
      while (st.step()) {
        std::istringstream lines(st.text(0));
        for (std::string l; std::getline(lines, l);)
          if (!l.empty() && l.rfind("***", 0) != 0) problems.push_back(l);
      }
    } catch (const SqliteError&) {
      problems = {sqlite3_errmsg(db->raw())};
    }
    if (!(problems.size() == 1 && problems[0] == "ok")) {
      std::string why;
      for (size_t i = 0; i < problems.size() && i < 3; ++i) why += (i ? "; " : "") + farm::clip(problems[i], 160);
      throw refuse("is corrupted (PRAGMA quick_check: " + why +
                   "); restore it from a backup or move it away to start with an empty farm");
    }
  }

  if (!memory) {
    auto st = db->prepare("PRAGMA journal_mode=WAL");
    std::string mode = st.step() ? st.text(0) : "";
    if (mode != "wal") throw refuse("cannot use WAL journaling (journal_mode is '" + farm::clip(mode) + "')");
  }
  db->exec(cfg.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  db->exec("PRAGMA temp_store=MEMORY");
  sqlite_migrate(*db, p, from, std::min(opt.schema_version, kSchemaVersion));
  if (!ours) db->exec("PRAGMA application_id = " + std::to_string(kApplicationId));  // (each step sets it too)
  return db;
}

}  // namespace farmd
