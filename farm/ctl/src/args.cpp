#include "farm/ctl/args.hpp"

#include <charconv>
#include <cmath>
#include <limits>

#include "farm/ctl/text.hpp"

namespace farm::ctl {

namespace {

// User input echoed in a message: printable and bounded.
std::string shown(std::string_view s) {
  std::string t = term_safe(s);
  return "'" + (display_width(t) > 80 ? ellipsize(t, 80) : t) + "'";
}

std::string join(std::initializer_list<const char*> ok) {
  std::string r;
  for (const char* o : ok) r += (r.empty() ? "" : ", ") + std::string(o);
  return r;
}

bool alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// Every character alphanumeric or in `extra`.
bool charset(std::string_view s, std::string_view extra) {
  for (char c : s)
    if (!alnum(c) && extra.find(c) == std::string_view::npos) return false;
  return true;
}

// A letter or digit, then characters of `extra` too; 1..max.
bool ident(std::string_view s, size_t max, std::string_view extra) {
  return !s.empty() && s.size() <= max && alnum(s[0]) && charset(s, extra);
}

bool has_controls(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

unsigned days_in_month(int64_t y, unsigned m) {
  static const unsigned d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : d[m - 1];
}

// Fixed-width decimal field at s[pos..pos+n).
bool field(std::string_view s, size_t pos, size_t n, unsigned* out) {
  if (pos + n > s.size() || !all_digits(s.substr(pos, n))) return false;
  unsigned v = 0;
  for (size_t i = pos; i < pos + n; ++i) v = v * 10 + static_cast<unsigned>(s[i] - '0');
  *out = v;
  return true;
}

// "YYYY-MM-DD" at the start of s -> days since the epoch.
bool parse_date(std::string_view s, int64_t* days) {
  unsigned y, m, d;
  if (s.size() < 10 || !field(s, 0, 4, &y) || s[4] != '-' || !field(s, 5, 2, &m) || s[7] != '-' ||
      !field(s, 8, 2, &d))
    return false;
  if (y < 1970 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return false;
  *days = days_from_civil(y, m, d);
  return true;
}

// RFC 3339 date-time -> ms since the epoch.
bool parse_rfc3339(std::string_view s, int64_t* ms) {
  int64_t days;
  unsigned hh, mm, ss;
  if (!parse_date(s, &days) || s.size() < 19 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')) return false;
  if (!field(s, 11, 2, &hh) || s[13] != ':' || !field(s, 14, 2, &mm) || s[16] != ':' || !field(s, 17, 2, &ss))
    return false;
  if (hh > 23 || mm > 59 || ss > 60) return false;  // 60: a leap second
  size_t i = 19;
  int64_t frac_ms = 0;
  if (i < s.size() && s[i] == '.') {
    size_t start = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return false;
    std::string digits(s.substr(start, std::min<size_t>(i - start, 3)));
    while (digits.size() < 3) digits += '0';
    frac_ms = std::stoll(digits);
  }
  int64_t offset_s = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    unsigned oh, om;
    if (!field(s, i + 1, 2, &oh) || i + 3 >= s.size() || s[i + 3] != ':' || !field(s, i + 4, 2, &om) || oh > 23 ||
        om > 59)
      return false;
    offset_s = (s[i] == '+' ? 1 : -1) * static_cast<int64_t>(oh * 3600 + om * 60);
    i += 6;
  } else {
    return false;  // RFC 3339 requires a zone
  }
  if (i != s.size()) return false;
  *ms = ((days * 86400 + hh * 3600 + mm * 60 + ss) - offset_s) * 1000 + frac_ms;
  return true;
}

}  // namespace

uint64_t parse_uint(std::string_view opt, std::string_view text, uint64_t lo, uint64_t hi) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  bool ok = all_digits(text) && ec == std::errc() && p == text.data() + text.size();
  if (!ok || v < lo || v > hi) {
    std::string why = !ok && !text.empty() && text[0] == '-' && all_digits(text.substr(1)) ? " (negative)"
                      : !ok && all_digits(text)                                           ? " (too large)"
                                                                                          : "";
    throw UsageError(std::string(opt) + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
                     ", got " + shown(text) + why);
  }
  return v;
}

int64_t parse_int(std::string_view opt, std::string_view text, int64_t lo, int64_t hi) {
  int64_t v = 0;
  std::string_view digits = !text.empty() && text[0] == '-' ? text.substr(1) : text;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  bool ok = all_digits(digits) && ec == std::errc() && p == text.data() + text.size();
  if (!ok || v < lo || v > hi)
    throw UsageError(std::string(opt) + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
                     ", got " + shown(text));
  return v;
}

double parse_duration_s(std::string_view text) {
  if (text.empty()) return -1;
  double mult = 1;
  std::string_view num = text;
  switch (text.back()) {
    case 's': mult = 1; break;
    case 'm': mult = 60; break;
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    case 'w': mult = 7 * 86400; break;
    default: mult = 0;
  }
  if (mult) num = text.substr(0, text.size() - 1);
  else mult = 1;
  // Digits with at most one '.', nothing else (no sign, exponent, "inf", "nan").
  size_t dots = 0, digits = 0;
  for (char c : num) {
    if (c == '.') ++dots;
    else if (c >= '0' && c <= '9') ++digits;
    else return -1;
  }
  if (digits == 0 || dots > 1) return -1;
  double v = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  if (ec != std::errc() || p != num.data() + num.size() || !std::isfinite(v)) return -1;
  return v * mult;
}

double parse_seconds(std::string_view opt, std::string_view text, double max_s) {
  double v = parse_duration_s(text);
  if (!(v > 0) || !std::isfinite(v) || v > max_s) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", max_s);
    throw UsageError(std::string(opt) + " must be a duration above 0 and at most " + b +
                     " s (seconds, or a number with s/m/h/d: 90, 1.5, 30s, 5m, 2h), got " + shown(text));
  }
  return v;
}

uint64_t parse_whole_seconds(std::string_view opt, std::string_view text, uint64_t max_s) {
  double v = parse_duration_s(text);
  if (!(v >= 1) || v > static_cast<double>(max_s) || v != std::floor(v))
    throw UsageError(std::string(opt) + " must be a whole number of seconds in 1.." + std::to_string(max_s) +
                     " (or with a unit: 90s, 10m, 2h, 1d), got " + shown(text));
  return static_cast<uint64_t>(v);
}

int64_t parse_since(std::string_view text, int64_t now_ms) {
  int64_t ms = 0, days = 0;
  if (text.size() == 10 && parse_date(text, &days)) return days * 86'400'000;
  if (text.size() > 10 && parse_rfc3339(text, &ms)) return ms;
  if (!text.empty() && (text.back() < '0' || text.back() > '9')) {  // a duration needs a unit here
    double s = parse_duration_s(text);
    if (s >= 0 && s <= 100.0 * 365 * 86400) return now_ms - static_cast<int64_t>(s * 1000);
  }
  throw UsageError("--since must be an RFC 3339 time (2026-12-01T08:00:00Z, 2026-12-01T09:00:00+01:00), a date "
                   "(2026-12-01, from 00:00 UTC) or a duration back from now with a unit (90s, 30m, 24h, 7d, 2w), "
                   "got " + shown(text));
}

void check_one_of(std::string_view opt, std::string_view value, std::initializer_list<const char*> ok) {
  for (const char* o : ok)
    if (value == o) return;
  throw UsageError(std::string(opt) + " must be one of " + join(ok) + "; got " + shown(value));
}

std::pair<std::string, std::string> parse_kv(std::string_view opt, std::string_view text) {
  auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw UsageError(std::string(opt) + " expects key=value, got " + shown(text));
  return {std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

void check_image_name(std::string_view opt, std::string_view name) {
  if (ident(name, limits::kMaxImageNameLen, "._-")) return;
  std::string what = name.find('/') != std::string_view::npos ? "a path" : "not an image name";
  throw UsageError(std::string(opt) + " takes the NAME of an image the agent's operator configured (farm-agent --image " +
                   "NAME=PATH; a letter or digit, then letters, digits, '.', '_', '-', at most " +
                   std::to_string(limits::kMaxImageNameLen) + "), not a path on the agent: " + shown(name) + " is " +
                   what);
}

void check_job_id(std::string_view opt, std::string_view id) {
  if (!id.empty() && id.size() <= 64 && charset(id, "._-")) return;
  throw UsageError(std::string(opt) + " must be a job id (like j-0123456789ab: 1-64 of [A-Za-z0-9._-]), got " + shown(id));
}

void check_worker_id(std::string_view opt, std::string_view id) {
  if (!id.empty() && id.size() <= 128 && charset(id, "._@:-")) return;
  throw UsageError(std::string(opt) + " must be a worker id (1-128 of [A-Za-z0-9._@:-]), got " + shown(id));
}

void check_label(std::string_view opt, std::string_view key, std::string_view value) {
  if (!ident(key, 64, "._-"))
    throw UsageError(std::string(opt) + " key must be 1-64 of [A-Za-z0-9._-], starting with a letter or digit, got " +
                     shown(key));
  if (value.size() > 128 || !charset(value, "._:@+,=-"))
    throw UsageError(std::string(opt) + " value must be at most 128 of [A-Za-z0-9._:@+,=-], got " + shown(value));
}

void check_tag(std::string_view opt, std::string_view key, std::string_view value) {
  if (!ident(key, 64, "._:/-"))
    throw UsageError(std::string(opt) + " key must be 1-64 of [A-Za-z0-9._:/-], starting with a letter or digit, got " +
                     shown(key));
  if (value.size() > 256 || has_controls(value))
    throw UsageError(std::string(opt) + " value must be at most 256 bytes without control characters, got " +
                     shown(value));
}

void check_text(std::string_view opt, std::string_view s, size_t max) {
  if (s.size() > max) throw UsageError(std::string(opt) + " must be at most " + std::to_string(max) + " bytes");
  if (has_controls(s)) throw UsageError(std::string(opt) + " must not contain control characters, got " + shown(s));
}

void check_append(std::string_view opt, std::string_view s) {
  if (s.size() <= 256 && charset(s, " =._,:+-")) return;
  throw UsageError(std::string(opt) + " must be at most 256 of [A-Za-z0-9 =._,:+-] (key=value pairs for the image, "
                   "e.g. 'sync=rfence toggles=1000'), got " + shown(s));
}

void check_spec(const v1::JobSpec& spec, std::string_view origin) {
  std::string pre = origin.empty() ? "" : std::string(origin) + ": ";
  auto bad = [&](const std::string& m) { throw UsageError(pre + m); };
  const auto& w = spec.workload();
  if (w.has_patch_stress()) {
    const auto& p = w.patch_stress();
    if (!p.binary().empty())
      bad("workload.patch_stress.binary is not accepted: the agent chooses the workload binary (its operator starts "
          "it with farm-agent --patch-stress PATH or --binary KIND=PATH); a client never chooses what runs on an agent");
    if (p.extra_args_size())
      bad("workload.patch_stress.extra_args is not accepted: a client never chooses what runs on an agent; use the "
          "workload's own fields (threads, functions, batches, duration_s, writer, sync, probe_kind, sites, "
          "exit_probes)");
    if (p.threads() > limits::kMaxThreads)
      bad("workload.patch_stress.threads must be in 1.." + std::to_string(limits::kMaxThreads) + ", got " +
          std::to_string(p.threads()));
    if (p.functions() > limits::kMaxFunctions)
      bad("workload.patch_stress.functions must be in 1.." + std::to_string(limits::kMaxFunctions) + ", got " +
          std::to_string(p.functions()));
    if (p.duration_s() < 0 || !std::isfinite(p.duration_s()) || p.duration_s() > limits::kMaxDurationS)
      bad("workload.patch_stress.duration_s must be above 0 and at most 86400");
    if (p.batches() && p.duration_s() > 0) bad("workload.patch_stress: batches and duration_s are exclusive");
    auto set = [&](const char* f, const std::string& v, std::initializer_list<const char*> ok) {
      if (!v.empty()) check_one_of(pre + "workload.patch_stress." + f, v, ok);
    };
    set("writer", p.writer(), {"mprotect", "procmem", "default"});
    set("sync", p.sync(), {"membarrier", "flush_icache", "signal", "default"});
    set("probe_kind", p.probe_kind(), {"jump", "trap", "auto"});
    set("sites", p.sites(), {"entry", "body"});
    if (p.exit_probes() && p.sites() == "body")
      bad("workload.patch_stress.exit_probes needs entry sites (call probes sit on a function's entry sled); "
          "sites body is not allowed with it");
  } else if (w.has_baremetal()) {
    const auto& b = w.baremetal();
    if (b.image().empty())
      bad("a bare-metal job needs an image name (--image NAME: farm-agent --image NAME=PATH on the agent)");
    check_image_name(pre + "workload.baremetal.image", b.image());
    if (b.extra_args_size())
      bad("workload.baremetal.extra_args is not accepted: a client does not choose the emulator's command line; use "
          "the image's kernel command line, baremetal.append (farmctl submit --append)");
    if (!b.append().empty()) check_append(pre + "workload.baremetal.append", b.append());
    if (b.smp() > limits::kMaxSmp)
      bad("workload.baremetal.smp must be in 1.." + std::to_string(limits::kMaxSmp) + ", got " +
          std::to_string(b.smp()));
  } else if (w.has_command()) {
    if (w.command().argv().empty() || w.command().argv(0).empty())
      bad("a command job needs a program: farmctl submit [options] -- PROGRAM ARGS...");
  } else if (w.has_health_check()) {
    bad("health-check jobs are scheduled by farmd itself, not submitted");
  }
  const auto& s = spec.selector();
  if (!s.kind().empty()) check_one_of(pre + "selector.kind", s.kind(), {"native", "qemu-user", "qemu-system", "board"});
  if (spec.timeout_s() > limits::kMaxTimeoutS)
    bad("timeout_s must be at most " + std::to_string(limits::kMaxTimeoutS) + ", got " +
        std::to_string(spec.timeout_s()));
  if (spec.max_attempts() > limits::kMaxAttempts)
    bad("max_attempts must be in 1.." + std::to_string(limits::kMaxAttempts) + ", got " +
        std::to_string(spec.max_attempts()));
  if (spec.priority() < -limits::kMaxPriority || spec.priority() > limits::kMaxPriority)
    bad("priority must be in -999999..999999, got " + std::to_string(spec.priority()));
  check_text(pre + "name", spec.name(), limits::kMaxNameLen);
  for (const auto& [k, v] : s.labels()) check_label(pre + "selector.labels", k, v);
  for (const auto& [k, v] : spec.tags()) check_tag(pre + "tags", k, v);
  if (!s.worker_id().empty()) check_worker_id(pre + "selector.worker_id", s.worker_id());
}

}  // namespace farm::ctl
