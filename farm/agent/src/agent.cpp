#include "farm/agent/agent.hpp"

#include <spdlog/spdlog.h>

#include <cctype>
#include <filesystem>

#include "farm/agent/policy.hpp"
#include "farm/common/names.hpp"
#include "farm/common/result.hpp"
#include "farm/common/util.hpp"

namespace farm::agent {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using grpc::StatusCode;

static const char* kStopReason = "agent shutting down";
static const char* kLostReason = "lease lost";

// Registration retries start fast (farmd may just be starting) and stay
// prompt: at most this long between attempts.
static constexpr std::chrono::milliseconds kRegisterFirstRetry = 100ms;
static constexpr std::chrono::milliseconds kRegisterMaxRetry = 1s;

// "pass", "infra-error", "handed-back": names, never enum numbers, in logs.
static std::string outcome_label(v1::Outcome o) {
  std::string n(farm::outcome_name(o));
  if (!n.empty()) return n;
  n = v1::Outcome_Name(o);  // e.g. OUTCOME_HANDED_BACK for names farm/common does not know yet
  if (n.empty()) return "outcome " + std::to_string(static_cast<int>(o));
  if (n.rfind("OUTCOME_", 0) == 0) n.erase(0, 8);
  for (auto& c : n) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return n;
}

v1::Capabilities detect_capabilities(const ExecutorConfig& exec, const Executor& executor, v1::Capabilities c) {
  executor.describe(c);  // e.g. a virtual board's arch, isa, cores, kernel
  if (c.arch().empty()) c.set_arch(!exec.arch.empty() ? exec.arch : executor.kind() == "native" ? farm::machine_arch() : "riscv64");
  c.set_kind(executor.kind());
  if (c.isa().empty()) {
    if (c.arch() == "riscv64") c.set_isa("rv64gc");
    else if (c.arch() == "x86_64") c.set_isa("x86-64");
    else if (c.arch() == "aarch64") c.set_isa("armv8-a");
  }
  if (c.cores() == 0) {
    if (executor.kind() == "qemu-system") c.set_cores(exec.default_smp);
    else c.set_cores(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (c.kernel().empty()) {
    if (executor.kind() == "qemu-system") c.set_kernel("none");
    else if (executor.kind() != "board") c.set_kernel(farm::kernel_release());
  }
  if (c.workloads().empty())
    for (const auto& w : executor.workloads()) c.add_workloads(w);
  if (c.slots() == 0) c.set_slots(1);
  if (c.agent_version().empty()) c.set_agent_version("0.1.0");
  return c;
}

Agent::Agent(AgentConfig cfg, std::unique_ptr<Executor> exec) : cfg_(std::move(cfg)), exec_(std::move(exec)) {
  if (!exec_) exec_ = make_executor(cfg_.exec);
  if (cfg_.name.empty()) cfg_.name = farm::host_name() + "-" + exec_->kind();
  cfg_.caps = detect_capabilities(cfg_.exec, *exec_, cfg_.caps);
  if (cfg_.work_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    cfg_.work_dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/farm-agent-" + cfg_.name;
  }
  channel_ = farm::make_channel(cfg_.channel);
  stub_ = v1::FarmAgent::NewStub(channel_);
}

Agent::~Agent() {
  stop();
  wait();
}

std::string Agent::worker_id() const {
  std::lock_guard lk(mu_);
  return worker_id_;
}

bool Agent::registered() const {
  std::lock_guard lk(mu_);
  return !session_.empty();
}

std::shared_ptr<v1::FarmAgent::Stub> Agent::stub() const {
  std::lock_guard lk(mu_);
  return stub_;
}

std::shared_ptr<v1::FarmAgent::Stub> Agent::reconnect_if_failed() {
  // A channel whose connection attempts failed (farmd not up yet, or
  // restarting) keeps failing RPCs at once until gRPC's own reconnect
  // back-off lets it try again; measured: ~7 s after farmd came up, even
  // with ChannelResetConnectionBackoff. A fresh channel connects at once,
  // so the agent's retry period (100 ms doubling to 1 s) bounds the delay.
  // Only called while unregistered; calls in flight keep their own stub.
  std::lock_guard lk(mu_);
  if (channel_->GetState(false) == GRPC_CHANNEL_TRANSIENT_FAILURE) {
    channel_ = farm::make_channel(cfg_.channel);
    stub_ = v1::FarmAgent::NewStub(channel_);
  }
  return stub_;
}

std::optional<std::string> Agent::fatal_error() const {
  std::lock_guard lk(mu_);
  return fatal_;
}

void Agent::fail(std::string message) {
  spdlog::error("farm-agent {}: {}", cfg_.name, message);
  {
    std::lock_guard lk(mu_);
    if (!fatal_) fatal_ = std::move(message);
  }
  stop();
}

void Agent::start() {
  std::error_code ec;
  fs::create_directories(cfg_.work_dir, ec);
  threads_.emplace_back([this] { heartbeat_loop(); });
  for (uint32_t i = 0; i < cfg_.caps.slots(); ++i) threads_.emplace_back([this, i] { slot_loop(static_cast<int>(i)); });
}

void Agent::run() {
  start();
  wait();
}

void Agent::stop() {
  if (stopping_.exchange(true)) return;
  std::lock_guard lk(mu_);
  for (auto* c : inflight_) c->TryCancel();
  for (auto& [_, a] : active_) a->cancel->cancel(kStopReason);
  cv_.notify_all();
}

void Agent::wait() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  if (stopping_) leave();
}

void Agent::leave() {
  // Every slot has finished (its job handed back or completed): tell farmd
  // the session is over. Without it a restarted agent with this name would
  // be refused (ALREADY_EXISTS) until the session expires.
  v1::HeartbeatRequest req;
  {
    std::lock_guard lk(mu_);
    if (left_ || session_.empty() || fatal_) return;
    left_ = true;
    req.set_worker_id(worker_id_);
    req.set_session(session_);
    for (const auto& [_, a] : active_) {  // normally none left
      auto* l = req.add_leases();
      l->set_job_id(a->job_id);
      l->set_attempt(a->attempt);
    }
  }
  req.set_leaving(true);
  v1::HeartbeatResponse resp;
  grpc::ClientContext ctx;
  farm::prepare_context(ctx, cfg_.channel.token, 3s);
  auto s = stub()->Heartbeat(&ctx, req, &resp);
  if (s.ok()) {
    spdlog::info("farm-agent {}: left farmd (session ended)", cfg_.name);
    std::lock_guard lk(mu_);
    session_.clear();
  } else {
    spdlog::warn("farm-agent {}: could not end the session at farmd: {}: {}", cfg_.name,
                 farm::status_code_name(s.error_code()), s.error_message());
  }
}

void Agent::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, d, [&] { return stopping_.load(); });
}

