#include "farm/common/select.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

namespace farm {

std::string_view workload_type(const v1::Workload& w) {
  switch (w.spec_case()) {
    case v1::Workload::kPatchStress: return "patch-stress";
    case v1::Workload::kBaremetal: return "baremetal";
    case v1::Workload::kCommand: return "command";
    case v1::Workload::kHealthCheck: return "health-check";
    default: return "";
  }
}

namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return std::tolower(c); });
  return r;
}

// Parses "rv64gc_zba_zbb" into {"rv64", {i,m,a,f,d,c,zicsr,zifencei,zba,zbb}}.
bool parse_riscv(std::string_view isa, std::string* base, std::set<std::string>* ext) {
  std::string s = lower(isa);
  if (s.rfind("rv32", 0) != 0 && s.rfind("rv64", 0) != 0) return false;
  *base = s.substr(0, 4);
  size_t i = 4;
  // single-letter extensions up to the first '_' or multi-letter (z/s/x) extension
  while (i < s.size() && s[i] != '_' && s[i] != 'z' && s[i] != 's' && s[i] != 'x') {
    char c = s[i++];
    if (c == 'g') {
      for (const char* e : {"i", "m", "a", "f", "d", "zicsr", "zifencei"}) ext->insert(e);
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      ext->insert(std::string(1, c));
    } else if (!std::isdigit(static_cast<unsigned char>(c)) && c != 'p') {
      return false;
    }
  }
  while (i < s.size()) {
    if (s[i] == '_') { ++i; continue; }
    size_t j = s.find('_', i);
    if (j == std::string::npos) j = s.size();
    ext->insert(s.substr(i, j - i));
    i = j;
  }
  return true;
}

}  // namespace

bool isa_satisfies(std::string_view want, std::string_view have) {
  if (want.empty()) return true;
  if (lower(want) == lower(have)) return true;
  std::string wb, hb;
  std::set<std::string> we, he;
  if (!parse_riscv(want, &wb, &we) || !parse_riscv(have, &hb, &he)) return false;
  if (wb != hb) return false;
  return std::includes(he.begin(), he.end(), we.begin(), we.end());
}

bool selector_matches(const v1::JobSpec& spec, const v1::Capabilities& caps, std::string_view worker_id,
                      std::string* why) {
  auto fail = [&](std::string m) {
    if (why) *why = std::move(m);
    return false;
  };
  const auto& sel = spec.selector();
  if (!sel.worker_id().empty() && sel.worker_id() != worker_id) return fail("pinned to worker " + sel.worker_id());
  if (!sel.arch().empty() && sel.arch() != caps.arch()) return fail("arch " + caps.arch() + " != " + sel.arch());
  if (!sel.kind().empty() && sel.kind() != caps.kind()) return fail("kind " + caps.kind() + " != " + sel.kind());
  if (!isa_satisfies(sel.isa(), caps.isa())) return fail("isa " + caps.isa() + " does not provide " + sel.isa());
  if (sel.min_cores() > caps.cores())
    return fail("cores " + std::to_string(caps.cores()) + " < " + std::to_string(sel.min_cores()));
  for (const auto& [k, v] : sel.labels()) {
    auto it = caps.labels().find(k);
    if (it == caps.labels().end() || it->second != v) return fail("label " + k + "=" + v + " missing");
  }
  auto wt = workload_type(spec.workload());
  if (wt != "health-check") {
    const auto& wl = caps.workloads();
    if (std::find(wl.begin(), wl.end(), wt) == wl.end())
      return fail("worker does not run " + std::string(wt) + " workloads");
  }
  return true;
}

std::string format_selector(const v1::TargetSelector& s, char sep, const std::string& label_prefix) {
  std::string r;
  auto add = [&](const std::string& k, const std::string& v) {
    if (v.empty()) return;
    if (!r.empty()) r += sep;
    r += k + "=" + v;
  };
  add("arch", s.arch());
  add("isa", s.isa());
  add("kind", s.kind());
  std::map<std::string, std::string> labels(s.labels().begin(), s.labels().end());  // sorted by key
  for (const auto& [k, v] : labels) add(label_prefix + k, v);
  if (s.min_cores()) add("min_cores", std::to_string(s.min_cores()));
  add("worker", s.worker_id());
  return r.empty() ? "any" : r;
}

std::string describe_selector(const v1::TargetSelector& s) { return format_selector(s, ' ', "label:"); }

static std::string join_target(const std::string& arch, const std::string& kind, const std::string& isa) {
  std::string r = arch.empty() ? "any" : arch;
  r += "/" + (kind.empty() ? std::string("any") : kind);
  if (!isa.empty()) r += "/" + isa;
  return r;
}

std::string target_name(const v1::Capabilities& c) { return join_target(c.arch(), c.kind(), c.isa()); }
std::string target_name(const v1::TargetSelector& s) { return join_target(s.arch(), s.kind(), s.isa()); }

}  // namespace farm
