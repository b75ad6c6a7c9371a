#include "farmd/server.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>

#include "audit.hpp"
#include "auth.hpp"
#include "farm/common/names.hpp"
#include "farm/common/select.hpp"
#include "farm/common/util.hpp"
#include "farm/v1/farm.grpc.pb.h"
#include "farmd/farm.hpp"
#include "farmd/http.hpp"
#include "farmd/metrics.hpp"
#include "farmd/web_page.hpp"
#include "tls.hpp"

namespace farmd {

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;

namespace {

// A status message travels in a trailer; clients refuse large metadata
// (RESOURCE_EXHAUSTED). The checks never echo more than a clipped field, and
// this bounds whatever is left.
Status bounded(Status s) {
  if (s.error_message().size() <= 1024) return s;
  return Status(s.error_code(), farm::clip(s.error_message(), 1000));
}

std::string patterns_of(const Caller& who) {
  std::string r;
  if (who.token)
    for (const auto& p : who.token->workers) r += (r.empty() ? "" : ",") + p;
  return r;
}

}  // namespace

// Authenticates the call (role) and declares `who` for the audit lines.
#define FARM_AUTH(role, call)                                    \
  Caller who;                                                    \
  do {                                                           \
    if (auto _s = auth_.check(ctx, role, &who); !_s.ok()) {      \
      audit::refused(who, call, _s);                             \
      return _s;                                                 \
    }                                                            \
  } while (0)

// Agent calls: the token must be allowed to act for this worker name.
#define FARM_ACT_FOR(call, worker)                                                                          \
  do {                                                                                                      \
    if (!who.may_act_for(worker)) {                                                                         \
      Status _s(StatusCode::PERMISSION_DENIED, "token '" + who.name() + "' may not act for worker '" +     \
                                                   farm::clip(worker) + "' (its workers= patterns: " +      \
                                                   patterns_of(who) + ")");                                 \
      audit::refused(who, call, _s);                                                                        \
      return _s;                                                                                            \
    }                                                                                                       \
  } while (0)

class ClientService final : public v1::FarmClient::Service {
 public:
  ClientService(Farm& f, const Auth& a, const Config& c) : farm_(f), auth_(a), cfg_(c) {}

