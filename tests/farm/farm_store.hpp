#pragma once
// Which store the farm tests run against. ctest runs the farm suite twice:
// as farm.* on SQLite (the default) and as farm.postgres.* with
// FARM_TEST_STORE=postgresql on a real PostgreSQL (the cluster of the
// farm.postgres.start fixture, named by FARM_TEST_PG; run by hand without
// FARM_TEST_PG, a test binary starts a cluster of its own).
//
// farmtest::db(dir, "farm.db") is what a test passes as --db (or
// Config::db_path): the file dir/farm.db on SQLite; on PostgreSQL the URL
// of a new, empty database of its own (the same dir and name give the same
// database: a restarted farmd finds its state). The databases a test
// process created are dropped when it exits.
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "farm_test_util.hpp"
#include "farmd/postgres.hpp"
#include "farmd/sqlite.hpp"
#include "pg_cluster.hpp"

namespace farmtest {

inline bool on_postgres() {
  const char* s = std::getenv("FARM_TEST_STORE");
  return s && std::string(s) == "postgresql";
}

// The cluster and the databases this process made in it.
class TestPg {
 public:
  static TestPg& get() {
    static TestPg pg;
    return pg;
  }
  const PgCluster& cluster() {
    std::lock_guard lk(mu_);
    ensure();
    return cluster_;
  }
  // A new, empty database; its URL (Unix socket).
  std::string new_database(std::string* name_out = nullptr) {
    std::lock_guard lk(mu_);
    ensure();
    std::string name = "farm_t" + std::to_string(::getpid()) + "_" + std::to_string(++n_);
    admin_->exec("CREATE DATABASE " + name);
    made_.push_back(name);
    if (name_out) *name_out = name;
    return cluster_.url(name);
  }
  // SQL on one of the cluster's databases, as the superuser farm.
  std::unique_ptr<farmd::Pg> connect(const std::string& db) {
    std::lock_guard lk(mu_);
    ensure();
    return std::make_unique<farmd::Pg>(cluster_.url(db));
  }
  ~TestPg() {
    if (admin_)
      for (auto& d : made_) {
        try {
          admin_->exec("DROP DATABASE IF EXISTS " + d + " WITH (FORCE)");
        } catch (...) {
        }
      }
    admin_.reset();
    if (own_) cluster_.stop();
  }

 private:
  void ensure() {
    if (admin_) return;
    if (const char* state = std::getenv("FARM_TEST_PG"); state && *state) {
      auto c = PgCluster::load(state);
      if (!c)
        throw std::runtime_error(std::string("FARM_TEST_PG names ") + state +
                                 ", which holds no cluster: did the fixture farm.postgres.start fail?");
      cluster_ = *c;
    } else {
      cluster_ = PgCluster::start(/*detached=*/false);
      own_ = true;
    }
    admin_ = std::make_unique<farmd::Pg>(cluster_.url("postgres"));
  }
  std::mutex mu_;
  PgCluster cluster_;
  bool own_ = false;
  std::unique_ptr<farmd::Pg> admin_;
  std::vector<std::string> made_;
  int n_ = 0;
};

// What a test gives farmd as --db (see the top of this file).
inline std::string db(const TempDir& dir, const std::string& name = "farm.db") {
  if (!on_postgres()) return dir / name;
  static std::mutex mu;
  static std::map<std::string, std::string> made;
  std::lock_guard lk(mu);
  auto& url = made[dir.path + "/" + name];
  if (url.empty()) url = TestPg::get().new_database();
  return url;
}

// Statements on a database farmtest::db gave (an SQLite file or a URL).
inline void sql(const std::string& db, const std::string& statements) {
  if (db.rfind("postgresql://", 0) == 0) {
    farmd::Pg pg(db);
    pg.exec(statements);
  } else {
    farmd::Db d(db);
    d.exec(statements);
  }
}
// A bytes literal in that store's SQL.
inline std::string blob_literal(const std::string& db, const std::string& bytes) {
  static const char* hex = "0123456789abcdef";
  std::string h;
  for (unsigned char c : bytes) {
    h += hex[c >> 4];
    h += hex[c & 15];
  }
  return db.rfind("postgresql://", 0) == 0 ? "'\\x" + h + "'::bytea" : "x'" + h + "'";
}
// One value of that database (the first column of the first row), as text.
inline std::string sql_value(const std::string& db, const std::string& query) {
  if (db.rfind("postgresql://", 0) == 0) {
    farmd::Pg pg(db);
    auto r = pg.query(query);
    return r.rows() ? r.text(0, 0) : "";
  }
  farmd::Db d(db);
  auto st = d.prepare(query);
  return st.step() ? st.text(0) : "";
}

}  // namespace farmtest
