// Executable memory for trampolines, mapped within reach of the code it serves.
// The same memfd pages are mapped twice: R-X near the code (what threads run)
// and RW elsewhere (what libpatch writes), so no page is ever writable and
// executable at one address.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lp::linux_platform {

struct DualMapping {
  uintptr_t rx = 0; // executes here
  uint8_t *rw = nullptr; // writes here
  size_t size = 0;
};

// Maps `size` bytes (page multiple) whose RX view lies within `reach` bytes of
// both ends of [near_lo, near_hi). 0, LP_ERANGE (no free gap in reach) or LP_ENOMEM.
int map_near(uintptr_t near_lo, uintptr_t near_hi, int64_t reach, size_t size, DualMapping *out);
void unmap(const DualMapping &m);

} // namespace lp::linux_platform
