#include "patcher.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <unistd.h>

#include "insn_evacuate.hpp"
#include "platform/linux/core_sync.hpp"
#include "platform/linux/maps.hpp"
#include "platform/linux/symbols.hpp"
#include "platform/linux/text_writer.hpp"
#include "libpatch/regs.h"
#include "platform/linux/thread_round.hpp"
#include "platform/linux/trap_signal.hpp"
#include "tramp_depth.hpp"

namespace lp {
constinit std::atomic<lp_patcher *> g_active{nullptr};
}

using namespace lp;
namespace lpl = lp::linux_platform;

namespace {

// Generous: on an oversubscribed machine (or under qemu-user) a runnable thread
// may wait long for a CPU before it handles the round signal.
constexpr unsigned kSyncTimeoutMs = 30000;

// ---- signal-round visitors (async-signal-safe) ----

struct SyncVisit {
  lp_patcher *p;
  bool evacuate;
};

// Runs on every other thread during a signal sync. Delivery of the signal and
// the return from the handler already serialise the core; fence.i covers ISAs
// whose fetch needs it explicitly. A thread interrupted strictly inside a site
// that is about to have its tail rewritten is moved to the site's resume point,
// an equivalent place outside it: after the phase-1 traps, that tail may change
// under it and it would otherwise resume in the middle of new instructions.
void sync_visitor(void *arg, void *uc) {
  auto *v = static_cast<SyncVisit *>(arg);
  const Backend &b = *v->p->backend;
  if (v->evacuate) {
    const uintptr_t pc = b.context_pc(uc);
    SiteTable::Reader r(v->p->table);
    if (const SiteEntry *e = r.find_inside(pc); e && e->evacuate) {
      uintptr_t to = e->resume;
      // An instruction site: continue at the same instruction in the OOL copy.
      for (uint32_t i = 0; i < e->evac_n; ++i)
        if (e->addr + e->evac_map[i].orig_off == pc) to = e->evac_base + e->evac_map[i].ool_off;
      b.set_context_pc(uc, to);
      v->p->evacuated.fetch_add(1, std::memory_order_relaxed);
    }
  }
  b.local_fetch_barrier();
}

struct QuiesceVisit {
  lp_patcher *p;
  std::atomic<bool> busy{false};
};

void quiesce_visitor(void *arg, void *uc) {
  auto *v = static_cast<QuiesceVisit *>(arg);
  const uintptr_t pc = v->p->backend->context_pc(uc);
  if (lp_tramp_depth != 0 || v->p->pool->contains(pc)) v->busy.store(true, std::memory_order_relaxed);
}

// ---- engine ops ----

int op_write(void *ctx, uintptr_t addr, const uint8_t *src, uint32_t g) {
  auto *p = static_cast<lp_patcher *>(ctx);
  p->writes.fetch_add(1, std::memory_order_relaxed);
  // The stopped protocol: a store the architecture does not allow under
  // running threads is made at the phase's sync, with every thread held.
  if (g <= 4 && p->backend->store_needs_stop(addr, src, g)) {
    lp_patcher::StoppedStore s{addr, {}, g};
    std::memcpy(s.bytes, src, g);
    p->stopped.push_back(s);
    return 0;
  }
  const int rc = p->writer->write(addr, src, g);
  // Before the sync that follows: the store must reach instruction fetch
  // (Backend::publish_code; AArch64's cache maintenance).
  if (rc == 0) p->backend->publish_code(addr, g);
  return rc;
}

// The writer's window spans the whole batch (TextWriter: begin ... finish):
// the stores before a sync are complete when its system call is made.
int op_sync(void *ctx, engine::SyncPoint point, bool evacuate) {
  auto *p = static_cast<lp_patcher *>(ctx);
  return p->sync(point, evacuate);
}

int to_lp(engine::EngineError e) {
  switch (e) {
  case engine::EngineError::Ok: return LP_OK;
  case engine::EngineError::Invalid: return LP_EINVAL;
  case engine::EngineError::Write: return LP_EWRITE;
  case engine::EngineError::Sync: return LP_ESYNC;
  case engine::EngineError::State: return LP_ESTATE;
  }
  return LP_EINVAL;
}

} // namespace