  Status SubmitJob(ServerContext* ctx, const v1::SubmitJobRequest* req, v1::SubmitJobResponse* resp) override {
    FARM_AUTH(Role::client, "SubmitJob");
    auto s = farm_.submit(*req, resp->mutable_job());
    if (!s.ok()) return refused(who, "SubmitJob", s);
    const auto& spec = resp->job().spec();
    audit::done(who, "SubmitJob",
                "queued " + resp->job().id() + " (" + std::string(::farm::workload_type(spec.workload())) + " on " +
                    farm::clip(::farm::describe_selector(spec.selector()), 200) +
                    (spec.name().empty() ? "" : ", name '" + farm::clip(spec.name()) + "'") + ")");
    return s;
  }
  Status GetJob(ServerContext* ctx, const v1::GetJobRequest* req, v1::GetJobResponse* resp) override {
    FARM_AUTH(Role::client, "GetJob");
    return quiet(who, "GetJob", farm_.get_job(req->job_id(), req->include_history(), resp->mutable_job()));
  }
  Status ListJobs(ServerContext* ctx, const v1::ListJobsRequest* req, v1::ListJobsResponse* resp) override {
    FARM_AUTH(Role::client, "ListJobs");
    return quiet(who, "ListJobs", farm_.list_jobs(*req, resp));
  }
  Status WatchJob(ServerContext* ctx, const v1::WatchJobRequest* req,
                  grpc::ServerWriter<v1::JobEvent>* writer) override {
    FARM_AUTH(Role::client, "WatchJob");
    // Each open stream holds a server thread: bounded per token and in total.
    WatchSlot slot(*this, who);
    if (!slot.status.ok()) return refused(who, "WatchJob", slot.status);
    v1::Job job;
    if (auto s = farm_.get_job(req->job_id(), false, &job); !s.ok()) return refused(who, "WatchJob", s);
    // The events table holds the job's whole history (from its QUEUED event),
    // so a watcher replays it from after_seq and then follows live events.
    uint64_t after = req->after_seq();
    bool terminal_seen = false;
    for (;;) {
      uint64_t seen = farm_.last_event_seq();
      auto evs = farm_.events_after(req->job_id(), after, req->include_logs());
      for (auto& ev : evs) {
        after = ev.seq();
        if (!writer->Write(ev)) return Status::OK;
        if (ev.has_state() && ::farm::is_terminal(ev.state().state())) terminal_seen = true;
      }
      if (terminal_seen) return Status::OK;
      if (evs.empty()) {
        // nothing new for this job: if it is terminal (events replayed earlier), stop
        v1::Job now;
        if (farm_.get_job(req->job_id(), false, &now).ok() && ::farm::is_terminal(now.state())) {
          auto rest = farm_.events_after(req->job_id(), after, req->include_logs());
          if (rest.empty()) return Status::OK;
          continue;
        }
        if (ctx->IsCancelled()) return Status::CANCELLED;
        farm_.wait_event(seen, std::chrono::steady_clock::now() + std::chrono::seconds(1));
        if (stopping()) return Status(StatusCode::UNAVAILABLE, "farmd is shutting down");
      }
    }
  }
  Status CancelJob(ServerContext* ctx, const v1::CancelJobRequest* req, v1::CancelJobResponse* resp) override {
    FARM_AUTH(Role::client, "CancelJob");
    auto s = farm_.cancel(req->job_id(), req->reason(), resp->mutable_job());
    if (!s.ok()) return refused(who, "CancelJob", s);
    audit::done(who, "CancelJob",
                "cancel " + req->job_id() + (req->reason().empty() ? "" : " (reason '" + farm::clip(req->reason()) + "')") +
                    ": " + std::string(::farm::job_state_name(resp->job().state())));
    return s;
  }
  Status ListWorkers(ServerContext* ctx, const v1::ListWorkersRequest*, v1::ListWorkersResponse* resp) override {
    FARM_AUTH(Role::client, "ListWorkers");
    farm_.list_workers(resp);
    return Status::OK;
  }
  Status RemoveWorker(ServerContext* ctx, const v1::RemoveWorkerRequest* req, v1::RemoveWorkerResponse*) override {
    FARM_AUTH(Role::client, "RemoveWorker");
    auto s = farm_.remove_worker(req->worker_id(), req->force());
    if (!s.ok()) return refused(who, "RemoveWorker", s);
    audit::done(who, "RemoveWorker", "removed worker " + req->worker_id() + (req->force() ? " (force)" : ""));
    return s;
  }
  Status GetReport(ServerContext* ctx, const v1::GetReportRequest* req, v1::GetReportResponse* resp) override {
    FARM_AUTH(Role::client, "GetReport");
    return quiet(who, "GetReport", farm_.report(*req, resp->mutable_report()));
  }

  std::atomic<bool> stopping_{false};
  bool stopping() const { return stopping_.load(); }

 private:
  static Status refused(const Caller& who, const char* call, Status s) {
    audit::refused(who, call, s);
    return bounded(std::move(s));
  }
  // Reads: no audit line when they succeed.
  static Status quiet(const Caller& who, const char* call, Status s) {
    return s.ok() ? s : refused(who, call, std::move(s));
  }

  struct WatchSlot {
    ClientService& svc;
    const Token* key;
    Status status;
    WatchSlot(ClientService& s, const Caller& who) : svc(s), key(who.token) {
      std::lock_guard lk(svc.watch_mu_);
      uint32_t& mine = svc.watches_[key];
      if (svc.watch_total_ >= svc.cfg_.max_watches)
        status = Status(StatusCode::RESOURCE_EXHAUSTED,
                        "farmd has " + std::to_string(svc.watch_total_) + " WatchJob streams open, its limit (" +
                            "--max-watches " + std::to_string(svc.cfg_.max_watches) + "); try again later");
      else if (mine >= svc.cfg_.max_watches_per_token)
        status = Status(StatusCode::RESOURCE_EXHAUSTED,
                        "token '" + who.name() + "' has " + std::to_string(mine) +
                            " WatchJob streams open, the limit per token (--max-watches-per-token " +
                            std::to_string(svc.cfg_.max_watches_per_token) + "); close some first");
      if (!status.ok()) return;
      ++mine;
      ++svc.watch_total_;
      held = true;
    }
    ~WatchSlot() {
      if (!held) return;
      std::lock_guard lk(svc.watch_mu_);
      --svc.watch_total_;
      if (--svc.watches_[key] == 0) svc.watches_.erase(key);
    }
    bool held = false;
  };

  Farm& farm_;
  const Auth& auth_;
  const Config& cfg_;
  std::mutex watch_mu_;
  std::map<const Token*, uint32_t> watches_;  // open streams per token (nullptr: no auth)
  uint32_t watch_total_ = 0;
};

class AgentService final : public v1::FarmAgent::Service {
 public:
  AgentService(Farm& f, const Auth& a) : farm_(f), auth_(a) {}