bool Agent::ensure_registered(uint64_t seen) {
  static std::mutex reg_mu;  // one registration at a time per process is plenty
  std::lock_guard rl(reg_mu);
  {
    std::lock_guard lk(mu_);
    if (generation_ != seen && !session_.empty()) return true;
  }
  v1::RegisterRequest req;
  req.set_name(cfg_.name);
  *req.mutable_capabilities() = cfg_.caps;
  v1::RegisterResponse resp;
  grpc::ClientContext ctx;
  farm::prepare_context(ctx, cfg_.channel.token, 5s);
  auto stub = reconnect_if_failed();
  {
    std::lock_guard lk(mu_);
    if (stopping_) return false;
    inflight_.push_back(&ctx);
  }
  auto s = stub->Register(&ctx, req, &resp);
  {
    std::lock_guard lk(mu_);
    inflight_.erase(std::find(inflight_.begin(), inflight_.end(), &ctx));
  }
  if (!s.ok()) {
    auto code = s.error_code();
    std::string why = farm::status_code_name(code) + ": " + s.error_message();
    switch (code) {
      // Retrying cannot help with these: stop with a message that says what to fix.
      case StatusCode::UNAUTHENTICATED:
      case StatusCode::PERMISSION_DENIED:
        fail("farmd refused the agent token (" + why + "); give an agent token with --token, --token-file or "
             "FARM_AGENT_TOKEN");
        break;
      case StatusCode::ALREADY_EXISTS:
        fail("another agent is registered as " + cfg_.name + " (" + why + "); stop it or give this one another --name");
        break;
      case StatusCode::INVALID_ARGUMENT:
        fail("farmd refused the registration (" + why + ")");
        break;
      default:
        if (!stopping_)
          spdlog::warn("farm-agent {}: cannot register with {} yet: {}", cfg_.name, cfg_.channel.address, why);
    }
    return false;
  }
  std::lock_guard lk(mu_);
  // A new session voids leases of the previous one.
  for (auto& [_, a] : active_) {
    a->lost = true;
    a->cancel->cancel(kLostReason);
  }
  worker_id_ = resp.worker_id();
  session_ = resp.session();
  heartbeat_ms_ = std::max<uint32_t>(20, resp.heartbeat_interval_ms());
  ++generation_;
  spdlog::info("farm-agent {}: registered as {} ({} {} {}, {} slot(s))", cfg_.name, worker_id_, cfg_.caps.arch(),
               cfg_.caps.kind(), cfg_.caps.isa(), cfg_.caps.slots());
  return true;
}

