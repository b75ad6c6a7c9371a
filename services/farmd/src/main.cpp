// farmd: the patch farm coordinator. See docs/farm.md.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>
#include <thread>

#include "farm/common/util.hpp"
#include "farmd/server.hpp"

int main(int argc, char** argv) {
  farmd::Config cfg;
  std::string tokens_file, port_file, log_level = "info";
  std::vector<std::string> client_tokens, agent_tokens;
  bool no_auth = false, exit_with_parent = false;

  CLI::App app{"farmd: patch farm coordinator (gRPC, SQLite WAL)"};
  app.add_option("--listen", cfg.listen, "host:port to listen on (port 0 picks a free port)")->capture_default_str();
  app.add_option("--db", cfg.db_path, "SQLite database file (created if missing)")->capture_default_str();
  app.add_option("--tokens", tokens_file, "tokens file: '<client|agent|admin> <token> [name]' per line");
  app.add_option("--client-token", client_tokens, "accept this bearer token for the client role (repeatable)");
  app.add_option("--agent-token", agent_tokens, "accept this bearer token for the agent role (repeatable)");
  app.add_flag("--no-auth", no_auth, "run without authentication (development only)");
  app.add_option("--tls-cert", cfg.tls_cert, "PEM certificate chain; enables TLS with --tls-key");
  app.add_option("--tls-key", cfg.tls_key, "PEM private key");
  app.add_option("--lease-ttl-ms", cfg.lease_ttl_ms, "lease lifetime without heartbeats")->capture_default_str();
  app.add_option("--heartbeat-ms", cfg.heartbeat_interval_ms, "heartbeat interval told to agents (0: ttl/3)");
  app.add_option("--default-timeout", cfg.default_timeout_s, "job timeout (s) when a job sets none")
      ->capture_default_str();
  app.add_option("--timeout-grace", cfg.timeout_grace_s,
                 "farmd times a running job out itself this long after its timeout (s)")
      ->capture_default_str();
  app.add_option("--max-attempts", cfg.default_max_attempts, "attempts per job when a job sets none")
      ->capture_default_str();
  app.add_option("--quarantine-after", cfg.quarantine_threshold,
                 "quarantine a worker after this many consecutive infrastructure failures (0: never)")
      ->capture_default_str();
  app.add_option("--health-recheck-ms", cfg.health_recheck_ms, "retry a failed health check after")
      ->capture_default_str();
  app.add_option("--event-retention-days", cfg.event_retention_days,
                 "drop logs/progress events of jobs finished longer ago (0: keep forever)")
      ->capture_default_str();
  app.add_flag("--sync-full", cfg.sync_full, "fsync every commit (PRAGMA synchronous=FULL)");
  app.add_option("--port-file", port_file, "write the bound port to this file once listening");
  app.add_flag("--exit-with-parent", exit_with_parent, "terminate when the parent process dies (tests)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (!farm::init_service_process(log_level, exit_with_parent)) return 1;
  try {
    if (!tokens_file.empty()) cfg.tokens = farmd::load_tokens(tokens_file);
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
    server.start();
    std::cout << "farmd listening on " << server.address() << std::endl;
    if (!port_file.empty()) farm::write_file_atomic(port_file, std::to_string(server.port()) + "\n");

    std::thread sig([&] {
      int s = 0;
      sigwait(&set, &s);
      spdlog::info("farmd: signal {}, shutting down", s);
      server.shutdown();
    });
    server.wait();
    sig.detach();
    spdlog::info("farmd: stopped");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "farmd: " << e.what() << "\n";
    return 1;
  }
}
