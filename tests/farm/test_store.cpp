// Issue 17: the store's bad input. StoreUrl.* (label farm; no server
// needed): what --db URLs farmd refuses before or while connecting, and that
// a password never shows. PostgresStore.* (labels farm and postgres; the
// farm.postgres.start cluster): databases farmd must not use (someone else's
// tables, a newer schema, not UTF-8, no schema to create its tables in), a
// password over TCP, the connection lost under a running farmd, text
// PostgreSQL cannot hold. StoreMigration.* (both stores: farm.* and
// farm.postgres.*): a migration step that fails. The migration from schema
// 1 with data: FarmService.MigratesASchema1Database (test_service.cpp).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "farm/common/util.hpp"
#include "farm_store.hpp"
#include "farm_test_util.hpp"
#include "farmd/farm.hpp"
#include "farmd/server.hpp"
#include "farmd/store.hpp"

namespace v1 = farm::v1;
using farmtest::CmdResult;
using namespace std::chrono_literals;

namespace {

const char* kClient = "store-client-token-01";
const char* kAgent = "store-agent-token-001";

bool has(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

CmdResult run_farmd(const std::string& db, std::vector<std::string> extra = {}) {
  std::vector<std::string> a{FARMD_BIN, "--exit-with-parent", "--listen", "127.0.0.1:0", "--client-token", kClient,
                             "--agent-token", kAgent, "--db", db};
  a.insert(a.end(), extra.begin(), extra.end());
  return farmtest::run(a, 40s);
}

void expect_refusal(const CmdResult& r, const std::string& needle) {
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.err, needle)) << "stderr: " << r.err << "\nexpected: " << needle;
}

// A loopback port nothing listens on (bound, not listening, while the object lives).
struct DeadPort {
  int fd = -1, port = 0;
  DeadPort() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    port = ntohs(sa.sin_port);
  }
  ~DeadPort() { ::close(fd); }
};

}  // namespace

// ================================================================ the URL

TEST(StoreUrl, PasswordsAreRedacted) {
  EXPECT_EQ(farmd::redact_url("postgresql://farm:s3cret@db.lab:5432/farm"), "postgresql://farm:***@db.lab:5432/farm");
  EXPECT_EQ(farmd::redact_url("postgresql://farm@db.lab/farm"), "postgresql://farm@db.lab/farm");
  EXPECT_EQ(farmd::redact_url("postgresql:///farm?host=/run/pg&password=s3cret&user=farm"),
            "postgresql:///farm?host=/run/pg&password=***&user=farm");
  EXPECT_EQ(farmd::redact_url("postgresql://a:b:c@h/d?password=x"), "postgresql://a:***@h/d?password=***");
  EXPECT_EQ(farmd::redact_url("postgres://u:p%40ss@h/d"), "postgres://u:***@h/d");
  EXPECT_TRUE(farmd::is_database_url("postgresql://h/d"));
  EXPECT_TRUE(farmd::is_database_url("mysql://h/d"));
  EXPECT_FALSE(farmd::is_database_url("farm-data/farm.db"));
  EXPECT_FALSE(farmd::is_database_url("/var/lib/farm/farm.db"));
  EXPECT_FALSE(farmd::is_database_url("://x"));
  EXPECT_FALSE(farmd::is_database_url("dir/x://y"));
}

TEST(StoreUrl, UnsupportedSchemesAreRefused) {
  farmtest::TempDir dir;
  expect_refusal(run_farmd("mysql://farm:hunter22@db/farm"),
                 "farmd: --db mysql://farm:***@db/farm: unsupported database URL scheme 'mysql' (farmd's stores: an "
                 "SQLite file path, or a postgresql:// URL)");
  auto r = run_farmd("sqlite://" + dir / "farm.db");
  expect_refusal(r, "unsupported database URL scheme 'sqlite'");
  EXPECT_FALSE(has(r.err + r.out, "hunter22"));
}

