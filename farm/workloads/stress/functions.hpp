// The probed functions: kMaxFunctions distinct patchable functions, each
// computing a value the caller can check (a probe must never change it).
#pragma once

#include <cstdint>

namespace lp_stress {

inline constexpr unsigned kMaxFunctions = 256;
using Fn = uint64_t (*)(uint64_t);

// Expected result of function i for argument x.
constexpr uint64_t expected(unsigned i, uint64_t x) { return x * (2 * i + 3) + (i ^ 0x5a); }

const Fn *functions(); // kMaxFunctions entries

} // namespace lp_stress
