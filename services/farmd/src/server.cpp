#include "farmd/server.hpp"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include "auth.hpp"
#include "farm/common/names.hpp"
#include "farm/common/util.hpp"
#include "farm/v1/farm.grpc.pb.h"
#include "farmd/farm.hpp"

namespace farmd {

using grpc::ServerContext;
using grpc::Status;

#define FARM_AUTH(role)                                          \
  do {                                                           \
    if (auto _s = auth_.check(ctx, role); !_s.ok()) return _s;   \
  } while (0)

class ClientService final : public v1::FarmClient::Service {
 public:
  ClientService(Farm& f, const Auth& a) : farm_(f), auth_(a) {}

  Status SubmitJob(ServerContext* ctx, const v1::SubmitJobRequest* req, v1::SubmitJobResponse* resp) override {
    FARM_AUTH(Role::client);
    auto s = farm_.submit(*req, resp->mutable_job());
    if (s.ok()) spdlog::debug("farmd: submitted {}", resp->job().id());
    return s;
  }
  Status GetJob(ServerContext* ctx, const v1::GetJobRequest* req, v1::GetJobResponse* resp) override {
    FARM_AUTH(Role::client);
    return farm_.get_job(req->job_id(), req->include_history(), resp->mutable_job());
  }
  Status ListJobs(ServerContext* ctx, const v1::ListJobsRequest* req, v1::ListJobsResponse* resp) override {
    FARM_AUTH(Role::client);
    return farm_.list_jobs(*req, resp);
  }
  Status WatchJob(ServerContext* ctx, const v1::WatchJobRequest* req,
                  grpc::ServerWriter<v1::JobEvent>* writer) override {
    FARM_AUTH(Role::client);
    v1::Job job;
    if (auto s = farm_.get_job(req->job_id(), false, &job); !s.ok()) return s;
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
        if (stopping()) return Status(grpc::StatusCode::UNAVAILABLE, "farmd is shutting down");
      }
    }
  }
  Status CancelJob(ServerContext* ctx, const v1::CancelJobRequest* req, v1::CancelJobResponse* resp) override {
    FARM_AUTH(Role::client);
    return farm_.cancel(req->job_id(), req->reason(), resp->mutable_job());
  }
  Status ListWorkers(ServerContext* ctx, const v1::ListWorkersRequest*, v1::ListWorkersResponse* resp) override {
    FARM_AUTH(Role::client);
    farm_.list_workers(resp);
    return Status::OK;
  }
  Status RemoveWorker(ServerContext* ctx, const v1::RemoveWorkerRequest* req, v1::RemoveWorkerResponse*) override {
    FARM_AUTH(Role::client);
    return farm_.remove_worker(req->worker_id(), req->force());
  }
  Status GetReport(ServerContext* ctx, const v1::GetReportRequest* req, v1::GetReportResponse* resp) override {
    FARM_AUTH(Role::client);
    return farm_.report(*req, resp->mutable_report());
  }

  std::atomic<bool> stopping_{false};
  bool stopping() const { return stopping_.load(); }

 private:
  Farm& farm_;
  const Auth& auth_;
};

class AgentService final : public v1::FarmAgent::Service {
 public:
  AgentService(Farm& f, const Auth& a) : farm_(f), auth_(a) {}

  Status Register(ServerContext* ctx, const v1::RegisterRequest* req, v1::RegisterResponse* resp) override {
    FARM_AUTH(Role::agent);
    return farm_.register_worker(*req, resp);
  }
  Status AcquireJob(ServerContext* ctx, const v1::AcquireJobRequest* req, v1::AcquireJobResponse* resp) override {
    FARM_AUTH(Role::agent);
    return farm_.acquire(*req, resp, [ctx] { return ctx->IsCancelled(); });
  }
  Status Heartbeat(ServerContext* ctx, const v1::HeartbeatRequest* req, v1::HeartbeatResponse* resp) override {
    FARM_AUTH(Role::agent);
    return farm_.heartbeat(*req, resp);
  }
  Status ReportProgress(ServerContext* ctx, const v1::ReportProgressRequest* req,
                        v1::ReportProgressResponse* resp) override {
    FARM_AUTH(Role::agent);
    return farm_.progress(*req, resp);
  }
  Status CompleteJob(ServerContext* ctx, const v1::CompleteJobRequest* req, v1::CompleteJobResponse* resp) override {
    FARM_AUTH(Role::agent);
    return farm_.complete(*req, resp);
  }

 private:
  Farm& farm_;
  const Auth& auth_;
};

struct Server::Impl {
  explicit Impl(const Config& c) : farm(c), auth(c.tokens), client(farm, auth), agent(farm, auth) {}
  Farm farm;
  Auth auth;
  ClientService client;
  AgentService agent;
  std::unique_ptr<grpc::Server> server;
  std::mutex mu;
  std::condition_variable cv;
  bool down = false;
};

Server::Server(Config cfg) : cfg_(std::move(cfg)) {}

Server::~Server() { shutdown(); }

Farm& Server::farm() { return impl_->farm; }

void Server::start() {
  if (impl_) throw std::runtime_error("farmd: already started");
  impl_ = std::make_unique<Impl>(cfg_);
  std::shared_ptr<grpc::ServerCredentials> creds;
  const bool tls = !cfg_.tls_cert.empty() || !cfg_.tls_key.empty();
  if (!cfg_.tls_cert.empty() || !cfg_.tls_key.empty()) {
    if (cfg_.tls_cert.empty() || cfg_.tls_key.empty())
      throw std::runtime_error("farmd: TLS needs both a certificate and a key");
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({::farm::read_file(cfg_.tls_key), ::farm::read_file(cfg_.tls_cert)});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  grpc::ServerBuilder b;
  b.AddListeningPort(cfg_.listen, creds, &port_);
  b.RegisterService(&impl_->client);
  b.RegisterService(&impl_->agent);
  b.SetMaxReceiveMessageSize(16 << 20);
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  b.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  impl_->server = b.BuildAndStart();
  if (!impl_->server || port_ == 0) {
    impl_.reset();
    throw std::runtime_error("farmd: cannot listen on " + cfg_.listen);
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

void Server::shutdown(int grace_ms) {
  if (!impl_) return;
  {
    std::lock_guard lk(impl_->mu);
    if (impl_->down) return;
    impl_->down = true;
  }
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