int lp_patcher::sync(engine::SyncPoint, bool evacuate) {
  syncs.fetch_add(1, std::memory_order_relaxed);
  if (!stopped.empty()) {
    // The stopped protocol (Backend::store_needs_stop). Writer side: every
    // other thread is held in its round handler (round_hold returns only once
    // each acknowledged, past the visitor that also evacuates), so none
    // executes the words while they change; each store is then published to
    // instruction fetch (publish_code: DC CVAU / DSB / IC IVAU / DSB) BEFORE
    // round_release() lets the threads return, and that return is their
    // context synchronisation. The round is this phase's sync for the other
    // stores too (they were made before it). Between hold and release only
    // plain stores or pwrite()s: no lock, no allocation (thread_round.hpp).
    SyncVisit v{this, evacuate};
    backend->local_fetch_barrier();
    int rc = lpl::round_hold(sync_visitor, &v, kSyncTimeoutMs, nullptr);
    if (rc == 0) {
      for (const StoppedStore &s : stopped) {
        if (writer->write(s.addr, s.bytes, s.len) != 0) rc = LP_ESYNC;
        backend->publish_code(s.addr, s.len);
      }
      lpl::round_release();
      stopped_rounds.fetch_add(1, std::memory_order_relaxed);
    }
    stopped.clear();
    return rc;
  }
  // Evacuation needs to see each thread's pc, which only a signal round can do;
  // the round is itself a complete sync, so it replaces the kernel call.
  if (evacuate || sync_kind == LP_SYNC_SIGNAL) {
    SyncVisit v{this, evacuate};
    backend->local_fetch_barrier();
    return lpl::round_run(sync_visitor, &v, kSyncTimeoutMs, nullptr);
  }
  if (sync_kind == LP_SYNC_MEMBARRIER) {
    if (lpl::membarrier_sync_core() != 0) return LP_ESYNC;
    // RISC-V: membarrier's SYNC_CORE is not a fence.i on every kernel; the
    // flush makes every hart of this mm fence.i before running user code.
    if (lpl::flush_icache_available() && lpl::flush_icache_all() != 0) return LP_ESYNC;
    backend->local_fetch_barrier();
    return 0;
  }
  if (sync_kind == LP_SYNC_FLUSH_ICACHE) {
    if (lpl::flush_icache_all() != 0) return LP_ESYNC;
    backend->local_fetch_barrier();
    return 0;
  }
  return LP_ESYNC;
}

int lp_patcher::open(const lp_options &o) {
  opt = o;
  backend = &host_backend();
  if (opt.signal == 0) opt.signal = SIGRTMIN + 5;
  if (opt.signal < SIGRTMIN || opt.signal > SIGRTMAX) return LP_EINVAL;
  if (opt.writer < LP_WRITER_DEFAULT || opt.writer > LP_WRITER_PROCMEM) return LP_EINVAL;
  if (opt.sync < LP_SYNC_DEFAULT || opt.sync > LP_SYNC_SIGNAL) return LP_EINVAL;
  if (opt.policy < LP_PROBE_JUMP_OR_TRAP || opt.policy > LP_PROBE_TRAP) return LP_EINVAL;
  if (opt.flags & ~unsigned(LP_FLAG_HANDLER_GPR_ONLY | LP_FLAG_NO_UNWIND_HOOKS)) return LP_EINVAL;

  // Every probe needs the process's executable mappings (/proc/self/maps):
  // without /proc (a minimal initramfs that did not mount it) each one would
  // fail with LP_ENOTEXEC, which names the wrong cause.
  if (!lpl::maps_readable()) return LP_ENOPROC;
  if (opt.writer == LP_WRITER_PROCMEM) {
    int err = 0;
    writer = lpl::make_procmem_writer(&err);
    if (!writer) return err;
  } else {
    writer = lpl::make_mprotect_writer();
  }

  membarrier_ok = lpl::membarrier_register() == 0;
  switch (opt.sync) {
  case LP_SYNC_DEFAULT:
    sync_kind = membarrier_ok ? LP_SYNC_MEMBARRIER
                : lpl::flush_icache_available() ? LP_SYNC_FLUSH_ICACHE : LP_SYNC_SIGNAL;
    break;
  case LP_SYNC_MEMBARRIER:
    if (!membarrier_ok) return LP_ENOTSUP;
    sync_kind = LP_SYNC_MEMBARRIER;
    break;
  case LP_SYNC_FLUSH_ICACHE:
    if (!lpl::flush_icache_available()) return LP_ENOTSUP;
    sync_kind = LP_SYNC_FLUSH_ICACHE;
    break;
  default:
    sync_kind = LP_SYNC_SIGNAL;
  }
  // The signal round is always installed: evacuation and grace periods use it.
  if (int rc = lpl::round_init(opt.signal); rc != 0) return rc;
  pool = std::make_unique<TrampolinePool>(*backend);
  tls_depth_offset = intptr_t(reinterpret_cast<uintptr_t>(&lp_tramp_depth) - backend->thread_pointer());
  lp_patcher *expected = nullptr;
  if (!g_active.compare_exchange_strong(expected, this)) return LP_EBUSY;
  chained_at_open = lpl::trap_signal_chained_count();
  if (int rc = lpl::trap_signal_install(backend->trap_signal(), dispatch_trap); rc != 0) {
    g_active.store(nullptr);
    return rc;
  }
  return 0;
}