TEST(StoreUrl, MalformedUrlsAreRefusedWithLibpqsReason) {
  expect_refusal(run_farmd("postgresql://[::1/farm"),
                 "farmd: invalid --db URL postgresql://[::1/farm: end of string reached when looking for matching "
                 "\"]\" in IPv6 host address in URI");
  expect_refusal(run_farmd("postgresql:///farm?colour=blue"),
                 "invalid --db URL postgresql:///farm?colour=blue: invalid URI query parameter: \"colour\"");
  expect_refusal(run_farmd("postgresql://h/farm?sslmode=sometimes"), "invalid sslmode value: \"sometimes\"");
  // libpq quotes the URL it could not parse: the password is masked in that quote too
  auto r = run_farmd("postgresql://farm:hunter22@[::1/farm");
  expect_refusal(r, "invalid --db URL postgresql://farm:***@[::1/farm: ");
  EXPECT_FALSE(has(r.err + r.out, "hunter22")) << r.err;
  expect_refusal(run_farmd("postgresql://h:99999999/farm"), "invalid port number: \"99999999\"");
}

TEST(StoreUrl, AnEmptyDbIsABadFlag) {
  auto r = farmtest::run({FARMD_BIN, "--exit-with-parent", "--client-token", kClient, "--db", ""}, 20s);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(has(r.err, "farmd: --db is empty: give an SQLite database file or a postgresql:// URL")) << r.err;
}

// A server that accepts the connection and never answers (a hung host, a
// firewall that swallows packets): the connect_timeout (farmd's default 10 s,
// here the URL's) ends the wait, and a signal meanwhile ends farmd at once.
TEST(StoreUrl, ASilentServerTimesOutAndASignalEndsTheWait) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fd, 8), 0);  // the kernel completes the handshake; nobody ever reads
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  const std::string url = "postgresql://farm@127.0.0.1:" + std::to_string(ntohs(sa.sin_port)) + "/farm";
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_farmd(url + "?connect_timeout=2");
  expect_refusal(r, "farmd: cannot connect to database " + url + "?connect_timeout=2: ");
  EXPECT_TRUE(has(r.err, "timeout expired")) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
  // SIGTERM while farmd waits for the server (10 s by default): it exits at once, status 0
  farmtest::TempDir dir;
  farmtest::Proc p({FARMD_BIN, "--exit-with-parent", "--listen", "127.0.0.1:0", "--client-token", kClient, "--db", url},
                   dir / "farmd.log");
  std::this_thread::sleep_for(700ms);
  auto t1 = std::chrono::steady_clock::now();
  p.kill(SIGTERM);
  int st = p.wait(5s);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 3s);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << farm::read_file(dir / "farmd.log");
  EXPECT_TRUE(has(farm::read_file(dir / "farmd.log"), "farmd: signal 15 while starting; exiting"));
  ::close(fd);
}

TEST(StoreUrl, UnreachableServersAreNamed) {
  DeadPort dead;
  const std::string p = std::to_string(dead.port);
  auto r = run_farmd("postgresql://farm:hunter22@127.0.0.1:" + p + "/farm");
  expect_refusal(r, "farmd: cannot connect to database postgresql://farm:***@127.0.0.1:" + p +
                        "/farm: connection to server at \"127.0.0.1\", port " + p + " failed: Connection refused");
  EXPECT_FALSE(has(r.err + r.out, "hunter22")) << r.err;
  farmtest::TempDir dir;  // a socket directory where no server runs
  expect_refusal(run_farmd("postgresql:///farm?host=" + dir.path),
                 "farmd: cannot connect to database postgresql:///farm?host=" + dir.path +
                     ": connection to server on socket \"" + dir.path + "/.s.PGSQL.5432\" failed: No such file or "
                     "directory");
  expect_refusal(run_farmd("postgresql://farm@no-such-host.invalid/farm"),
                 "cannot connect to database postgresql://farm@no-such-host.invalid/farm: could not translate host "
                 "name \"no-such-host.invalid\" to address");
}

// ================================================================ on a real PostgreSQL

