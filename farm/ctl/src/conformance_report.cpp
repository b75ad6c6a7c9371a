// Conformance reports: JSON, JUnit XML, a self-contained HTML page (inline
// CSS, JS and SVG; no external assets) and the terminal matrix.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "conformance.hpp"
#include "farm/common/result.hpp"
#include "farm/common/util.hpp"
#include "farm/ctl/text.hpp"

namespace farm::conformance {

namespace fs = std::filesystem;

namespace {

std::string esc(std::string_view s) {  // XML/HTML text and attribute values
  std::string o;
  o.reserve(s.size());
  for (unsigned char ch : s) {
    switch (ch) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default:
        // XML 1.0 forbids most control characters, even escaped.
        if (ch < 0x20 && ch != '\n' && ch != '\t' && ch != '\r') o += "?";
        else o += static_cast<char>(ch);
    }
  }
  return o;
}

std::string fmt(double d, const char* f = "%.2f") {
  char b[64];
  std::snprintf(b, sizeof b, f, d);
  return b;
}

using farm::ctl::human;  // one rule for farmctl's numbers (farm/ctl/text.hpp)

std::string iso_time(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t t = ms / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return b;
}

// JUnit's timestamp: ISO 8601 without a zone (UTC here).
std::string junit_time(int64_t ms) {
  std::time_t t = (ms > 0 ? ms : 0) / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  return b;
}

// Numbers shown for a cell: batches for patch-stress, toggles for bare metal.
std::string toggles_of(const Cell& c) {
  if (c.toggles) return human(c.toggles) + " toggles";
  if (c.batches) return human(c.batches);
  return "-";
}

double jnum(const json& j, const char* k) {
  return j.is_object() && j.contains(k) && j[k].is_number() ? j[k].get<double>() : NAN;
}

json target_json(const Target& t) {
  return {{"name", t.name}, {"arch", t.arch}, {"isa", t.isa}, {"kind", t.kind}, {"workload", t.workload},
          {"syncs", t.syncs}, {"binary", t.binary}, {"image", t.image}, {"emulator", t.emulator}, {"emulator_cpu", t.emulator_cpu},
          {"bench_dir", t.bench_dir}, {"available", t.available}, {"why", t.why}, {"board", t.board},
          {"board_file", t.board_file}, {"labels", t.labels}, {"note", t.note}, {"sync_notes", t.sync_notes},
          {"writer_notes", t.writer_notes}};
}

template <class T>
T get(const json& j, const char* k, T def) {
  if (!j.is_object() || !j.contains(k) || j[k].is_null()) return def;
  try {
    return j[k].get<T>();
  } catch (...) {
    return def;
  }
}

struct Counts {
  size_t total = 0;
  std::map<Status, size_t> by;
};
Counts count(const std::vector<Cell>& cells, const std::string& target = "") {
  Counts c;
  for (const auto& x : cells)
    if (target.empty() || x.target == target) {
      ++c.total;
      ++c.by[x.status];
    }
  return c;
}

// The distinct cell notes, numbered in order of appearance ([1], [2], ...).
std::vector<std::string> cell_notes(const RunReport& r) {
  std::vector<std::string> v;
  for (const auto& c : r.cells)
    if (!c.note.empty() && c.status != Status::not_available && std::find(v.begin(), v.end(), c.note) == v.end())
      v.push_back(c.note);
  return v;
}
size_t note_number(const std::vector<std::string>& notes, const std::string& n) {
  return static_cast<size_t>(std::find(notes.begin(), notes.end(), n) - notes.begin()) + 1;
}

std::vector<std::string> target_order(const RunReport& r) {
  std::vector<std::string> v;
  for (const auto& t : r.targets) v.push_back(t.name);
  for (const auto& c : r.cells)
    if (std::find(v.begin(), v.end(), c.target) == v.end()) v.push_back(c.target);
  return v;
}

}  // namespace

// ---------------------------------------------------------------- JSON

json report_json(const RunReport& r) {
  json j;
  j["schema"] = "libpatch-conformance/1";
  j["run_id"] = r.run_id;
  j["mode"] = r.mode;
  j["host"] = r.host;
  j["db"] = r.db;
  j["started_ms"] = r.started_ms;
  j["finished_ms"] = r.finished_ms;
  j["require_all"] = r.require_all;
  j["ok"] = r.ok();
  j["failures"] = r.failures();
  const auto& o = r.options;
  j["options"] = {{"threads", o.threads},     {"functions", o.functions},           {"batches", o.batches},
                  {"signal_batches", o.signal_batches}, {"bm_toggles", o.bm_toggles}, {"smp", o.smp},
                  {"seed", o.seed},           {"timeout_s", o.timeout_s},           {"writers", o.writers},
                  {"kinds", o.kinds},         {"body_kinds", o.body_kinds},         {"exit_kinds", o.exit_kinds},
                  {"board_batches", o.board_batches}, {"board_signal_batches", o.board_signal_batches},
                  {"board_procmem_batches", o.board_procmem_batches}};
  auto cnt = count(r.cells);
  json s{{"total", cnt.total}};
  for (Status st : {Status::pass, Status::fail, Status::unsupported, Status::not_available, Status::timeout,
                    Status::error, Status::cancelled, Status::pending})
    s[std::string(status_name(st))] = cnt.by.count(st) ? cnt.by.at(st) : 0;
  j["summary"] = s;
  j["targets"] = json::array();
  for (const auto& t : r.targets) j["targets"].push_back(target_json(t));
  j["cells"] = json::array();
  for (const auto& c : r.cells) {
    json cj{{"target", c.target},   {"test", c.test},         {"status", status_name(c.status)},
            {"failed", r.cell_failed(c)},
            {"message", c.message}, {"job_id", c.job_id},     {"worker", c.worker},
            {"attempts", c.attempts}, {"seed", c.seed},       {"calls", c.calls},
            {"hits", c.hits},       {"batches", c.batches},   {"toggles", c.toggles},
            {"syncs", c.syncs},     {"seconds", c.seconds},   {"result_json", c.result_json},
            {"log_tail", c.log_tail}, {"note", c.note}};
    auto parsed = json::parse(c.result_json.empty() ? "null" : c.result_json, nullptr, false);
    cj["result"] = parsed.is_discarded() ? json() : parsed;
    cj["spec"] = json::parse(farm::to_json(c.spec), nullptr, false);
    j["cells"].push_back(std::move(cj));
  }
  j["benches"] = json::array();
  for (const auto& b : r.benches)
    j["benches"].push_back({{"target", b.target}, {"bench", b.bench}, {"available", b.available}, {"ok", b.ok},
                            {"partial", b.partial}, {"seconds", b.seconds}, {"message", b.message},
                            {"lines", b.lines}});
  j["history"] = json::array();
  for (const auto& h : r.history)
    j["history"].push_back({{"run_id", h.run_id}, {"started_ms", h.started_ms}, {"total", h.total},
                            {"passed", h.passed}, {"failed", h.failed}, {"unsupported", h.unsupported},
                            {"other", h.other}, {"seconds", h.seconds}});
  return j;
}

