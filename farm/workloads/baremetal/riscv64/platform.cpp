// The bare-metal platform under the libpatch protocol engine:
//   write : one plain, naturally aligned store of the granule (1 or 2 bytes);
//           paging is off (satp = 0) and OpenSBI's PMP lets S-mode write all RAM.
//   sync  : mode ipi    -> SBI IPI to every worker; each worker's S-mode handler
//                          runs fence.i, evacuates if asked, acks; the patcher waits.
//           mode rfence -> SBI RFENCE remote_fence_i on every hart. OpenSBI runs the
//                          fence.i in M-mode, invisibly to S-mode, so it cannot
//                          evacuate: the evacuating sync (after phase 1) adds an IPI
//                          round whose handler only moves harts out of sleds.
//           mode none   -> negative control: nothing at all.
//           mode noevac -> negative control: ipi, but never evacuates.
//   traps : the S-mode trap vector resolves a trap at the head of an armed site by
//           resuming at the end of its sled (ILEN-aware: sled length in bytes), and
//           counts a hit when the probe is logically enabled. Anything else fails.
//
// Why the IPI evacuation is sound (the argument Linux makes for text_poke_bp):
// when a worker takes the sync IPI, its pc P is a boundary of the code it runs.
// The handler first executes fence.i (after observing the patcher's request, which
// is ordered after the trap stores), so after it the worker fetches the trap at
// every head. If P is strictly inside an evacuating sled it is moved to the sled's
// end; else, the worker can only enter a sled through its head, which now traps,
// and the trap handler resumes at the sled's end. So once every worker acked, no
// worker is or can get strictly inside a sled, and phase 2 may rewrite the tails.
// A worker inside a trampoline returns to just after the call instruction: those
// bytes are nops in both the old and new sled, never rewritten.
// With RFENCE the fence.i already ran on every hart when remote_fence_i returned
// (OpenSBI waits for them), so the evacuation-only IPI round that follows relies on
// the same argument, with that earlier fence.i.
#include "bm.hpp"

using lp::engine::EngineError;
using lp::engine::EngineOps;
using lp::engine::EngineStats;
using lp::engine::SyncPoint;
using lp::engine::Transition;

extern "C" {
bm::HartData bm_harts[BM_MAX_HARTS];
uint64_t bm_tramp_expect[BM_MAX_SITES];
}

