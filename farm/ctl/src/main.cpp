// farmctl: submit, watch and report patch farm jobs. See docs/farm.md.
//
// The command line and its errors live here; each subcommand group has its
// own file (cli.hpp lists them). Every usage error -- an unknown subcommand
// or option, a missing or out-of-range value -- prints one line naming the
// argument ("farmctl: ...") and exits 2, before anything is sent to farmd.
#include <iostream>

#include "cli.hpp"
#include "conformance.hpp"  // farmctl conformance (src/conformance_*.cpp)
#include "farm/common/util.hpp"

using namespace farm::ctl;
using namespace farm::ctl::cli;

namespace farm::ctl::cli {

farm::ChannelOptions Globals::channel() const {
  farm::ChannelOptions c = chan;
  // HOST:PORT (IPv6 in brackets), or a gRPC target with a scheme (unix:, dns:///...).
  const std::string& a = c.address;
  bool scheme = a.rfind("unix:", 0) == 0 || a.rfind("unix-abstract:", 0) == 0 || a.find(":///") != std::string::npos;
  if (!scheme) {
    auto colon = a.rfind(':');
    bool ok = colon != std::string::npos && colon > 0 && a.find_first_of(" \t/") == std::string::npos;
    if (ok) {
      try {
        parse_uint("port", a.substr(colon + 1), 1, 65535);
      } catch (const UsageError&) {
        ok = false;
      }
    }
    if (!ok)
      throw UsageError("--server (or FARM_SERVER) must be HOST:PORT (e.g. 127.0.0.1:7443), got '" + term_safe(a) +
                       "'");
  }
  if (!token_file.empty()) c.token = farm::trim(farm::read_file(token_file));
  return c;
}

}  // namespace farm::ctl::cli

namespace {

int usage_error(const std::string& msg) {
  std::cerr << "farmctl: " << msg << "\n";
  return kExitError;
}

std::string help_hint(const CLI::App* sub) {
  return sub ? "see farmctl " + sub->get_name() + " --help" : "see farmctl --help";
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  g.chan.address = "127.0.0.1:7443";
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--") g.dashdash = true;

  CLI::App app{"farmctl: drive the patch farm (submit, watch, jobs, workers, wait-ready, results, report, cancel, "
               "conformance)"};
  app.require_subcommand(0, 1);  // none is reported below, with the list
  app.fallthrough();
  app.add_option("--server,-s", g.chan.address, "farmd address host:port")->envname("FARM_SERVER")->capture_default_str();
  app.add_option("--token", g.chan.token, "client bearer token")->envname("FARM_TOKEN");
  app.add_option("--token-file", g.token_file, "read the client token from this file");
  app.add_flag("--tls", g.chan.tls, "connect with TLS (system roots unless --ca)");
  app.add_option("--ca", g.chan.ca_file, "PEM CA certificate to verify farmd (implies --tls)")->envname("FARM_CA");
  app.add_option("--tls-server-name", g.chan.server_name, "name expected in farmd's certificate");
  app.add_flag("--json", g.json, "machine-readable output");
  // A later global option overrides an earlier one (wrappers, aliases).
  for (const char* o : {"--server", "--token", "--token-file", "--ca", "--tls-server-name"})
    app.get_option(o)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  std::vector<std::unique_ptr<Command>> cmds;
  cmds.push_back(make_submit(app));
  cmds.push_back(make_watch(app));
  cmds.push_back(make_jobs(app));
  cmds.push_back(make_workers(app));
  cmds.push_back(make_wait_ready(app));
  cmds.push_back(make_results(app));
  cmds.push_back(make_report(app));
  cmds.push_back(make_cancel(app));
  farm::conformance::Command conformance(app);
  // Unknown arguments are collected instead of failing inside CLI11, so that
  // the message can name them (CLI11 exits 106/109 with generic messages).
  app.allow_extras();

  const CLI::App* sub = nullptr;
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      auto subs = app.get_subcommands();
      return usage_error(term_safe(e.what()) + "; " + help_hint(subs.empty() ? nullptr : subs.front()));
    }
    auto subs = app.get_subcommands();
    sub = subs.empty() ? nullptr : subs.front();
    Command* cmd = nullptr;
    for (auto& c : cmds)
      if (c->selected()) cmd = c.get();
    if (cmd) cmd->before_extras(g);
    auto rest = app.remaining(true);
    if (!rest.empty()) {
      const std::string r = term_safe(rest.front());
      if (r.size() > 1 && r[0] == '-')
        return usage_error("unknown option '" + r + "'" + (sub ? " for 'farmctl " + sub->get_name() + "'" : "") +
                           "; " + help_hint(sub));
      if (!sub) return usage_error("unknown subcommand '" + r + "'; see farmctl --help");
      return usage_error("unexpected argument '" + r + "' for 'farmctl " + sub->get_name() + "'; " + help_hint(sub));
    }
    if (!sub)
      return usage_error("a subcommand is required: submit, watch, jobs, workers, wait-ready, results, report, cancel "
                         "or conformance; see farmctl --help");

    if (conformance.selected()) return conformance.run(g.channel(), g.json);
    if (cmd) return cmd->run(g);
    return usage_error("unknown subcommand '" + sub->get_name() + "'; see farmctl --help");
  } catch (const UsageError& e) {
    return usage_error(e.what());
  } catch (const RpcError& e) {
    std::cerr << "farmctl: " << term_safe(e.what()) << "\n";  // the message is farmd's
    return kExitError;
  } catch (const std::exception& e) {
    std::cerr << "farmctl: " << term_safe(e.what()) << "\n";
    return kExitError;
  }
}