RunReport report_from_json(const json& j) {
  RunReport r;
  r.run_id = get<std::string>(j, "run_id", "");
  r.mode = get<std::string>(j, "mode", "");
  r.host = get<std::string>(j, "host", "");
  r.db = get<std::string>(j, "db", "");
  r.started_ms = get<int64_t>(j, "started_ms", 0);
  r.finished_ms = get<int64_t>(j, "finished_ms", 0);
  r.require_all = get<bool>(j, "require_all", false);
  if (j.contains("options")) {
    const auto& o = j["options"];
    auto& m = r.options;
    m.threads = get<uint32_t>(o, "threads", m.threads);
    m.functions = get<uint32_t>(o, "functions", m.functions);
    m.batches = get<uint64_t>(o, "batches", m.batches);
    m.signal_batches = get<uint64_t>(o, "signal_batches", m.signal_batches);
    m.bm_toggles = get<uint64_t>(o, "bm_toggles", m.bm_toggles);
    m.smp = get<uint32_t>(o, "smp", m.smp);
    m.seed = get<uint64_t>(o, "seed", m.seed);
    m.timeout_s = get<uint32_t>(o, "timeout_s", m.timeout_s);
    m.writers = get<std::vector<std::string>>(o, "writers", m.writers);
    m.kinds = get<std::vector<std::string>>(o, "kinds", m.kinds);
    m.body_kinds = get<std::vector<std::string>>(o, "body_kinds", m.body_kinds);
    m.exit_kinds = get<std::vector<std::string>>(o, "exit_kinds", m.exit_kinds);
    m.board_batches = get<uint64_t>(o, "board_batches", m.board_batches);
    m.board_signal_batches = get<uint64_t>(o, "board_signal_batches", m.board_signal_batches);
    m.board_procmem_batches = get<uint64_t>(o, "board_procmem_batches", m.board_procmem_batches);
  }
  for (const auto& t : j.value("targets", json::array())) {
    Target x;
    x.name = get<std::string>(t, "name", "");
    x.arch = get<std::string>(t, "arch", "");
    x.isa = get<std::string>(t, "isa", "");
    x.kind = get<std::string>(t, "kind", "");
    x.workload = get<std::string>(t, "workload", "");
    x.syncs = get<std::vector<std::string>>(t, "syncs", {});
    x.binary = get<std::string>(t, "binary", "");
    x.image = get<std::string>(t, "image", "");
    x.emulator = get<std::string>(t, "emulator", "");
    x.emulator_cpu = get<std::string>(t, "emulator_cpu", "");
    x.bench_dir = get<std::string>(t, "bench_dir", "");
    x.available = get<bool>(t, "available", true);
    x.why = get<std::string>(t, "why", "");
    x.board = get<std::string>(t, "board", "");
    x.board_file = get<std::string>(t, "board_file", "");
    x.labels = get<std::map<std::string, std::string>>(t, "labels", {});
    x.note = get<std::string>(t, "note", "");
    x.sync_notes = get<std::map<std::string, std::string>>(t, "sync_notes", {});
    x.writer_notes = get<std::map<std::string, std::string>>(t, "writer_notes", {});
    r.targets.push_back(std::move(x));
  }
  for (const auto& c : j.value("cells", json::array())) {
    Cell x;
    x.target = get<std::string>(c, "target", "");
    x.test = get<std::string>(c, "test", "");
    x.status = parse_status(get<std::string>(c, "status", "pending")).value_or(Status::pending);
    x.message = get<std::string>(c, "message", "");
    x.job_id = get<std::string>(c, "job_id", "");
    x.worker = get<std::string>(c, "worker", "");
    x.attempts = get<uint32_t>(c, "attempts", 0);
    x.seed = get<uint64_t>(c, "seed", 0);
    x.calls = get<uint64_t>(c, "calls", 0);
    x.hits = get<uint64_t>(c, "hits", 0);
    x.batches = get<uint64_t>(c, "batches", 0);
    x.toggles = get<uint64_t>(c, "toggles", 0);
    x.syncs = get<uint64_t>(c, "syncs", 0);
    x.seconds = get<double>(c, "seconds", 0);
    x.result_json = get<std::string>(c, "result_json", "");
    x.log_tail = get<std::string>(c, "log_tail", "");
    x.note = get<std::string>(c, "note", "");
    if (c.contains("spec") && c["spec"].is_object()) farm::from_json(c["spec"].dump(), &x.spec);
    r.cells.push_back(std::move(x));
  }
  for (const auto& b : j.value("benches", json::array())) {
    BenchRun x;
    x.target = get<std::string>(b, "target", "");
    x.bench = get<std::string>(b, "bench", "");
    x.available = get<bool>(b, "available", true);
    x.ok = get<bool>(b, "ok", false);
    x.partial = get<bool>(b, "partial", false);
    x.seconds = get<double>(b, "seconds", 0);
    x.message = get<std::string>(b, "message", "");
    if (b.contains("lines") && b["lines"].is_array())
      for (const auto& l : b["lines"]) x.lines.push_back(l);
    r.benches.push_back(std::move(x));
  }
  for (const auto& h : j.value("history", json::array())) {
    HistoryRun x;
    x.run_id = get<std::string>(h, "run_id", "");
    x.started_ms = get<int64_t>(h, "started_ms", 0);
    x.total = get<uint32_t>(h, "total", 0);
    x.passed = get<uint32_t>(h, "passed", 0);
    x.failed = get<uint32_t>(h, "failed", 0);
    x.unsupported = get<uint32_t>(h, "unsupported", 0);
    x.other = get<uint32_t>(h, "other", 0);
    x.seconds = get<double>(h, "seconds", 0);
    r.history.push_back(std::move(x));
  }
  return r;
}

// ---------------------------------------------------------------- JUnit

