// farmctl submit: builds a JobSpec from flags (and --spec), checks every
// value before anything is sent, submits --count jobs, optionally waits.
//
// A client chooses WHAT to test (workload parameters, target), never WHAT
// RUNS on an agent: the binary is the agent operator's (farm-agent
// --patch-stress PATH / --binary KIND=PATH), a bare-metal image is named
// (farm-agent --image NAME=PATH; farmctl submit --image NAME), and command
// workloads run only on agents whose operator opted in (--allow-command with
// an allow-list).
#include <iostream>
#include <limits>

#include "cli.hpp"
#include "farm/common/result.hpp"
#include "farm/common/util.hpp"

namespace farm::ctl::cli {

namespace {

// 1..max letters, digits and the characters of `extra` (arch, isa).
void check_word(const char* opt, const std::string& v, size_t max, const std::string& extra) {
  bool ok = !v.empty() && v.size() <= max;
  for (char c : v)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                extra.find(c) != std::string::npos);
  if (!ok) {
    std::string chars;
    for (char c : extra) chars += std::string(", '") + c + "'";
    throw UsageError(std::string(opt) + " must be 1-" + std::to_string(max) + " letters, digits" + chars + ", got '" +
                     term_safe(v) + "'");
  }
}

class Submit : public Command {
 public:
  explicit Submit(CLI::App& app) : Command(app.add_subcommand("submit", "submit job(s); prints their ids")) {
    auto* s = sub_;
    s->add_option("--workload,-w", workload_, "patch-stress | baremetal | command (default: inferred)");
    s->add_option("--spec", spec_file_, "JSON JobSpec file (proto3 JSON); flags override its fields");
    s->add_option("--name", name_, "job name (at most 256 bytes)");
    s->add_option("--threads", threads_, "patch-stress threads, 1..256");
    s->add_option("--functions", functions_, "patch-stress probed functions, 1.." + std::to_string(limits::kMaxFunctions));
    s->add_option("--batches", batches_, "patch-stress batches, 1..100000000");
    s->add_option("--duration", duration_, "patch-stress: run this long instead of --batches (60, 90s, 5m; <= 24h)");
    s->add_option("--writer", writer_, "patch-stress writer: mprotect | procmem | default");
    s->add_option("--sync", sync_, "patch-stress sync: membarrier | flush_icache | signal | default");
    s->add_option("--kind", kind_, "patch-stress probe kind: jump | trap | auto");
    s->add_option("--sites", sites_, "patch-stress sites: entry (sleds) | body (an instruction site per function)");
    s->add_flag("--exit-probes", exit_probes_,
                "patch-stress: call probes (entry + exit handlers, return values checked); entry sites only");
    s->add_option("--image", image_,
                  "bare-metal image NAME, as the agent's operator configured it (farm-agent --image NAME=PATH)");
    s->add_option("--smp", smp_, "bare-metal harts, 1..64");
    s->add_option("--machine", machine_, "bare-metal qemu machine: virt (default: the agent's)");
    s->add_option("--memory", memory_, "bare-metal memory: 1-6 digits and M or G, e.g. 256M");
    s->add_option("--append", append_,
                  "bare-metal kernel command line, key=value pairs: 'sync=rfence toggles=100000' (at most 256 of "
                  "[A-Za-z0-9 =._,:+-])");
    s->add_option("--arch", arch_, "target arch (x86_64, riscv64, aarch64)");
    s->add_option("--isa", isa_, "target ISA (rv64gc, rv64g, ...)");
    s->add_option("--executor", executor_, "worker kind: native | qemu-user | qemu-system | board");
    s->add_option("--label", labels_, "required board label key=value (repeatable)")->allow_extra_args(false);
    s->add_option("--min-cores", min_cores_, "minimum cores, 1..65536");
    s->add_option("--worker", worker_, "pin to a worker id");
    s->add_option("--timeout", timeout_, "job timeout, whole seconds (120, 10m, 2h; <= 7d; default: farmd's)");
    s->add_option("--seed", seed_, "seed, 0..2^64-1 (with --count N: seed, seed+1, ...; default 1)");
    s->add_option("--count", count_, "submit N jobs, 1..10000 (default 1)");
    s->add_option("--priority", priority_, "higher runs first, -999999..999999");
    s->add_option("--max-attempts", max_attempts_, "attempts on infrastructure failures, 1..10");
    s->add_option("--tag", tags_, "tag key=value (repeatable), used by report filters")->allow_extra_args(false);
    s->add_flag("--allow-unmatched", allow_unmatched_, "queue even if no registered worker matches");
    s->add_flag("--wait", wait_, "watch the job(s) to the end; exit 0 only if all passed");
    s->add_flag("--logs", logs_, "with --wait: print the workload output");
    s->add_option("command", cmd_, "command workload: farmctl submit [options] -- PROGRAM ARGS...");
    // Removed: a client must never choose what runs on an agent. Kept (hidden)
    // to say so instead of "unknown option"; a value is optional so that
    // "--arg --mode" still reaches the explanation.
    for (const char* opt : {"--binary", "--arg"})
      s->add_option(opt, removed_, "")->expected(0, 1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)->group("");
  }