namespace {

class PostgresStore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!farmtest::on_postgres()) GTEST_SKIP() << "runs as farm.postgres.PostgresStore.* (FARM_TEST_STORE=postgresql)";
  }
  farmtest::TestPg& pg() { return farmtest::TestPg::get(); }
  // A new database and a superuser connection to it.
  std::string fresh(std::unique_ptr<farmd::Pg>* conn = nullptr, std::string* name = nullptr) {
    std::string n;
    std::string url = pg().new_database(&n);
    if (conn) *conn = pg().connect(n);
    if (name) *name = n;
    return url;
  }
  static farmd::Config config(const std::string& db) {
    farmd::Config c;
    c.db_path = db;
    c.tokens = {{farmd::Role::client, kClient, "ci"}, {farmd::Role::agent, kAgent, "lab"}};
    return c;
  }
  farmtest::TempDir dir;
};

std::vector<std::string> tables(farmd::Pg& pg) {
  auto r = pg.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
  std::vector<std::string> t;
  for (int i = 0; i < r.rows(); ++i) t.push_back(r.text(i, 0));
  return t;
}

}  // namespace

TEST_F(PostgresStore, ADatabaseWithSomeoneElsesTablesIsRefusedAndLeftAlone) {
  std::unique_ptr<farmd::Pg> c;
  std::string url = fresh(&c);
  c->exec("CREATE TABLE customers(id SERIAL PRIMARY KEY, name TEXT); INSERT INTO customers(name) VALUES('x');"
          "CREATE TABLE orders(id INT)");
  expect_refusal(run_farmd(url), "farmd: database " + url +
                                     " is not a farmd database: schema public has the tables customers, orders and "
                                     "not farmd's (no meta row application = farmd); refusing to add farmd's tables "
                                     "to it");
  EXPECT_EQ(tables(*c), (std::vector<std::string>{"customers", "orders"}));  // untouched
  // a table called meta that is not farmd's
  std::unique_ptr<farmd::Pg> c2;
  std::string url2 = fresh(&c2);
  c2->exec("CREATE TABLE meta(id INT, note TEXT)");
  expect_refusal(run_farmd(url2), "is not a farmd database: schema public has the tables meta and not farmd's");
  // farmd's tables in another schema are not ours either: the current schema is what counts
  std::unique_ptr<farmd::Pg> c3;
  std::string url3 = fresh(&c3);
  c3->exec("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL); "
           "INSERT INTO meta VALUES('application', 'shop'), ('schema', '1')");
  expect_refusal(run_farmd(url3), "is not a farmd database: schema public has the tables meta");
}

TEST_F(PostgresStore, ANewerOrGarbledSchemaVersionIsRefused) {
  std::unique_ptr<farmd::Pg> c;
  std::string url = fresh(&c);
  {
    farmd::Server s(config(url));
    s.start();
    s.shutdown(200);
  }
  auto v = c->query("SELECT value FROM meta WHERE key = 'schema'");
  ASSERT_EQ(v.rows(), 1);
  EXPECT_EQ(v.text(0, 0), std::to_string(farmd::kSchemaVersion));
  c->exec("UPDATE meta SET value = '99' WHERE key = 'schema'");
  expect_refusal(run_farmd(url), "database " + url + " has schema version 99, newer than this farmd's (" +
                                     std::to_string(farmd::kSchemaVersion) + "): run a newer farmd");
  c->exec("UPDATE meta SET value = 'two' WHERE key = 'schema'");
  expect_refusal(run_farmd(url), "has meta 'schema' = 'two', not a schema version: it may be corrupted");
}

TEST_F(PostgresStore, ANonUtf8DatabaseOrNoSchemaIsRefused) {
  std::string name = "farm_latin1_" + std::to_string(::getpid());
  {
    auto admin = pg().connect("postgres");
    admin->exec("DROP DATABASE IF EXISTS " + name);
    admin->exec("CREATE DATABASE " + name + " ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'");
  }
  std::string url = pg().cluster().url(name);
  expect_refusal(run_farmd(url), "database " + url +
                                     " has the encoding LATIN1; farmd stores UTF-8 text and needs a UTF8 database "
                                     "(createdb -E UTF8 -T template0 NAME)");
  pg().connect("postgres")->exec("DROP DATABASE " + name + " WITH (FORCE)");
  // a search_path naming no schema that exists: nowhere to create the tables
  std::string url2 = fresh() + "&options=-csearch_path%3Dnowhere";
  expect_refusal(run_farmd(url2), "has no schema to create farmd's tables in (search_path is 'nowhere': none of it "
                                  "exists)");
}

