#include "core_sync.hpp"

#include <cerrno>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libpatch/patch.h"

namespace lp::linux_platform {

int membarrier_register() {
  const long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (q < 0 || !(q & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)) return LP_ENOTSUP;
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) != 0) return LP_ENOTSUP;
  return 0;
}

int membarrier_sync_core() {
  return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0 ? 0 : LP_ESYNC;
}

#if defined(__riscv)
#ifndef __NR_riscv_flush_icache
#define __NR_riscv_flush_icache 259
#endif
int flush_icache_all() { return syscall(__NR_riscv_flush_icache, 0, 0, 0) == 0 ? 0 : LP_ESYNC; }
bool flush_icache_available() { return true; }
#else
int flush_icache_all() { return LP_ENOTSUP; }
bool flush_icache_available() { return false; }
#endif

} // namespace lp::linux_platform
