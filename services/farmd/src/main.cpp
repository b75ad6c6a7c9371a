// farmd: the patch farm coordinator. See docs/farm.md.
//
// Exit status: 0 after a signal, 1 when it cannot start (unreadable files,
// the database in use, corrupted or not farmd's, the address in use), 2 for
// bad flags (values out of range, conflicting options).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "farm/common/util.hpp"
#include "farmd/server.hpp"

namespace {

const char* kTokensHelp =
    "tokens file: one '<role> <token> [name] [workers=PATTERN,...]' per line, '#' comments; role client|agent|admin; "
    "workers= (agent/admin tokens) lists the worker names (globs with * and ?) the token may register and act for, "
    "e.g. 'agent 9d8e7f60a1b2c3d4 lab3 workers=lab3-*' (without it: any name)";

// The port file is written once farmd listens; check its directory first so a
// typo fails before the server starts rather than after.
void check_port_file(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::runtime_error("cannot write the port file " + path + ": directory " + dir.string() + " does not exist");
  if (::access(dir.c_str(), W_OK) != 0)
    throw std::runtime_error("cannot write the port file " + path + ": directory " + dir.string() + " is not writable");
}

}  // namespace

int main(int argc, char** argv) {
  farmd::Config cfg;
  std::string tokens_file, port_file, metrics_port_file, log_level = "info";
  std::vector<std::string> client_tokens, agent_tokens;
  bool no_auth = false, exit_with_parent = false;

  CLI::App app{"farmd: patch farm coordinator (gRPC; SQLite WAL or PostgreSQL)"};
  app.add_option("--listen", cfg.listen, "host:port to listen on (port 0 picks a free port; 0-65535)")
      ->capture_default_str();
  app.add_option("--db", cfg.db_path,
                 "the store: an SQLite database file (created if missing; its directory must exist; FILE.lock keeps "
                 "a second farmd out), or a PostgreSQL database as a URL, postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DB"
                 "[?PARAM=VALUE&...] (libpq's; the database must exist, empty or farmd's). The schema is migrated at "
                 "start")
      ->capture_default_str();
  app.add_option("--tokens", tokens_file, kTokensHelp);
  app.add_option("--client-token", client_tokens, "accept this bearer token for the client role (repeatable)");
  app.add_option("--agent-token", agent_tokens,
                 "accept this bearer token for the agent role, any worker name (repeatable)");
  app.add_flag("--no-auth", no_auth, "run without authentication (development only)");
  app.add_option("--tls-cert", cfg.tls_cert, "PEM certificate chain; enables TLS with --tls-key");
  app.add_option("--tls-key", cfg.tls_key, "PEM private key (unencrypted)");
  app.add_option("--lease-ttl-ms", cfg.lease_ttl_ms, "lease lifetime without heartbeats (100-3600000)")
      ->capture_default_str();
  app.add_option("--heartbeat-ms", cfg.heartbeat_interval_ms,
                 "heartbeat interval told to agents (0: ttl/3; else 10 up to below the ttl)");
  app.add_option("--default-timeout", cfg.default_timeout_s, "job timeout (s) when a job sets none")
      ->capture_default_str();
  app.add_option("--timeout-grace", cfg.timeout_grace_s,
                 "farmd times a running job out itself this long after its timeout (s)")
      ->capture_default_str();
  app.add_option("--max-attempts", cfg.default_max_attempts, "attempts per job when a job sets none (1-10)")
      ->capture_default_str();
  app.add_option("--quarantine-after", cfg.quarantine_threshold,
                 "quarantine a worker after this many consecutive infrastructure failures (0: never)")
      ->capture_default_str();
  app.add_option("--health-recheck-ms", cfg.health_recheck_ms, "retry a failed health check after")
      ->capture_default_str();
  app.add_option("--event-retention-days", cfg.event_retention_days,
                 "drop logs/progress events of jobs finished longer ago (0: keep forever)")
      ->capture_default_str();
  app.add_option("--max-watches-per-token", cfg.max_watches_per_token,
                 "open WatchJob streams per client token (each holds a server thread)")
      ->capture_default_str();
  app.add_option("--max-watches", cfg.max_watches, "open WatchJob streams in total")->capture_default_str();
  app.add_flag("--sync-full", cfg.sync_full,
               "fsync every commit: SQLite PRAGMA synchronous=FULL (default NORMAL); PostgreSQL: the server's "
               "synchronous_commit (default: off for farmd's sessions)");
  app.add_option("--port-file", port_file,
                 "once listening, write the bound port to this file (atomically: a rename); removed at exit");
  app.add_option("--metrics-listen", cfg.metrics_listen,
                 "serve Prometheus metrics (/metrics) and the live page (/) over plain HTTP on host:port (port 0 "
                 "picks a free port; default: off)");
  app.add_option("--metrics-port-file", metrics_port_file,
                 "once the metrics endpoint listens, write its port to this file (like --port-file)");
  app.add_flag("--exit-with-parent", exit_with_parent, "terminate when the parent process dies (tests)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|critical|off")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (!farm::valid_log_level(log_level)) {
    std::cerr << "farmd: unknown --log-level '" << farm::clip(log_level)
              << "' (trace, debug, info, warn, error, critical, off)\n";
    return 2;
  }
  if (!farm::init_service_process(log_level, exit_with_parent)) return 1;
  try {
    if (!tokens_file.empty()) cfg.tokens = farmd::load_tokens(tokens_file);  // "cannot read PATH: reason"
    for (auto& t : client_tokens) cfg.tokens.push_back({farmd::Role::client, t, "cli-client"});
    for (auto& t : agent_tokens) cfg.tokens.push_back({farmd::Role::agent, t, "cli-agent"});
    if (cfg.tokens.empty() && !no_auth) {
      std::cerr << "farmd: no tokens configured; pass --tokens/--client-token/--agent-token, or --no-auth\n";
      return 2;
    }
    if (!cfg.tokens.empty() && no_auth) {
      std::cerr << "farmd: --no-auth conflicts with configured tokens\n";
      return 2;
    }
    try {
      farmd::validate_config(cfg);
    } catch (const std::invalid_argument& e) {
      std::cerr << "farmd: " << e.what() << "\n";
      return 2;
    }
    if (!metrics_port_file.empty() && cfg.metrics_listen.empty()) {
      std::cerr << "farmd: --metrics-port-file needs --metrics-listen\n";
      return 2;
    }
    if (!port_file.empty()) check_port_file(port_file);
    if (!metrics_port_file.empty()) {
      if (metrics_port_file == port_file) {
        std::cerr << "farmd: --metrics-port-file and --port-file name the same file\n";
        return 2;
      }
      check_port_file(metrics_port_file);
    }
    if (no_auth) spdlog::warn("farmd: authentication disabled (--no-auth)");

    // Block the shutdown signals before any thread starts; a dedicated thread waits for them.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    farmd::Server server(cfg);
    // The signal thread runs while the store opens too: connecting to a
    // PostgreSQL server can take up to its connect_timeout, and a signal
    // then ends farmd at once (nothing is served yet; a migration step is a
    // transaction, rolled back).
    static std::atomic<bool> serving{false};
    std::thread sig([&] {
      int s = 0;
      sigwait(&set, &s);
      if (!serving) {
        std::fprintf(stderr, "farmd: signal %d while starting; exiting\n", s);
        std::_Exit(0);
      }
      spdlog::info("farmd: signal {}, shutting down", s);
      server.shutdown();
    });
    sig.detach();
    server.start();
    serving = true;
    std::cout << "farmd listening on " << server.address() << std::endl;
    // Readiness for scripts: written (tmp + rename) only once the port accepts calls.
    // The metrics port file first: once --port-file exists, so does it.
    const int metrics_port = server.metrics_port();
    if (metrics_port) {
      std::cout << "farmd metrics on http://" << server.metrics_address() << "/metrics" << std::endl;
      if (!metrics_port_file.empty())
        farm::write_file_atomic(metrics_port_file, std::to_string(metrics_port) + "\n");
    }
    if (!port_file.empty()) farm::write_file_atomic(port_file, std::to_string(server.port()) + "\n");
    server.wait();
    if (!port_file.empty()) {
      // Only our own port: a newer farmd may have written the file since.
      std::error_code ec;
      try {
        if (farm::trim(farm::read_file(port_file)) == std::to_string(server.port())) std::filesystem::remove(port_file, ec);
      } catch (...) {
      }
    }
    if (!metrics_port_file.empty() && metrics_port) {
      std::error_code ec;
      try {
        if (farm::trim(farm::read_file(metrics_port_file)) == std::to_string(metrics_port))
          std::filesystem::remove(metrics_port_file, ec);
      } catch (...) {
      }
    }
    spdlog::info("farmd: stopped");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "farmd: " << e.what() << "\n";
    return 1;
  }
}