void lp_patcher::close() {
  std::lock_guard lk(mu);
  // Put every site back to its disabled bytes so no thread can enter a
  // trampoline or trap after the memory behind them is gone.
  bool any = false;
  for (auto &pr : probes) {
    if (!pr->dead()) {
      pr->staged = ProbeState::Removed;
      dirty.push_back(pr.get());
      any = true;
    }
  }
  if (any) commit();
  bool ok = false;
  quiesce(2000, &ok); // best effort: a thread stuck in a handler keeps the pool mapped
  g_active.store(nullptr);
  lpl::trap_signal_uninstall();
  // Pending returns of call probes run the return trampoline and read their
  // CallProbe whenever their functions return, maybe long after this: while
  // any thread has a shadow entry, the runtime and its pool stay (leaked).
  const bool pending_returns = calls && CallRuntime::pending() != 0;
  if (calls) g_calls.store(nullptr, std::memory_order_release);
  if (pending_returns) (void)calls.release();
  if (!ok || pending_returns) (void)pool.release(); // leak rather than unmap memory a thread may still run
}

bool lp_patcher::function_entry(uintptr_t sled, uintptr_t map_end) {
  // Entry trampolines use what is dead at a function's entry (x86: the stack
  // below rsp, the flags; RISC-V: t0), so a nop sled is an entry site only at
  // the entry of its function: the one probe_site finds at the symbol's start
  // (after an endbr64, say). The same nops inside a body (loop alignment) are
  // ordinary instructions and get an instruction site. Without a symbol
  // (stripped code, a sled placed before the symbol by
  // -fpatchable-function-entry=N,M) the sled is taken at its word.
  lpl::Symbol sym;
  if (lpl::symbol_containing(sled, &sym) != 0 || sym.size == 0 || sym.addr == sled) return true;
  if (sym.addr > sled || sym.addr >= map_end) return true;
  SiteShape at_entry;
  return backend->probe_site(sym.addr, map_end - sym.addr, &at_entry) == 0 && at_entry.addr == sled;
}

int lp_patcher::locate(uintptr_t addr, SiteShape *shape, bool *sled) {
  uintptr_t map_end = 0;
  if (!executable(addr, &map_end)) return LP_ENOTEXEC;
  if (int rc = owned(addr, map_end); rc != 0) return rc;
  const int site_rc = backend->probe_site(addr, map_end - addr, shape);
  if (site_rc != 0 && site_rc != LP_EBOUNDARY) return site_rc;
  *sled = site_rc == 0 && function_entry(shape->addr, map_end);
  if (!*sled) return 0;
  if (auto it = by_addr.find(shape->addr); it != by_addr.end() && !it->second->dead())
    return it->second->staged == ProbeState::Removed ? LP_EBUSY : LP_EEXIST; // EBUSY: removal not committed yet
  return overlaps(shape->addr, shape->len) ? LP_EEXIST : 0;
}

bool lp_patcher::function_start(uintptr_t addr) const {
  lpl::Symbol sym;
  return lpl::symbol_containing(addr, &sym) == 0 && sym.addr == addr;
}

void lp_patcher::take_sled(lp_probe &p, const SiteShape &shape) const {
  p.shape = shape;
  std::memcpy(p.original, reinterpret_cast<const void *>(shape.addr), shape.len);
  // A site probed before (and removed) holds its normalised disabled bytes.
  std::memcpy(p.current, p.original, shape.len);
}

