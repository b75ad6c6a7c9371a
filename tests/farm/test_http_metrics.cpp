// farmd's HTTP endpoint (farmd/http.hpp), its Prometheus exposition
// (farmd/metrics.hpp) and the live page's renderer (farmd/web_page.hpp),
// each on its own: a server on 127.0.0.1 with a port it picks, raw requests
// written by hand (the hostile ones a library client would not send), the
// exposition parsed by the text format's rules.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "farmd/farm.hpp"
#include "farmd/http.hpp"
#include "prom_parse.hpp"
#include "farmd/metrics.hpp"
#include "farmd/web_page.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct Conn {
  asio::io_context ioc;
  tcp::socket s{ioc};
  explicit Conn(uint16_t port) { s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port)); }
  void send(const std::string& bytes) { asio::write(s, asio::buffer(bytes)); }
  // Everything until the server closes (or `limit` bytes).
  std::string read_all(size_t limit = 1 << 20) {
    std::string out;
    char buf[4096];
    boost::system::error_code ec;
    while (out.size() < limit) {
      const size_t n = s.read_some(asio::buffer(buf), ec);
      if (ec) break;
      out.append(buf, n);
    }
    return out;
  }
  // One response of a keep-alive connection: the header block and Content-Length bytes.
  std::string read_response() {
    asio::streambuf sb;
    boost::system::error_code ec;
    asio::read_until(s, sb, "\r\n\r\n", ec);
    if (ec) return "";
    std::string all{asio::buffers_begin(sb.data()), asio::buffers_end(sb.data())};
    const size_t end = all.find("\r\n\r\n") + 4;
    std::smatch m;
    const std::string head = all.substr(0, end);
    size_t len = 0;
    if (std::regex_search(head, m, std::regex("Content-Length: (\\d+)", std::regex::icase))) len = std::stoul(m[1]);
    std::string body = all.substr(end);
    while (body.size() < len) {
      char buf[4096];
      const size_t n = s.read_some(asio::buffer(buf, std::min(sizeof buf, len - body.size())), ec);
      if (ec) break;
      body.append(buf, n);
    }
    return head + body;
  }
};

int status_of(const std::string& response) {
  std::smatch m;
  if (!std::regex_search(response, m, std::regex("^HTTP/1\\.1 (\\d{3}) "))) return -1;
  return std::stoi(m[1]);
}

std::string body_of(const std::string& response) {
  const size_t p = response.find("\r\n\r\n");
  return p == std::string::npos ? "" : response.substr(p + 4);
}

std::string get(uint16_t port, const std::string& request) {
  Conn c(port);
  c.send(request);
  return c.read_all();
}

struct Served {
  std::vector<std::string> logged;
  std::mutex mu;
  std::string last_query;
  std::unique_ptr<farmd::HttpServer> srv;
  explicit Served(farmd::HttpLimits limits = farmd::HttpLimits()) {
    std::map<std::string, farmd::HttpHandler> routes;
    routes["/metrics"] = [this](const farmd::HttpRequest& r) {
      std::lock_guard lk(mu);
      last_query = r.query;
      farmd::HttpResponse res;
      res.body = "m 1\n";
      return res;
    };
    routes["/"] = [](const farmd::HttpRequest&) {
      farmd::HttpResponse res;
      res.content_type = "text/html; charset=utf-8";
      res.body = "<html>page</html>";
      res.headers["Refresh"] = "5";
      return res;
    };
    routes["/boom"] = [](const farmd::HttpRequest&) -> farmd::HttpResponse {
      throw std::runtime_error("secret detail");
    };
    srv = std::make_unique<farmd::HttpServer>(
        "127.0.0.1:0", routes,
        [this](const std::string& m) {
          std::lock_guard lk(mu);
          logged.push_back(m);
        },
        limits);
  }
  uint16_t port() const { return srv->port(); }
};

