// farmctl watch | jobs | results | cancel: following and inspecting jobs.
#include <iostream>

#include "cli.hpp"
#include "farm/common/names.hpp"

namespace farm::ctl::cli {

namespace {

class Watch : public Command {
 public:
  explicit Watch(CLI::App& app)
      : Command(app.add_subcommand("watch", "follow jobs to the end with a progress display")) {
    sub_->add_option("job", ids_, "job id(s)")->required();
    sub_->add_flag("--logs", logs_, "print the workload output");
  }
  int run(const Globals& g) override {
    for (const auto& id : ids_) check_job_id("watch: job", id);
    Client c(g.channel());
    return watch_jobs(c, ids_, g.json, logs_);
  }

 private:
  std::vector<std::string> ids_;
  bool logs_ = false;
};

class Jobs : public Command {
 public:
  explicit Jobs(CLI::App& app) : Command(app.add_subcommand("jobs", "list jobs")) {
    sub_->add_option("--state", states_, "filter: queued running passed failed timed-out error cancelled (repeatable)")
        ->allow_extra_args(false);
    sub_->add_option("--tag", tags_, "filter key=value (repeatable)")->allow_extra_args(false);
    sub_->add_option("--worker", worker_, "filter by worker");
    sub_->add_option("--limit", limit_, "max jobs, 1..100000 (default 50)");
    sub_->add_flag("--oldest-first", oldest_first_, "oldest first (default newest first)");
  }
  int run(const Globals& g) override {
    v1::ListJobsRequest req;
    for (const auto& s : states_) {
      auto st = farm::parse_job_state(s);
      if (!st)
        throw UsageError("--state must be one of queued, running, passed, failed, timed-out, error, cancelled; got '" +
                         term_safe(s) + "'");
      req.add_states(*st);
    }
    for (const auto& t : tags_) {
      auto [k, v] = parse_kv("--tag", t);
      check_tag("--tag", k, v);
      (*req.mutable_tags())[k] = v;
    }
    if (sub_->count("--worker")) check_worker_id("--worker", worker_);
    req.set_limit(sub_->count("--limit") ? static_cast<uint32_t>(parse_uint("--limit", limit_, 1, limits::kMaxListLimit))
                                         : 50);
    req.set_worker_id(worker_);
    req.set_newest_first(!oldest_first_);
    Client c(g.channel());
    auto list = c.list(req);
    if (g.json) {
      json a = json::array();
      for (auto& j : list) a.push_back(to_j(j));
      std::cout << dump(a) << std::endl;
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows{{"ID", "STATE", "TRY", "WORKER", "AGE", "WORKLOAD", "MESSAGE"}};
    for (auto& j : list)
      rows.push_back({term_safe(j.id()), std::string(farm::job_state_name(j.state())), std::to_string(j.attempts()),
                      j.worker_id().empty() ? "-" : ellipsize(term_safe(j.worker_id()), 40), age(j.created_ms()),
                      ellipsize(job_label(j), 60), ellipsize(term_safe(j.message()), 80)});
    print_table(std::cout, rows, {2});
    return kExitOk;
  }

 private:
  std::vector<std::string> states_, tags_;
  std::string worker_, limit_;
  bool oldest_first_ = false;
};

class Results : public Command {
 public:
  explicit Results(CLI::App& app) : Command(app.add_subcommand("results", "show results of jobs")) {
    sub_->add_option("job", ids_, "job id(s)")->required();
    sub_->add_flag("--history", history_, "include every attempt");
  }
  int run(const Globals& g) override {
    for (const auto& id : ids_) check_job_id("results: job", id);
    Client c(g.channel());
    json a = json::array();
    bool all = true;
    for (const auto& id : ids_) {
      auto j = c.get(id, history_);
      all = all && passed(j);
      if (g.json) {
        auto r = result_json(j);
        if (history_) r["attempts_history"] = to_j(j)["attempt_history"];
        a.push_back(r);
        continue;
      }
      print_final(j);
      const auto& r = j.result();
      if (!r.result_json().empty()) std::cout << "  result: " << term_safe(r.result_json()) << "\n";
      if (history_)
        for (const auto& h : j.attempt_history())
          std::cout << "  attempt " << h.attempt() << " on " << term_safe(h.worker_id()) << ": "
                    << (h.outcome() ? farm::outcome_name(h.outcome()) : "running") << " " << term_safe(h.message())
                    << "\n";
      if (!passed(j) && !r.log_tail().empty())
        std::cout << "  output (tail):\n" << term_safe(r.log_tail(), /*multiline=*/true) << "\n";
    }
    if (g.json) std::cout << dump(a) << std::endl;
    return all ? kExitOk : kExitNotPassed;
  }

 private:
  std::vector<std::string> ids_;
  bool history_ = false;
};

class Cancel : public Command {
 public:
  explicit Cancel(CLI::App& app) : Command(app.add_subcommand("cancel", "cancel queued or running jobs")) {
    sub_->add_option("job", ids_, "job id(s)")->required();
    sub_->add_option("--reason", reason_, "recorded with the job");
  }
  int run(const Globals& g) override {
    for (const auto& id : ids_) check_job_id("cancel: job", id);
    check_text("--reason", reason_, 1024);
    Client c(g.channel());
    json a = json::array();
    for (const auto& id : ids_) {
      auto j = c.cancel(id, reason_);
      if (g.json) a.push_back(to_j(j));
      else
        std::cout << term_safe(j.id()) << " " << farm::job_state_name(j.state())
                  << (j.cancel_requested() && j.state() == v1::JOB_STATE_RUNNING ? " (cancel requested)" : "") << "\n";
    }
    if (g.json) std::cout << dump(a) << std::endl;
    return kExitOk;
  }

 private:
  std::vector<std::string> ids_;
  std::string reason_;
};

}  // namespace

std::unique_ptr<Command> make_watch(CLI::App& app) { return std::make_unique<Watch>(app); }
std::unique_ptr<Command> make_jobs(CLI::App& app) { return std::make_unique<Jobs>(app); }
std::unique_ptr<Command> make_results(CLI::App& app) { return std::make_unique<Results>(app); }
std::unique_ptr<Command> make_cancel(CLI::App& app) { return std::make_unique<Cancel>(app); }

}  // namespace farm::ctl::cli