TEST_F(PostgresStore, NoSuchDatabaseOrAWrongPasswordIsNamed) {
  const auto& cl = pg().cluster();
  expect_refusal(run_farmd(cl.url("farm_no_such_db")),
                 "cannot connect to database " + cl.url("farm_no_such_db") + ": connection to server on socket \"" +
                     cl.dir + "/.s.PGSQL." + std::to_string(cl.port) +
                     "\" failed: FATAL:  database \"farm_no_such_db\" does not exist");
  std::string n;
  pg().new_database(&n);
  auto r = run_farmd(cl.tcp_url(n, "wrong-password"));
  expect_refusal(r, "cannot connect to database postgresql://farm:***@127.0.0.1:" + std::to_string(cl.port) + "/" + n +
                        ": connection to server at \"127.0.0.1\", port " + std::to_string(cl.port) +
                        " failed: FATAL:  password authentication failed for user \"farm\"");
  EXPECT_FALSE(has(r.err + r.out, "wrong-password")) << r.err;
  // the right one, over TCP: farmd starts and says which database it uses (without the password)
  std::string pf = dir / "port";
  farmtest::Proc p({FARMD_BIN, "--exit-with-parent", "--listen", "127.0.0.1:0", "--client-token", kClient, "--db",
                    cl.tcp_url(n, cl.password), "--port-file", pf},
                   dir / "farmd.log");
  EXPECT_GT(farmtest::read_port_file(pf), 0) << farm::read_file(dir / "farmd.log");
  std::string log = farm::read_file(dir / "farmd.log");
  EXPECT_TRUE(has(log, "database postgresql://farm:***@127.0.0.1:" + std::to_string(cl.port) + "/" + n)) << log;
  EXPECT_FALSE(has(log, cl.password)) << log;
}

TEST_F(PostgresStore, AFarmdWhoseConnectionIsKilledReconnects) {
  std::unique_ptr<farmd::Pg> c;
  std::string url = fresh(&c);
  farmd::Server s(config(url));
  s.start();
  auto& farm = s.farm();
  v1::SubmitJobRequest req;
  req.mutable_spec()->mutable_workload()->mutable_patch_stress()->set_threads(1);
  req.set_allow_unmatched(true);
  v1::Job job;
  ASSERT_TRUE(farm.submit(req, &job).ok());
  // an operator (or a failover) ends every connection farmd has
  auto k = c->query(
      "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
      "pg_backend_pid()");
  EXPECT_EQ(k.i64(0, 0), 2);  // the writer (holding the lock) and the reader
  // the next calls see the drop, reconnect (and lock again): the farm goes on
  bool ok = farmtest::wait_until([&] {
    v1::Job j;
    return farm.submit(req, &j).ok() && farm.get_job(j.id(), false, &j).ok() && j.state() == v1::JOB_STATE_QUEUED;
  }, 10s, 100ms);
  EXPECT_TRUE(ok);
  v1::ListJobsRequest lr;
  v1::ListJobsResponse lj;
  ASSERT_TRUE(farm.list_jobs(lr, &lj).ok());
  EXPECT_GE(lj.jobs_size(), 2);
  // and it still holds the database: a second farmd is refused
  expect_refusal(run_farmd(url), "is in use by another farmd (pid " + std::to_string(::getpid()));
  s.shutdown(200);
}