TEST(HttpServer, ServesItsRoutesWithGetAndHead) {
  Served s;
  EXPECT_EQ(s.srv->address(), "127.0.0.1:" + std::to_string(s.port()));
  const std::string r = get(s.port(), "GET /metrics?name=x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "m 1\n");
  EXPECT_NE(r.find("Cache-Control: no-store"), std::string::npos) << r;
  {
    std::lock_guard lk(s.mu);
    EXPECT_EQ(s.last_query, "name=x");
  }
  const std::string page = get(s.port(), "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(page), 200);
  EXPECT_NE(page.find("Content-Type: text/html; charset=utf-8"), std::string::npos) << page;
  EXPECT_NE(page.find("Refresh: 5"), std::string::npos) << page;
  const std::string head = get(s.port(), "HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(head), 200);
  EXPECT_NE(head.find("Content-Length: 17"), std::string::npos) << head;
  EXPECT_EQ(body_of(head), "");
}

TEST(HttpServer, KeepAliveServesSeveralRequestsOnOneConnection) {
  Served s;
  Conn c(s.port());
  for (int i = 0; i < 3; ++i) {
    c.send("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
    const std::string r = c.read_response();
    EXPECT_EQ(status_of(r), 200) << i << ": " << r;
    EXPECT_EQ(body_of(r), "m 1\n");
  }
}

TEST(HttpServer, RefusesWhatItDoesNotServeWithTheReason) {
  Served s;
  const uint16_t p = s.port();
  const std::string nf = get(p, "GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(nf), 404);
  EXPECT_NE(body_of(nf).find("not found: /nope"), std::string::npos);
  const std::string post = get(p, "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(post), 405) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD"), std::string::npos) << post;
  const std::string body = get(p, "GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(status_of(body), 413) << body;
  const std::string big = get(p, "GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(10000, 'a') + "\r\n\r\n");
  EXPECT_EQ(status_of(big), 431) << big.substr(0, 200);
  const std::string absolute = get(p, "GET http://a/metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(absolute), 400) << absolute;
  const std::string longt =
      get(p, "GET /" + std::string(3000, 'x') + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(longt), 400) << longt.substr(0, 200);
  const std::string garbage = get(p, "\x01\x02 not http\r\n\r\n");
  EXPECT_EQ(status_of(garbage), 400) << garbage;
}

TEST(HttpServer, AHandlerThatThrowsGives500WithoutItsDetail) {
  Served s;
  const std::string r = get(s.port(), "GET /boom HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(r), 500);
  EXPECT_EQ(r.find("secret detail"), std::string::npos) << r;
  std::lock_guard lk(s.mu);
  ASSERT_EQ(s.logged.size(), 1u);
  EXPECT_NE(s.logged[0].find("/boom: secret detail"), std::string::npos) << s.logged[0];
}

TEST(HttpServer, ClosesAConnectionThatSendsNothing) {
  farmd::HttpLimits l;
  l.read_timeout = std::chrono::milliseconds(200);
  Served s(l);
  Conn c(s.port());
  c.send("GET /metr");  // never finished
  EXPECT_EQ(c.read_all(), "");  // closed by the server (a hang here is the failure: ctest's timeout)
}

TEST(HttpServer, AcceptsNoMoreThanItsConnectionLimit) {
  farmd::HttpLimits l;
  l.max_connections = 2;
  Served s(l);
  Conn a(s.port()), b(s.port());
  // a and b are sessions once the server has accepted them: a request on each proves it.
  a.send("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
  b.send("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(status_of(a.read_response()), 200);
  EXPECT_EQ(status_of(b.read_response()), 200);
  Conn third(s.port());
  third.send("GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(third.read_all(), "");  // accepted and closed at once
  a.send("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");  // the first two still work
  EXPECT_EQ(status_of(a.read_response()), 200);
}

TEST(HttpServer, BadListenAddressesAreRefusedWithTheReason) {
  std::map<std::string, farmd::HttpHandler> none;
  try {
    farmd::HttpServer bad("nonsense", none);
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("expected HOST:PORT"), std::string::npos) << e.what();
  }
  farmd::HttpServer first("127.0.0.1:0", none);
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());
  try {
    farmd::HttpServer second(taken, none);
    FAIL() << "two servers on " << taken;
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen for HTTP on " + taken), std::string::npos) << e.what();
  }
  // (No unresolvable name here: resolving one would ask a DNS server.)
  try {
    farmd::HttpServer range("127.0.0.1:99999", none);
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("the port must be a number in 0-65535"), std::string::npos) << e.what();
  }
}

// ---- the exposition, by the text format's rules ----

using farmtest::Exposition;
using farmtest::parse;
using farmtest::Sample;

std::vector<Sample> of(const Exposition& e, const std::string& name) { return farmtest::samples_of(e, name); }

TEST(FarmMetrics, ExpositionFollowsTheTextFormatAndPrometheusNaming) {
  farmd::MetricsSnapshot snap;
  snap.queue = {{"arch=riscv64,kind=qemu-user", 3}, {"arch=x86_64", 1}};
  snap.jobs_by_state = {{"queued", 4}, {"running", 1}, {"passed", 7}};
  snap.workers = {{"rv-1", "north", "healthy", 1764640000000},
                  {"x86 \"quoted\"\n", "", "quarantined", 1764640001500}};
  farmd::FarmMetrics m([&] { return snap; });
  m.job_submitted();
  m.job_submitted();
  m.job_leased(0.003);
  m.job_leased(42);
  m.attempt_ended("pass", 12.5);
  m.attempt_ended("lost", 0.2);
  m.lease_expired();
  m.job_requeued("lost");
  const Exposition e = parse(m.exposition());

  const std::map<std::string, std::string> want_types{
      {"farm_jobs_submitted_total", "counter"},   {"farm_queue_wait_seconds", "histogram"},
      {"farm_attempt_run_seconds", "histogram"},  {"farm_attempts_total", "counter"},
      {"farm_lease_expiries_total", "counter"},   {"farm_requeues_total", "counter"},
      {"farm_queue_depth", "gauge"},              {"farm_jobs", "gauge"},
      {"farm_workers", "gauge"},                  {"farm_worker_last_seen_timestamp_seconds", "gauge"}};
  for (const auto& [n, t] : want_types) {
    EXPECT_EQ(e.type.count(n) ? e.type.at(n) : "(missing)", t) << n;
    EXPECT_FALSE(e.help.count(n) ? e.help.at(n).empty() : true) << n << " has no HELP";
    if (t == "counter") {
      EXPECT_TRUE(n.size() > 6 && n.substr(n.size() - 6) == "_total") << n;
    }
  }
  for (const auto& s : e.samples) EXPECT_EQ(s.name.rfind("farm_", 0), 0u) << s.name;

  EXPECT_EQ(of(e, "farm_jobs_submitted_total").at(0).value, 2);
  EXPECT_EQ(of(e, "farm_lease_expiries_total").at(0).value, 1);
  auto rq = of(e, "farm_requeues_total");
  ASSERT_EQ(rq.size(), 1u);
  EXPECT_EQ(rq[0].labels["reason"], "lost");
  // The queue-wait histogram: cumulative buckets, +Inf = _count, _sum the total.
  auto buckets = of(e, "farm_queue_wait_seconds_bucket");
  ASSERT_EQ(buckets.size(), farmd::FarmMetrics::queue_wait_buckets().size() + 1);
  double prev = 0;
  for (const auto& b : buckets) {
    EXPECT_GE(b.value, prev) << b.labels.at("le");
    prev = b.value;
  }
  EXPECT_EQ(buckets.back().labels.at("le"), "+Inf");
  EXPECT_EQ(buckets.back().value, 2);
  EXPECT_EQ(of(e, "farm_queue_wait_seconds_count").at(0).value, 2);
  EXPECT_NEAR(of(e, "farm_queue_wait_seconds_sum").at(0).value, 42.003, 1e-9);
  for (const auto& b : buckets) {
    if (b.labels.at("le") == "0.005") {
      EXPECT_EQ(b.value, 1);
    }
  }
  std::set<std::string> outcomes;
  for (const auto& s : of(e, "farm_attempt_run_seconds_count")) outcomes.insert(s.labels.at("outcome"));
  EXPECT_EQ(outcomes, (std::set<std::string>{"pass", "lost"}));
  // The snapshot's gauges.
  std::map<std::string, double> q;
  for (const auto& s : of(e, "farm_queue_depth")) q[s.labels.at("selector")] = s.value;
  EXPECT_EQ(q, (std::map<std::string, double>{{"arch=riscv64,kind=qemu-user", 3}, {"arch=x86_64", 1}}));
  std::map<std::string, double> w;
  for (const auto& s : of(e, "farm_workers")) w[s.labels.at("health")] = s.value;
  EXPECT_EQ(w, (std::map<std::string, double>{{"healthy", 1}, {"offline", 0}, {"quarantined", 1}}));
  auto seen = of(e, "farm_worker_last_seen_timestamp_seconds");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].labels.at("worker"), "x86 \"quoted\"\n");  // escaped on the wire, whole after parsing
  EXPECT_NEAR(seen[1].value, 1764640001.5, 1e-3);
  EXPECT_EQ(seen[0].labels.at("lab"), "north");
}

// ---- the page ----

TEST(WebPage, EscapesEverythingTheFarmWasSent) {
  farmd::WebSnapshot s;
  s.farm_name = "127.0.0.1:7443";
  s.now_ms = 1764640000000;
  farmd::WebSnapshot::Worker w;
  w.name = "<img src=x onerror=alert(1)>";
  w.health = "healthy";
  w.labels = {"lab=\"north\""};
  w.current_jobs = {"job-1: a&b"};
  w.last_seen_ms = s.now_ms - 3000;
  s.workers.push_back(w);
  farmd::WebSnapshot::Job j;
  j.id = "job-2";
  j.name = "<script>alert(1)</script>";
  j.state = "failed";
  j.log_tail = "line\n</pre><script>x()</script>";
  j.finished_ms = s.now_ms - 90000;
  s.recent.push_back(j);
  const std::string html = farmd::render_web_page(s);
  EXPECT_EQ(html.find("<script"), std::string::npos) << html;
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("lab=&quot;north&quot;"), std::string::npos);
  EXPECT_NE(html.find("job-1: a&amp;b"), std::string::npos);
  EXPECT_NE(html.find("3 s ago"), std::string::npos);
  EXPECT_NE(html.find("90 s ago"), std::string::npos);
  EXPECT_NE(html.find("<meta http-equiv=\"refresh\" content=\"5\">"), std::string::npos);
  EXPECT_NE(html.find("the queue is empty"), std::string::npos);
  EXPECT_NE(html.find("no conformance run yet"), std::string::npos);
}

TEST(WebPage, AgoNamesItsUnit) {
  EXPECT_EQ(farmd::ago(100000, 0), "never");
  EXPECT_EQ(farmd::ago(100000, 99000), "1 s");
  EXPECT_EQ(farmd::ago(10'000'000, 10'000'000 - 600'000), "10 min");
  EXPECT_EQ(farmd::ago(100'000'000, 100'000'000 - 3 * 3'600'000), "3 h");
  EXPECT_EQ(farmd::ago(1'000'000'000, 1'000'000'000 - 5 * 86'400'000), "5 d");
}

}  // namespace

// farm_queue_depth's label: one line per selector, the same for the same
// selector whatever the order its labels were given in, bounded.
TEST(FarmMetrics, SelectorTextIsDeterministicAndBounded) {
  farm::v1::TargetSelector s;
  EXPECT_EQ(farmd::selector_text(s), "any");
  s.set_arch("riscv64");
  s.set_kind("qemu-user");
  (*s.mutable_labels())["zone"] = "b";
  (*s.mutable_labels())["lab"] = "north";
  EXPECT_EQ(farmd::selector_text(s), "arch=riscv64,kind=qemu-user,labels.lab=north,labels.zone=b");
  farm::v1::TargetSelector t;
  (*t.mutable_labels())["lab"] = "north";
  (*t.mutable_labels())["zone"] = "b";
  t.set_kind("qemu-user");
  t.set_arch("riscv64");
  EXPECT_EQ(farmd::selector_text(t), farmd::selector_text(s));
  s.set_isa("rv64gc");
  s.set_min_cores(4);
  s.set_worker_id("w1");
  EXPECT_EQ(farmd::selector_text(s),
            "arch=riscv64,isa=rv64gc,kind=qemu-user,labels.lab=north,labels.zone=b,min_cores=4,worker=w1");
  (*s.mutable_labels())["long"] = std::string(500, 'x');
  const std::string long_text = farmd::selector_text(s);
  EXPECT_EQ(long_text.size(), farmd::kSelectorTextMax);
  EXPECT_EQ(long_text.substr(long_text.size() - 3), "...");
}
