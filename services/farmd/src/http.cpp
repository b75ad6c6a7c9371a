// farmd's HTTP endpoint: Boost.Beast on one thread of its own (http.hpp says
// what a request may be and what it gets otherwise).
#include "farmd/http.hpp"

#include <atomic>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <stdexcept>
#include <thread>

#include "farmd/config.hpp"

namespace farmd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
  // Destroyed in reverse: the thread (joined before), the acceptor, then the
  // io_context, whose pending handlers release the last sessions, which count
  // themselves out of `open`, so `open` (and what handlers use) goes last.
  std::atomic<size_t> open{0};
  HttpLimits limits;
  std::map<std::string, HttpHandler> routes;
  std::function<void(const std::string&)> log;
  uint16_t port = 0;
  std::string address;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;

  void accept();
  void say(const std::string& m) {
    if (log) log(m);
  }
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket s, HttpServer::Impl& srv) : stream_(std::move(s)), srv_(srv) { ++srv_.open; }
  ~Session() { --srv_.open; }

  void read() {
    parser_.emplace();
    parser_->header_limit(HttpServer::kMaxHeaderBytes);
    parser_->body_limit(0);
    stream_.expires_after(srv_.limits.read_timeout);
    bhttp::async_read(stream_, buf_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof)
      return close();
    if (ec == bhttp::error::header_limit) return reply_error(431, "request header fields too large");
    if (ec == bhttp::error::body_limit || ec == bhttp::error::unexpected_body)
      return reply_error(413, "a request with a body is not accepted here");
    if (ec) return reply_error(400, "bad request: " + ec.message());
    const auto& req = parser_->get();
    HttpResponse r = handle(req);
    send(std::move(r), req.method() == bhttp::verb::head, req.keep_alive());
  }

  HttpResponse handle(const bhttp::request<bhttp::empty_body>& req) {
    HttpResponse r;
    if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
      r.status = 405;
      r.body = "method not allowed: only GET and HEAD\n";
      r.headers["Allow"] = "GET, HEAD";
      return r;
    }
    const std::string target(req.target());
    if (target.empty() || target.front() != '/' || target.size() > HttpServer::kMaxTargetBytes ||
        target.find('#') != std::string::npos) {
      r.status = 400;
      r.body = "bad request target: it must be a path (\"/metrics\"), at most " +
               std::to_string(HttpServer::kMaxTargetBytes) + " bytes\n";
      return r;
    }
    HttpRequest hr;
    const auto q = target.find('?');
    hr.path = target.substr(0, q);
    if (q != std::string::npos) hr.query = target.substr(q + 1);
    const auto it = srv_.routes.find(hr.path);
    if (it == srv_.routes.end()) {
      r.status = 404;
      r.body = "not found: " + hr.path.substr(0, 200) + "\n";
      return r;
    }
    try {
      return it->second(hr);
    } catch (const std::exception& e) {
      srv_.say("http: " + hr.path + ": " + e.what());
      r.status = 500;
      r.body = "internal error (see farmd's log)\n";
      return r;
    }
  }

  void reply_error(unsigned status, std::string why) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(why) + "\n";
    send(std::move(r), false, false);
  }

  void send(HttpResponse r, bool head, bool keep_alive) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->version(11);
    res->result(bhttp::int_to_status(r.status));
    res->set(bhttp::field::content_type, r.content_type);
    res->set(bhttp::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    for (const auto& [k, v] : r.headers) res->set(k, v);
    res->keep_alive(keep_alive);
    const size_t n = r.body.size();
    if (!head) res->body() = std::move(r.body);
    res->content_length(n);
    stream_.expires_after(srv_.limits.read_timeout);
    bhttp::async_write(stream_, *res, [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
      if (ec || !keep_alive) return self->close();
      self->read();
    });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& srv_;
  beast::flat_buffer buf_{HttpServer::kMaxHeaderBytes};
  std::optional<bhttp::request_parser<bhttp::empty_body>> parser_;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      if (open.load() >= limits.max_connections) {
        beast::error_code ignore;
        s.close(ignore);  // over the limit: closed at once
      } else {
        std::make_shared<Session>(std::move(s), *this)->read();
      }
    }
    accept();
  });
}

HttpServer::HttpServer(const std::string& listen, std::map<std::string, HttpHandler> routes,
                       std::function<void(const std::string&)> log, HttpLimits limits)
    : impl_(std::make_unique<Impl>()) {
  impl_->limits = limits;
  const ListenAddress la = parse_listen(listen);  // std::invalid_argument with the reason
  std::string host = la.host;
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  impl_->routes = std::move(routes);
  impl_->log = std::move(log);
  auto fail = [&](const std::string& why) {
    return std::runtime_error("cannot listen for HTTP on " + listen + ": " + why);
  };
  beast::error_code ec;
  tcp::resolver res(impl_->ioc);
  auto eps = res.resolve(host, std::to_string(la.port), tcp::resolver::numeric_service | tcp::resolver::passive, ec);
  if (ec || eps.empty()) throw fail("cannot resolve " + host + (ec ? ": " + ec.message() : ""));
  const tcp::endpoint ep = eps.begin()->endpoint();
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw fail(ec.message());
  const tcp::endpoint bound = a.local_endpoint();
  impl_->port = bound.port();
  impl_->address = (bound.address().is_v6() ? "[" + bound.address().to_string() + "]" : bound.address().to_string()) +
                   ":" + std::to_string(impl_->port);
  impl_->accept();
  impl_->thread = std::thread([i = impl_.get()] { i->ioc.run(); });
}

HttpServer::~HttpServer() {
  asio::post(impl_->ioc, [i = impl_.get()] {
    beast::error_code ec;
    i->acceptor.close(ec);
  });
  impl_->ioc.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint16_t HttpServer::port() const { return impl_->port; }
std::string HttpServer::address() const { return impl_->address; }

}  // namespace farmd
