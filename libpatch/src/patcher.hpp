// lp_patcher and lp_probe: probes, staging, batched commits, trap dispatch.
#pragma once

#include <atomic>
#include <csignal>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "backend.hpp"
#include "call_runtime.hpp"
#include "insn_site.hpp"
#include "libpatch/patch.h"
#include "site_table.hpp"
#include "trampoline_pool.hpp"

namespace lp::linux_platform {
class TextWriter;
}

enum class ProbeState : uint8_t { Disabled, Enabled, Removed };

// What a probe does at its site.
enum class ProbeKind : uint8_t {
  Entry,   // lp_probe_at / lp_probe_symbol: a handler
  Call,    // lp_probe_call: entry and exit handlers through the call runtime
  Replace, // lp_replace: calls go to another function
};

struct lp_probe {
  lp_patcher *owner = nullptr;
  ProbeKind kind = ProbeKind::Entry;
  bool internal = false;      // libpatch's own (the unwinder hooks), not the tracer's
  lp::CallProbe *call = nullptr; // Call: owned by the patcher's CallRuntime
  uintptr_t replacement = 0;  // Replace: where calls go
  uintptr_t original_fn = 0;  // Replace: runs the original function
  lp::SiteShape shape;
  bool jump = false;
  int fallback = 0;           // LP_PROBE_JUMP_OR_TRAP made it a trap probe: why the jump failed
  lp_handler handler = nullptr;
  void *user = nullptr;
  std::atomic<uint64_t> hits{0};
  ProbeState committed = ProbeState::Disabled;
  ProbeState staged = ProbeState::Disabled;
  uint8_t original[lp::engine::kMaxSiteBytes] = {}; // bytes when the probe was created
  uint8_t current[lp::engine::kMaxSiteBytes] = {};  // bytes the text holds now
  lp::Slot tramp;                                  // jump probes
  std::unique_ptr<lp::InsnSite> insn;              // instruction sites (not entry sleds)
  bool in_batch = false;                           // part of the commit in progress
  bool batch_evacuate = false;
  bool dead() const { return committed == ProbeState::Removed; }
};

struct lp_patcher {
  lp_options opt{};
  const lp::Backend *backend = nullptr;
  std::unique_ptr<lp::linux_platform::TextWriter> writer;
  int sync_kind = LP_SYNC_MEMBARRIER; // resolved (never DEFAULT)
  bool membarrier_ok = false;
  lp::SiteTable table;
  std::unique_ptr<lp::TrampolinePool> pool;
  std::vector<std::unique_ptr<lp_probe>> probes;
  // Site-table entries of every exit trap of every out-of-line copy ever made
  // (RISC-V trap probes far from their site): immutable once the probe exists,
  // and kept after its removal so a thread still in an old copy finds its exit.
  std::vector<lp::SiteEntry> exit_traps;
  // The probe that owns each site address (a live one wins over a removed one).
  std::map<uintptr_t, lp_probe *> by_addr;
  // Probes staged since the last commit (may hold duplicates / no-ops).
  std::vector<lp_probe *> dirty;
  // Executable mappings seen so far (refreshed from /proc/self/maps on a miss).
  std::vector<std::pair<uintptr_t, uintptr_t>> exec_maps;
  std::recursive_mutex mu;
  intptr_t tls_depth_offset = 0;
  std::shared_ptr<void> mc_decoder; // lp::mc::Decoder, created on the first instruction site
  uint64_t generation = 1; // grace-period generations started
  unsigned long chained_at_open = 0; // the process-wide chained-trap count when opened
  // Calls: the runtime (return trampoline, call probes), created with the
  // first call probe, and the unwinder hooks it needs (unwind_hooks.cpp).
  std::unique_ptr<lp::CallRuntime> calls;
  bool unwind_hooks_tried = false;
  uint32_t unwind_hooks = 0, unwind_missing = 0;

  // Counters (the trap handler updates some: atomics).
  std::atomic<uint64_t> commits{0}, syncs{0}, writes{0}, sites{0}, traps{0}, evacuated{0}, stopped_rounds{0},
      stale_traps{0};
  // Stores the stopped protocol makes at the next sync (Backend::store_needs_stop).
  struct StoppedStore {
    uintptr_t addr;
    uint8_t bytes[4];
    uint32_t len;
  };
  std::vector<StoppedStore> stopped;

  int open(const lp_options &o);
  void close();
  int create_probe(void *addr, lp_handler h, void *user, lp_probe **out);
  // What the probe creators share: 0 with the site shape and whether it is a
  // function's entry sled (no probe owns it, nothing overlaps it), or why no
  // probe can go at `addr`.
  int locate(uintptr_t addr, lp::SiteShape *shape, bool *sled);
  bool function_start(uintptr_t addr) const; // a symbol starts exactly here
  void take_sled(lp_probe &p, const lp::SiteShape &shape) const; // shape + its current bytes
  // p.jump as the policy allows: the jump `setup` prepares, else the trap
  // fallback (0), or why the jump LP_PROBE_JUMP requires failed.
  int jump_or_trap(lp_probe &p, int (lp_patcher::*setup)(lp_probe &));
  bool function_entry(uintptr_t sled, uintptr_t map_end);
  int create_insn_probe(uintptr_t addr, lp_handler h, void *user, lp_probe **out);
  // Makes `p` an instruction site at `addr` (prepare_insn_probe) and adds it.
  int add_insn_probe(std::unique_ptr<lp_probe> p, uintptr_t addr, lp_probe **out);
  void add_probe(std::unique_ptr<lp_probe> p, lp_probe **out);
  int create_call_probe(void *addr, lp_entry_handler entry, lp_exit_handler exit, void *user, lp_probe **out);
  int create_replacement(void *addr, void *replacement, lp_probe **out, bool internal = false);
  // The jump trampoline of an entry-sled probe (Entry or Call): 0, or why not.
  int setup_entry_jump(lp_probe &p);
  // The redirect stub of a replacement at an entry sled, into p.tramp.
  int setup_redirect_stub(lp_probe &p);
  // The enabled bytes of an entry-sled jump probe (Entry, Call or Replace).
  int site_jump_bytes(const lp_probe &p, uint8_t *out) const;
  int ensure_call_runtime(uintptr_t near);
  int commit();
  int quiesce(unsigned timeout_ms, bool *ok);
  int sync(lp::engine::SyncPoint point, bool evacuate);
  void publish_table();
  bool executable(uintptr_t addr, uintptr_t *map_end);
  // 0, or why no new probe can be placed at `addr`: a live probe owns it
  // (LP_EEXIST; LP_EBUSY while its removal is not committed yet), whatever
  // its site bytes look like now.
  int owned(uintptr_t addr, uintptr_t map_end) const;
  // Whether [addr, addr+len) intersects the site of a live probe.
  bool overlaps(uintptr_t addr, uint32_t len) const;
};

namespace lp {
// Hooks the unwinder's entry points so stack walks see real return addresses
// (unwind_hooks.cpp); counts into p.unwind_hooks / p.unwind_missing.
void install_unwind_hooks(lp_patcher &p);
// The patcher the signal handlers serve (one per process).
extern std::atomic<lp_patcher *> g_active;
bool dispatch_trap(int signo, siginfo_t *si, void *uc);
} // namespace lp
