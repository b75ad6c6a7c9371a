#pragma once
// The ranges of a job's typed workload fields, in one place: farmctl refuses
// them before sending, farmd at SubmitJob, farm-agent again before it builds
// an argv (a farmd bug or a forged lease must not get past the agent). They
// are patch-stress's and the bare-metal image's own limits, so a job one
// component accepts is never refused by another.
#include <cstddef>
#include <cstdint>

namespace farm::limits {

inline constexpr uint32_t kMaxStressThreads = 256;
// patch-stress has this many probed functions (farm/workloads/stress/functions.hpp).
inline constexpr uint32_t kMaxStressFunctions = 256;
inline constexpr uint64_t kMaxStressBatches = 100'000'000;
inline constexpr double kMaxStressDurationS = 86400;  // patch-stress refuses more
inline constexpr uint32_t kMaxBaremetalSmp = 64;
inline constexpr size_t kMaxBaremetalAppend = 256;     // the image's kernel command line

}  // namespace farm::limits
