// The breakpoint protocol engine: applies a *batch* of site transitions to live
// text with exactly three core syncs, whatever the batch size.
//
// Freestanding by contract: no libc, no heap, no exceptions, no RTTI. The same
// object code logic is compiled into the hosted library and into the bare-metal
// RISC-V image (farm/workloads/baremetal), so anything platform-specific goes
// through EngineOps.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace lp::engine {

inline constexpr uint32_t kMaxSiteBytes = 32;
inline constexpr uint32_t kMaxTrapBytes = 4;

// One site going from the bytes it holds now to new bytes.
struct Transition {
  uintptr_t addr = 0;      // first byte of the site; aligned to the granule
  uint32_t len = 0;        // bytes the transition covers (old and new have this length)
  uint32_t trap_len = 0;   // bytes covered by the trap written in phase 1 (multiple of granule)
  bool evacuate = false;   // the old or new code has an instruction boundary inside
                           // (0, len): a thread may be parked there, so phase 1's sync
                           // must also move such threads out (SyncPoint::AfterTraps + evacuate)
  uint8_t old_bytes[kMaxSiteBytes] = {};
  uint8_t new_bytes[kMaxSiteBytes] = {};
  uint8_t trap_bytes[kMaxTrapBytes] = {}; // what phase 1 stores over [0, trap_len)
};

enum class SyncPoint : uint8_t {
  AfterTraps = 1, // every site of the batch now starts with a trap
  AfterTails = 2, // bytes [trap_len, len) hold the new code
  AfterHeads = 3, // the batch is complete
  Rollback = 4,   // a failed batch is being undone
};

enum class EngineError : int {
  Ok = 0,
  Invalid = -1,   // malformed transition (length, alignment, granule)
  Write = -10,    // the platform's write failed
  Sync = -9,      // the platform's sync failed
  State = -13,    // the text did not hold old_bytes when the batch started
};

struct EngineOps {
  void *ctx = nullptr;
  // Granule of every store the engine issues: 1 (x86-64, rv64g) or 2 (rv64gc).
  uint32_t granule = 1;
  // Stores `granule` bytes at `addr` (naturally aligned) as ONE store. Returns 0 on success.
  int (*write)(void *ctx, uintptr_t addr, const uint8_t *src, uint32_t granule) = nullptr;
  // Makes every core see all writes so far before it fetches again. With `evacuate`,
  // additionally moves any thread whose pc is strictly inside an evacuating site of
  // the batch to an equivalent place outside it. Returns 0 on success.
  int (*sync)(void *ctx, SyncPoint point, bool evacuate) = nullptr;
  // Reads text (plain loads suffice: only this engine writes it). Optional:
  // when null, the engine reads through the pointer directly.
  void (*read)(void *ctx, uintptr_t addr, uint8_t *dst, uint32_t len) = nullptr;
  // Called before phase 1 and after phase 3 so the platform can publish what a
  // trap at each site means (site table). Optional.
  void (*on_phase)(void *ctx, int phase) = nullptr;
};

struct EngineStats {
  uint64_t syncs = 0;
  uint64_t writes = 0;
  uint64_t sites = 0;
};

// Checks one transition is well formed for the given granule.
EngineError validate(const Transition &t, uint32_t granule);

// Applies `n` transitions as one batch:
//   phase 1: store each site's trap over [0, trap_len)           -> sync (+evacuate)
//   phase 2: store each site's new bytes over [trap_len, len)    -> sync
//   phase 3: store each site's new bytes over [0, trap_len)      -> sync
// On a write or sync failure after phase 1 began, the batch is rolled back to
// the old bytes with the same protocol so no site is ever left torn.
EngineError run_batch(const EngineOps &ops, const Transition *sites, size_t n, EngineStats *stats);

} // namespace lp::engine