std::string report_junit(const RunReport& r) {
  std::ostringstream x;
  auto cnt = count(r.cells);
  size_t failures = 0, errors = 0, skipped = 0, tests = r.cells.size() + r.benches.size();
  double total_time = 0;
  auto kind_of = [&](const Cell& c) -> int {  // 0 pass, 1 failure, 2 error, 3 skipped
    switch (c.status) {
      case Status::pass: return 0;
      case Status::fail:
      case Status::timeout: return 1;
      case Status::unsupported:
      case Status::not_available: return r.require_all ? 1 : 3;
      default: return 2;
    }
  };
  for (const auto& c : r.cells) {
    int k = kind_of(c);
    failures += k == 1;
    errors += k == 2;
    skipped += k == 3;
    total_time += c.seconds;
  }
  for (const auto& b : r.benches) {
    if (r.bench_failed(b)) ++failures;
    else if (!b.available) ++skipped;
    total_time += b.seconds;
  }
  (void)cnt;
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x << "<testsuites name=\"libpatch-conformance\" tests=\"" << tests << "\" failures=\"" << failures
    << "\" errors=\"" << errors << "\" skipped=\"" << skipped << "\" time=\"" << fmt(total_time, "%.3f") << "\">\n";
  for (const auto& t : target_order(r)) {
    std::vector<const Cell*> cs;
    for (const auto& c : r.cells)
      if (c.target == t) cs.push_back(&c);
    if (cs.empty()) continue;
    size_t f = 0, e = 0, s = 0;
    double tt = 0;
    for (auto* c : cs) {
      int k = kind_of(*c);
      f += k == 1;
      e += k == 2;
      s += k == 3;
      tt += c->seconds;
    }
    x << "  <testsuite name=\"" << esc(t) << "\" tests=\"" << cs.size() << "\" failures=\"" << f << "\" errors=\""
      << e << "\" skipped=\"" << s << "\" time=\"" << fmt(tt, "%.3f") << "\" timestamp=\""
      << esc(junit_time(r.started_ms)) << "\" hostname=\"" << esc(r.host) << "\">\n";
    for (auto* c : cs) {
      x << "    <testcase classname=\"conformance." << esc(t) << "\" name=\"" << esc(c->test) << "\" time=\""
        << fmt(c->seconds, "%.3f") << "\">\n";
      x << "      <properties>\n";
      auto prop = [&](const char* n, const std::string& v) {
        x << "        <property name=\"" << n << "\" value=\"" << esc(v) << "\"/>\n";
      };
      prop("status", std::string(status_name(c->status)));
      if (!c->job_id.empty()) prop("job_id", c->job_id);
      if (!c->worker.empty()) prop("worker", c->worker);
      prop("seed", std::to_string(c->seed));
      prop("attempts", std::to_string(c->attempts));
      prop("calls", std::to_string(c->calls));
      prop("hits", std::to_string(c->hits));
      prop("batches", std::to_string(c->batches));
      if (c->toggles) prop("toggles", std::to_string(c->toggles));
      if (!c->note.empty()) prop("note", c->note);
      x << "      </properties>\n";
      std::string msg = std::string(status_name(c->status)) + (c->message.empty() ? "" : ": " + c->message);
      switch (kind_of(*c)) {
        case 1:
          x << "      <failure type=\"" << status_name(c->status) << "\" message=\"" << esc(msg) << "\">"
            << esc(c->log_tail) << "</failure>\n";
          break;
        case 2:
          x << "      <error type=\"" << status_name(c->status) << "\" message=\"" << esc(msg) << "\">"
            << esc(c->log_tail) << "</error>\n";
          break;
        case 3: x << "      <skipped message=\"" << esc(msg) << "\"/>\n"; break;
        default: break;
      }
      if (!c->result_json.empty()) x << "      <system-out>" << esc(c->result_json) << "</system-out>\n";
      x << "    </testcase>\n";
    }
    x << "  </testsuite>\n";
  }
  if (!r.benches.empty()) {
    size_t f = 0, s = 0;
    for (const auto& b : r.benches) {
      f += r.bench_failed(b);
      s += !b.available && !r.bench_failed(b);
    }
    x << "  <testsuite name=\"bench\" tests=\"" << r.benches.size() << "\" failures=\"" << f
      << "\" errors=\"0\" skipped=\"" << s << "\">\n";
    for (const auto& b : r.benches) {
      x << "    <testcase classname=\"conformance.bench." << esc(b.target) << "\" name=\"" << esc(b.bench)
        << "\" time=\"" << fmt(b.seconds, "%.3f") << "\">\n";
      if (r.bench_failed(b))
        x << "      <failure type=\"bench\" message=\"" << esc(b.message) << "\"/>\n";
      else if (!b.available)
        x << "      <skipped message=\"" << esc(b.message) << "\"/>\n";
      std::string lines;
      for (const auto& l : b.lines) lines += l.dump() + "\n";
      if (!lines.empty()) x << "      <system-out>" << esc(lines) << "</system-out>\n";
      x << "    </testcase>\n";
    }
    x << "  </testsuite>\n";
  }
  x << "</testsuites>\n";
  return x.str();
}

// ---------------------------------------------------------------- terminal