  void before_extras(const Globals&) override {
    if (sub_->count("--binary"))
      throw UsageError(
          "submit --binary is not accepted: the agent chooses the workload binary (its operator starts it with "
          "farm-agent --patch-stress PATH or --binary KIND=PATH); a client never chooses what runs on an agent");
    if (sub_->count("--arg"))
      throw UsageError(
          "submit --arg is not accepted: extra workload arguments would let a client choose what runs on an agent; "
          "use the workload's options (--threads, --functions, --batches, --duration, --writer, --sync, --kind, "
          "--sites, --exit-probes; --image, --smp, --append for bare metal)");
  }

  int run(const Globals& g) override {
    v1::JobSpec spec = build(g);
    uint64_t count = given("--count") ? parse_uint("--count", count_, 1, limits::kMaxCount) : 1;
    if (count > 1 && spec.seed() > std::numeric_limits<uint64_t>::max() - (count - 1))
      throw UsageError("--seed " + std::to_string(spec.seed()) + " with --count " + std::to_string(count) +
                       " would go past the largest seed, 18446744073709551615");
    if (logs_ && !wait_) throw UsageError("--logs needs --wait");

    Client c(g.channel());
    std::vector<std::string> ids;
    json out = json::array();
    for (uint64_t i = 0; i < count; ++i) {
      v1::JobSpec s = spec;
      s.set_seed(spec.seed() + i);
      auto job = c.submit(s, allow_unmatched_);
      ids.push_back(job.id());
      if (g.json) out.push_back(to_j(job));
      else if (!wait_)
        std::cout << term_safe(job.id()) << (job.message().empty() ? "" : "  (" + term_safe(job.message()) + ")")
                  << "\n";
    }
    if (g.json && !wait_) std::cout << dump(out) << std::endl;
    if (wait_) return watch_jobs(c, ids, g.json, logs_);
    return kExitOk;
  }

 private:
  bool given(const char* opt) const { return sub_->count(opt) > 0; }

