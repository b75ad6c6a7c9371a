// The ctest fixture of the farm suite on PostgreSQL (farm.postgres.start,
// farm.postgres.stop): one cluster (pg_cluster.hpp) for every farm.postgres.*
// test, its state in a file the tests find through FARM_TEST_PG.
//
// usage: farm_pg_fixture start STATE_FILE | stop STATE_FILE
//   start  stops a cluster a previous, interrupted run left in STATE_FILE,
//          then starts one (it outlives this process) and writes STATE_FILE
//   stop   stops the cluster of STATE_FILE, removes its directory and the file
//          (ctest runs it after the tests, whether they passed or not)
#include <cstdio>
#include <filesystem>
#include <string>

#include "pg_cluster.hpp"

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "start" && std::string(argv[1]) != "stop")) {
    std::fprintf(stderr, "usage: farm_pg_fixture start|stop STATE_FILE\n");
    return 2;
  }
  const std::string cmd = argv[1], state = argv[2];
  try {
    if (auto old = farmtest::PgCluster::load(state)) {
      std::printf("stopping the cluster in %s (pid %d)\n", old->dir.c_str(), static_cast<int>(old->pid));
      old->stop();
    }
    std::error_code ec;
    std::filesystem::remove(state, ec);
    if (cmd == "stop") return 0;
    auto c = farmtest::PgCluster::start(/*detached=*/true);
    c.save(state);
    std::printf("PostgreSQL (pid %d) in %s: unix socket %s/.s.PGSQL.%d, 127.0.0.1:%d; state %s\n",
                static_cast<int>(c.pid), c.dir.c_str(), c.dir.c_str(), c.port, c.port, state.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "farm_pg_fixture %s: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
