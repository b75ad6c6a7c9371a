#pragma once
// Matching jobs to workers.
#include <string>
#include <string_view>

#include "farm/v1/farm.pb.h"

namespace farm {

// "patch-stress", "baremetal", "command", "health-check" or "" if unset.
std::string_view workload_type(const v1::Workload& w);

// True if an ISA string `have` (e.g. "rv64gc") provides everything `want`
// ("rv64g", "rv64imac", ...) needs. RISC-V strings are compared as extension
// sets (g = imafd_zicsr_zifencei); other strings must be equal.
bool isa_satisfies(std::string_view want, std::string_view have);

// True if a worker with `caps` (and id `worker_id`) can run `spec`.
// On false, *why (if given) says which constraint failed.
bool selector_matches(const v1::JobSpec& spec, const v1::Capabilities& caps, std::string_view worker_id,
                      std::string* why = nullptr);

// "arch=riscv64 isa=rv64gc kind=qemu-user board=x" for messages.
std::string describe_selector(const v1::TargetSelector& s);
// The selector's set fields as KEY=VALUE joined by `sep`, labels sorted by key
// and named `label_prefix`KEY; "any" when none is set. describe_selector is
// (s, ' ', "label:").
std::string format_selector(const v1::TargetSelector& s, char sep, const std::string& label_prefix);
// "riscv64/qemu-user/rv64gc"
std::string target_name(const v1::Capabilities& c);
std::string target_name(const v1::TargetSelector& s);

}  // namespace farm