  Status Register(ServerContext* ctx, const v1::RegisterRequest* req, v1::RegisterResponse* resp) override {
    FARM_AUTH(Role::agent, "Register");
    FARM_ACT_FOR("Register", req->name());
    auto s = farm_.register_worker(*req, who, resp);
    if (!s.ok()) return refused(who, "Register", s);
    audit::done(who, "Register",
                "worker " + resp->worker_id() + " registered a new session (" +
                    farm::clip(::farm::target_name(req->capabilities()), 100) + ")");
    return s;
  }
  Status AcquireJob(ServerContext* ctx, const v1::AcquireJobRequest* req, v1::AcquireJobResponse* resp) override {
    FARM_AUTH(Role::agent, "AcquireJob");
    FARM_ACT_FOR("AcquireJob", req->worker_id());
    auto s = farm_.acquire(*req, resp, [ctx] { return ctx->IsCancelled(); });
    if (!s.ok()) return refused(who, "AcquireJob", s);
    if (resp->has_lease() && !resp->lease().job_id().empty())
      audit::done(who, "AcquireJob",
                  "leased " + resp->lease().job_id() + " attempt " + std::to_string(resp->lease().attempt()) +
                      " to worker " + req->worker_id());
    return s;
  }
  Status Heartbeat(ServerContext* ctx, const v1::HeartbeatRequest* req, v1::HeartbeatResponse* resp) override {
    FARM_AUTH(Role::agent, "Heartbeat");
    FARM_ACT_FOR("Heartbeat", req->worker_id());
    auto s = farm_.heartbeat(*req, resp);
    if (!s.ok()) return refused(who, "Heartbeat", s);
    if (req->leaving()) audit::done(who, "Heartbeat", "worker " + req->worker_id() + " left (session ended)");
    return s;
  }
  Status ReportProgress(ServerContext* ctx, const v1::ReportProgressRequest* req,
                        v1::ReportProgressResponse* resp) override {
    FARM_AUTH(Role::agent, "ReportProgress");
    FARM_ACT_FOR("ReportProgress", req->worker_id());
    auto s = farm_.progress(*req, resp);
    return s.ok() ? s : refused(who, "ReportProgress", s);
  }
  Status CompleteJob(ServerContext* ctx, const v1::CompleteJobRequest* req, v1::CompleteJobResponse* resp) override {
    FARM_AUTH(Role::agent, "CompleteJob");
    FARM_ACT_FOR("CompleteJob", req->worker_id());
    auto s = farm_.complete(*req, resp);
    if (!s.ok()) return refused(who, "CompleteJob", s);
    audit::done(who, "CompleteJob",
                "worker " + req->worker_id() + " completed " + req->lease().job_id() + " attempt " +
                    std::to_string(req->lease().attempt()) + ": " +
                    std::string(::farm::outcome_name(req->result().outcome())) + " -> " +
                    std::string(::farm::job_state_name(resp->job_state())) +
                    (resp->duplicate() ? " (duplicate, nothing changed)" : ""));
    if (resp->has_next() && !resp->next().job_id().empty())
      audit::done(who, "CompleteJob",
                  "leased " + resp->next().job_id() + " attempt " + std::to_string(resp->next().attempt()) +
                      " to worker " + req->worker_id());
    return s;
  }

