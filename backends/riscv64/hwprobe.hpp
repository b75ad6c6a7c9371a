// Run-time ISA facts of the hart(s) this process runs on (hosted Linux only).
//
// What matters to the protocol is whether the *hart* decodes compressed
// instructions, not how the code was compiled (see encoding.hpp): it decides the
// trap (2-byte c.unimp vs. a 1-byte 0x00 over the low byte) and the store granule.
#pragma once

#include <cstdint>

namespace lp::riscv64 {

enum class HartSource : uint8_t {
  Hwprobe,  // riscv_hwprobe(RISCV_HWPROBE_KEY_IMA_EXT_0) over all online harts
  Hwcap,    // getauxval(AT_HWCAP) bit 'C' - 'A'
  Assumed,  // neither answered: assume C (the safe choice: the 2-byte trap is a
            // trap on every hart that can run 2-byte-aligned code at all)
};

struct HartInfo {
  bool has_c = true;
  HartSource source = HartSource::Assumed;
  long hwprobe_errno = 0;  // errno of riscv_hwprobe (0 when it answered)
  uint64_t hwcap = 0;      // AT_HWCAP as the kernel (or qemu-user) reported it
};

// Probes once (thread-safe, cached); later calls are async-signal-safe.
const HartInfo &hart_info();
inline bool hart_has_c() { return hart_info().has_c; }

const char *hart_source_name(HartSource s);

// Pure decision logic, for tests: hwprobe result (rc, IMA_EXT_0 value) and AT_HWCAP.
HartInfo decide_hart(long hwprobe_rc, long hwprobe_errno, uint64_t ima_ext0, uint64_t hwcap);

} // namespace lp::riscv64