std::string matrix_text(const RunReport& r) {
  std::vector<std::vector<std::string>> rows{{"TARGET", "TEST", "RESULT", "CALLS", "HITS", "BATCHES", "TIME", "NOTE"}};
  const auto notes = cell_notes(r);
  for (const auto& c : r.cells) {
    std::string res(status_name(c.status));
    if (r.cell_failed(c)) {
      for (auto& ch : res) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    // The message is the farm's (job messages, workload output): made printable.
    std::string note = farm::ctl::ellipsize(farm::ctl::term_safe(c.message), 70);
    bool ran = c.status != Status::not_available;
    if (ran && !c.note.empty()) note = "[" + std::to_string(note_number(notes, c.note)) + "]" + (note.empty() ? "" : " " + note);
    rows.push_back({c.target, c.test, res, ran && c.calls ? human(c.calls) : "-", ran && c.hits ? human(c.hits) : "-",
                    toggles_of(c), ran && c.seconds > 0 ? fmt(c.seconds, "%.1f") + "s" : "-", note});
  }
  std::vector<size_t> w;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], farm::ctl::display_width(row[i]));
    }
  std::ostringstream o;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      bool right = i >= 3 && i <= 6;
      std::string pad(w[i] - farm::ctl::display_width(row[i]), ' ');
      line += right ? pad + row[i] : row[i] + (i + 1 < row.size() ? pad : "");
      if (i + 1 < row.size()) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    o << line << "\n";
  }
  bool target_notes = false;
  for (const auto& t : r.targets) target_notes = target_notes || (!t.note.empty() && t.available);
  if (!notes.empty() || target_notes) {
    o << "\nnotes:\n";
    for (size_t i = 0; i < notes.size(); ++i) o << "  [" << i + 1 << "] " << farm::ctl::term_safe(notes[i]) << "\n";
    for (const auto& t : r.targets)
      if (!t.note.empty() && t.available) o << "  " << t.name << ": " << farm::ctl::term_safe(t.note) << "\n";
  }
  if (!r.benches.empty()) {
    o << "\nbenchmarks (run by farmctl on this machine):\n";
    for (const auto& b : r.benches) {
      o << "  " << b.target << " " << b.bench << ": ";
      if (!b.available) {
        o << "not available: " << b.message << "\n";
        continue;
      }
      if (!b.ok && b.lines.empty()) {
        o << "FAILED: " << b.message << "\n";
        continue;
      }
      if (b.bench == "probe-hit" && !b.lines.empty()) {
        const auto& l = b.lines.back();
        o << "jump probe " << fmt(jnum(l, "jump_cost_ns")) << " ns, trap probe " << fmt(jnum(l, "trap_cost_ns"))
          << " ns";
        // Call probes (entry + exit) and the Linux uretprobe, when measured.
        if (!std::isnan(jnum(l, "call_jump_cost_ns"))) o << ", entry+exit jump " << fmt(jnum(l, "call_jump_cost_ns")) << " ns";
        if (!std::isnan(jnum(l, "uretprobe_cost_ns"))) o << ", uretprobe " << fmt(jnum(l, "uretprobe_cost_ns")) << " ns";
        o << " over a " << fmt(jnum(l, "plain_ns")) << " ns call";
      } else {
        bool first = true;
        for (const auto& l : b.lines) {
          o << (first ? "" : ", ") << static_cast<uint64_t>(jnum(l, "sites")) << " sites "
            << fmt(jnum(l, "batch_ms"), "%.3f") << " ms";
          first = false;
        }
        o << " per batch commit";
      }
      if (b.partial) o << " (cut at the time budget)";
      o << "\n";
    }
  }
  o << "\n";
  for (const auto& t : target_order(r)) {
    auto c = count(r.cells, t);
    if (!c.total) continue;
    o << "  " << t << ": " << c.by[Status::pass] << "/" << c.total << " passed";
    for (Status st : {Status::fail, Status::timeout, Status::error, Status::cancelled, Status::unsupported,
                      Status::not_available, Status::pending})
      if (c.by[st]) o << ", " << c.by[st] << " " << status_name(st);
    o << "\n";
  }
  auto all = count(r.cells);
  o << (r.ok() ? "PASS" : "FAIL") << ": " << all.by[Status::pass] << "/" << all.total << " passed, " << r.failures()
    << " failure(s)";
  if (all.by[Status::unsupported]) o << ", " << all.by[Status::unsupported] << " unsupported";
  if (all.by[Status::not_available]) o << ", " << all.by[Status::not_available] << " not available";
  if (r.require_all) o << " (--require-all)";
  o << "\n";
  return o.str();
}

// ---------------------------------------------------------------- HTML

namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

double log10c(double v) { return std::log10(std::max(v, 1e-9)); }

// Decades covering [lo, hi] for a log axis.
std::pair<int, int> decades(double lo, double hi) {
  int a = static_cast<int>(std::floor(log10c(lo)));
  int b = static_cast<int>(std::ceil(log10c(hi)));
  if (b <= a) b = a + 1;
  return {a, b};
}

std::string tick_label(int e) {
  double v = std::pow(10.0, e);
  if (e >= 0 && e < 7) return fmt(v, "%.0f");
  if (e < 0 && e > -4) return fmt(v, e == -1 ? "%.1f" : e == -2 ? "%.2f" : "%.3f");
  return "1e" + std::to_string(e);
}

