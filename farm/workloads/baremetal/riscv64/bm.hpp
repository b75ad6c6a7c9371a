// Shared declarations of the bare-metal RISC-V stress image.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/protocol.hpp"
#include "layout.h"
#include "riscv64/encoding.hpp"
#include "sbi.hpp"

#if defined(__riscv_compressed)
#define BM_ISA "rv64gc"
#else
#define BM_ISA "rv64g"
#endif

namespace bm {

// ---- per-hart state (tp points at this hart's entry) -------------------------
enum HartState : uint32_t { kOffline = 0, kReady = 1, kRunning = 2, kDone = 3 };

struct alignas(HD_SIZE) HartData {
  uint64_t hartid;                      // HD_HARTID
  uint64_t hits[BM_MAX_SITES];          // HD_HITS: bumped by the trampolines (asm)
  uint64_t trap_hits[BM_MAX_SITES];     // probe hits delivered by the trap handler
  uint64_t calls;                       // worker loop iterations (each calls every site once);
                                        // also the quiescent-state counter of the grace period
  uint64_t traps;                       // traps at a site head resolved by the handler
  uint64_t evacuations;                 // times the IPI handler moved this hart out of a sled
  uint64_t ipis;                        // sync IPIs taken
  uint64_t ack_seq;                     // last sync request this hart completed
  uint64_t nap_seq;                     // odd while the worker naps (burst=N), see grace_period()
  uint64_t lingers;                     // interrupts that returned into a sled after linger=US
  uint64_t stale_traps;                 // traps fetched after the sync that removed them (QEMU)
  uint32_t state;                       // HartState
  uint32_t has_c;                       // run-time probe: does this hart decode C?
  uint32_t probing_c;                   // the C probe is running (trap handler: not a failure)
  uint32_t present;
};
static_assert(sizeof(HartData) == HD_SIZE); // entry.S indexes bm_harts by HD_SIZE

extern "C" HartData bm_harts[BM_MAX_HARTS];
inline HartData *this_hart() {
  HartData *p;
  asm("mv %0, tp" : "=r"(p));
  return p;
}

// ---- sites ------------------------------------------------------------------
struct Site {
  uintptr_t addr = 0;                   // first byte of the sled (= the function symbol)
  uint32_t len = 0;                     // whole sled, bytes
  lp::riscv64::Ilen ilen = lp::riscv64::Ilen::C16;
  uintptr_t tramp = 0;
  uint8_t off_bytes[lp::engine::kMaxSiteBytes] = {}; // the sled as compiled (nops)
  uint8_t on_bytes[lp::engine::kMaxSiteBytes] = {};  // the entry call into tramp
  bool on = false;                      // what the text holds (patcher only)
  // Read by the trap / IPI handlers of every hart:
  uint32_t armed = 0;                   // a trap at addr may be observed (batch in flight or in grace)
  uint32_t enabled = 0;                 // the probe's logical state: what a trap resolves to
  uint32_t evac = 0;                    // an evacuating batch covers this site
};

inline constexpr uint32_t kNumSites = BM_MAX_SITES;
inline constexpr bool site_is_far(uint32_t i) { return i % 4 == 3; }
extern Site g_sites[kNumSites];
extern "C" uint64_t bm_tramp_expect[BM_MAX_SITES];

// The patchable functions (sites.cpp) and the reference they must keep matching.
extern "C" void bm_anchor();
extern "C" uint64_t (*const bm_site_fns[kNumSites])(uint64_t);
extern "C" const uint32_t bm_sled_units[kNumSites];
extern "C" const uintptr_t bm_tramps[kNumSites];
inline uint64_t mix(uint64_t x, uint64_t k) {
  x ^= x >> 29;
  x *= 0x9e3779b97f4a7c15ull + 2 * k;
  return x ^ (x >> 32) ^ k;
}

// ---- sync / platform ----------------------------------------------------------
enum class SyncMode : uint32_t {
  Ipi,     // IPI to every worker; each does a local fence.i (+ evacuation) and acks
  Rfence,  // SBI RFENCE remote fence.i; the evacuating sync adds an IPI evacuation round
  None,    // negative control: no fence.i, no IPI, no evacuation
  NoEvac,  // negative control: like Ipi but never evacuates
};
const char *sync_mode_name(SyncMode m);

struct Platform {
  SyncMode mode = SyncMode::Ipi;
  unsigned long worker_mask = 0;        // bit per worker hart id
  unsigned long all_mask = 0;           // every running hart, patcher included
  uint32_t workers[BM_MAX_HARTS] = {};  // hart ids of the workers
  uint32_t nworkers = 0;
  bool hart_has_c = true;
  bool tolerate_stale = false;
  bool patcher_wfi = true;              // the patcher sleeps while waiting for acks (woken by the last one)
  uint32_t patcher_hart = 0;
  uint64_t linger_ticks = 0;            // linger=US: stay in an interrupt that hit inside a sled          // stale traps are counted, not fatal (QEMU TCG, see docs)
  uint64_t timebase = 10000000;         // Hz (device tree /cpus/timebase-frequency)
  // batch in flight (for on_phase)
  const uint32_t *batch_sites = nullptr;
  const lp::engine::Transition *batch = nullptr;
  const bool *batch_on = nullptr;        // target state of each site of the batch
  uint32_t batch_n = 0;
  // counters
  uint64_t seq = 0;
  uint64_t ipi_rounds = 0;
  uint64_t rfences = 0;
  uint64_t evac_rounds = 0;
  uint64_t graces = 0;
};
extern Platform g_plat;

lp::engine::EngineOps make_engine_ops();
// Applies one batch: sites idx[0..n) go to `on[i]`. Returns the engine's error.
lp::engine::EngineError apply_batch(const uint32_t *idx, const bool *on, uint32_t n,
                                    lp::engine::EngineStats *st);
// Waits until every worker has passed its quiescent point (loop back edge) twice.
void grace_period();

// ---- console / failure ------------------------------------------------------
void putc(char c);
void puts(const char *s);
void put_u64(uint64_t v);
void put_hex(uint64_t v);
void console_lock();
void console_unlock();

struct Json {
  char buf[2048];
  size_t n = 0;
  bool first = true;
  Json();
  void key(const char *k);
  void raw(const char *s);
  void str(const char *k, const char *v);
  void u64(const char *k, uint64_t v);
  void hex(const char *k, uint64_t v);
  void boolean(const char *k, bool v);
  void emit(); // closes the object and prints it as one line
};

[[noreturn]] void power_off(uint32_t code); // 0 = pass
// Prints a diagnostic and a failing JSON line, powers off with `code`.
[[noreturn]] void fail(int code, const char *reason, uint64_t a = 0, uint64_t b = 0, uint64_t c = 0);
uint64_t ms_since(uint64_t t0);

// ---- device tree / bootargs ---------------------------------------------------
const void *fdt_prop(const void *fdt, const char *node, const char *prop, uint32_t *len);
bool streq(const char *a, const char *b);

} // namespace bm
