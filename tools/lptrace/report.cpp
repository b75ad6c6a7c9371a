#include "report.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

namespace lptrace {
namespace {

std::string ns_text(uint64_t ns) {
  if (ns < 10000) return fmt::format("{} ns", ns);
  if (ns < 10000000) return fmt::format("{:.1f} us", double(ns) / 1e3);
  if (ns < 10000000000ull) return fmt::format("{:.1f} ms", double(ns) / 1e6);
  return fmt::format("{:.2f} s", double(ns) / 1e9);
}

} // namespace

std::vector<nlohmann::json> read_reports(const std::string &dir, const std::string &prefix, std::string *why) {
  std::vector<nlohmann::json> out;
  std::error_code ec;
  for (const auto &e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix + ".", 0) != 0 || e.path().extension() != ".json") continue;
    std::ifstream in(e.path());
    try {
      out.push_back(nlohmann::json::parse(in));
    } catch (const std::exception &x) {
      *why += "unreadable report " + name + ": " + x.what() + "\n";
    }
  }
  std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.value("pid", 0) < b.value("pid", 0); });
  return out;
}

namespace {

std::string rows_of(nlohmann::json fns, bool exits, const std::string &indent) {
  std::string s;
  std::vector<nlohmann::json> rows(fns.begin(), fns.end());
  std::stable_sort(rows.begin(), rows.end(),
                   [](const auto &a, const auto &b) { return a.value("calls", 0ull) > b.value("calls", 0ull); });
  size_t w = 8;
  for (const auto &f : rows) w = std::max(w, f.value("object", "").size() + 1 + f.value("name", "").size());
  if (exits)
    s += fmt::format("{}{:<{}} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", indent, "function", w, "calls", "total",
                     "mean", "p50", "p99", "max");
  else
    s += fmt::format("{}{:<{}} {:>10}\n", indent, "function", w, "calls");
  for (const auto &f : rows) {
    const std::string fn = f.value("object", "") + ":" + f.value("name", "");
    if (exits)
      s += fmt::format("{}{:<{}} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", indent, fn, w, f.value("calls", 0ull),
                       ns_text(f.value("total_ns", 0ull)), ns_text(f.value("mean_ns", 0ull)),
                       ns_text(f.value("p50_ns", 0ull)), ns_text(f.value("p99_ns", 0ull)),
                       ns_text(f.value("max_ns", 0ull)));
    else
      s += fmt::format("{}{:<{}} {:>10}\n", indent, fn, w, f.value("calls", 0ull));
  }
  return s;
}

} // namespace

std::string format_table(const std::vector<nlohmann::json> &reports, bool per_thread) {
  std::string s;
  // Processes that matched nothing (the shells and helpers around the
  // program, say) are summed up in one line at the end.
  std::vector<std::string> idle;
  for (const auto &r : reports) {
    if (r.value("matched", 0) == 0 && !r.contains("error")) {
      idle.push_back(fmt::format("{} ({})", r.value("program", "?"), r.value("pid", 0)));
      continue;
    }
    const bool exits = r.value("exits", false);
    auto fns = r.value("functions", nlohmann::json::array());
    const auto &failed = r.value("failed", nlohmann::json::array());
    size_t jumps = 0;
    for (const auto &f : fns) jumps += f.value("kind", "") == "jump";
    s += fmt::format("lptrace: {} (pid {}): {} function(s) matched, {} probed ({} jump, {} trap), {} failed\n",
                     r.value("program", "?"), r.value("pid", 0), r.value("matched", 0), fns.size(), jumps,
                     fns.size() - jumps, failed.size());
    if (r.contains("error")) s += fmt::format("  error: {}\n", r["error"].get<std::string>());
    s += rows_of(fns, exits, "  ");
    if (per_thread)
      for (const auto &t : r.value("threads", nlohmann::json::array())) {
        s += fmt::format("  thread {}:\n", t.value("tid", 0));
        s += rows_of(t.value("functions", nlohmann::json::array()), exits, "    ");
      }
    for (const auto &f : failed)
      s += fmt::format("  not probed: {}:{}: {}\n", f.value("object", ""), f.value("name", ""), f.value("error", ""));
    for (const auto &u : r.value("unmatched", nlohmann::json::array()))
      s += fmt::format("  no function matches '{}'\n", u.get<std::string>());
  }
  if (!idle.empty()) {
    s += fmt::format("lptrace: {} process(es) matched no function:", idle.size());
    for (size_t i = 0; i < idle.size() && i < 8; ++i) s += " " + idle[i];
    if (idle.size() > 8) s += fmt::format(" and {} more", idle.size() - 8);
    s += "\n";
  }
  return s;
}

