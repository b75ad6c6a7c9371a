// farmctl report: a summary per target, JUnit XML with --junit.
#include <fstream>
#include <iostream>

#include "cli.hpp"
#include "farm/common/names.hpp"
#include "farm/common/util.hpp"

namespace farm::ctl::cli {

namespace {

class Report : public Command {
 public:
  explicit Report(CLI::App& app) : Command(app.add_subcommand("report", "summary per target; JUnit XML with --junit")) {
    sub_->add_option("--tag", tags_, "only jobs with tag key=value (repeatable)")->allow_extra_args(false);
    sub_->add_option("--job", ids_, "only these jobs (repeatable)")->allow_extra_args(false);
    sub_->add_option("--since", since_,
                     "only jobs created since: a duration back from now (30m, 24h, 7d), a date (2026-12-01, UTC) or "
                     "an RFC 3339 time (2026-12-01T08:00:00Z)");
    sub_->add_option("--junit", junit_, "write JUnit XML to this file ('-' for stdout)");
  }

  int run(const Globals& g) override {
    v1::GetReportRequest req;
    for (const auto& t : tags_) {
      auto [k, v] = parse_kv("--tag", t);
      check_tag("--tag", k, v);
      (*req.mutable_tags())[k] = v;
    }
    for (auto& id : ids_) check_job_id("--job", id), req.add_job_ids(id);
    if (sub_->count("--since")) req.set_since_ms(parse_since(since_, farm::now_ms()));
    if (sub_->count("--junit") && junit_.empty()) throw UsageError("--junit needs a file name ('-' for stdout)");
    Client c(g.channel());
    auto r = c.report(req);
    if (!junit_.empty()) {
      auto xml = junit_xml(r);  // XML-escaped (controls replaced): safe on a terminal too
      if (junit_ == "-") {
        std::cout << xml;
      } else {
        std::ofstream f(junit_);
        if (!(f << xml)) throw std::runtime_error("cannot write " + junit_);
      }
    }
    if (g.json) {
      std::cout << dump(to_j(r)) << std::endl;
    } else if (junit_ != "-") {
      std::vector<std::vector<std::string>> rows{
          {"TARGET", "TOTAL", "PASSED", "FAILED", "TIMEOUT", "ERROR", "CANCELLED", "PENDING", "TIME"}};
      for (auto& t : r.targets())
        rows.push_back({ellipsize(term_safe(t.target()), 48), std::to_string(t.total()), std::to_string(t.passed()),
                        std::to_string(t.failed()), std::to_string(t.timed_out()), std::to_string(t.errors()),
                        std::to_string(t.cancelled()), std::to_string(t.pending()),
                        fmt_double(t.duration_s(), "%.1f") + "s"});
      rows.push_back({"total", std::to_string(r.total()), std::to_string(r.passed()), std::to_string(r.failed()),
                      std::to_string(r.timed_out()), std::to_string(r.errors()), std::to_string(r.cancelled()),
                      std::to_string(r.pending()), ""});
      print_table(std::cout, rows, {1, 2, 3, 4, 5, 6, 7, 8});
      std::cout << "calls=" << r.total_calls() << " hits=" << r.total_hits() << " batches=" << r.total_batches()
                << "\n";
      for (auto& j : r.jobs())
        if (farm::is_terminal(j.state()) && !passed(j))
          std::cout << "  " << farm::job_state_name(j.state()) << ": " << term_safe(j.id()) << " " << job_label(j)
                    << " -- " << term_safe(j.message().empty() ? j.result().message() : j.message()) << "\n";
    }
    return r.total() == r.passed() ? kExitOk : kExitNotPassed;
  }

 private:
  std::vector<std::string> tags_, ids_;
  std::string since_, junit_;
};

}  // namespace

std::unique_ptr<Command> make_report(CLI::App& app) { return std::make_unique<Report>(app); }

}  // namespace farm::ctl::cli
