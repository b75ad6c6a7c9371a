#pragma once
// farmctl's subcommands (one file per group) and what they share.
//   main.cpp         the command line: global options, usage errors (exit 2), dispatch
//   jobs_output.cpp  how jobs are shown: the watch display, final lines, result JSON
//   cmd_submit.cpp   submit
//   cmd_jobs.cpp     watch, jobs, results, cancel
//   cmd_workers.cpp  workers, wait-ready
//   cmd_report.cpp   report
//   conformance_*.cpp  conformance (its own library, see conformance.hpp)
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "farm/ctl/args.hpp"
#include "farm/ctl/client.hpp"
#include "farm/ctl/text.hpp"

namespace farm::ctl::cli {

using json = nlohmann::json;

// Exit codes: 0 ok / all passed, 1 some job did not pass (or wait-ready timed
// out), 2 usage or RPC error.
constexpr int kExitOk = 0, kExitNotPassed = 1, kExitError = 2;

struct Globals {
  farm::ChannelOptions chan;
  std::string token_file;
  bool json = false;
  bool dashdash = false;  // "--" appeared on the command line
  // The channel options with the token file read and --server checked.
  farm::ChannelOptions channel() const;
};

class Command {
 public:
  explicit Command(CLI::App* sub) : sub_(sub) {}
  virtual ~Command() = default;
  bool selected() const { return sub_->parsed(); }
  CLI::App* app() const { return sub_; }
  // Runs before unknown arguments are reported (removed options explain themselves).
  virtual void before_extras(const Globals&) {}
  // Checks the arguments (throws UsageError), then does the work.
  virtual int run(const Globals& g) = 0;

 protected:
  CLI::App* sub_;
};

std::unique_ptr<Command> make_submit(CLI::App& app);
std::unique_ptr<Command> make_watch(CLI::App& app);
std::unique_ptr<Command> make_jobs(CLI::App& app);
std::unique_ptr<Command> make_results(CLI::App& app);
std::unique_ptr<Command> make_cancel(CLI::App& app);
std::unique_ptr<Command> make_workers(CLI::App& app);
std::unique_ptr<Command> make_wait_ready(CLI::App& app);
std::unique_ptr<Command> make_report(CLI::App& app);

// ---- jobs_output.cpp
// JSON for stdout: faithful (nlohmann escapes controls; invalid UTF-8 replaced).
std::string dump(const json& j, int indent = 2);
json to_j(const google::protobuf::Message& m);
json result_json(const v1::Job& j);
std::string age(int64_t ms);
std::string fmt_double(double d, const char* f = "%.2f");
bool passed(const v1::Job& j);
// "<id> <state> verdict=... calls=... worker=... (message)", every field term_safe.
void print_final(const v1::Job& j);
// Follows each job to its end (progress line on a terminal), then prints its final line.
int watch_jobs(Client& c, const std::vector<std::string>& ids, bool as_json, bool logs);
// A job's name, or its workload description, for tables.
std::string job_label(const v1::Job& j);

}  // namespace farm::ctl::cli