std::string format_json(const std::vector<nlohmann::json> &reports) {
  return nlohmann::json{{"processes", reports}}.dump(2) + "\n";
}

} // namespace lptrace

namespace lptrace {

std::vector<nlohmann::json> read_events(const std::string &dir, const std::string &prefix,
                                        const std::vector<nlohmann::json> &reports, std::string *why) {
  std::vector<nlohmann::json> out;
  for (const auto &r : reports) {
    const int pid = r.value("pid", 0);
    // PREFIX.PID.IMAGE.events: each program image's own, next to its report.
    const std::string path =
        dir + "/" + prefix + "." + std::to_string(pid) + "." + std::to_string(r.value("image", 0ull)) + ".events";
    nlohmann::json ev;
    if (std::ifstream in(path); in) {
      try {
        ev = nlohmann::json::parse(in);
      } catch (const std::exception &e) {
        *why += "unreadable events of pid " + std::to_string(pid) + ": " + e.what() + "\n";
        ev = nullptr;
      }
    }
    out.push_back(std::move(ev));
  }
  return out;
}

long write_trace(const std::string &dir, const std::string &prefix, const std::vector<nlohmann::json> &reports,
                 const std::string &file, std::string *why) {
  return write_trace(reports, read_events(dir, prefix, reports, why), file, why);
}

long write_trace(const std::vector<nlohmann::json> &reports, const std::vector<nlohmann::json> &process_events,
                 const std::string &file, std::string *why) {
  nlohmann::json events = nlohmann::json::array();
  uint64_t dropped = 0;
  long n = 0;
  for (size_t i = 0; i < reports.size() && i < process_events.size(); ++i) {
    const nlohmann::json &r = reports[i], &ev = process_events[i];
    if (!ev.is_object()) continue;
    const int pid = r.value("pid", 0);
    events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", pid}, {"args", {{"name", r.value("program", "?")}}}});
    const auto &names = ev["names"];
    for (const auto &t : ev["threads"]) {
      const int tid = t.value("tid", 0);
      dropped += t.value("dropped", 0ull);
      events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", pid}, {"tid", tid},
                        {"args", {{"name", "thread " + std::to_string(tid)}}}});
      for (const auto &e : t["events"]) {
        const size_t fn = e[0].get<size_t>();
        const double ts = double(e[1].get<uint64_t>()) / 1000.0;
        const int64_t dur = e[2].get<int64_t>();
        nlohmann::json x{{"name", fn < names.size() ? names[fn].get<std::string>() : "?"}, {"cat", "lptrace"},
                         {"ts", ts}, {"pid", pid}, {"tid", tid}};
        if (dur >= 0) {
          x["ph"] = "X";
          x["dur"] = double(dur) / 1000.0;
        } else {
          x["ph"] = "i";
          x["s"] = "t";
        }
        events.push_back(std::move(x));
        ++n;
      }
    }
  }
  nlohmann::json out{{"traceEvents", std::move(events)},
                     {"displayTimeUnit", "ns"},
                     {"otherData", {{"tool", "lptrace"}, {"dropped_events", dropped}}}};
  std::ofstream f(file);
  if (!f) {
    *why += "cannot write " + file + "\n";
    return -1;
  }
  f << out.dump() << "\n";
  return f ? n : -1;
}

} // namespace lptrace