namespace bm {

Platform g_plat;

static_assert(__builtin_offsetof(HartData, hartid) == HD_HARTID);
static_assert(__builtin_offsetof(HartData, hits) == HD_HITS);

struct TrapFrame {
  uint64_t x[32];
  uint64_t sepc, scause, stval, pad;
};
static_assert(sizeof(TrapFrame) == TF_SIZE);
static_assert(__builtin_offsetof(TrapFrame, sepc) == TF_SEPC);

// The sync request the patcher publishes before an IPI round.
struct SyncReq {
  uint64_t seq;
  uint32_t fence_i;
  uint32_t evacuate;
  uint32_t left;     // workers still to ack this round; the last one wakes the patcher
  uint32_t wake;     // ... if the patcher sleeps (patcher_wfi)
};
static SyncReq g_req;

const char *sync_mode_name(SyncMode m) {
  switch (m) {
  case SyncMode::Ipi: return "ipi";
  case SyncMode::Rfence: return "rfence";
  case SyncMode::None: return "none";
  case SyncMode::NoEvac: return "noevac";
  }
  return "?";
}

namespace {

constexpr uint64_t kSpinTimeoutSeconds = 20;

bool timed_out(uint64_t t0) { return rdtime() - t0 > kSpinTimeoutSeconds * g_plat.timebase; }

int bm_write(void *, uintptr_t addr, const uint8_t *src, uint32_t g) {
  if (g == 2) {
    if (addr & 1) return -1;
    *reinterpret_cast<volatile uint16_t *>(addr) = uint16_t(src[0] | src[1] << 8);
    return 0;
  }
  if (g == 1) {
    *reinterpret_cast<volatile uint8_t *>(addr) = src[0];
    return 0;
  }
  return -1;
}

// One IPI round: every worker runs the handler below and acks `seq`.
int ipi_round(bool fence_i, bool evacuate) {
  if (!g_plat.nworkers) return 0;
  const uint64_t seq = ++g_plat.seq;
  g_req.fence_i = fence_i;
  g_req.evacuate = evacuate;
  g_req.wake = g_plat.patcher_wfi;
  g_req.left = g_plat.nworkers;
  store_release(&g_req.seq, seq);
  fence_rw_rw();
  if (sbi::send_ipi(g_plat.worker_mask, 0).error != sbi::kOk) return -1;
  ++g_plat.ipi_rounds;
  if (evacuate) ++g_plat.evac_rounds;
  const uint64_t t0 = rdtime();
  for (uint32_t i = 0; i < g_plat.nworkers; ++i) {
    HartData &h = bm_harts[g_plat.workers[i]];
    while (load_acquire(&h.ack_seq) != seq) {
      if (timed_out(t0)) fail(4, "worker did not ack a sync IPI", h.hartid, seq, load_relaxed(&h.ack_seq));
      // Sleeping frees the host core for the workers' vCPUs (QEMU on few cores).
      // SIE is 0 on the patcher: the wake-up IPI only ends the wfi, it is not taken.
      if (g_plat.patcher_wfi) asm volatile("wfi" ::: "memory");
      else cpu_relax();
    }
  }
  if (g_plat.patcher_wfi) BM_CSR_CLEAR(sip, kSipSsip);
  return 0;
}

int bm_sync(void *, SyncPoint point, bool evacuate) {
  // Every text store so far is globally visible before anybody is told to refetch.
  fence_rw_rw();
  switch (g_plat.mode) {
  case SyncMode::None:
    return 0;
  case SyncMode::NoEvac:
    evacuate = false;
    [[fallthrough]];
  case SyncMode::Ipi:
    fence_i(); // the patcher's own fetches (it runs no site, but keep the contract)
    return ipi_round(true, evacuate && point == SyncPoint::AfterTraps);
  case SyncMode::Rfence:
    if (sbi::remote_fence_i(g_plat.all_mask, 0).error != sbi::kOk) return -1;
    ++g_plat.rfences;
    if (evacuate && point == SyncPoint::AfterTraps) return ipi_round(false, true);
    return 0;
  }
  return -1;
}

// Before phase 1: publish what a trap at each site of the batch means. armed must
// be visible before any trap store, hence the release + full fence.
void bm_on_phase(void *, int phase) {
  if (phase != 1) return;
  for (uint32_t i = 0; i < g_plat.batch_n; ++i) {
    Site &s = g_sites[g_plat.batch_sites[i]];
    const Transition &t = g_plat.batch[i];
    store_release(&s.enabled, uint32_t(g_plat.batch_on[i]));
    store_release(&s.evac, uint32_t(t.evacuate));
    store_release(&s.armed, 1u);
  }
  fence_rw_rw();
}

} // namespace

EngineOps make_engine_ops() {
  EngineOps ops;
  ops.ctx = &g_plat;
  ops.granule = lp::riscv64::granule(g_plat.hart_has_c);
  ops.write = bm_write;
  ops.sync = bm_sync;
  ops.on_phase = bm_on_phase;
  return ops;
}

// A worker is past every trap handler it was running when the grace period began
// once it reached its loop's back edge twice, or began a nap (naps start in the loop
// with SIE = 0: no handler runs during one) after the snapshot: nap_seq is odd while
// napping, so from an even snapshot one step is a new nap, from an odd one two.
void grace_period() {
  uint64_t snap[BM_MAX_HARTS], nap[BM_MAX_HARTS];
  for (uint32_t i = 0; i < g_plat.nworkers; ++i) {
    snap[i] = load_acquire(&bm_harts[g_plat.workers[i]].calls);
    nap[i] = load_acquire(&bm_harts[g_plat.workers[i]].nap_seq);
  }
  const uint64_t t0 = rdtime();
  for (uint32_t i = 0; i < g_plat.nworkers; ++i) {
    HartData &h = bm_harts[g_plat.workers[i]];
    const uint64_t nap_done = nap[i] + ((nap[i] & 1) ? 2 : 1);
    while (load_acquire(&h.calls) < snap[i] + 2 && load_acquire(&h.nap_seq) < nap_done &&
           load_acquire(&h.state) == kRunning) {
      if (timed_out(t0)) fail(4, "worker made no progress (grace period)", h.hartid, snap[i], h.calls);
      cpu_relax();
    }
  }
  ++g_plat.graces;
}

EngineError apply_batch(const uint32_t *idx, const bool *on, uint32_t n, EngineStats *st) {
  static Transition tr[kNumSites];
  if (n > kNumSites) return EngineError::Invalid;
  for (uint32_t i = 0; i < n; ++i) {
    const Site &s = g_sites[idx[i]];
    lp::riscv64::make_transition(s.addr, s.len, s.ilen, g_plat.hart_has_c, s.on ? s.on_bytes : s.off_bytes,
                                 on[i] ? s.on_bytes : s.off_bytes, &tr[i]);
  }
  g_plat.batch_sites = idx;
  g_plat.batch = tr;
  g_plat.batch_on = on;
  g_plat.batch_n = n;
  const EngineOps ops = make_engine_ops();
  const EngineError err = lp::engine::run_batch(ops, tr, n, st);
  if (err == EngineError::Ok || err == EngineError::Sync) {
    for (uint32_t i = 0; i < n; ++i) g_sites[idx[i]].on = on[i];
  }
  // A worker may have fetched a trap just before the final sync and be about to
  // read `armed` in its handler. With IPI syncs it acked the final IPI only after
  // that handler returned (handlers run with SIE = 0), so nothing is pending. With
  // RFENCE (handled in M-mode, which preempts the S-mode handler) or no sync at all,
  // wait until every worker passed its quiescent point before disarming.
  if (g_plat.mode == SyncMode::Rfence || g_plat.mode == SyncMode::None) grace_period();
  for (uint32_t i = 0; i < n; ++i) {
    store_release(&g_sites[idx[i]].evac, 0u);
    store_release(&g_sites[idx[i]].armed, 0u);
  }
  g_plat.batch_n = 0;
  return err;
}

// ---- trap handling ------------------------------------------------------------
namespace {

// Does the text at a site head hold the trap (what any hart would decode as illegal)?
bool head_is_trap(const uint8_t *head) {
  const volatile uint8_t *p = head;
  return g_plat.hart_has_c ? (p[0] == 0 && p[1] == 0) : p[0] == 0;
}

[[noreturn]] void fail_trap(const TrapFrame *f, int code, const char *reason) {
  fail(code, reason, f->sepc, f->scause, f->stval);
}

void handle_ipi(HartData *hd, TrapFrame *f) {
  BM_CSR_CLEAR(sip, kSipSsip);
  const uint64_t seq = load_acquire(&g_req.seq);
  if (seq == hd->ack_seq) return; // nothing new (spurious)
  const bool do_fence = g_req.fence_i;
  const bool do_evac = g_req.evacuate;
  ++hd->ipis;
  if (do_fence) fence_i();
  if (do_evac) {
    for (uint32_t i = 0; i < kNumSites; ++i) {
      const Site &s = g_sites[i];
      if (!load_acquire(&s.armed) || !load_acquire(&s.evac)) continue;
      if (f->sepc > s.addr && f->sepc < s.addr + s.len) {
        // Strictly inside the sled: everything from here to its end is nops (or the
        // second half of the call sequence: skipping it drops one probe hit, and t0
        // is dead). Resume at the end, as the trap handler would.
        f->sepc = s.addr + s.len;
        ++hd->evacuations;
      }
    }
  }
  store_release(&hd->ack_seq, seq);
  if (__atomic_sub_fetch(&g_req.left, 1u, __ATOMIC_ACQ_REL) == 0 && load_relaxed(&g_req.wake))
    sbi::send_ipi(1ul << g_plat.patcher_hart, 0);
}

} // namespace

// linger=US: an interrupt that hit strictly inside a sled (and was not evacuated)
// returns only after US microseconds, as if the hart had been preempted there. It
// widens the window that evacuation closes: with sync=noevac or none, the patcher
// rewrites the tail meanwhile and the hart resumes inside a torn sled.
void maybe_linger(HartData *hd, const TrapFrame *f) {
  if (!g_plat.linger_ticks) return;
  for (uint32_t i = 0; i < kNumSites; ++i) {
    const Site &s = g_sites[i];
    if (f->sepc > s.addr && f->sepc < s.addr + s.len) {
      ++hd->lingers;
      const uint64_t t0 = rdtime();
      while (rdtime() - t0 < g_plat.linger_ticks) cpu_relax();
      return;
    }
  }
}

extern "C" void bm_trap(TrapFrame *f) {
  HartData *hd = this_hart();
  const uint64_t cause = f->scause;
  if (cause & kCauseInterrupt) {
    if ((cause & ~kCauseInterrupt) == kIrqSSoft) {
      handle_ipi(hd, f);
      maybe_linger(hd, f);
      return;
    }
    if ((cause & ~kCauseInterrupt) == kIrqSTimer) { // a worker's nap alarm (burst=N)
      sbi::set_timer(~0ull);
      maybe_linger(hd, f);
      return;
    }
    fail_trap(f, 3, "unexpected interrupt");
  }
  if (cause != kExcIllegal) fail_trap(f, 3, "unexpected exception");
  if (hd->probing_c) {
    // The C probe: `.2byte 0x0001, 0x0001` (two c.nop) is one illegal 32-bit
    // word for a hart without C. Skip it.
    hd->has_c = 0;
    f->sepc += 4;
    return;
  }
  for (uint32_t i = 0; i < kNumSites; ++i) {
    const Site &s = g_sites[i];
    if (f->sepc == s.addr) {
      // Read the text first, then armed: the patcher publishes armed before it
      // stores a trap, so a trap seen here with armed still 0 afterwards was not
      // put there by a batch in flight (a batch cannot finish while this handler
      // runs: its last sync needs this hart's ack, or its grace period needs this
      // hart back in its loop).
      const bool trap_in_text = head_is_trap(reinterpret_cast<const uint8_t *>(s.addr));
      asm volatile("fence r, r" ::: "memory");
      if (!load_acquire(&s.armed)) {
        // Not being patched, and the text holds no trap: this hart executed an
        // instruction fetched before the sync that removed it: a stale fetch
        // (a hart that honours fence.i cannot do this). QEMU's TCG does it: a
        // translation that read the trap can be linked after the store that removed
        // it, and fence.i does not drop translated code (see docs/baremetal.md).
        // Counted and resolved like an armed trap, or a failure with stale=fail.
        if (trap_in_text) fail_trap(f, 2, "trap left at the head of a site that is not being patched");
        if (!g_plat.tolerate_stale) fail_trap(f, 2, "stale trap: fetched after the sync that removed it");
        ++hd->stale_traps;
      }
      // Not checked: stval (the faulting instruction bits). QEMU 7.2 fills it from
      // the text as it is when the exception is delivered, not as it was fetched,
      // so it often shows the new head already (observed: the jal after phase 3).
      ++hd->traps;
      if (load_acquire(&s.enabled)) ++hd->trap_hits[i];
      f->sepc = s.addr + s.len; // ILEN-aware: the sled's length in bytes, whatever its unit
      return;
    }
    if (f->sepc > s.addr && f->sepc < s.addr + s.len)
      fail_trap(f, 2, "illegal instruction inside a site (torn fetch: not evacuated?)");
  }
  fail_trap(f, 2, "illegal instruction outside any site");
}

extern "C" [[noreturn]] void bm_tramp_fail(uint64_t t0, uint64_t idx) {
  fail(6, "trampoline entered from a wrong place (t0 != site's return address)", t0, idx,
       idx < BM_MAX_SITES ? bm_tramp_expect[idx] : 0);
}

} // namespace bm
