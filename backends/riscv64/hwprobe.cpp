#include "hwprobe.hpp"

#include <cerrno>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

// Linux 6.4+ uapi <asm/hwprobe.h>; Debian 12's headers predate it.
#ifndef __NR_riscv_hwprobe
#define __NR_riscv_hwprobe 258
#endif

namespace lp::riscv64 {
namespace {

constexpr int64_t kKeyImaExt0 = 4;       // RISCV_HWPROBE_KEY_IMA_EXT_0
constexpr uint64_t kImaFd = 1ull << 0;   // RISCV_HWPROBE_IMA_FD
constexpr uint64_t kImaC = 1ull << 1;    // RISCV_HWPROBE_IMA_C
constexpr uint64_t kHwcapC = 1ull << ('C' - 'A');

struct HwprobePair {
  int64_t key;
  uint64_t value;
};

HartInfo probe() {
  HwprobePair pair{kKeyImaExt0, 0};
  // cpusetsize 0 / cpus NULL: the answer holds for all online harts (a value
  // bit is set only if every hart has the extension).
  errno = 0;
  const long rc = syscall(__NR_riscv_hwprobe, &pair, 1, 0, nullptr, 0);
  const long err = rc == 0 ? 0 : errno;
  // A kernel that does not know the key sets it to -1.
  const uint64_t value = (rc == 0 && pair.key == kKeyImaExt0) ? pair.value : 0;
  const long eff_rc = (rc == 0 && pair.key != kKeyImaExt0) ? -1 : rc;
  return decide_hart(eff_rc, err, value, getauxval(AT_HWCAP));
}

} // namespace

HartInfo decide_hart(long hwprobe_rc, long hwprobe_errno, uint64_t ima_ext0, uint64_t hwcap) {
  HartInfo h;
  h.hwprobe_errno = hwprobe_rc == 0 ? 0 : (hwprobe_errno ? hwprobe_errno : EINVAL);
  h.hwcap = hwcap;
  (void)kImaFd;
  if (hwprobe_rc == 0) {
    h.has_c = (ima_ext0 & kImaC) != 0;
    h.source = HartSource::Hwprobe;
  } else if (hwcap != 0) {
    h.has_c = (hwcap & kHwcapC) != 0;
    h.source = HartSource::Hwcap;
  } else {
    h.has_c = true;
    h.source = HartSource::Assumed;
  }
  return h;
}

const HartInfo &hart_info() {
  static const HartInfo info = probe();
  return info;
}

const char *hart_source_name(HartSource s) {
  switch (s) {
  case HartSource::Hwprobe: return "riscv_hwprobe";
  case HartSource::Hwcap: return "AT_HWCAP";
  case HartSource::Assumed: return "assumed";
  }
  return "?";
}

} // namespace lp::riscv64