int lp_patcher::jump_or_trap(lp_probe &p, int (lp_patcher::*setup)(lp_probe &)) {
  p.jump = opt.policy != LP_PROBE_TRAP;
  if (!p.jump) return 0;
  const int rc = (this->*setup)(p);
  if (rc == 0) return 0;
  if (opt.policy == LP_PROBE_JUMP) return rc;
  p.jump = false; // falls back to a trap probe, which works everywhere
  p.fallback = rc; // and says why (lp_probe_fallback)
  p.tramp = Slot{};
  return 0;
}

int lp_patcher::create_probe(void *addr_p, lp_handler h, void *user, lp_probe **out) {
  if (!addr_p || !h || !out) return LP_EINVAL;
  std::lock_guard lk(mu);
  const uintptr_t addr = reinterpret_cast<uintptr_t>(addr_p);
  SiteShape shape;
  bool sled = false;
  if (int rc = locate(addr, &shape, &sled); rc != 0) return rc;
  if (!sled) return create_insn_probe(addr, h, user, out);
  auto p = std::make_unique<lp_probe>();
  p->owner = this;
  take_sled(*p, shape);
  p->handler = h;
  p->user = user;
  if (int rc = jump_or_trap(*p, &lp_patcher::setup_entry_jump); rc != 0) return rc;
  add_probe(std::move(p), out);
  return 0;
}

int lp_patcher::setup_entry_jump(lp_probe &p) {
  const SiteShape &shape = p.shape;
  int rc = pool->allocate(shape.addr, shape.len, &p.tramp);
  if (rc == LP_ERANGE && pool->quarantined() && quiesce(100, nullptr) == 0)
    rc = pool->allocate(shape.addr, shape.len, &p.tramp);
  if (rc != 0) return rc;
  TrampolineData d;
  d.handler = p.handler;
  d.user = p.user;
  const size_t doff = backend->trampoline_data_offset();
  std::memcpy(p.tramp.rw + doff, &d, sizeof d);
  TrampolineSpec spec;
  spec.site = shape.addr;
  spec.site_len = shape.len;
  spec.data = p.tramp.rx + doff;
  spec.tls_depth = tls_depth_offset;
  spec.save_vector = !(opt.flags & LP_FLAG_HANDLER_GPR_ONLY);
  spec.call_runtime = p.kind == ProbeKind::Call;
  rc = backend->emit_trampoline(p.tramp.rw, p.tramp.rx, spec);
  if (rc == 0) backend->publish_code(p.tramp.rx, doff);
  if (rc == 0) {
    uint8_t probe_bytes[engine::kMaxSiteBytes];
    rc = site_jump_bytes(p, probe_bytes);
  }
  if (rc != 0) pool->retire(p.tramp, generation);
  return rc;
}

int lp_patcher::site_jump_bytes(const lp_probe &p, uint8_t *out) const {
  // Call probes and replacements must leave the stack as the caller left it.
  return p.kind == ProbeKind::Entry ? backend->jump_bytes(p.shape, p.tramp.rx, out)
                                    : backend->tail_jump_bytes(p.shape, p.tramp.rx, out);
}

int lp_patcher::setup_redirect_stub(lp_probe &p) {
  const size_t data_off = 48; // after the longest stub of any backend
  int rc = pool->allocate(p.shape.addr, p.shape.len, &p.tramp, data_off + 16);
  if (rc != 0) return rc;
  std::memcpy(p.tramp.rw + data_off, &p.replacement, sizeof p.replacement);
  size_t code = 0;
  rc = backend->emit_redirect_stub(p.tramp.rw, p.tramp.rx, p.tramp.rx + data_off, &code);
  if (rc == 0 && code > data_off) rc = LP_EINVAL;
  if (rc == 0) backend->publish_code(p.tramp.rx, code);
  if (rc == 0) {
    uint8_t probe_bytes[engine::kMaxSiteBytes];
    rc = site_jump_bytes(p, probe_bytes);
  }
  if (rc != 0) pool->retire(p.tramp, generation);
  return rc;
}

int lp_patcher::ensure_call_runtime(uintptr_t near) {
  if (calls) return 0;
  if (int rc = CallRuntime::create(*backend, *pool, near, tls_depth_offset, !(opt.flags & LP_FLAG_HANDLER_GPR_ONLY),
                                   &calls);
      rc != 0)
    return rc;
  g_calls.store(calls.get(), std::memory_order_release);
  return 0;
}