void Agent::slot_loop(int slot) {
  std::chrono::milliseconds reg_backoff = kRegisterFirstRetry;
  std::chrono::milliseconds backoff = 200ms;
  while (!stopping_) {
    uint64_t gen;
    std::string wid, session;
    {
      std::lock_guard lk(mu_);
      gen = generation_;
      wid = worker_id_;
      session = session_;
    }
    if (session.empty()) {
      if (ensure_registered(gen)) {
        reg_backoff = kRegisterFirstRetry;
      } else {
        sleep_for(reg_backoff);
        reg_backoff = std::min<std::chrono::milliseconds>(reg_backoff * 2, kRegisterMaxRetry);
      }
      continue;
    }
    v1::AcquireJobRequest req;
    req.set_worker_id(wid);
    req.set_session(session);
    req.set_wait_ms(cfg_.acquire_wait_ms);
    v1::AcquireJobResponse resp;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, cfg_.channel.token, std::chrono::milliseconds(cfg_.acquire_wait_ms) + 10s);
    {
      std::lock_guard lk(mu_);
      if (stopping_) break;
      inflight_.push_back(&ctx);
    }
    auto s = stub()->AcquireJob(&ctx, req, &resp);
    {
      std::lock_guard lk(mu_);
      inflight_.erase(std::find(inflight_.begin(), inflight_.end(), &ctx));
    }
    if (stopping_) break;
    if (s.ok()) {
      backoff = 200ms;
      // A completion may come back with the next lease: keep going without a poll.
      std::optional<v1::Lease> next;
      if (resp.has_lease() && !resp.lease().job_id().empty()) next = run_job(resp.lease());
      while (next && !stopping_) next = run_job(*next);
      if (next) {
        // stopping with a lease in hand: hand it back (requeued at once, no attempt used)
        v1::JobResult r;
        r.set_outcome(v1::OUTCOME_HANDED_BACK);
        r.set_message("agent shut down before starting the job; handed back");
        v1::LeaseRef ref;
        ref.set_job_id(next->job_id());
        ref.set_attempt(next->attempt());
        auto a = std::make_shared<Active>();
        complete(ref, r, a, nullptr);
      }
      continue;
    }
    switch (s.error_code()) {
      case StatusCode::NOT_FOUND:
      case StatusCode::FAILED_PRECONDITION:
        spdlog::info("farm-agent {}: {}; registering again", cfg_.name, s.error_message());
        {
          std::lock_guard lk(mu_);
          if (generation_ == gen) session_.clear();
        }
        break;
      case StatusCode::UNAUTHENTICATED:
      case StatusCode::PERMISSION_DENIED:
        fail("farmd refused the agent token (" + farm::status_code_name(s.error_code()) + ": " + s.error_message() +
             ")");
        break;
      default:
        spdlog::debug("farm-agent {} slot {}: acquire: {}", cfg_.name, slot, s.error_message());
        sleep_for(backoff);
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, 3s);
    }
  }
}