TEST_F(PostgresStore, TextPostgresqlCannotHoldIsStoredAsReplacementCharacters) {
  std::string url = fresh();
  farmd::Server s(config(url));
  s.start();
  auto& farm = s.farm();
  v1::RegisterRequest rr;
  rr.set_name("w1");
  rr.mutable_capabilities()->set_arch(farm::machine_arch());
  rr.mutable_capabilities()->set_kind("native");
  rr.mutable_capabilities()->add_workloads("patch-stress");
  v1::RegisterResponse reg;
  ASSERT_TRUE(farm.register_worker(rr, farmd::Caller{}, &reg).ok());
  v1::SubmitJobRequest sr;
  sr.mutable_spec()->mutable_workload()->mutable_patch_stress()->set_threads(1);
  v1::Job job;
  ASSERT_TRUE(farm.submit(sr, &job).ok());
  v1::AcquireJobRequest ar;
  ar.set_worker_id("w1");
  ar.set_session(reg.session());
  v1::AcquireJobResponse acq;
  ASSERT_TRUE(farm.acquire(ar, &acq, nullptr).ok());
  ASSERT_EQ(acq.lease().job_id(), job.id());
  // an agent's message with a NUL byte (PostgreSQL text cannot hold one)
  v1::CompleteJobRequest cr;
  cr.set_worker_id("w1");
  cr.set_session(reg.session());
  cr.mutable_lease()->set_job_id(acq.lease().job_id());
  cr.mutable_lease()->set_attempt(acq.lease().attempt());
  cr.mutable_result()->set_outcome(v1::OUTCOME_FAIL);
  cr.mutable_result()->set_message(std::string("bad\0byte", 8));
  v1::CompleteJobResponse done;
  ASSERT_TRUE(farm.complete(cr, &done).ok());
  EXPECT_EQ(done.job_state(), v1::JOB_STATE_FAILED);
  v1::Job j;
  ASSERT_TRUE(farm.get_job(job.id(), true, &j).ok());
  ASSERT_EQ(j.attempt_history_size(), 1);
  EXPECT_EQ(j.attempt_history(0).message(), "bad\xEF\xBF\xBD" "byte");  // U+FFFD in the text column
  EXPECT_EQ(j.result().message(), std::string("bad\0byte", 8));          // the result blob keeps the bytes
  s.shutdown(200);
}

TEST_F(PostgresStore, ARoleThatMayNotCreateTablesIsToldSo) {
  std::unique_ptr<farmd::Pg> c;
  std::string name;
  fresh(&c, &name);
  auto admin = pg().connect("postgres");
  const std::string role = "visitor_" + std::to_string(::getpid());
  admin->exec("DROP ROLE IF EXISTS " + role);
  admin->exec("CREATE ROLE " + role + " LOGIN");  // may connect (trust on the socket), owns nothing
  const auto& cl = pg().cluster();
  std::string url = "postgresql:///" + name + "?host=" + cl.dir + "&port=" + std::to_string(cl.port) + "&user=" + role;
  expect_refusal(run_farmd(url), "database " + url +
                                     ": migrating the schema from version 0 to 1 (jobs, attempts, results, workers, "
                                     "events) failed: permission denied for schema public");
  EXPECT_TRUE(tables(*c).empty());  // the step was rolled back as a whole
  admin->exec("DROP ROLE " + role);
}

// A migration step that fails leaves the database at the version before it,
// names the step and the reason, and farmd does not start (both stores).
TEST(StoreMigration, AFailedStepLeavesTheVersionBeforeIt) {
  farmtest::TempDir dir;
  const std::string db = farmtest::db(dir, "failing.db");
  {
    farmd::Config c;
    c.db_path = db;
    auto store = farmd::open_store(c, farmd::StoreOptions{1});
  }
  // something already has the name step 2 adds
  farmtest::sql(db, "ALTER TABLE jobs ADD COLUMN lease_expires_ms TEXT");
  const bool pgsql = db.rfind("postgresql://", 0) == 0;
  auto r = run_farmd(db);
  expect_refusal(r, "database " + db + ": migrating the schema from version 1 to 2 (jobs.lease_expires_ms (the lease "
                                       "deadline of a running attempt)) failed: ");
  EXPECT_TRUE(has(r.err, pgsql ? "column \"lease_expires_ms\" of relation \"jobs\" already exists"
                               : "duplicate column name: lease_expires_ms"))
      << r.err;
  EXPECT_EQ(farmtest::sql_value(db, pgsql ? "SELECT value FROM meta WHERE key = 'schema'" : "PRAGMA user_version"),
            "1");
}
