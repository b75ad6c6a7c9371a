// farmctl workers | wait-ready: the farm's workers, and waiting until the
// farm can take jobs (scripts, quick starts, CI).
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "cli.hpp"
#include "farm/common/names.hpp"
#include "farm/common/select.hpp"

namespace farm::ctl::cli {

namespace {

using namespace std::chrono_literals;

bool healthy(const v1::Worker& w) {
  return w.state() == v1::WORKER_STATE_IDLE || w.state() == v1::WORKER_STATE_BUSY;
}

class Workers : public Command {
 public:
  explicit Workers(CLI::App& app)
      : Command(app.add_subcommand("workers", "list workers (or forget one with --remove)")) {
    sub_->add_option("--remove", remove_, "forget this (decommissioned) worker");
    sub_->add_flag("--force", force_, "with --remove: even if it is running jobs (they are requeued)");
  }
  int run(const Globals& g) override {
    if (force_ && !sub_->count("--remove")) throw UsageError("--force needs --remove WORKER");
    if (sub_->count("--remove")) check_worker_id("--remove", remove_);
    Client c(g.channel());
    if (sub_->count("--remove")) {
      c.remove_worker(remove_, force_);
      if (g.json) std::cout << dump(json{{"removed", remove_}}) << std::endl;
      else std::cout << "removed " << term_safe(remove_) << "\n";
      return kExitOk;
    }
    auto list = c.workers();
    if (g.json) {
      json a = json::array();
      for (auto& w : list) a.push_back(to_j(w));
      std::cout << dump(a) << std::endl;
      return kExitOk;
    }
    // Labels last and unpadded (a long label list no longer widens every
    // row), cut with an ellipsis; --json has them all.
    std::vector<std::vector<std::string>> rows{
        {"ID", "STATE", "TARGET", "CORES", "SLOTS", "RUNNING", "DONE", "FAILS", "SEEN", "NOTE", "LABELS"}};
    for (auto& w : list) {
      std::string labels;
      std::map<std::string, std::string> sorted(w.capabilities().labels().begin(), w.capabilities().labels().end());
      for (auto& [k, v] : sorted) labels += (labels.empty() ? "" : ",") + k + "=" + v;
      rows.push_back({term_safe(w.id()), std::string(farm::worker_state_name(w.state())),
                      ellipsize(term_safe(farm::target_name(w.capabilities())), 32),
                      std::to_string(w.capabilities().cores()), std::to_string(w.capabilities().slots()),
                      std::to_string(w.running()), std::to_string(w.jobs_done()), std::to_string(w.infra_failures()),
                      age(w.last_seen_ms()),
                      w.quarantine_reason().empty() ? "-" : ellipsize(term_safe(w.quarantine_reason()), 40),
                      labels.empty() ? "-" : ellipsize(term_safe(labels), 60)});
    }
    print_table(std::cout, rows, {3, 4, 5, 6, 7});
    return kExitOk;
  }

 private:
  std::string remove_;
  bool force_ = false;
};

// Waits until farmd answers (ListWorkers), and with --workers N until N
// healthy (idle or busy) workers are registered. --port-file: farmd's
// --port-file; the port is read from it (re-read until farmd answers).
class WaitReady : public Command {
 public:
  explicit WaitReady(CLI::App& app)
      : Command(app.add_subcommand("wait-ready", "wait until farmd answers (and --workers N healthy workers are registered)")) {
    sub_->add_option("--timeout", timeout_, "give up after this long (30s, 2m, 90; default 30s)");
    sub_->add_option("--workers", workers_, "also wait for this many healthy (idle or busy) workers, 0..10000");
    sub_->add_option("--port-file", port_file_,
                     "farmd's --port-file: wait for it and connect to that port (on --server's host)");
  }