void Agent::heartbeat_loop() {
  while (!stopping_) {
    uint32_t interval;
    {
      std::lock_guard lk(mu_);
      interval = heartbeat_ms_;
    }
    sleep_for(std::chrono::milliseconds(interval));
    if (stopping_) break;
    v1::HeartbeatRequest req;
    uint64_t gen;
    std::map<std::string, std::shared_ptr<Active>> active;
    {
      std::lock_guard lk(mu_);
      if (session_.empty()) continue;
      req.set_worker_id(worker_id_);
      req.set_session(session_);
      gen = generation_;
      active = active_;
    }
    for (auto& [_, a] : active) {
      auto* l = req.add_leases();
      l->set_job_id(a->job_id);
      l->set_attempt(a->attempt);
    }
    v1::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, cfg_.channel.token, std::chrono::milliseconds(std::max<uint32_t>(interval * 2, 2000)));
    auto s = stub()->Heartbeat(&ctx, req, &resp);
    if (s.ok()) {
      for (const auto& c : resp.cancel())
        if (auto it = active.find(c.job_id()); it != active.end() && it->second->attempt == c.attempt()) {
          spdlog::info("farm-agent {}: job {} cancelled by farmd", cfg_.name, c.job_id());
          it->second->cancel->cancel("cancelled by a client");
        }
      for (const auto& c : resp.lost())
        if (auto it = active.find(c.job_id());
            it != active.end() && it->second->attempt == c.attempt() && !it->second->completing) {
          spdlog::warn("farm-agent {}: lease of job {} lost", cfg_.name, c.job_id());
          it->second->lost = true;
          it->second->cancel->cancel(kLostReason);
        }
    } else if (s.error_code() == StatusCode::UNAUTHENTICATED || s.error_code() == StatusCode::PERMISSION_DENIED) {
      fail("farmd refused the agent token (" + farm::status_code_name(s.error_code()) + ": " + s.error_message() + ")");
    } else if (s.error_code() == StatusCode::NOT_FOUND || s.error_code() == StatusCode::FAILED_PRECONDITION) {
      spdlog::info("farm-agent {}: heartbeat: {}; registering again", cfg_.name, s.error_message());
      {
        std::lock_guard lk(mu_);
        if (generation_ == gen) session_.clear();
      }
      ensure_registered(gen);
    } else {
      spdlog::debug("farm-agent {}: heartbeat failed: {}", cfg_.name, s.error_message());
    }
  }
}

namespace {

// Collects output for ReportProgress: merges chunks per stream, tracks
// progress numbers from JSON lines the workload prints while running.
struct OutputSink {
  std::mutex mu;
  std::vector<v1::LogChunk> pending;
  size_t pending_bytes = 0;
  uint64_t total_bytes = 0;
  std::string line_buf;  // partial stdout line
  v1::Progress progress;
  bool progress_dirty = false;
  std::string all;       // for the result's log tail
  static constexpr size_t kMaxPending = 1 << 20;

  void add(std::string_view stream, std::string_view data) {
    std::lock_guard lk(mu);
    total_bytes += data.size();
    all.append(data);
    if (all.size() > 256 * 1024) all.erase(0, all.size() - 128 * 1024);
    if (pending_bytes < kMaxPending) {
      if (!pending.empty() && pending.back().stream() == stream) pending.back().mutable_data()->append(data);
      else {
        v1::LogChunk c;
        c.set_stream(std::string(stream));
        c.set_data(std::string(data));
        pending.push_back(std::move(c));
      }
      pending_bytes += data.size();
    }
    if (stream == "stdout" || stream == "console") {
      line_buf.append(data);
      size_t nl;
      while ((nl = line_buf.find('\n')) != std::string::npos) {
        std::string_view line(line_buf.data(), nl);
        if (line.find('{') != std::string_view::npos) {
          if (auto j = farm::last_json_object(line)) {
            farm::fill_progress_numbers(*j, &progress);
            progress_dirty = true;
          }
        }
        line_buf.erase(0, nl + 1);
      }
      if (line_buf.size() > 65536) line_buf.clear();
    }
  }
};

}  // namespace