  v1::JobSpec build(const Globals& g) {
    v1::JobSpec spec;
    std::string origin;
    if (given("--spec")) {
      origin = "--spec " + term_safe(spec_file_);
      std::string err;
      if (!farm::from_json(farm::read_file(spec_file_), &spec, &err))
        throw UsageError(origin + ": not a JobSpec in proto3 JSON: " + term_safe(err));
    }
    if (!cmd_.empty() && !g.dashdash)
      throw UsageError("unexpected argument '" + term_safe(cmd_.front()) +
                       "' for 'farmctl submit' (a command workload goes after --: farmctl submit [options] -- "
                       "PROGRAM ARGS...); see farmctl submit --help");

    static const char* const ps_flags[] = {"--threads", "--functions", "--batches", "--duration",
                                           "--writer",  "--sync",      "--kind",    "--sites",
                                           "--exit-probes"};
    static const char* const bm_flags[] = {"--image", "--smp", "--machine", "--memory", "--append"};
    std::string wl = workload_;
    if (given("--workload")) {
      check_one_of("--workload", wl, {"patch-stress", "baremetal", "command"});
    } else if (spec.workload().spec_case() == v1::Workload::SPEC_NOT_SET) {
      wl = given("--image") || given("--smp") || given("--machine") || given("--memory") || given("--append")
               ? "baremetal"
           : !cmd_.empty()                                                              ? "command"
                                                                                         : "patch-stress";
    } else {
      wl = spec.workload().has_baremetal() ? "baremetal" : spec.workload().has_command() ? "command" : "patch-stress";
    }
    auto only_for = [&](const char* const* flags, size_t n, const char* owner) {
      for (size_t i = 0; i < n; ++i)
        if (given(flags[i]) && wl != owner)
          throw UsageError(std::string(flags[i]) + " applies to " + owner + " jobs, not " + wl);
    };
    only_for(ps_flags, std::size(ps_flags), "patch-stress");
    only_for(bm_flags, std::size(bm_flags), "baremetal");
    if (!cmd_.empty() && wl != "command")
      throw UsageError("a command after -- makes a command job, not " + wl);

    if (wl == "patch-stress") {
      auto* p = spec.mutable_workload()->mutable_patch_stress();
      if (given("--threads")) p->set_threads(parse_uint("--threads", threads_, 1, limits::kMaxThreads));
      if (given("--functions")) p->set_functions(parse_uint("--functions", functions_, 1, limits::kMaxFunctions));
      if (given("--batches") && given("--duration")) throw UsageError("--batches and --duration are exclusive");
      if (given("--batches")) {
        p->set_batches(parse_uint("--batches", batches_, 1, limits::kMaxBatches));
        p->clear_duration_s();
      }
      if (given("--duration")) {
        p->set_duration_s(parse_seconds("--duration", duration_, limits::kMaxDurationS));
        p->clear_batches();
      }
      if (given("--writer")) check_one_of("--writer", writer_, {"mprotect", "procmem", "default"}), p->set_writer(writer_);
      if (given("--sync"))
        check_one_of("--sync", sync_, {"membarrier", "flush_icache", "signal", "default"}), p->set_sync(sync_);
      if (given("--kind")) check_one_of("--kind", kind_, {"jump", "trap", "auto"}), p->set_probe_kind(kind_);
      if (given("--sites")) check_one_of("--sites", sites_, {"entry", "body"}), p->set_sites(sites_);
      if (given("--exit-probes")) p->set_exit_probes(true);
    } else if (wl == "baremetal") {
      auto* b = spec.mutable_workload()->mutable_baremetal();
      if (given("--image")) check_image_name("--image", image_), b->set_image(image_);
      if (given("--smp")) b->set_smp(parse_uint("--smp", smp_, 1, limits::kMaxSmp));
      if (given("--machine")) check_one_of("--machine", machine_, {"virt"}), b->set_machine(machine_);
      if (given("--memory")) {
        bool ok = memory_.size() >= 2 && memory_.size() <= 7 && (memory_.back() == 'M' || memory_.back() == 'G');
        for (size_t i = 0; ok && i + 1 < memory_.size(); ++i) ok = memory_[i] >= '0' && memory_[i] <= '9';
        if (!ok)
          throw UsageError("--memory must be 1-6 digits and M or G (256M, 1G), got '" + term_safe(memory_) + "'");
        b->set_memory(memory_);
      }
      if (given("--append")) check_append("--append", append_), b->set_append(append_);
      if (b->image().empty())
        throw UsageError("a bare-metal job needs --image NAME (an image the agent's operator configured with "
                         "farm-agent --image NAME=PATH)");
    } else {
      auto* cm = spec.mutable_workload()->mutable_command();
      if (!cmd_.empty()) {
        cm->clear_argv();
        for (auto& a : cmd_) cm->add_argv(a);
      }
      if (cm->argv().empty())
        throw UsageError("a command job needs a program: farmctl submit [options] -- PROGRAM ARGS... (agents run it "
                         "only if their operator allowed it: farm-agent --allow-command ...)");
    }

    if (given("--name")) check_text("--name", name_, limits::kMaxNameLen), spec.set_name(name_);
    auto* sel = spec.mutable_selector();
    if (given("--arch")) check_word("--arch", arch_, 32, "_-"), sel->set_arch(arch_);
    if (given("--isa")) check_word("--isa", isa_, 64, "_"), sel->set_isa(isa_);
    if (given("--executor"))
      check_one_of("--executor", executor_, {"native", "qemu-user", "qemu-system", "board"}), sel->set_kind(executor_);
    if (given("--worker")) check_worker_id("--worker", worker_), sel->set_worker_id(worker_);
    if (given("--min-cores")) sel->set_min_cores(parse_uint("--min-cores", min_cores_, 1, limits::kMaxMinCores));
    for (const auto& l : labels_) {
      auto [k, v] = parse_kv("--label", l);
      check_label("--label", k, v);
      (*sel->mutable_labels())[k] = v;
    }
    for (const auto& t : tags_) {
      auto [k, v] = parse_kv("--tag", t);
      check_tag("--tag", k, v);
      (*spec.mutable_tags())[k] = v;
    }
    if (given("--timeout")) spec.set_timeout_s(parse_whole_seconds("--timeout", timeout_, limits::kMaxTimeoutS));
    if (given("--max-attempts"))
      spec.set_max_attempts(parse_uint("--max-attempts", max_attempts_, 1, limits::kMaxAttempts));
    if (given("--priority"))
      spec.set_priority(
          static_cast<int32_t>(parse_int("--priority", priority_, -limits::kMaxPriority, limits::kMaxPriority)));
    if (given("--seed")) spec.set_seed(parse_uint("--seed", seed_, 0, std::numeric_limits<uint64_t>::max()));
    else if (!given("--spec")) spec.set_seed(1);
    check_spec(spec, origin);
    return spec;
  }

  std::string workload_, spec_file_, name_, arch_, isa_, executor_, worker_, image_, machine_, memory_, append_;
  std::string writer_, sync_, kind_, sites_;
  std::string threads_, functions_, batches_, duration_, smp_, timeout_, seed_, count_, priority_, max_attempts_,
      min_cores_;
  std::vector<std::string> labels_, tags_, cmd_, removed_;
  bool wait_ = false, allow_unmatched_ = false, logs_ = false, exit_probes_ = false;
};

}  // namespace

std::unique_ptr<Command> make_submit(CLI::App& app) { return std::make_unique<Submit>(app); }

}  // namespace farm::ctl::cli