  int run(const Globals& g) override {
    double timeout_s = sub_->count("--timeout") ? parse_seconds("--timeout", timeout_, 86400) : 30;
    uint64_t want = sub_->count("--workers") ? parse_uint("--workers", workers_, 0, 10000) : 0;
    farm::ChannelOptions chan = g.channel();
    std::string host = chan.address.substr(0, chan.address.rfind(':'));
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    const std::string limit = fmt_double(timeout_s, "%g") + "s";

    std::unique_ptr<Client> client;
    std::string address, last_error, not_ready;
    bool answered = false;
    size_t healthy_n = 0;
    for (;;) {
      bool port_ok = true;
      if (!port_file_.empty()) {
        std::ifstream f(port_file_);
        std::string text;
        long port = 0;
        port_ok = static_cast<bool>(f >> text);
        if (port_ok) {
          try {
            port = static_cast<long>(parse_uint("port", text, 1, 65535));
          } catch (const UsageError&) {
            port_ok = false;
          }
        }
        if (port_ok && host + ":" + std::to_string(port) != address) {
          address = host + ":" + std::to_string(port);
          chan.address = address;
          client.reset();
        }
        if (!port_ok) last_error = term_safe(port_file_) + " holds no port yet";
      } else {
        address = chan.address;
      }
      if (port_ok) {
        if (!client) client = std::make_unique<Client>(chan);
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        try {
          auto list = client->workers(std::clamp(left, 200ms, 2000ms));
          answered = true;
          healthy_n = 0;
          not_ready.clear();
          size_t shown = 0;
          for (const auto& w : list) {
            if (healthy(w)) {
              ++healthy_n;
            } else if (shown++ < 5) {
              not_ready += std::string(not_ready.empty() ? "" : ", ") + term_safe(w.id()) + ": " +
                           std::string(farm::worker_state_name(w.state()));
            }
          }
          if (healthy_n >= want) {
            double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (g.json)
              std::cout << dump(json{{"ready", true}, {"server", address}, {"healthy_workers", healthy_n},
                                     {"waited_s", took}})
                        << std::endl;
            else
              std::cout << "farmd at " << address << " is ready"
                        << (want ? " with " + std::to_string(healthy_n) + " healthy worker" + (healthy_n == 1 ? "" : "s")
                                 : std::string())
                        << "\n";
            return kExitOk;
          }
        } catch (const RpcError& e) {
          auto code = e.status.error_code();
          // Not listening yet (or restarting): keep trying. Anything else is a
          // real answer (a wrong token, TLS mismatch...): report it now.
          if (code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::PERMISSION_DENIED)
            throw std::runtime_error("wait-ready: farmd at " + address + " answers but refused the token: " +
                                     e.what() + " (give a client token: --token, --token-file or FARM_TOKEN)");
          if (code != grpc::StatusCode::UNAVAILABLE && code != grpc::StatusCode::DEADLINE_EXCEEDED) throw;
          last_error = term_safe(e.what());
          answered = false;
        }
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          100ms, deadline - std::chrono::steady_clock::now()));
    }

    std::string msg;
    if (!port_file_.empty() && address.empty())
      msg = term_safe(port_file_) + " holds no port after " + limit + " (is farmd running with --port-file " +
            term_safe(port_file_) + "?)";
    else if (!answered)
      msg = "farmd at " + address + " did not answer within " + limit + " (last error: " + last_error + ")";
    else
      msg = "farmd at " + address + " has " + std::to_string(healthy_n) + " of " + std::to_string(want) +
            " healthy workers after " + limit + (not_ready.empty() ? " (none registered)" : " (" + not_ready + ")");
    if (g.json)
      std::cout << dump(json{{"ready", false}, {"server", address}, {"healthy_workers", healthy_n}, {"error", msg}})
                << std::endl;
    std::cerr << "farmctl: wait-ready: " << msg << "\n";
    return kExitNotPassed;
  }

 private:
  std::string timeout_, workers_, port_file_;
};

}  // namespace

std::unique_ptr<Command> make_workers(CLI::App& app) { return std::make_unique<Workers>(app); }
std::unique_ptr<Command> make_wait_ready(CLI::App& app) { return std::make_unique<WaitReady>(app); }

}  // namespace farm::ctl::cli