std::optional<v1::Lease> Agent::run_job(const v1::Lease& lease) {
  auto active = std::make_shared<Active>();
  active->job_id = lease.job_id();
  active->attempt = lease.attempt();
  active->cancel = std::make_shared<Cancel>();
  std::string wid, session;
  {
    std::lock_guard lk(mu_);
    wid = worker_id_;
    session = session_;
    active_[active->job_id] = active;
    if (stopping_) active->cancel->cancel(kStopReason);
  }
  spdlog::info("farm-agent {}: running job {} attempt {} ({})", cfg_.name, printable(lease.job_id()), lease.attempt(),
               printable(lease.spec().name()));
  JobContext ctx;
  ctx.job_id = lease.job_id();
  ctx.worker = cfg_.name;
  ctx.attempt = lease.attempt();
  ctx.spec = lease.spec();
  ctx.cancel = active->cancel.get();
  // The job id names the attempt's directory, created here and removed
  // afterwards: it must be one path component (no "../", no "/").
  const std::string bad_id = job_id_problem(ctx.job_id);
  std::error_code ec;
  if (bad_id.empty()) {
    ctx.work_dir = cfg_.work_dir + "/" + ctx.job_id + "-" + std::to_string(ctx.attempt);
    fs::create_directories(ctx.work_dir, ec);
  }
  auto sink = std::make_shared<OutputSink>();
  ctx.output = [sink](std::string_view st, std::string_view d) { sink->add(st, d); };
  auto t0 = std::chrono::steady_clock::now();

  v1::LeaseRef ref;
  ref.set_job_id(ctx.job_id);
  ref.set_attempt(ctx.attempt);

  auto flush = [&](bool final) {
    v1::ReportProgressRequest req;
    req.set_worker_id(wid);
    req.set_session(session);
    *req.mutable_lease() = ref;
    {
      std::lock_guard lk(sink->mu);
      if (sink->pending.empty() && !sink->progress_dirty && final) return;
      for (auto& c : sink->pending) *req.add_logs() = std::move(c);
      sink->pending.clear();
      sink->pending_bytes = 0;
      *req.mutable_progress() = sink->progress;
      sink->progress_dirty = false;
      req.mutable_progress()->set_output_bytes(sink->total_bytes);
    }
    req.mutable_progress()->set_elapsed_s(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    v1::ReportProgressResponse resp;
    grpc::ClientContext c;
    farm::prepare_context(c, cfg_.channel.token, 5s);
    auto s = stub()->ReportProgress(&c, req, &resp);
    if (s.ok()) {
      if (resp.lost()) {
        active->lost = true;
        active->cancel->cancel(kLostReason);
      } else if (resp.cancel()) {
        active->cancel->cancel("cancelled by a client");
      }
    }
  };

  std::mutex rep_mu;
  std::condition_variable rep_cv;
  bool done = false;
  std::thread reporter([&] {
    std::unique_lock lk(rep_mu);
    while (!done) {
      rep_cv.wait_for(lk, std::chrono::milliseconds(cfg_.progress_interval_ms), [&] { return done; });
      if (done) break;
      lk.unlock();
      flush(false);
      lk.lock();
    }
  });

  std::optional<v1::Lease> next;
  v1::JobResult result;
  try {
    if (!bad_id.empty()) {
      spdlog::warn("farm-agent {}: {}", cfg_.name, bad_id);
      result = refused_result(bad_id);
    } else {
      result = ctx.spec.workload().has_health_check() ? exec_->health_check(ctx) : exec_->run(ctx);
    }
  } catch (const std::exception& e) {
    result.set_outcome(v1::OUTCOME_INFRA_ERROR);
    result.set_message(std::string("executor error: ") + e.what());
  }
  active->completing = true;  // farmd may finish the attempt any moment now
  {
    std::lock_guard lk(rep_mu);
    done = true;
  }
  rep_cv.notify_all();
  reporter.join();
  if (!active->lost) flush(true);

  if (result.outcome() == v1::OUTCOME_CANCELLED || active->cancel->cancelled()) {
    std::string why = active->cancel->reason();
    const auto o = result.outcome();
    if (why == kStopReason) {
      // Stopped (SIGTERM) before the workload ran to its end: not the job's
      // fault nor this machine's; farmd requeues it without using an attempt.
      // A workload that finished anyway (or a refusal) keeps its result.
      if (o != v1::OUTCOME_PASS && o != v1::OUTCOME_FAIL && o != v1::OUTCOME_TIMEOUT) {
        result.set_outcome(v1::OUTCOME_HANDED_BACK);
        result.set_message("agent shut down during the job; handed back");
      }
    } else if (why != kLostReason && result.outcome() == v1::OUTCOME_CANCELLED) {
      result.set_message(why);
    }
  }
  if (result.log_tail().empty()) {
    std::lock_guard lk(sink->mu);
    result.set_log_tail(farm::tail(sink->all, 40, 8192));
  }
  if (active->lost) {
    spdlog::warn("farm-agent {}: job {} attempt {} lost its lease; result dropped", cfg_.name, printable(ctx.job_id),
                 ctx.attempt);
  } else {
    spdlog::info("farm-agent {}: job {} attempt {}: {} ({})", cfg_.name, printable(ctx.job_id), ctx.attempt,
                 outcome_label(result.outcome()), printable(result.message(), 400));
    if (complete(ref, result, active, &next)) ++completed_;
  }
  {
    std::lock_guard lk(mu_);
    active_.erase(ctx.job_id);
  }
  if (!cfg_.keep_work_dirs && !ctx.work_dir.empty()) fs::remove_all(ctx.work_dir, ec);
  return next;
}

bool Agent::complete(const v1::LeaseRef& ref, const v1::JobResult& result, const std::shared_ptr<Active>& active,
                     std::optional<v1::Lease>* next) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(cfg_.complete_retry_s);
  std::chrono::milliseconds backoff = 100ms;
  for (;;) {
    v1::CompleteJobRequest req;
    {
      std::lock_guard lk(mu_);
      req.set_worker_id(worker_id_);
      req.set_session(session_);
    }
    *req.mutable_lease() = ref;
    *req.mutable_result() = result;
    req.set_acquire_next(next != nullptr && !stopping_);
    v1::CompleteJobResponse resp;
    grpc::ClientContext ctx;
    farm::prepare_context(ctx, cfg_.channel.token, 10s);
    auto s = stub()->CompleteJob(&ctx, req, &resp);
    if (s.ok()) {
      if (next && resp.has_next() && !resp.next().job_id().empty()) *next = resp.next();
      return true;
    }
    switch (s.error_code()) {
      case StatusCode::ABORTED:
      case StatusCode::NOT_FOUND:
      case StatusCode::PERMISSION_DENIED:
      case StatusCode::INVALID_ARGUMENT:
        spdlog::warn("farm-agent {}: completion of {} refused: {}", cfg_.name, ref.job_id(), s.error_message());
        return false;
      default:
        break;
    }
    if (active->lost || std::chrono::steady_clock::now() > deadline ||
        (stopping_ && std::chrono::steady_clock::now() > deadline - std::chrono::seconds(cfg_.complete_retry_s) + 5s)) {
      spdlog::error("farm-agent {}: could not report job {}: {}", cfg_.name, ref.job_id(), s.error_message());
      return false;
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 2s);
  }
}

}  // namespace farm::agent
