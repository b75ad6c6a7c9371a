// Kernel-assisted core syncs: after one returns, every thread of the process
// executes a context-synchronising event before it runs user code again, so
// none can still execute instruction bytes fetched before the call.
#pragma once

namespace lp::linux_platform {

// MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE. 0 or LP_ENOTSUP.
int membarrier_register();
// MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE. 0 or LP_ESYNC.
int membarrier_sync_core();
// riscv_flush_icache(0, 0, 0): every hart running this mm executes fence.i
// before it next runs user code. LP_ENOTSUP off RISC-V.
int flush_icache_all();
bool flush_icache_available();

} // namespace lp::linux_platform