int lp_patcher::create_call_probe(void *addr_p, lp_entry_handler entry, lp_exit_handler exit, void *user,
                                  lp_probe **out) {
  if (!addr_p || (!entry && !exit) || !out) return LP_EINVAL;
  std::lock_guard lk(mu);
  const uintptr_t addr = reinterpret_cast<uintptr_t>(addr_p);
  SiteShape shape;
  bool sled = false;
  if (int rc = locate(addr, &shape, &sled); rc != 0) return rc;
  // The call ABI (return address at sp / in ra, arguments in place) holds only
  // at a function's entry: its sled, or else its first instruction.
  if (!sled && (!function_start(addr) || !lp_supports_instruction_sites())) return LP_ENOTSUP;
  if (int rc = ensure_call_runtime(sled ? shape.addr : addr); rc != 0) return rc;
  if (!unwind_hooks_tried && !(opt.flags & LP_FLAG_NO_UNWIND_HOOKS)) {
    unwind_hooks_tried = true;
    install_unwind_hooks(*this);
  }
  if (!sled) {
    // An uninstrumented function: an instruction site at its first
    // instruction, whose trampoline preserves everything and falls into the
    // relocated prologue. The runtime swaps the return address in place (the
    // stack slot / ra, which the trampoline restores); a skipped call is not
    // possible there (the trampoline can only fall through), see docs/calls.md.
    auto p = std::make_unique<lp_probe>();
    p->owner = this;
    p->kind = ProbeKind::Call;
    p->call = calls->add_probe(entry, exit, user, 0);
    p->call->insn_site = true;
    p->handler = &call_enter_insn;
    p->user = p->call;
    lp_probe *made = nullptr;
    if (int rc = add_insn_probe(std::move(p), addr, &made); rc != 0) {
      made = nullptr;
      return rc;
    }
    made->call->resume = made->insn->ool; // where a trapped or evacuated thread continues: the relocated prologue
    *out = made;
    return 0;
  }
  auto p = std::make_unique<lp_probe>();
  p->owner = this;
  p->kind = ProbeKind::Call;
  take_sled(*p, shape);
  p->call = calls->add_probe(entry, exit, user, shape.addr + shape.len);
  p->handler = reinterpret_cast<lp_handler>(reinterpret_cast<void (*)()>(&call_enter)); // called as what it is
  p->user = p->call;
  // No jump fits: the trap flavour, whose trap handler runs the same runtime.
  if (int rc = jump_or_trap(*p, &lp_patcher::setup_entry_jump); rc != 0) {
    p->call->live.store(false); // never reachable; the runtime keeps the record
    return rc;
  }
  add_probe(std::move(p), out);
  return 0;
}

int lp_patcher::create_replacement(void *addr_p, void *repl, lp_probe **out, bool internal) {
  if (!addr_p || !repl || !out) return LP_EINVAL;
  std::lock_guard lk(mu);
  const uintptr_t addr = reinterpret_cast<uintptr_t>(addr_p);
  SiteShape shape;
  bool sled = false;
  if (int rc = locate(addr, &shape, &sled); rc != 0) return rc;
  auto p = std::make_unique<lp_probe>();
  p->owner = this;
  p->kind = ProbeKind::Replace;
  p->internal = internal;
  p->replacement = reinterpret_cast<uintptr_t>(repl);
  if (!sled) {
    // An uninstrumented function: only its entry (the symbol's address) takes
    // a replacement; its relocated prologue is the callable original.
    if (!function_start(addr)) return LP_EBOUNDARY;
    return add_insn_probe(std::move(p), addr, out);
  }
  take_sled(*p, shape);
  p->original_fn = shape.addr + shape.len; // the sled is nops: the function proper starts after it
  // No jump fits: the trap flavour, whose trap handler continues at the replacement.
  if (int rc = jump_or_trap(*p, &lp_patcher::setup_redirect_stub); rc != 0) return rc;
  add_probe(std::move(p), out);
  return 0;
}

void lp_patcher::add_probe(std::unique_ptr<lp_probe> p, lp_probe **out) {
  *out = p.get();
  by_addr[p->shape.addr] = p.get();
  probes.push_back(std::move(p));
}

int lp_patcher::create_insn_probe(uintptr_t addr, lp_handler h, void *user, lp_probe **out) {
  auto p = std::make_unique<lp_probe>();
  p->owner = this;
  p->handler = h;
  p->user = user;
  return add_insn_probe(std::move(p), addr, out);
}

