#pragma once
// The SQLite store: who may open it (one farmd per database), what it must
// be (farmd's schema, not corrupted) and its tables.
#include <memory>
#include <string>

#include "farmd/config.hpp"
#include "farmd/sqlite.hpp"

namespace farmd {

// farmd's PRAGMA application_id ("FRMD") and schema version (PRAGMA user_version).
constexpr int32_t kApplicationId = 0x46524D44;
constexpr int kSchemaVersion = 1;

// One farmd per database. Two farmd processes on one database would both
// schedule every queued job (each has its own in-memory queue), so every job
// would run twice. The lock is flock(LOCK_EX | LOCK_NB) on "<db>.lock", held
// for the life of the Farm:
//  * it is released by the kernel when the process dies, however it dies
//    (no stale lock to clean up after a SIGKILL or a crash);
//  * it leaves SQLite alone. PRAGMA locking_mode=EXCLUSIVE would also keep a
//    second farmd out, but it would lock out farmd's own read connection (the
//    reader that serves GetJob/ListJobs/WatchJob beside the writer), and
//    operators' read-only `sqlite3 farm.db` queries and online backups too;
//    in WAL mode it also moves the WAL index from shared memory to the heap,
//    so nothing else can read the database at all while farmd runs;
//  * the file names the holder (pid, host, start time) for the refusal message.
// flock is advisory and local: two hosts sharing a database over NFS are not
// covered (SQLite's WAL mode does not support that anyway).
class DbLock {
 public:
  // Throws std::runtime_error: "database P is in use by another farmd (pid N
  // on host H since T; lock file P.lock)" or why the lock file cannot be opened.
  explicit DbLock(const std::string& db_path);
  ~DbLock();
  DbLock(const DbLock&) = delete;
  DbLock& operator=(const DbLock&) = delete;

 private:
  int fd_ = -1;
};

// Before SQLite sees the path: its directory exists and is writable, the path
// is not a directory, an existing file is readable and writable. Throws
// std::runtime_error("cannot open database P: directory D does not exist", ...).
void check_db_path(const std::string& db_path);

// Opens the writer connection and makes sure the file is farmd's: an empty
// file gets the schema; a database with farmd's application_id (or one written
// by a farmd from before the id, recognised by its tables) is used, after
// PRAGMA quick_check; anything else (another application's tables, a newer
// schema, corruption, a file that is not a database) is refused with the
// reason (std::runtime_error). Takes the DbLock (into *lock) once the header
// says the file is farmd's or new, before any write.
std::unique_ptr<Db> open_store(const Config& cfg, std::unique_ptr<DbLock>* lock);

}  // namespace farmd
