// farmctl: submit, watch and report patch farm jobs. See docs/farm.md.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

#include "farm/common/names.hpp"
#include "farm/common/result.hpp"
#include "farm/common/select.hpp"
#include "farm/common/util.hpp"
#include "farm/ctl/client.hpp"
#include "conformance.hpp"  // farmctl conformance (src/conformance_*.cpp)

using namespace farm::ctl;
using json = nlohmann::json;

namespace {

// Exit codes: 0 all passed / ok, 1 some job did not pass, 2 usage or RPC error.
constexpr int kExitNotPassed = 1, kExitError = 2;

json to_j(const google::protobuf::Message& m) { return json::parse(farm::to_json(m)); }

std::string age(int64_t ms) {
  if (ms <= 0) return "-";
  int64_t s = (farm::now_ms() - ms) / 1000;
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  if (s < 172800) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string fmt_double(double d, const char* f = "%.2f") {
  char b[64];
  std::snprintf(b, sizeof b, f, d);
  return b;
}

std::string human(uint64_t n) {
  if (n >= 10'000'000'000ULL) return std::to_string(n / 1'000'000'000ULL) + "G";
  if (n >= 10'000'000ULL) return std::to_string(n / 1'000'000ULL) + "M";
  if (n >= 10'000ULL) return std::to_string(n / 1000ULL) + "k";
  return std::to_string(n);
}

// Prints rows as aligned columns.
void table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
}

void parse_kv(const std::vector<std::string>& in, google::protobuf::Map<std::string, std::string>* out,
              const char* what) {
  for (const auto& kv : in) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw CLI::ValidationError(what, "expected key=value, got '" + kv + "'");
    (*out)[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
}

int64_t parse_since(const std::string& s) {
  if (s.empty()) return 0;
  char unit = s.back();
  int64_t mult = 0;
  switch (unit) {
    case 's': mult = 1000; break;
    case 'm': mult = 60'000; break;
    case 'h': mult = 3'600'000; break;
    case 'd': mult = 86'400'000; break;
  }
  if (mult) return farm::now_ms() - std::stoll(s.substr(0, s.size() - 1)) * mult;
  return std::stoll(s);  // absolute ms since the epoch
}

bool passed(const v1::Job& j) { return j.state() == v1::JOB_STATE_PASSED; }

json result_json(const v1::Job& j) {
  json r;
  r["job_id"] = j.id();
  r["name"] = j.spec().name();
  r["state"] = farm::job_state_name(j.state());
  r["attempts"] = j.attempts();
  r["worker_id"] = j.worker_id();
  r["message"] = j.message();
  const auto& res = j.result();
  r["outcome"] = farm::outcome_name(res.outcome());
  r["verdict"] = res.verdict();
  r["exit_code"] = res.exit_code();
  r["calls"] = res.calls();
  r["hits"] = res.hits();
  r["batches"] = res.batches();
  r["syncs"] = res.syncs();
  r["unexpected_signals"] = res.unexpected_signals();
  r["wrong_results"] = res.wrong_results();
  r["duration_s"] = res.duration_s();
  r["result"] = res.result_json().empty() ? json(nullptr) : json::parse(res.result_json(), nullptr, false);
  return r;
}

// ---------------------------------------------------------------- watch display

class Watcher {
 public:
  Watcher(bool json, bool logs) : json_(json), logs_(logs), tty_(::isatty(1) && !json) {}

  bool on_event(const v1::JobEvent& ev) {
    if (json_) {
      std::cout << farm::to_json(ev) << std::endl;
      return true;
    }
    if (ev.has_state()) {
      clear_line();
      const auto& s = ev.state();
      std::string line = "[" + ev.job_id() + "] " + std::string(farm::job_state_name(s.state()));
      if (s.attempt()) line += " (attempt " + std::to_string(s.attempt()) + ")";
      if (!s.worker_id().empty()) line += " on " + s.worker_id();
      if (!s.message().empty()) line += ": " + s.message();
      std::cout << line << std::endl;
      state_ = s.state();
    } else if (ev.has_progress()) {
      const auto& p = ev.progress();
      std::string line = "[" + ev.job_id() + "] running " + fmt_double(p.elapsed_s(), "%.1f") + "s";
      if (p.calls() || p.hits() || p.batches())
        line += "  calls=" + human(p.calls()) + " hits=" + human(p.hits()) + " batches=" + human(p.batches());
      if (p.fraction() > 0) line += "  " + fmt_double(100 * p.fraction(), "%.0f") + "%";
      line += "  out=" + human(p.output_bytes()) + "B";
      if (tty_) {
        std::cout << "\r\033[K" << line << std::flush;
        progress_shown_ = true;
      } else if (farm::now_ms() - last_progress_ms_ >= 5000) {
        std::cout << line << std::endl;
        last_progress_ms_ = farm::now_ms();
      }
    } else if (ev.has_log() && logs_) {
      clear_line();
      std::cout << ev.log().data();
      if (!ev.log().data().empty() && ev.log().data().back() != '\n') std::cout << "\n";
      std::cout << std::flush;
    }
    return true;
  }

  void clear_line() {
    if (progress_shown_) {
      std::cout << "\r\033[K";
      progress_shown_ = false;
    }
  }

 private:
  bool json_, logs_, tty_;
  bool progress_shown_ = false;
  int64_t last_progress_ms_ = 0;
  v1::JobState state_ = v1::JOB_STATE_UNSPECIFIED;
};

void print_final(const v1::Job& j) {
  const auto& r = j.result();
  std::cout << j.id() << " " << farm::job_state_name(j.state());
  if (!r.verdict().empty()) std::cout << " verdict=" << r.verdict();
  if (r.calls() || r.hits()) std::cout << " calls=" << r.calls() << " hits=" << r.hits() << " batches=" << r.batches();
  if (r.duration_s() > 0) std::cout << " duration=" << fmt_double(r.duration_s()) << "s";
  if (!j.worker_id().empty()) std::cout << " worker=" << j.worker_id();
  std::string msg = j.message().empty() ? r.message() : j.message();
  if (!msg.empty() && j.state() != v1::JOB_STATE_PASSED) std::cout << " (" << msg << ")";
  std::cout << std::endl;
}

int watch_jobs(Client& c, const std::vector<std::string>& ids, bool as_json, bool logs) {
  bool all_passed = true;
  for (const auto& id : ids) {
    Watcher w(as_json, logs);
    auto job = c.watch(id, logs, [&](const v1::JobEvent& ev) { return w.on_event(ev); });
    w.clear_line();
    if (as_json) std::cout << result_json(job).dump() << std::endl;
    else print_final(job);
    all_passed = all_passed && passed(job);
  }
  return all_passed ? 0 : kExitNotPassed;
}

}  // namespace

int main(int argc, char** argv) {
  farm::ChannelOptions chan;
  chan.address = "127.0.0.1:7443";
  std::string token_file;
  bool as_json = false;

  CLI::App app{"farmctl: drive the patch farm (submit, watch, jobs, workers, results, report, cancel)"};
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--server,-s", chan.address, "farmd address host:port")->envname("FARM_SERVER")->capture_default_str();
  app.add_option("--token", chan.token, "client bearer token")->envname("FARM_TOKEN");
  app.add_option("--token-file", token_file, "read the client token from this file");
  app.add_flag("--tls", chan.tls, "connect with TLS (system roots unless --ca)");
  app.add_option("--ca", chan.ca_file, "PEM CA certificate to verify farmd (implies --tls)")->envname("FARM_CA");
  app.add_option("--tls-server-name", chan.server_name, "name expected in farmd's certificate");
  app.add_flag("--json", as_json, "machine-readable output");

  // submit
  auto* sub = app.add_subcommand("submit", "submit job(s); prints their ids");
  std::string workload, spec_file, name, arch, isa, executor, worker, binary, image, machine, memory;
  std::string writer, sync, probe_kind, sites;
  uint32_t threads = 0, functions = 0, timeout = 0, max_attempts = 0, min_cores = 0, smp = 0, count = 1;
  uint64_t batches = 0, seed = 1;
  int32_t priority = 0;
  std::vector<std::string> labels, tags, extra, cmd;
  bool wait = false, allow_unmatched = false, logs = false;
  sub->add_option("--workload,-w", workload, "patch-stress | baremetal | command (default: inferred)");
  sub->add_option("--spec", spec_file, "JSON JobSpec file (proto3 JSON); flags override its fields");
  sub->add_option("--name", name, "job name");
  sub->add_option("--threads", threads, "patch-stress threads");
  sub->add_option("--functions", functions, "patch-stress probed functions");
  sub->add_option("--batches", batches, "patch-stress batches");
  double duration = 0;
  sub->add_option("--duration", duration, "patch-stress: run this many seconds instead of --batches");
  sub->add_option("--writer", writer, "patch-stress writer: mprotect | procmem | default");
  sub->add_option("--sync", sync, "patch-stress sync: membarrier | flush_icache | signal | default");
  sub->add_option("--kind", probe_kind, "patch-stress probe kind: jump | trap | auto");
  sub->add_option("--sites", sites, "patch-stress sites: entry (sleds) | body (an instruction site per function)");
  sub->add_option("--binary", binary, "workload binary path on the agent (override)");
  sub->add_option("--arg", extra, "extra workload argument (repeatable, one value each)")->expected(1)->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("--image", image, "bare-metal image path on the agent");
  sub->add_option("--smp", smp, "bare-metal harts");
  sub->add_option("--machine", machine, "bare-metal qemu machine");
  sub->add_option("--memory", memory, "bare-metal memory");
  sub->add_option("--arch", arch, "target arch (x86_64, riscv64, aarch64)");
  sub->add_option("--isa", isa, "target ISA (rv64gc, rv64g, ...)");
  sub->add_option("--executor", executor, "worker kind: native | qemu-user | qemu-system | board");
  sub->add_option("--label", labels, "required board label key=value (repeatable)")->allow_extra_args(false);
  sub->add_option("--min-cores", min_cores, "minimum cores");
  sub->add_option("--worker", worker, "pin to a worker id");
  sub->add_option("--timeout", timeout, "timeout in seconds (default: farmd's)");
  sub->add_option("--seed", seed, "seed (with --count N: seed, seed+1, ...)")->capture_default_str();
  sub->add_option("--count", count, "submit N jobs")->capture_default_str();
  sub->add_option("--priority", priority, "higher runs first");
  sub->add_option("--max-attempts", max_attempts, "attempts on infrastructure failures");
  sub->add_option("--tag", tags, "tag key=value (repeatable), used by report filters")->allow_extra_args(false);
  sub->add_flag("--allow-unmatched", allow_unmatched, "queue even if no registered worker matches");
  sub->add_flag("--wait", wait, "watch the job(s) to the end; exit 0 only if all passed");
  sub->add_flag("--logs", logs, "with --wait: print the workload output");
  sub->add_option("command", cmd, "command workload: farmctl submit [opts] -- prog args...");

  auto* watch = app.add_subcommand("watch", "follow jobs to the end with a progress display");
  std::vector<std::string> watch_ids;
  bool watch_logs = false;
  watch->add_option("job", watch_ids, "job id(s)")->required();
  watch->add_flag("--logs", watch_logs, "print the workload output");

  auto* jobs = app.add_subcommand("jobs", "list jobs");
  std::vector<std::string> states, jtags;
  uint32_t limit = 50;
  std::string jworker;
  bool oldest_first = false;
  jobs->add_option("--state", states, "filter: queued running passed failed timed-out error cancelled");
  jobs->add_option("--tag", jtags, "filter key=value");
  jobs->add_option("--worker", jworker, "filter by worker");
  jobs->add_option("--limit", limit, "max jobs")->capture_default_str();
  jobs->add_flag("--oldest-first", oldest_first, "oldest first (default newest first)");

  auto* workers = app.add_subcommand("workers", "list workers (or forget one with --remove)");
  std::string remove_worker;
  bool remove_force = false;
  workers->add_option("--remove", remove_worker, "forget this (decommissioned) worker");
  workers->add_flag("--force", remove_force, "with --remove: even if it is running jobs (they are requeued)");

  auto* results = app.add_subcommand("results", "show results of jobs");
  std::vector<std::string> result_ids;
  bool history = false;
  results->add_option("job", result_ids, "job id(s)")->required();
  results->add_flag("--history", history, "include every attempt");

  auto* report = app.add_subcommand("report", "summary per target; JUnit XML with --junit");
  std::vector<std::string> rtags, rids;
  std::string since, junit;
  report->add_option("--tag", rtags, "only jobs with tag key=value");
  report->add_option("--job", rids, "only these jobs (repeatable)");
  report->add_option("--since", since, "only jobs created in the last 30m / 2h / 1d (or since epoch ms)");
  report->add_option("--junit", junit, "write JUnit XML to this file ('-' for stdout)");

  auto* cancel = app.add_subcommand("cancel", "cancel queued or running jobs");
  std::vector<std::string> cancel_ids;
  std::string reason;
  cancel->add_option("job", cancel_ids, "job id(s)")->required();
  cancel->add_option("--reason", reason, "recorded with the job");

  farm::conformance::Command conformance(app);
  CLI11_PARSE(app, argc, argv);

  try {
    if (!token_file.empty()) chan.token = farm::trim(farm::read_file(token_file));
    if (conformance.selected()) return conformance.run(chan, as_json);
    Client c(chan);

    if (*sub) {
      v1::JobSpec spec;
      if (!spec_file.empty()) {
        std::string err;
        if (!farm::from_json(farm::read_file(spec_file), &spec, &err))
          throw std::runtime_error("bad --spec " + spec_file + ": " + err);
      }
      if (workload.empty() && !spec.workload().has_patch_stress() && !spec.workload().has_baremetal() &&
          !spec.workload().has_command())
        workload = !image.empty() ? "baremetal" : !cmd.empty() ? "command" : "patch-stress";
      if (workload == "patch-stress") {
        auto* p = spec.mutable_workload()->mutable_patch_stress();
        if (threads) p->set_threads(threads);
        if (functions) p->set_functions(functions);
        if (batches) p->set_batches(batches);
        if (duration > 0) p->set_duration_s(duration);
        if (!writer.empty()) p->set_writer(writer);
        if (!sync.empty()) p->set_sync(sync);
        if (!probe_kind.empty()) p->set_probe_kind(probe_kind);
        if (!sites.empty()) p->set_sites(sites);
        if (!binary.empty()) p->set_binary(binary);
        for (auto& e : extra) p->add_extra_args(e);
      } else if (workload == "baremetal") {
        auto* b = spec.mutable_workload()->mutable_baremetal();
        if (!image.empty()) b->set_image(image);
        if (smp) b->set_smp(smp);
        if (!machine.empty()) b->set_machine(machine);
        if (!memory.empty()) b->set_memory(memory);
        for (auto& e : extra) b->add_extra_args(e);
      } else if (workload == "command") {
        auto* cm = spec.mutable_workload()->mutable_command();
        if (!cmd.empty()) cm->clear_argv();
        for (auto& a : cmd) cm->add_argv(a);
      } else if (!workload.empty()) {
        std::cerr << "farmctl: unknown workload '" << workload << "' (patch-stress, baremetal, command)\n";
        return kExitError;
      }
      if (!name.empty()) spec.set_name(name);
      auto* sel = spec.mutable_selector();
      if (!arch.empty()) sel->set_arch(arch);
      if (!isa.empty()) sel->set_isa(isa);
      if (!executor.empty()) sel->set_kind(executor);
      if (!worker.empty()) sel->set_worker_id(worker);
      if (min_cores) sel->set_min_cores(min_cores);
      parse_kv(labels, sel->mutable_labels(), "--label");
      parse_kv(tags, spec.mutable_tags(), "--tag");
      if (timeout) spec.set_timeout_s(timeout);
      if (max_attempts) spec.set_max_attempts(max_attempts);
      if (priority) spec.set_priority(priority);
      if (spec_file.empty() || sub->count("--seed")) spec.set_seed(seed);
      std::vector<std::string> ids;
      json out = json::array();
      for (uint32_t i = 0; i < std::max(1u, count); ++i) {
        v1::JobSpec s = spec;
        s.set_seed(spec.seed() + i);
        auto job = c.submit(s, allow_unmatched);
        ids.push_back(job.id());
        if (as_json) out.push_back(to_j(job));
        else if (!wait) std::cout << job.id() << (job.message().empty() ? "" : "  (" + job.message() + ")") << "\n";
      }
      if (as_json && !wait) std::cout << out.dump(2) << std::endl;
      if (wait) return watch_jobs(c, ids, as_json, logs);
      return 0;
    }
    if (*watch) return watch_jobs(c, watch_ids, as_json, watch_logs);
    if (*jobs) {
      v1::ListJobsRequest req;
      for (const auto& s : states) {
        auto st = farm::parse_job_state(s);
        if (!st) throw CLI::ValidationError("--state", "unknown state " + s);
        req.add_states(*st);
      }
      parse_kv(jtags, req.mutable_tags(), "--tag");
      req.set_limit(limit);
      req.set_worker_id(jworker);
      req.set_newest_first(!oldest_first);
      auto list = c.list(req);
      if (as_json) {
        json a = json::array();
        for (auto& j : list) a.push_back(to_j(j));
        std::cout << a.dump(2) << std::endl;
        return 0;
      }
      std::vector<std::vector<std::string>> rows{{"ID", "STATE", "TRY", "WORKER", "AGE", "WORKLOAD", "MESSAGE"}};
      for (auto& j : list) {
        std::string wl = j.spec().name().empty() ? describe_workload(j.spec()) : j.spec().name();
        std::string msg = j.message();
        if (msg.size() > 60) msg = msg.substr(0, 57) + "...";
        rows.push_back({j.id(), std::string(farm::job_state_name(j.state())), std::to_string(j.attempts()),
                        j.worker_id().empty() ? "-" : j.worker_id(), age(j.created_ms()), wl, msg});
      }
      table(rows);
      return 0;
    }
    if (*workers) {
      if (!remove_worker.empty()) {
        c.remove_worker(remove_worker, remove_force);
        if (!as_json) std::cout << "removed " << remove_worker << "\n";
        return 0;
      }
      auto list = c.workers();
      if (as_json) {
        json a = json::array();
        for (auto& w : list) a.push_back(to_j(w));
        std::cout << a.dump(2) << std::endl;
        return 0;
      }
      std::vector<std::vector<std::string>> rows{
          {"ID", "STATE", "TARGET", "CORES", "SLOTS", "RUNNING", "DONE", "FAILS", "SEEN", "LABELS", "NOTE"}};
      for (auto& w : list) {
        std::string labels_s;
        for (auto& [k, v] : w.capabilities().labels()) labels_s += (labels_s.empty() ? "" : ",") + k + "=" + v;
        rows.push_back({w.id(), std::string(farm::worker_state_name(w.state())), farm::target_name(w.capabilities()),
                        std::to_string(w.capabilities().cores()), std::to_string(w.capabilities().slots()),
                        std::to_string(w.running()), std::to_string(w.jobs_done()), std::to_string(w.infra_failures()),
                        age(w.last_seen_ms()), labels_s.empty() ? "-" : labels_s, w.quarantine_reason()});
      }
      table(rows);
      return 0;
    }
    if (*results) {
      json a = json::array();
      bool all = true;
      for (const auto& id : result_ids) {
        auto j = c.get(id, history);
        all = all && passed(j);
        if (as_json) {
          auto r = result_json(j);
          if (history) r["attempts_history"] = to_j(j)["attempt_history"];
          a.push_back(r);
          continue;
        }
        print_final(j);
        const auto& r = j.result();
        if (!r.result_json().empty()) std::cout << "  result: " << r.result_json() << "\n";
        if (history)
          for (const auto& h : j.attempt_history())
            std::cout << "  attempt " << h.attempt() << " on " << h.worker_id() << ": "
                      << (h.outcome() ? farm::outcome_name(h.outcome()) : "running") << " " << h.message() << "\n";
        if (!passed(j) && !r.log_tail().empty()) std::cout << "  output (tail):\n" << r.log_tail() << "\n";
      }
      if (as_json) std::cout << a.dump(2) << std::endl;
      return all ? 0 : kExitNotPassed;
    }
    if (*report) {
      v1::GetReportRequest req;
      parse_kv(rtags, req.mutable_tags(), "--tag");
      for (auto& id : rids) req.add_job_ids(id);
      req.set_since_ms(parse_since(since));
      auto r = c.report(req);
      if (!junit.empty()) {
        auto xml = junit_xml(r);
        if (junit == "-") std::cout << xml;
        else {
          std::ofstream f(junit);
          if (!(f << xml)) throw std::runtime_error("cannot write " + junit);
        }
      }
      if (as_json) {
        json j = to_j(r);
        std::cout << j.dump(2) << std::endl;
      } else if (junit != "-") {
        std::vector<std::vector<std::string>> rows{
            {"TARGET", "TOTAL", "PASSED", "FAILED", "TIMEOUT", "ERROR", "CANCELLED", "PENDING", "TIME"}};
        for (auto& t : r.targets())
          rows.push_back({t.target(), std::to_string(t.total()), std::to_string(t.passed()), std::to_string(t.failed()),
                          std::to_string(t.timed_out()), std::to_string(t.errors()), std::to_string(t.cancelled()),
                          std::to_string(t.pending()), fmt_double(t.duration_s(), "%.1f") + "s"});
        rows.push_back({"total", std::to_string(r.total()), std::to_string(r.passed()), std::to_string(r.failed()),
                        std::to_string(r.timed_out()), std::to_string(r.errors()), std::to_string(r.cancelled()),
                        std::to_string(r.pending()), ""});
        table(rows);
        std::cout << "calls=" << r.total_calls() << " hits=" << r.total_hits() << " batches=" << r.total_batches()
                  << "\n";
        for (auto& j : r.jobs())
          if (farm::is_terminal(j.state()) && !passed(j)) {
            std::cout << "  " << farm::job_state_name(j.state()) << ": " << j.id() << " "
                      << (j.spec().name().empty() ? describe_workload(j.spec()) : j.spec().name()) << " -- "
                      << (j.message().empty() ? j.result().message() : j.message()) << "\n";
          }
      }
      return r.total() == r.passed() ? 0 : kExitNotPassed;
    }
    if (*cancel) {
      json a = json::array();
      for (const auto& id : cancel_ids) {
        auto j = c.cancel(id, reason);
        if (as_json) a.push_back(to_j(j));
        else std::cout << j.id() << " " << farm::job_state_name(j.state()) << (j.cancel_requested() && j.state() == v1::JOB_STATE_RUNNING ? " (cancel requested)" : "") << "\n";
      }
      if (as_json) std::cout << a.dump(2) << std::endl;
      return 0;
    }
  } catch (const RpcError& e) {
    std::cerr << "farmctl: " << e.what() << "\n";
    return kExitError;
  } catch (const std::exception& e) {
    std::cerr << "farmctl: " << e.what() << "\n";
    return kExitError;
  }
  return 0;
}