int lp_patcher::add_insn_probe(std::unique_ptr<lp_probe> p, uintptr_t addr, lp_probe **out) {
  if (int rc = prepare_insn_probe(*this, *p, addr); rc != 0) return rc;
  std::memcpy(p->original, reinterpret_cast<const void *>(addr), p->shape.len);
  std::memcpy(p->current, p->original, p->shape.len);
  // An exit trap is a permanent trap that is never a hit and continues at its target.
  for (const auto &x : p->insn->exits) {
    SiteEntry e;
    e.addr = uintptr_t(x.pc);
    e.len = 4;
    e.mode = SiteMode::Stable;
    e.resume = uintptr_t(x.target);
    exit_traps.push_back(e);
  }
  add_probe(std::move(p), out);
  return 0;
}

void lp_patcher::publish_table() {
  // One entry per site address (by_addr). A removed probe keeps its entry
  // (Stable) so a trap taken just before its removal is still recognised as
  // ours and re-executed rather than chained; a live probe at the address wins.
  std::vector<SiteEntry> entries;
  entries.reserve(by_addr.size());
  for (auto &[addr, p] : by_addr) {
    SiteEntry e;
    e.addr = addr;
    e.len = p->shape.len;
    e.resume = addr + p->shape.len;
    e.handler = p->handler;
    e.user = p->user;
    e.hits = &p->hits;
    if (p->kind == ProbeKind::Call) {
      e.call = &call_enter_trap; // user = the CallProbe
      e.handler = nullptr;
    } else if (p->kind == ProbeKind::Replace) {
      e.redirect = p->replacement;
      e.handler = nullptr;
    }
    if (p->insn) {
      e.resume = p->insn->ool; // the displaced code runs out of line
      e.evac_base = p->insn->ool;
      e.evac_map = p->insn->map.data();
      e.evac_n = uint32_t(p->insn->map.size());
      if (p->insn->far && std::memcmp(p->current, p->insn->jump_bytes.data(), p->shape.len) == 0) {
        // Leaving the far jump form: the only inner pc is behind its auipc.
        e.evac_base = p->insn->jump_evac_base;
        e.evac_map = p->insn->jump_map.data();
        e.evac_n = uint32_t(p->insn->jump_map.size());
      }
    }
    if (p->in_batch) {
      e.mode = SiteMode::Transition;
      // A thread trapping mid-batch gets the semantics the batch moves to.
      e.call_handler = p->staged == ProbeState::Enabled;
      e.evacuate = p->batch_evacuate;
    } else {
      e.mode = (p->committed == ProbeState::Enabled && !p->jump) ? SiteMode::TrapProbe : SiteMode::Stable;
      e.call_handler = e.mode == SiteMode::TrapProbe;
    }
    entries.push_back(e);
  }
  // Exit traps of out-of-line copies (create_insn_probe) live in pool memory,
  // apart from the sites: merged in, the table is sorted again.
  if (!exit_traps.empty()) {
    entries.insert(entries.end(), exit_traps.begin(), exit_traps.end());
    std::sort(entries.begin(), entries.end(), [](const SiteEntry &a, const SiteEntry &b) { return a.addr < b.addr; });
  }
  table.publish(std::move(entries)); // by_addr is ordered: already sorted without exit traps
}

int lp_patcher::owned(uintptr_t addr, uintptr_t map_end) const {
  for (uintptr_t a : {addr, backend->site_start(addr, map_end - addr)}) {
    if (auto it = by_addr.find(a); it != by_addr.end() && !it->second->dead())
      return it->second->staged == ProbeState::Removed ? LP_EBUSY : LP_EEXIST;
  }
  return overlaps(addr, 1) ? LP_EEXIST : 0; // inside another probe's site
}

bool lp_patcher::overlaps(uintptr_t addr, uint32_t len) const {
  // Sites never overlap each other, so only the last site starting below the
  // end of the range can reach into it... or any site starting inside it.
  auto it = by_addr.lower_bound(addr + len);
  while (it != by_addr.begin()) {
    --it;
    const lp_probe *q = it->second;
    if (q->dead()) continue;
    if (q->shape.addr + q->shape.len <= addr) break;
    return true;
  }
  return false;
}

bool lp_patcher::executable(uintptr_t addr, uintptr_t *map_end) {
  for (int pass = 0; pass < 2; ++pass) {
    for (auto &[lo, hi] : exec_maps) {
      if (addr >= lo && addr < hi) {
        *map_end = hi;
        return true;
      }
    }
    if (pass == 0) {
      exec_maps.clear();
      for (const auto &m : lpl::read_maps())
        if (m.x) exec_maps.emplace_back(m.lo, m.hi);
    }
  }
  return false;
}