// Probe-hit cost per target: grouped bars (jump, trap), log scale.
std::string svg_probe_hit(const RunReport& r) {
  struct Row { std::string target; double jump, trap, plain; };
  std::vector<Row> rows;
  for (const auto& b : r.benches)
    if (b.bench == "probe-hit" && !b.lines.empty()) {
      const auto& l = b.lines.back();
      rows.push_back({b.target, jnum(l, "jump_cost_ns"), jnum(l, "trap_cost_ns"), jnum(l, "plain_ns")});
    }
  if (rows.empty()) return "<p class=\"muted\">No probe-hit measurements in this run.</p>\n";
  double lo = 1e300, hi = 0;
  for (auto& x : rows)
    for (double v : {x.jump, x.trap, x.plain})
      if (v > 0 && std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (hi <= 0) lo = 0.1, hi = 10;
  auto [d0, d1] = decades(lo, hi);
  const int W = 640, H = 300, L = 60, R = 20, T = 20, B = 50;
  const int pw = W - L - R, ph = H - T - B;
  auto y = [&](double v) { return T + ph - (log10c(v) - d0) / (d1 - d0) * ph; };
  std::ostringstream s;
  s << "<svg id=\"plot-probe-hit\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " << W << " "
    << H << "\" width=\"" << W << "\" height=\"" << H << "\" role=\"img\" aria-label=\"probe-hit cost per target\">\n";
  for (int e = d0; e <= d1; ++e) {
    double yy = y(std::pow(10.0, e));
    s << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << fmt(yy, "%.1f") << "\" y2=\"" << fmt(yy, "%.1f")
      << "\" class=\"grid\"/><text x=\"" << L - 6 << "\" y=\"" << fmt(yy + 4, "%.1f")
      << "\" text-anchor=\"end\" class=\"tick\">" << tick_label(e) << "</text>\n";
  }
  s << "<text x=\"14\" y=\"" << T + ph / 2 << "\" transform=\"rotate(-90 14 " << T + ph / 2
    << ")\" text-anchor=\"middle\" class=\"axis\">ns per hit (log)</text>\n";
  double gw = static_cast<double>(pw) / rows.size();
  double bw = std::min(40.0, gw / 3);
  for (size_t i = 0; i < rows.size(); ++i) {
    double gx = L + gw * i + gw / 2;
    int k = 0;
    for (auto [v, cls, name] : {std::tuple{rows[i].jump, "bar-jump", "jump"}, std::tuple{rows[i].trap, "bar-trap", "trap"}}) {
      double x0 = gx - bw + k * bw;
      ++k;
      if (!(v > 0) || !std::isfinite(v)) continue;
      double yy = y(v), base = T + ph;
      s << "<rect class=\"bar " << cls << "\" x=\"" << fmt(x0, "%.1f") << "\" y=\"" << fmt(yy, "%.1f")
        << "\" width=\"" << fmt(bw - 2, "%.1f") << "\" height=\"" << fmt(std::max(0.0, base - yy), "%.1f")
        << "\"><title>" << esc(rows[i].target) << " " << name << " probe: " << fmt(v) << " ns</title></rect>\n";
      s << "<text x=\"" << fmt(x0 + bw / 2 - 1, "%.1f") << "\" y=\"" << fmt(yy - 3, "%.1f")
        << "\" text-anchor=\"middle\" class=\"val\">" << fmt(v, v < 10 ? "%.1f" : "%.0f") << "</text>\n";
    }
    s << "<text x=\"" << fmt(gx, "%.1f") << "\" y=\"" << T + ph + 18 << "\" text-anchor=\"middle\" class=\"label\">"
      << esc(rows[i].target) << "</text>\n";
  }
  s << "<rect x=\"" << L + 10 << "\" y=\"" << H - 18 << "\" width=\"12\" height=\"12\" class=\"bar-jump\"/><text x=\""
    << L + 26 << "\" y=\"" << H - 8 << "\" class=\"label\">jump probe cost</text>\n";
  s << "<rect x=\"" << L + 160 << "\" y=\"" << H - 18 << "\" width=\"12\" height=\"12\" class=\"bar-trap\"/><text x=\""
    << L + 176 << "\" y=\"" << H - 8 << "\" class=\"label\">trap probe cost</text>\n";
  s << "</svg>\n";
  return s.str();
}

// Commit latency (one batch) vs sites per target, log-log lines.
std::string svg_commit_latency(const RunReport& r) {
  struct Series { std::string target; std::vector<std::pair<double, double>> pts; };
  std::vector<Series> ss;
  for (const auto& b : r.benches)
    if (b.bench == "commit-latency") {
      Series s{b.target, {}};
      for (const auto& l : b.lines) {
        double n = jnum(l, "sites"), ms = jnum(l, "batch_ms");
        if (n > 0 && ms > 0) s.pts.push_back({n, ms});
      }
      if (!s.pts.empty()) ss.push_back(std::move(s));
    }
  if (ss.empty()) return "<p class=\"muted\">No commit-latency measurements in this run.</p>\n";
  double xlo = 1e300, xhi = 0, ylo = 1e300, yhi = 0;
  for (auto& s : ss)
    for (auto [n, ms] : s.pts) xlo = std::min(xlo, n), xhi = std::max(xhi, n), ylo = std::min(ylo, ms), yhi = std::max(yhi, ms);
  auto [x0, x1] = decades(xlo, xhi);
  auto [y0, y1] = decades(ylo, yhi);
  const int W = 640, H = 300, L = 60, R = 130, T = 20, B = 40;
  const int pw = W - L - R, ph = H - T - B;
  auto X = [&](double v) { return L + (log10c(v) - x0) / (x1 - x0) * pw; };
  auto Y = [&](double v) { return T + ph - (log10c(v) - y0) / (y1 - y0) * ph; };
  std::ostringstream s;
  s << "<svg id=\"plot-commit-latency\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " << W << " "
    << H << "\" width=\"" << W << "\" height=\"" << H
    << "\" role=\"img\" aria-label=\"commit latency per target\">\n";
  for (int e = y0; e <= y1; ++e) {
    double yy = Y(std::pow(10.0, e));
    s << "<line x1=\"" << L << "\" x2=\"" << L + pw << "\" y1=\"" << fmt(yy, "%.1f") << "\" y2=\"" << fmt(yy, "%.1f")
      << "\" class=\"grid\"/><text x=\"" << L - 6 << "\" y=\"" << fmt(yy + 4, "%.1f")
      << "\" text-anchor=\"end\" class=\"tick\">" << tick_label(e) << "</text>\n";
  }
  for (int e = x0; e <= x1; ++e) {
    double xx = X(std::pow(10.0, e));
    s << "<line x1=\"" << fmt(xx, "%.1f") << "\" x2=\"" << fmt(xx, "%.1f") << "\" y1=\"" << T << "\" y2=\"" << T + ph
      << "\" class=\"grid\"/><text x=\"" << fmt(xx, "%.1f") << "\" y=\"" << T + ph + 16
      << "\" text-anchor=\"middle\" class=\"tick\">" << tick_label(e) << "</text>\n";
  }
  s << "<text x=\"" << L + pw / 2 << "\" y=\"" << H - 4 << "\" text-anchor=\"middle\" class=\"axis\">sites per batch (log)</text>\n";
  s << "<text x=\"14\" y=\"" << T + ph / 2 << "\" transform=\"rotate(-90 14 " << T + ph / 2
    << ")\" text-anchor=\"middle\" class=\"axis\">ms per commit (log)</text>\n";
  for (size_t i = 0; i < ss.size(); ++i) {
    const char* col = kColors[i % 8];
    std::string pts;
    for (auto [n, ms] : ss[i].pts) pts += fmt(X(n), "%.1f") + "," + fmt(Y(ms), "%.1f") + " ";
    s << "<polyline class=\"series\" data-target=\"" << esc(ss[i].target) << "\" fill=\"none\" stroke=\"" << col
      << "\" stroke-width=\"2\" points=\"" << pts << "\"/>\n";
    for (auto [n, ms] : ss[i].pts)
      s << "<circle cx=\"" << fmt(X(n), "%.1f") << "\" cy=\"" << fmt(Y(ms), "%.1f") << "\" r=\"3\" fill=\"" << col
        << "\"><title>" << esc(ss[i].target) << ": " << static_cast<uint64_t>(n) << " sites, " << fmt(ms, "%.3f")
        << " ms</title></circle>\n";
    s << "<rect x=\"" << W - R + 10 << "\" y=\"" << T + 16 * i << "\" width=\"12\" height=\"4\" fill=\"" << col
      << "\"/><text x=\"" << W - R + 26 << "\" y=\"" << T + 16 * i + 6 << "\" class=\"label\">" << esc(ss[i].target)
      << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

// Passed / failed / other per run, stacked bars.
std::string svg_history(const RunReport& r) {
  if (r.history.empty()) return "<p class=\"muted\">No history.</p>\n";
  const size_t n = std::min<size_t>(r.history.size(), 60);
  const auto first = r.history.end() - static_cast<long>(n);
  uint32_t mx = 1;
  for (auto it = first; it != r.history.end(); ++it) mx = std::max(mx, it->total);
  const int W = 640, H = 160, L = 40, R = 10, T = 10, B = 24;
  const int pw = W - L - R, ph = H - T - B;
  double bw = static_cast<double>(pw) / n;
  std::ostringstream s;
  s << "<svg id=\"plot-history\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " << W << " " << H
    << "\" width=\"" << W << "\" height=\"" << H << "\" role=\"img\" aria-label=\"results of earlier runs\">\n";
  s << "<text x=\"" << L - 6 << "\" y=\"" << T + 8 << "\" text-anchor=\"end\" class=\"tick\">" << mx << "</text>\n";
  s << "<text x=\"" << L - 6 << "\" y=\"" << T + ph << "\" text-anchor=\"end\" class=\"tick\">0</text>\n";
  size_t i = 0;
  for (auto it = first; it != r.history.end(); ++it, ++i) {
    double x = L + bw * i;
    double y = T + ph;
    for (auto [v, cls] : {std::pair{it->passed, "h-pass"}, std::pair{it->failed, "h-fail"},
                          std::pair{it->unsupported, "h-unsup"}, std::pair{it->other, "h-other"}}) {
      double h = static_cast<double>(v) / mx * ph;
      y -= h;
      if (v)
        s << "<rect class=\"" << cls << (it->run_id == r.run_id ? " current" : "") << "\" x=\"" << fmt(x + 1, "%.1f")
          << "\" y=\"" << fmt(y, "%.1f") << "\" width=\"" << fmt(std::max(1.0, bw - 2), "%.1f") << "\" height=\""
          << fmt(h, "%.1f") << "\"><title>" << esc(it->run_id) << " (" << esc(iso_time(it->started_ms))
          << "): " << it->passed << " passed, " << it->failed << " failed, " << it->unsupported
          << " unsupported, " << it->other << " other</title></rect>\n";
    }
  }
  s << "<text x=\"" << L << "\" y=\"" << H - 6 << "\" class=\"tick\">oldest</text><text x=\"" << W - R << "\" y=\""
    << H - 6 << "\" text-anchor=\"end\" class=\"tick\">this run</text>\n";
  s << "</svg>\n";
  return s.str();
}

const char* kCss = R"CSS(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.5em;margin:0 0 .3em} h2{font-size:1.2em;margin:1.5em 0 .5em;border-bottom:1px solid #ddd}
.verdict{display:inline-block;padding:.2em .8em;border-radius:4px;color:#fff;font-weight:bold}
.verdict.ok{background:#2e7d32}.verdict.bad{background:#c62828}
table{border-collapse:collapse;margin:.5em 0} th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.cell{text-align:center;font-weight:600;min-width:4.5em} td.num{white-space:nowrap}
td.group{text-align:center;white-space:nowrap} a.cell{display:inline-block;margin:1px 2px;padding:1px 6px;border-radius:3px;
font-weight:600;text-decoration:none;color:#222;border:1px solid rgba(0,0,0,.15)}
.pass{background:#c8e6c9}.fail,.timeout,.error,.cancelled{background:#ffcdd2}
.unsupported{background:#fff3c4}.not-available{background:#e0e0e0;color:#555}.pending{background:#e3f2fd}
td.none{background:#fafafa}
.muted{color:#777} details pre{max-height:24em;overflow:auto;background:#f7f7f7;padding:.5em;margin:.3em 0}
summary{cursor:pointer} .plot{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}
.plot .grid{stroke:#e5e5e5}.plot .tick{font-size:11px;fill:#666}.plot .axis{font-size:12px;fill:#333}
.plot .label{font-size:12px;fill:#222}.plot .val{font-size:10px;fill:#444}
.bar-jump{fill:#1f77b4}.bar-trap{fill:#d62728}
.h-pass{fill:#66bb6a}.h-fail{fill:#e53935}.h-unsup{fill:#fdd835}.h-other{fill:#9e9e9e}
rect.current{stroke:#000;stroke-width:1}
#controls{margin:.5em 0} .scroll{overflow-x:auto} #matrix th{white-space:nowrap}
#bench code{font-size:11px;word-break:break-all} button{margin-right:.5em}
)CSS";

const char* kJs = R"JS(
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var cells = data.cells || [];
  var by = {};
  cells.forEach(function (c) { by[c.status] = (by[c.status] || 0) + 1; });
  var parts = Object.keys(by).sort().map(function (k) { return by[k] + ' ' + k; });
  var s = document.getElementById('js-summary');
  if (s) s.textContent = cells.length + ' cells: ' + parts.join(', ');
  var onlyBad = false;
  var btn = document.getElementById('toggle-failures');
  if (btn) btn.addEventListener('click', function () {
    onlyBad = !onlyBad;
    document.querySelectorAll('#details tbody tr.job').forEach(function (tr) {
      tr.style.display = onlyBad && tr.dataset.failed !== 'true' ? 'none' : '';
    });
    btn.textContent = onlyBad ? 'Show all jobs' : 'Show only failures';
  });
  var ex = document.getElementById('expand-all');
  if (ex) ex.addEventListener('click', function () {
    var all = document.querySelectorAll('#details details');
    var open = Array.prototype.some.call(all, function (d) { return !d.open; });
    all.forEach(function (d) { d.open = open; });
  });
  document.querySelectorAll('#matrix a.cell').forEach(function (a) {
    a.addEventListener('click', function () {
      var d = document.getElementById(a.getAttribute('href').slice(1));
      if (d) { var det = d.querySelector('details'); if (det) det.open = true; }
    });
  });
  document.body.setAttribute('data-rendered', 'true');
})();
)JS";

std::string pretty_json(const std::string& raw) {
  if (raw.empty()) return "";
  auto j = json::parse(raw, nullptr, false);
  return j.is_discarded() ? raw : j.dump(2);
}

std::string short_test(const std::string& t) {
  // "stress/mprotect/membarrier/jump" -> "mprotect/membarrier/jump"
  if (t.rfind("stress/", 0) == 0) return t.substr(7);
  return t;
}

}  // namespace

std::string report_html(const RunReport& r) {
  std::ostringstream h;
  auto all = count(r.cells);
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<title>libpatch conformance " << esc(r.run_id) << ": " << (r.ok() ? "PASS" : "FAIL") << "</title>\n"
    << "<style>" << kCss << "</style>\n</head>\n<body data-rendered=\"false\">\n";
  h << "<h1>libpatch conformance <span id=\"verdict\" class=\"verdict " << (r.ok() ? "ok" : "bad") << "\">"
    << (r.ok() ? "PASS" : "FAIL") << "</span></h1>\n";
  h << "<p>Run <code>" << esc(r.run_id) << "</code>, " << esc(r.mode) << " on <code>" << esc(r.host) << "</code>, "
    << esc(iso_time(r.started_ms)) << ", " << fmt((r.finished_ms - r.started_ms) / 1000.0, "%.0f") << " s. "
    << all.by[Status::pass] << "/" << all.total << " passed, " << r.failures() << " failure(s)";
  if (all.by[Status::unsupported]) h << ", " << all.by[Status::unsupported] << " unsupported";
  if (all.by[Status::not_available]) h << ", " << all.by[Status::not_available] << " not available";
  h << (r.require_all ? " (--require-all: unsupported and not-available count as failures)" : "") << ".</p>\n";
  const auto& o = r.options;
  h << "<p class=\"muted\">patch-stress: " << o.threads << " threads, " << o.functions << " functions, " << o.batches
    << " batches (" << o.signal_batches << " with signal sync); bare metal: " << o.bm_toggles << " toggles, -smp "
    << o.smp << "; board targets (a Linux guest under TCG): " << o.board_batches << " batches, " << o.board_signal_batches
    << " with signal sync, " << o.board_procmem_batches << " with the procmem writer; seed " << o.seed
    << "; job timeout " << o.timeout_s << " s.</p>\n";
  h << "<p id=\"js-summary\" class=\"muted\"></p>\n";

  // Matrix: targets x tests. A column is a test without its probe kind
  // ("mprotect/membarrier", "exit/mprotect/membarrier"); the cell shows one
  // badge per kind (jump, trap).
  auto split = [](const std::string& test) -> std::pair<std::string, std::string> {
    std::string t = short_test(test);
    if (test.rfind("stress/", 0) != 0 && test.rfind("exit/", 0) != 0) return {t, ""};
    auto slash = t.rfind('/');
    return slash == std::string::npos ? std::pair{t, std::string()} : std::pair{t.substr(0, slash), t.substr(slash + 1)};
  };
  const auto notes = cell_notes(r);
  std::vector<std::string> cols;
  for (const auto& c : r.cells)
    if (c.status != Status::not_available) {
      auto col = split(c.test).first;
      if (std::find(cols.begin(), cols.end(), col) == cols.end()) cols.push_back(col);
    }
  auto rank = [&](const std::string& col) {
    static const std::vector<std::string> syncs{"membarrier", "flush_icache", "signal"};
    auto slash = col.find('/');
    std::string a = col.substr(0, slash), b = slash == std::string::npos ? "" : col.substr(slash + 1);
    if (a == "baremetal") return std::tuple<int, long, long, std::string>{1, 0, 0, b};
    auto w = std::find(r.options.writers.begin(), r.options.writers.end(), a) - r.options.writers.begin();
    auto y = std::find(syncs.begin(), syncs.end(), b) - syncs.begin();
    return std::tuple<int, long, long, std::string>{0, w, y, col};
  };
  std::stable_sort(cols.begin(), cols.end(), [&](const std::string& x, const std::string& y) { return rank(x) < rank(y); });
  h << "<h2>Matrix</h2>\n<div class=\"scroll\"><table id=\"matrix\">\n<thead><tr><th>target</th>";
  for (const auto& c : cols) h << "<th>" << esc(c) << "</th>";
  h << "<th>passed</th></tr></thead>\n<tbody>\n";
  for (const auto& t : target_order(r)) {
    auto cnt = count(r.cells, t);
    if (!cnt.total) continue;
    std::string tnote;
    for (const auto& x : r.targets)
      if (x.name == t && x.available) tnote = x.note;
    h << "<tr class=\"target-row\" data-target=\"" << esc(t) << "\"><th" << (tnote.empty() ? "" : " title=\"" + esc(tnote) + "\"")
      << ">" << esc(t) << (tnote.empty() ? "" : "<sup class=\"fn\">*</sup>") << "</th>";
    const Cell* na = nullptr;
    for (const auto& c : r.cells)
      if (c.target == t && c.status == Status::not_available) na = &c;
    if (na) {
      h << "<td class=\"group not-available\" colspan=\"" << std::max<size_t>(1, cols.size()) << "\">not available: "
        << esc(na->message) << "</td>";
    } else {
      for (const auto& col : cols) {
        std::vector<size_t> in;
        for (size_t i = 0; i < r.cells.size(); ++i)
          if (r.cells[i].target == t && split(r.cells[i].test).first == col) in.push_back(i);
        if (in.empty()) {
          h << "<td class=\"none\"></td>";
          continue;
        }
        // The group's colour: the worst of its cells.
        std::string gst = "pass";
        for (size_t i : in) {
          const auto& c = r.cells[i];
          if (r.cell_failed(c)) gst = "fail";
          else if (c.status != Status::pass && gst == "pass") gst = std::string(status_name(c.status));
        }
        h << "<td class=\"group " << gst << "\">";
        for (size_t i : in) {
          const auto& c = r.cells[i];
          std::string st(status_name(c.status));
          auto kind = split(c.test).second;
          h << "<a class=\"cell " << st << "\" data-status=\"" << st << "\" href=\"#job-" << i << "\" title=\""
            << esc(c.test + ": " + st) << (c.message.empty() ? "" : esc(" (" + c.message + ")")) << "\">"
            << esc(kind.empty() ? st : kind + " " + (c.status == Status::pass ? std::string("\u2713")
                                                    : c.status == Status::unsupported ? std::string("unsup.") : st))
            << "</a>";
        }
        std::vector<std::string> group_notes;  // a footnote marker per distinct note of the group
        for (size_t i : in)
          if (!r.cells[i].note.empty() &&
              std::find(group_notes.begin(), group_notes.end(), r.cells[i].note) == group_notes.end())
            group_notes.push_back(r.cells[i].note);
        for (const auto& n : group_notes)
          h << "<sup class=\"fn\" title=\"" << esc(n) << "\"><a href=\"#note-" << note_number(notes, n) << "\">["
            << note_number(notes, n) << "]</a></sup>";
        h << "</td>";
      }
    }
    h << "<td class=\"num\">" << cnt.by[Status::pass] << "/" << cnt.total << "</td></tr>\n";
  }
  h << "</tbody>\n</table></div>\n";
  {
    bool tn = false;
    for (const auto& t : r.targets) tn = tn || (!t.note.empty() && t.available);
    if (!notes.empty() || tn) {
      h << "<ol id=\"notes\" class=\"notes muted\">\n";
      for (size_t i = 0; i < notes.size(); ++i)
        h << "<li id=\"note-" << i + 1 << "\">" << esc(notes[i]) << "</li>\n";
      h << "</ol>\n";
      for (const auto& t : r.targets)
        if (!t.note.empty() && t.available) h << "<p class=\"muted target-note\"><sup>*</sup> <b>" << esc(t.name) << "</b>: " << esc(t.note) << "</p>\n";
    }
  }

  // Per-job detail.
  h << "<h2>Jobs</h2>\n<div id=\"controls\"><button id=\"toggle-failures\" type=\"button\">Show only failures</button>"
    << "<button id=\"expand-all\" type=\"button\">Expand / collapse all</button></div>\n";
  h << "<table id=\"details\">\n<thead><tr><th>target</th><th>test</th><th>result</th><th>calls</th><th>hits</th>"
    << "<th>batches / toggles</th><th>time</th><th>detail</th></tr></thead>\n<tbody>\n";
  for (size_t i = 0; i < r.cells.size(); ++i) {
    const auto& c = r.cells[i];
    std::string st(status_name(c.status));
    h << "<tr class=\"job\" id=\"job-" << i << "\" data-failed=\"" << (r.cell_failed(c) ? "true" : "false")
      << "\"><td>" << esc(c.target) << "</td><td>" << esc(c.test) << "</td><td class=\"cell " << st << "\">" << st
      << "</td><td class=\"num\">" << c.calls << "</td><td class=\"num\">" << c.hits << "</td><td class=\"num\">"
      << esc(toggles_of(c)) << "</td><td class=\"num\">" << fmt(c.seconds) << " s</td><td><details><summary>"
      << esc(c.job_id.empty() ? "(not submitted)" : c.job_id)
      << (c.message.empty() ? "" : " &mdash; " + esc(c.message)) << "</summary>\n";
    h << "<p>worker <code>" << esc(c.worker.empty() ? "-" : c.worker) << "</code>, seed " << c.seed << ", attempts "
      << c.attempts << ", syncs " << c.syncs << "</p>\n";
    if (!c.note.empty()) h << "<p class=\"muted\">note: " << esc(c.note) << "</p>\n";
    if (!c.result_json.empty()) h << "<p>result</p><pre class=\"result\">" << esc(pretty_json(c.result_json)) << "</pre>\n";
    if (!c.log_tail.empty()) h << "<p>output (tail)</p><pre class=\"log\">" << esc(c.log_tail) << "</pre>\n";
    h << "<p>job spec</p><pre class=\"spec\">" << esc(farm::to_json(c.spec, true)) << "</pre>\n";
    h << "</details></td></tr>\n";
  }
  h << "</tbody>\n</table>\n";

  // Benchmarks.
  h << "<h2>Probe-hit cost and commit latency per target</h2>\n";
  h << "<p class=\"muted\">bench/probe-hit and bench/commit-latency, run by farmctl on the machine that ran the "
       "conformance (riscv64 and aarch64 under qemu-riscv64 / qemu-aarch64, so their numbers are the emulator's; a "
       "board target's in its guest, under TCG), while other jobs may be running: "
       "compare targets and runs with care.</p>\n";
  h << svg_probe_hit(r) << svg_commit_latency(r);
  if (!r.benches.empty()) {
    h << "<table id=\"bench\">\n<thead><tr><th>target</th><th>bench</th><th>status</th><th>time</th><th>measurements</th>"
         "</tr></thead>\n<tbody>\n";
    for (const auto& b : r.benches) {
      std::string st = !b.available ? "not-available" : r.bench_failed(b) ? "fail" : b.partial ? "partial" : "pass";
      h << "<tr><td>" << esc(b.target) << "</td><td>" << esc(b.bench) << "</td><td class=\"cell "
        << (st == "partial" ? "pass" : st) << "\">" << st << "</td><td class=\"num\">" << fmt(b.seconds, "%.1f")
        << " s</td><td>";
      if (!b.message.empty()) h << esc(b.message) << "<br>";
      for (const auto& l : b.lines) h << "<code>" << esc(l.dump()) << "</code><br>";
      h << "</td></tr>\n";
    }
    h << "</tbody>\n</table>\n";
  }

  // History.
  h << "<h2>History</h2>\n";
  if (r.history.size() <= 1)
    h << "<p class=\"muted\">This is the only run in the store" << (r.db.empty() ? " (a temporary one: pass --db FILE to keep history)" : "") << ".</p>\n";
  h << svg_history(r);
  h << "<table id=\"history\">\n<thead><tr><th>run</th><th>started</th><th>jobs</th><th>passed</th><th>failed</th>"
       "<th>unsupported</th><th>other</th><th>workload time</th></tr></thead>\n<tbody>\n";
  for (auto it = r.history.rbegin(); it != r.history.rend(); ++it)
    h << "<tr" << (it->run_id == r.run_id ? " class=\"current\"" : "") << "><td><code>" << esc(it->run_id)
      << "</code></td><td>" << esc(iso_time(it->started_ms)) << "</td><td class=\"num\">" << it->total
      << "</td><td class=\"num\">" << it->passed << "</td><td class=\"num" << (it->failed ? " fail" : "") << "\">"
      << it->failed << "</td><td class=\"num\">" << it->unsupported << "</td><td class=\"num\">" << it->other
      << "</td><td class=\"num\">" << fmt(it->seconds, "%.0f") << " s</td></tr>\n";
  h << "</tbody>\n</table>\n";

  // Targets.
  h << "<h2>Targets</h2>\n<table id=\"targets\">\n<thead><tr><th>target</th><th>arch / isa</th><th>executor</th>"
       "<th>workload</th><th>binary / image</th><th>available</th></tr></thead>\n<tbody>\n";
  for (const auto& t : r.targets)
    h << "<tr><td>" << esc(t.name) << "</td><td>" << esc(t.arch) << (t.isa.empty() ? "" : " / " + esc(t.isa))
      << "</td><td>" << esc(t.kind.empty() ? "any" : t.kind) << (t.emulator.empty() ? "" : " (" + esc(t.emulator) + ")")
      << "</td><td>" << esc(t.workload) << "</td><td><code>" << esc(t.binary) << "</code></td><td>"
      << (t.available ? "yes" : "no: " + esc(t.why)) << "</td></tr>\n";
  h << "</tbody>\n</table>\n";

  // The whole report as data (for the script, and for tools scraping the page).
  std::string data = report_json(r).dump();
  std::string safe;
  safe.reserve(data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '<') safe += "\\u003c";  // no "</script>" inside the element
    else safe += data[i];
  }
  h << "<script type=\"application/json\" id=\"report-data\">" << safe << "</script>\n";
  h << "<script>" << kJs << "</script>\n</body>\n</html>\n";
  return h.str();
}

void write_reports(const RunReport& r, const std::string& dir) {
  fs::create_directories(dir);
  farm::write_file_atomic(dir + "/conformance.json", report_json(r).dump(2) + "\n");
  farm::write_file_atomic(dir + "/junit.xml", report_junit(r));
  farm::write_file_atomic(dir + "/index.html", report_html(r));
}

}  // namespace farm::conformance
