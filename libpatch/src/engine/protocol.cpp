// The breakpoint protocol engine. See protocol.hpp for the contract.
//
// Safety argument (the same one Linux's text_poke_bp_batch() makes for int3 on
// x86, generalised to a trap of `trap_len` bytes and a store granule):
//
//  * A fetching core only ever observes, at each granule, either the old or the
//    new value of a single store: stores are naturally aligned and granule-sized,
//    and the backend chose the granule so that this holds for instruction fetch.
//  * Phase 1 replaces the first granule(s) of every site by a trap. Before the
//    sync, a core may run the old instruction or hit the trap; both are fine: the
//    old code is intact and the trap handler resolves the site to a consistent
//    place (old or new semantics). After the sync, no core can *start* executing
//    the site without trapping. A thread parked strictly inside a multi-instruction
//    site is moved out by the evacuating sync, so after phase 1 nobody is inside.
//  * Phase 2 rewrites the rest of each site. Nobody can reach those bytes (the
//    head traps), so their intermediate states are never executed. The sync makes
//    the complete tail visible everywhere before the head can be un-trapped.
//  * Phase 3 replaces each trap by the new head in one store per granule. A core
//    sees the trap (resolved by the handler) or the new head followed by the
//    new tail it already synced: never a mix of old and new instructions.
//  * The final sync makes the new code the only thing any core can fetch, so the
//    caller may publish "site is stable" and stop resolving its trap.
#include "engine/protocol.hpp"