int lp_patcher::commit() {
  std::lock_guard lk(mu);
  (void)lpl::trap_signal_reassert();
  std::vector<lp_probe *> moving;
  std::vector<engine::Transition> tr;
  std::vector<std::array<uint8_t, engine::kMaxSiteBytes>> next;
  std::vector<lp_probe *> todo;
  todo.swap(dirty);
  for (lp_probe *p : todo) {
    if (p->dead() || p->staged == p->committed || p->in_batch) continue;
    if (p->staged == ProbeState::Removed && p->committed == ProbeState::Disabled) {
      p->committed = ProbeState::Removed; // never touched the text beyond disabled bytes
      if (p->call) p->call->live.store(false, std::memory_order_release);
      if (p->jump) pool->retire(p->tramp, generation);
      if (p->insn && p->insn->ool_slot.rx) pool->retire(p->insn->ool_slot, generation);
      continue;
    }
    std::array<uint8_t, engine::kMaxSiteBytes> nb{};
    uint8_t disabled[engine::kMaxSiteBytes];
    if (p->insn) std::memcpy(disabled, p->original, p->shape.len); // instruction sites keep their code
    else backend->disabled_bytes(p->shape, p->original, disabled);
    if (p->staged == ProbeState::Enabled) {
      if (p->insn && p->jump) {
        std::memcpy(nb.data(), p->insn->jump_bytes.data(), p->shape.len);
      } else if (p->jump) {
        if (int rc = site_jump_bytes(*p, nb.data()); rc != 0) {
          for (lp_probe *m : moving) m->in_batch = false;
          dirty.insert(dirty.end(), todo.begin(), todo.end()); // still staged
          return rc;
        }
      } else {
        backend->trap_bytes(p->shape, disabled, nb.data());
      }
    } else {
      std::memcpy(nb.data(), disabled, p->shape.len);
    }
    engine::Transition t;
    backend->make_transition(p->shape, p->current, nb.data(), &t);
    if (p->insn) {
      // Instruction sites evacuate by their own rule (insn_evacuate.hpp).
      t.evacuate = insn_transition_evacuates(p->insn->multi, p->insn->far, p->original,
                                             p->insn->jump_bytes.empty() ? nullptr : p->insn->jump_bytes.data(),
                                             p->current, nb.data(), p->shape.len, t.trap_len);
    }
    p->in_batch = true;
    p->batch_evacuate = t.evacuate;
    moving.push_back(p);
    tr.push_back(t);
    next.push_back(nb);
  }
  if (moving.empty()) return 0; // nothing staged: a no-op, not an error

  publish_table();
  engine::EngineOps ops;
  ops.ctx = this;
  ops.granule = backend->granule();
  ops.write = op_write;
  ops.sync = op_sync;
  engine::EngineStats st;
  // Every byte the batch may store to, so the writer prepares it at once.
  std::vector<lpl::TextRange> ranges;
  ranges.reserve(tr.size());
  for (const engine::Transition &t : tr) ranges.push_back({t.addr, t.addr + t.len});
  engine::EngineError e = engine::EngineError::Write;
  if (writer->begin(ranges.data(), ranges.size()) == 0) e = engine::run_batch(ops, tr.data(), tr.size(), &st);
  const bool closed = writer->finish() == 0;
  int rc = to_lp(e);
  // The text could not be made read-only again after a batch that applied:
  // the batch stands (recorded below), the commit reports LP_EWRITE.
  if (rc == 0 && !closed) rc = LP_EWRITE;
  if (e == engine::EngineError::Ok || e == engine::EngineError::Sync) {
    // Sync failing after phase 3 leaves complete new code: record it as applied.
    for (size_t i = 0; i < moving.size(); ++i) {
      lp_probe *p = moving[i];
      std::memcpy(p->current, next[i].data(), p->shape.len);
      const bool removing = p->staged == ProbeState::Removed;
      p->committed = p->staged;
      // No handler of a removed call probe runs again: pending returns still
      // return (through the permanent return trampoline), without its exit.
      if (removing && p->call) p->call->live.store(false, std::memory_order_release);
      if (removing && p->jump) pool->retire(p->tramp, generation);
      if (removing && p->insn && p->insn->ool_slot.rx) pool->retire(p->insn->ool_slot, generation);
    }
    sites.fetch_add(st.sites, std::memory_order_relaxed);
    commits.fetch_add(1, std::memory_order_relaxed);
  } else {
    // Rolled back: the text holds the old bytes; staged state stays pending.
    for (size_t i = 0; i < moving.size(); ++i) {
      std::memcpy(moving[i]->current, tr[i].old_bytes, tr[i].len);
      dirty.push_back(moving[i]);
    }
  }
  for (lp_probe *p : moving) p->in_batch = false;
  publish_table();
  return rc;
}

