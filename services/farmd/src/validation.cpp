#include "validation.hpp"

#include "farm/common/workload_limits.hpp"

#include <cmath>
#include <initializer_list>

#include "farm/common/util.hpp"

namespace farmd::check {

using grpc::Status;
using grpc::StatusCode;

namespace {

Status bad(std::string m) { return Status(StatusCode::INVALID_ARGUMENT, std::move(m)); }

std::string q(std::string_view s) { return "'" + farm::clip(s) + "'"; }

bool alnum(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Every character alphanumeric or in `extra`.
bool charset(std::string_view s, std::string_view extra) {
  for (unsigned char c : s)
    if (!alnum(c) && extra.find(static_cast<char>(c)) == std::string_view::npos) return false;
  return true;
}

// ^[A-Za-z0-9][A-Za-z0-9<extra>]{0,max-1}$
bool ident(std::string_view s, size_t max, std::string_view extra) {
  return !s.empty() && s.size() <= max && alnum(static_cast<unsigned char>(s[0])) && charset(s, extra);
}

bool printable(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

bool one_of(const std::string& v, std::initializer_list<const char*> ok) {
  if (v.empty()) return true;
  for (const char* o : ok)
    if (v == o) return true;
  return false;
}

std::string n(uint64_t v) { return std::to_string(v); }

// 0 means "the default"; anything else must be in lo..hi.
Status count_field(const char* field, uint64_t v, uint64_t lo, uint64_t hi) {
  if (v != 0 && (v < lo || v > hi))
    return bad(std::string(field) + " is " + n(v) + "; it must be " + n(lo) + ".." + n(hi) + " (0: the default)");
  return Status::OK;
}

constexpr size_t kMaxLabels = 32, kMaxTags = 64, kMaxTagValue = 256;

Status labels(std::string_view field, const google::protobuf::Map<std::string, std::string>& m, size_t max) {
  if (m.size() > max) return bad(std::string(field) + " has " + n(m.size()) + " entries; at most " + n(max));
  for (const auto& [k, v] : m) {
    if (!ident(k, 64, "._-"))
      return bad(std::string(field) + " key " + q(k) + " must be 1-64 chars of [A-Za-z0-9._-], starting alphanumeric");
    if (v.size() > 128 || !charset(v, "._:@+,=-"))
      return bad(std::string(field) + " value of " + q(k) + " must be at most 128 chars of [A-Za-z0-9._:@+,=-]");
  }
  return Status::OK;
}

// Variables that make the dynamic loader, a shell or an interpreter run
// something other than the command named in argv: never from a client.
bool loader_variable(const std::string& k) {
  if (k.rfind("LD_", 0) == 0) return true;
  for (const char* v : {"GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "MALLOC_TRACE", "PATH",
                        "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PYTHONPATH", "PYTHONSTARTUP",
                        "PYTHONHOME", "PERL5LIB", "PERL5OPT", "PERLLIB", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS",
                        "NODE_PATH", "LUA_INIT", "LUA_PATH", "LUA_CPATH", "TCLLIBPATH", "GIT_EXEC_PATH"})
    if (k == v) return true;
  return k.rfind("BASH_FUNC_", 0) == 0;
}

Status patch_stress(const v1::PatchStress& p) {
  if (!p.binary().empty())
    return bad("patch_stress.binary " + q(p.binary()) +
               " is not accepted: the binary is chosen by the agent (farm-agent --patch-stress); leave it empty");
  if (p.extra_args_size() > 0)
    return bad("patch_stress.extra_args (" + n(p.extra_args_size()) +
               " given) is not accepted: a client does not choose the workload's command line; use the typed "
               "fields (threads, functions, batches, duration_s, writer, sync, probe_kind, sites, exit_probes)");
  if (auto s = count_field("patch_stress.threads", p.threads(), 1, farm::limits::kMaxStressThreads); !s.ok()) return s;
  // patch-stress has 256 probed functions (farm/workloads/stress: lp_stress::kMaxFunctions):
  // a larger count could only be refused later, by the agent or the workload.
  if (auto s = count_field("patch_stress.functions", p.functions(), 1, farm::limits::kMaxStressFunctions); !s.ok()) return s;
  if (auto s = count_field("patch_stress.batches", p.batches(), 1, farm::limits::kMaxStressBatches); !s.ok()) return s;
  const double d = p.duration_s();
  if (!std::isfinite(d) || d < 0 || d > farm::limits::kMaxStressDurationS) {
    char b[48];
    std::snprintf(b, sizeof b, "%g", d);
    return bad(std::string("patch_stress.duration_s is ") + b + "; it must be a finite number of seconds in 0..86400");
  }
  if (!one_of(p.writer(), {"mprotect", "procmem", "default"}))
    return bad("patch_stress.writer must be mprotect, procmem or default, not " + q(p.writer()));
  if (!one_of(p.sync(), {"membarrier", "flush_icache", "signal", "default"}))
    return bad("patch_stress.sync must be membarrier, flush_icache, signal or default, not " + q(p.sync()));
  if (!one_of(p.probe_kind(), {"jump", "trap", "auto"}))
    return bad("patch_stress.probe_kind must be jump, trap or auto, not " + q(p.probe_kind()));
  if (!one_of(p.sites(), {"entry", "body"}))
    return bad("patch_stress.sites must be entry or body, not " + q(p.sites()));
  if (p.exit_probes() && p.sites() == "body")
    return bad("patch_stress.exit_probes needs entry sites (call probes sit on a function's entry sled); "
               "sites body is not allowed with it");
  if (p.batches() && d > 0) return bad("patch_stress.batches and duration_s are exclusive");
  return Status::OK;
}

Status baremetal(const v1::BaremetalImage& b, const v1::JobSpec& spec) {
  if (b.image().empty())
    return bad("baremetal.image (the name of an image configured on the agent) is required");
  if (!ident(b.image(), 64, "._-"))
    return bad("baremetal.image " + q(b.image()) +
               " must be the NAME of an image configured on the agent (1-64 chars of [A-Za-z0-9._-], starting "
               "alphanumeric; no '/': agents map names to their own files)");
  if (b.extra_args_size() > 0)
    return bad("baremetal.extra_args (" + n(b.extra_args_size()) +
               " given) is not accepted: a client does not choose the emulator's command line; use baremetal.append "
               "for the image's kernel command line");
  if (auto s = count_field("baremetal.smp", b.smp(), 1, farm::limits::kMaxBaremetalSmp); !s.ok()) return s;
  if (!b.machine().empty() && b.machine() != "virt")
    return bad("baremetal.machine must be empty (the agent's default) or virt, not " + q(b.machine()));
  if (!b.memory().empty()) {
    const auto& m = b.memory();
    bool ok = m.size() >= 2 && m.size() <= 7 && (m.back() == 'M' || m.back() == 'G');
    for (size_t i = 0; ok && i + 1 < m.size(); ++i) ok = m[i] >= '0' && m[i] <= '9';
    if (!ok) return bad("baremetal.memory must be 1-6 digits and M or G (e.g. 256M, 1G), not " + q(m));
  }
  if (b.append().size() > farm::limits::kMaxBaremetalAppend || !charset(b.append(), " =._,:+-"))
    return bad("baremetal.append must be at most 256 chars of [A-Za-z0-9 =._,:+-] (key=value pairs for the image)");
  if (!spec.selector().kind().empty() && spec.selector().kind() != "qemu-system" && spec.selector().kind() != "board")
    return bad("a baremetal image runs on qemu-system or board workers, not " + q(spec.selector().kind()));
  return Status::OK;
}

Status command(const v1::Command& c) {
  if (c.argv().empty() || c.argv(0).empty()) return bad("command.argv must not be empty");
  if (c.argv_size() > 256) return bad("command.argv has " + n(c.argv_size()) + " elements; at most 256");
  size_t total = 0;
  for (int i = 0; i < c.argv_size(); ++i) {
    const auto& a = c.argv(i);
    total += a.size();
    if (a.size() > 4096) return bad("command.argv[" + n(i) + "] is " + n(a.size()) + " bytes; at most 4096");
    if (a.find('\0') != std::string::npos) return bad("command.argv[" + n(i) + "] contains a NUL byte");
  }
  if (total > 65536) return bad("command.argv is " + n(total) + " bytes in total; at most 65536");
  if (c.env_size() > 64) return bad("command.env has " + n(c.env_size()) + " entries; at most 64");
  for (const auto& [k, v] : c.env()) {
    bool ok = !k.empty() && k.size() <= 64 && !(k[0] >= '0' && k[0] <= '9') && charset(k, "_");
    if (!ok) return bad("command.env name " + q(k) + " must be 1-64 chars of [A-Za-z0-9_], not starting with a digit");
    if (loader_variable(k))
      return bad("command.env " + k + " is not accepted: it changes what the command executes");
    if (v.size() > 4096) return bad("command.env " + k + " is " + n(v.size()) + " bytes; at most 4096");
    if (v.find('\0') != std::string::npos) return bad("command.env " + k + " contains a NUL byte");
  }
  return Status::OK;
}

Status selector(const v1::TargetSelector& s) {
  if (s.arch().size() > 32 || !charset(s.arch(), "_-"))
    return bad("selector.arch must be at most 32 chars of [A-Za-z0-9_-], not " + q(s.arch()));
  if (s.isa().size() > 64 || !charset(s.isa(), "_.+-"))
    return bad("selector.isa must be at most 64 chars of [A-Za-z0-9_.+-], not " + q(s.isa()));
  if (!s.kind().empty() && !known_kind(s.kind()))
    return bad("selector.kind must be native, qemu-user, qemu-system or board, not " + q(s.kind()));
  if (auto st = labels("selector.labels", s.labels(), kMaxLabels); !st.ok()) return st;
  if (s.min_cores() > 65536) return bad("selector.min_cores is " + n(s.min_cores()) + "; at most 65536");
  if (auto st = worker_id("selector.worker_id", s.worker_id(), false); !st.ok()) return st;
  return Status::OK;
}

}  // namespace

bool known_kind(std::string_view k) {
  return k == "native" || k == "qemu-user" || k == "qemu-system" || k == "board";
}

bool valid_worker_name(std::string_view s) {
  return !s.empty() && s.size() <= kMaxWorkerNameLen && charset(s, "-_.@:");
}

Status job_id(std::string_view field, const std::string& id) {
  if (id.empty()) return bad(std::string(field) + " is required");
  if (id.size() > kMaxJobIdLen)
    return bad(std::string(field) + " is " + n(id.size()) + " characters long; job ids are at most " + n(kMaxJobIdLen));
  if (!charset(id, "._-")) return bad(std::string(field) + " " + q(id) + " has a character outside [A-Za-z0-9._-]");
  return Status::OK;
}

Status worker_id(std::string_view field, const std::string& id, bool required) {
  if (id.empty()) return required ? bad(std::string(field) + " is required") : Status::OK;
  if (id.size() > kMaxWorkerNameLen)
    return bad(std::string(field) + " is " + n(id.size()) + " characters long; worker names are at most " +
               n(kMaxWorkerNameLen));
  if (!valid_worker_name(id))
    return bad(std::string(field) + " " + q(id) + " must be 1-128 chars of [A-Za-z0-9._@:-]");
  return Status::OK;
}

Status session(const std::string& s) {
  if (s.size() > kMaxSessionLen || !charset(s, ""))
    return bad("session must be the session returned by Register (at most 64 alphanumeric chars)");
  return Status::OK;
}

Status tags(std::string_view field, const google::protobuf::Map<std::string, std::string>& m) {
  if (m.size() > kMaxTags) return bad(std::string(field) + " has " + n(m.size()) + " entries; at most " + n(kMaxTags));
  for (const auto& [k, v] : m) {
    if (!ident(k, 64, "._:/-"))
      return bad(std::string(field) + " key " + q(k) + " must be 1-64 chars of [A-Za-z0-9._:/-], starting alphanumeric");
    if (v.size() > kMaxTagValue || !printable(v))
      return bad(std::string(field) + " value of " + q(k) + " must be at most " + n(kMaxTagValue) +
                 " chars without control characters");
  }
  return Status::OK;
}

Status text(std::string_view field, const std::string& s, size_t max) {
  if (s.size() > max) return bad(std::string(field) + " is " + n(s.size()) + " bytes; at most " + n(max));
  if (!printable(s)) return bad(std::string(field) + " contains control characters");
  return Status::OK;
}

Status spec(const v1::JobSpec& spec, const Config& cfg) {
  const auto& w = spec.workload();
  Status s;
  switch (w.spec_case()) {
    case v1::Workload::SPEC_NOT_SET:
      return bad("job has no workload (set patch_stress, baremetal or command)");
    case v1::Workload::kPatchStress: s = patch_stress(w.patch_stress()); break;
    case v1::Workload::kBaremetal: s = baremetal(w.baremetal(), spec); break;
    case v1::Workload::kCommand: s = command(w.command()); break;
    case v1::Workload::kHealthCheck:
      if (spec.selector().worker_id().empty())
        return bad("a health_check job must be pinned to a worker (selector.worker_id)");
      break;
  }
  if (!s.ok()) return s;
  if (auto st = selector(spec.selector()); !st.ok()) return st;
  if (spec.name().size() > 256 || !printable(spec.name()))
    return bad("name must be at most 256 chars without control characters");
  if (spec.timeout_s() > cfg.max_timeout_s)
    return bad("timeout_s " + n(spec.timeout_s()) + " exceeds the maximum " + n(cfg.max_timeout_s));
  if (spec.max_attempts() > cfg.max_attempts_limit)
    return bad("max_attempts is " + n(spec.max_attempts()) + "; it must be <= " + n(cfg.max_attempts_limit) +
               " (0: farmd's default)");
  if (spec.priority() < -999'999 || spec.priority() > 999'999)
    return bad("priority is " + std::to_string(spec.priority()) +
               "; it must be in -999999..999999 (health checks run above)");
  if (auto st = tags("tags", spec.tags()); !st.ok()) return st;
  // after the field checks (their messages say more); bounds what the per-field limits let through
  if (spec.ByteSizeLong() > 256 * 1024)
    return bad("the job spec is " + n(spec.ByteSizeLong()) + " bytes; at most 262144");
  return Status::OK;
}

Status capabilities(const v1::Capabilities& c) {
  if (c.arch().empty()) return bad("capabilities.arch is required");
  if (c.arch().size() > 32 || !charset(c.arch(), "_-"))
    return bad("capabilities.arch must be at most 32 chars of [A-Za-z0-9_-], not " + q(c.arch()));
  if (c.isa().size() > 64 || !charset(c.isa(), "_.+-"))
    return bad("capabilities.isa must be at most 64 chars of [A-Za-z0-9_.+-], not " + q(c.isa()));
  if (!known_kind(c.kind())) return bad("capabilities.kind must be native, qemu-user, qemu-system or board");
  if (auto st = labels("capabilities.labels", c.labels(), 64); !st.ok()) return st;
  if (c.kernel().size() > 128 || !printable(c.kernel()))
    return bad("capabilities.kernel must be at most 128 chars without control characters");
  if (c.workloads_size() > 16) return bad("capabilities.workloads has " + n(c.workloads_size()) + " entries; at most 16");
  for (const auto& w : c.workloads())
    if (!ident(w, 32, "-_")) return bad("capabilities.workloads entry " + q(w) + " must be 1-32 chars of [A-Za-z0-9_-]");
  if (c.slots() > 1024) return bad("capabilities.slots must be <= 1024");
  if (c.cores() > 65536) return bad("capabilities.cores must be <= 65536");
  if (c.agent_version().size() > 64 || !printable(c.agent_version()))
    return bad("capabilities.agent_version must be at most 64 chars without control characters");
  return Status::OK;
}

Status result(const v1::JobResult& r) {
  const int o = r.outcome();
  if (!v1::Outcome_IsValid(o)) return bad("result.outcome " + std::to_string(o) + " is not a known outcome");
  switch (r.outcome()) {
    case v1::OUTCOME_UNSPECIFIED:
      return bad("result.outcome is required (PASS, FAIL, TIMEOUT, INFRA_ERROR, CANCELLED, HANDED_BACK or REFUSED)");
    case v1::OUTCOME_LOST:
      return bad("result.outcome LOST is farmd's verdict on an expired lease, not an agent's; report INFRA_ERROR "
                 "or HANDED_BACK");
    default: break;
  }
  if (r.outcome() == v1::OUTCOME_PASS && r.verdict() == "fail")
    return bad("result.outcome PASS contradicts result.verdict 'fail'");
  if (r.verdict().size() > 64 || !printable(r.verdict()))
    return bad("result.verdict must be at most 64 chars without control characters");
  if (r.message().size() > 16384) return bad("result.message is " + n(r.message().size()) + " bytes; at most 16384");
  if (r.result_json().size() > (1u << 20))
    return bad("result.result_json is " + n(r.result_json().size()) + " bytes; at most 1 MiB");
  if (r.log_tail().size() > (1u << 20)) return bad("result.log_tail is " + n(r.log_tail().size()) + " bytes; at most 1 MiB");
  return Status::OK;
}

}  // namespace farmd::check