namespace lp::engine {
namespace {

void read_text(const EngineOps &ops, uintptr_t addr, uint8_t *dst, uint32_t len) {
  if (ops.read) {
    ops.read(ops.ctx, addr, dst, len);
    return;
  }
  const volatile uint8_t *p = reinterpret_cast<const volatile uint8_t *>(addr);
  for (uint32_t i = 0; i < len; ++i) dst[i] = p[i];
}

bool same(const uint8_t *a, const uint8_t *b, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

// Stores `src[from, to)` at `addr + from`, one granule at a time, skipping
// granules that already hold the wanted value according to `current`.
EngineError store_range(const EngineOps &ops, uintptr_t addr, const uint8_t *src,
                        const uint8_t *current, uint32_t from, uint32_t to, EngineStats &st) {
  const uint32_t g = ops.granule;
  for (uint32_t off = from; off < to; off += g) {
    if (current && same(src + off, current + off, g)) continue;
    if (ops.write(ops.ctx, addr + off, src + off, g) != 0) return EngineError::Write;
    ++st.writes;
  }
  return EngineError::Ok;
}

EngineError sync(const EngineOps &ops, SyncPoint point, bool evacuate, EngineStats &st) {
  ++st.syncs;
  return ops.sync(ops.ctx, point, evacuate) == 0 ? EngineError::Ok : EngineError::Sync;
}

bool changes(const Transition &t) { return !same(t.old_bytes, t.new_bytes, t.len); }

// Best-effort undo after a failure at any point after phase 1 began: re-trap
// every head (heads already un-trapped in phase 3 hold complete new code, so a
// trap store there is again a single-granule transition), restore old tails,
// then old heads, syncing in between exactly as a forward batch does.
void rollback(const EngineOps &ops, const Transition *sites, size_t n, EngineStats &st) {
  bool evacuate = false;
  for (size_t i = 0; i < n; ++i) {
    const Transition &t = sites[i];
    if (!changes(t)) continue;
    evacuate = evacuate || t.evacuate;
    (void)store_range(ops, t.addr, t.trap_bytes, nullptr, 0, t.trap_len, st);
  }
  // Heads un-trapped in phase 3 let threads into the complete new code, where
  // they may be parked at an inner boundary (an evacuating site): move them out
  // before the tails go back to the old bytes, exactly as phase 1 does.
  (void)sync(ops, SyncPoint::Rollback, evacuate, st);
  for (size_t i = 0; i < n; ++i) {
    const Transition &t = sites[i];
    if (!changes(t)) continue;
    (void)store_range(ops, t.addr, t.old_bytes, nullptr, t.trap_len, t.len, st);
  }
  (void)sync(ops, SyncPoint::Rollback, false, st);
  for (size_t i = 0; i < n; ++i) {
    const Transition &t = sites[i];
    if (!changes(t)) continue;
    (void)store_range(ops, t.addr, t.old_bytes, nullptr, 0, t.trap_len, st);
  }
  (void)sync(ops, SyncPoint::Rollback, false, st);
}

} // namespace

EngineError validate(const Transition &t, uint32_t granule) {
  if (granule == 0 || granule > kMaxTrapBytes) return EngineError::Invalid;
  if (t.len == 0 || t.len > kMaxSiteBytes) return EngineError::Invalid;
  if (t.trap_len == 0 || t.trap_len > kMaxTrapBytes || t.trap_len > t.len) return EngineError::Invalid;
  if (t.trap_len % granule != 0 || t.len % granule != 0) return EngineError::Invalid;
  if (t.addr % granule != 0) return EngineError::Invalid;
  return EngineError::Ok;
}

EngineError run_batch(const EngineOps &ops, const Transition *sites, size_t n, EngineStats *stats) {
  EngineStats local;
  EngineStats &st = stats ? *stats : local;
  if (!ops.write || !ops.sync || (n && !sites)) return EngineError::Invalid;

  bool any = false, evacuate = false;
  for (size_t i = 0; i < n; ++i) {
    const Transition &t = sites[i];
    if (validate(t, ops.granule) != EngineError::Ok) return EngineError::Invalid;
    // Refuse to start if the text is not what the caller believes it is:
    // overwriting unknown bytes could tear somebody else's instruction.
    uint8_t cur[kMaxSiteBytes];
    read_text(ops, t.addr, cur, t.len);
    if (!same(cur, t.old_bytes, t.len)) return EngineError::State;
    if (changes(t)) {
      any = true;
      evacuate = evacuate || t.evacuate;
    }
  }
  if (!any) return EngineError::Ok; // nothing to do is not an error, and costs no sync

  if (ops.on_phase) ops.on_phase(ops.ctx, 1);

  // Phase 1: traps over every head.
  for (size_t i = 0; i < n; ++i) {
    const Transition &t = sites[i];
    if (!changes(t)) continue;
    if (store_range(ops, t.addr, t.trap_bytes, t.old_bytes, 0, t.trap_len, st) != EngineError::Ok) {
      rollback(ops, sites, n, st);
      return EngineError::Write;
    }
  }
  if (sync(ops, SyncPoint::AfterTraps, evacuate, st) != EngineError::Ok) {
    rollback(ops, sites, n, st);
    return EngineError::Sync;
  }

  // Phase 2: tails. Unreachable code while the heads trap.
  for (size_t i = 0; i < n; ++i) {
    const Transition &t = sites[i];
    if (!changes(t)) continue;
    if (store_range(ops, t.addr, t.new_bytes, t.old_bytes, t.trap_len, t.len, st) != EngineError::Ok) {
      rollback(ops, sites, n, st);
      return EngineError::Write;
    }
  }
  if (sync(ops, SyncPoint::AfterTails, false, st) != EngineError::Ok) {
    rollback(ops, sites, n, st);
    return EngineError::Sync;
  }

  // Phase 3: heads. Each store turns a trap into the first granule of complete code.
  for (size_t i = 0; i < n; ++i) {
    const Transition &t = sites[i];
    if (!changes(t)) continue;
    if (store_range(ops, t.addr, t.new_bytes, t.trap_bytes, 0, t.trap_len, st) != EngineError::Ok) {
      rollback(ops, sites, n, st);
      return EngineError::Write;
    }
    ++st.sites;
  }
  if (sync(ops, SyncPoint::AfterHeads, false, st) != EngineError::Ok) {
    // Every head is already complete new code; the sync failing only means a
    // core may still run stale bytes for a while. Report it, don't undo.
    return EngineError::Sync;
  }
  if (ops.on_phase) ops.on_phase(ops.ctx, 3);
  return EngineError::Ok;
}

} // namespace lp::engine