int lp_patcher::quiesce(unsigned timeout_ms, bool *ok) {
  // A grace period: a round in which every thread reports being outside all
  // trampolines (pc) and outside every handler a trampoline called (depth).
  // Slots retired before the round began are then unreachable for good.
  std::lock_guard lk(mu);
  const unsigned step = 20;
  for (unsigned waited = 0;; waited += step) {
    const uint64_t gen = generation++;
    QuiesceVisit v;
    v.p = this;
    const int rc = lpl::round_run(quiesce_visitor, &v, timeout_ms ? timeout_ms : 1, nullptr);
    if (rc == 0 && !v.busy.load()) {
      pool->reclaim(gen + 1);
      if (ok) *ok = true;
      return 0;
    }
    if (waited >= timeout_ms) break;
    usleep(step * 1000);
  }
  if (ok) *ok = false;
  return LP_ETIMEDOUT;
}

namespace lp {

// The trap handler's resolution of a trap at a site (async-signal-safe).
bool dispatch_trap(int signo, siginfo_t *si, void *uc) {
  lp_patcher *p = g_active.load(std::memory_order_acquire);
  if (!p) return false;
  const Backend &b = *p->backend;
  uintptr_t site = 0;
  if (!b.trap_site(signo, si, uc, &site)) return false;
  SiteTable::Reader r(p->table);
  const SiteEntry *e = r.find(site);
  if (!e) return false;
  p->traps.fetch_add(1, std::memory_order_relaxed);
  if (!b.is_trap_at(site)) {
    // The batch that placed this trap has completed (or rolled back) since the
    // CPU raised it: the site holds complete code now. Run it: refetch it
    // (x86-64, RISC-V), or, where the backend can say what the word now does
    // (Backend::gone_trap, AArch64: NOP or our B), do exactly that here, so no
    // refetch is needed. Reader-side argument: the word was read once, after
    // the trap was raised; it is one the site held during the commit (the
    // engine's stores are whole words), so running it now is what the thread
    // would have done had it fetched the word at that moment. A B is run as
    // the trap it replaced (the handler below, then the site's resume point):
    // never a branch into the trampoline from here, whose slot a grace period
    // that interrupts this handler might reclaim.
    uintptr_t to = site;
    const GoneTrap g = b.gone_trap(site, &to);
    if (g != GoneTrap::AsTrap) {
      if (g == GoneTrap::Resume) p->stale_traps.fetch_add(1, std::memory_order_relaxed);
      b.set_context_pc(uc, g == GoneTrap::Resume ? to : site);
      return true;
    }
    p->stale_traps.fetch_add(1, std::memory_order_relaxed);
  }
  if (e->call_handler && e->redirect) {
    // An enabled replacement: the call goes to the replacement, arguments and
    // return address untouched (the trap is at the function's entry).
    if (e->hits) e->hits->fetch_add(1, std::memory_order_relaxed);
    b.set_context_pc(uc, e->redirect);
    return true;
  }
  if (e->call_handler && e->call) {
    // A call probe's trap flavour: the runtime swaps the return address (x86-64:
    // in the stack slot, RISC-V: ra in regs, written back below) and says where
    // to continue: the sled's end, or a return to the caller for a skipped call.
    lp_regs regs;
    b.context_to_regs(uc, site, &regs);
    const uintptr_t to = e->call(&regs, e->user);
    b.regs_to_context(&regs, uc);
    if (e->hits) e->hits->fetch_add(1, std::memory_order_relaxed);
    b.set_context_pc(uc, to);
    return true;
  }
  if (e->call_handler && e->handler) {
    lp_regs regs;
    b.context_to_regs(uc, site, &regs);
    e->handler(&regs, e->user);
    b.regs_to_context(&regs, uc);
    if (e->hits) e->hits->fetch_add(1, std::memory_order_relaxed);
  }
  // Both the old and the new code of an entry sled continue at its end.
  b.set_context_pc(uc, e->resume);
  return true;
}

} // namespace lp