 private:
  static Status refused(const Caller& who, const char* call, Status s) {
    audit::refused(who, call, s);
    return bounded(std::move(s));
  }
  Farm& farm_;
  const Auth& auth_;
};

struct Server::Impl {
  explicit Impl(const Config& c) : farm(c), auth(c.tokens), client(farm, auth, farm.config()), agent(farm, auth) {}
  Farm farm;
  Auth auth;
  ClientService client;
  AgentService agent;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<HttpServer> http;  // --metrics-listen
  std::mutex mu;
  std::condition_variable cv;
  bool down = false;
};

Server::Server(Config cfg) : cfg_(std::move(cfg)) {}

Server::~Server() { shutdown(); }

Farm& Server::farm() { return impl_->farm; }

namespace {

// gRPC does not say why a port could not be added; a plain bind() of the same
// address does (without SO_REUSEPORT, as farmd's own listener).
std::string why_no_bind(const ListenAddress& a) {
  std::string host = a.host;
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string port = std::to_string(a.port);
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return "cannot resolve " + host + ": " + ::gai_strerror(rc);
  std::string why = "gRPC could not add the port";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      int e = errno;
      why = e == EADDRINUSE ? std::string("address already in use (another farmd, or another server, listens there)")
                            : std::string(std::strerror(e));
      ::close(fd);
      break;
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return why;
}

}  // namespace

void Server::start() {
  if (impl_) throw std::runtime_error("farmd: already started");
  validate_config(cfg_);                      // std::invalid_argument naming the setting
  const ListenAddress addr = parse_listen(cfg_.listen);
  std::shared_ptr<grpc::ServerCredentials> creds;
  const bool tls = !cfg_.tls_cert.empty();
  if (tls) {
    // Read and check both files first: "cannot read PATH: reason", a key
    // that does not match the certificate, ...
    TlsPair pair = load_tls_pair(cfg_.tls_cert, cfg_.tls_key);
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({pair.key_pem, pair.cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  impl_ = std::make_unique<Impl>(cfg_);  // opens (and locks) the database
  grpc::ServerBuilder b;
  b.AddListeningPort(cfg_.listen, creds, &port_);
  b.RegisterService(&impl_->client);
  b.RegisterService(&impl_->agent);
  b.SetMaxReceiveMessageSize(16 << 20);
  // gRPC sets SO_REUSEPORT by default: a second farmd on the same port would
  // then bind too, and the kernel would split the connections between them.
  b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  b.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  impl_->server = b.BuildAndStart();
  if (!impl_->server || port_ == 0 || (addr.port != 0 && port_ != addr.port)) {
    std::string why = !impl_->server || port_ == 0 ? why_no_bind(addr)
                                                    : "bound port " + std::to_string(port_) + " instead";
    if (impl_->server) {
      impl_->server->Shutdown();
      impl_->server->Wait();
    }
    impl_.reset();
    port_ = 0;
    throw std::runtime_error("cannot listen on " + cfg_.listen + ": " + why);
  }
  if (!cfg_.metrics_listen.empty()) {
    Farm& farm = impl_->farm;
    std::map<std::string, HttpHandler> routes;
    routes["/metrics"] = [&farm](const HttpRequest&) {
      HttpResponse r;
      r.content_type = FarmMetrics::kContentType;
      r.body = farm.metrics().exposition();
      return r;
    };
    routes["/"] = [&farm, name = address()](const HttpRequest&) {
      HttpResponse r;
      r.content_type = "text/html; charset=utf-8";
      WebSnapshot snap = farm.web_snapshot();
      snap.farm_name = name;
      r.body = render_web_page(snap);
      r.headers["Content-Security-Policy"] = kWebPageCsp;
      r.headers["Refresh"] = std::to_string(kRefreshSeconds);
      return r;
    };
    try {
      impl_->http = std::make_unique<HttpServer>(cfg_.metrics_listen, std::move(routes),
                                                 [](const std::string& m) { spdlog::warn("farmd: http: {}", m); });
    } catch (const std::exception& e) {
      impl_->server->Shutdown();
      impl_->server->Wait();
      impl_.reset();
      port_ = 0;
      throw std::runtime_error(std::string("--metrics-listen: ") + e.what());
    }
    spdlog::info("farmd: metrics and the live page on http://{}/", impl_->http->address());
  }
  spdlog::info("farmd: listening on {} (port {}, {}, auth {})", cfg_.listen, port_,
               tls ? "TLS" : "plaintext",
               impl_->auth.enabled() ? "on" : "OFF");
}

std::string Server::address() const {
  std::string host = cfg_.listen.substr(0, cfg_.listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "[::]") host = "[::1]";
  return host + ":" + std::to_string(port_);
}

int Server::metrics_port() const { return impl_ && impl_->http ? impl_->http->port() : 0; }

std::string Server::metrics_address() const { return impl_ && impl_->http ? impl_->http->address() : ""; }

void Server::shutdown(int grace_ms) {
  if (!impl_ || !impl_->server) return;
  {
    std::lock_guard lk(impl_->mu);
    if (impl_->down) return;
    impl_->down = true;
  }
  impl_->http.reset();  // stops serving and joins its thread before the farm stops
  impl_->client.stopping_ = true;
  impl_->farm.stop();
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
  impl_->server->Wait();
  impl_->cv.notify_all();
}

void Server::wait() {
  if (!impl_) return;
  std::unique_lock lk(impl_->mu);
  impl_->cv.wait(lk, [&] { return impl_->down; });
}

}  // namespace farmd
