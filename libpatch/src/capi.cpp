// The C API (the contract); thin checks around lp_patcher / lp_probe.
#include <cstring>
#include <new>

#include "libpatch/patch.h"
#include "mc/target.hpp"
#include "libpatch/regs.h"
#include "patcher.hpp"
#include "platform/linux/text_writer.hpp"
#include "platform/linux/symbols.hpp"
#include "platform/linux/trap_signal.hpp"

extern "C" {

void lp_options_init(lp_options *opt) {
  if (opt) std::memset(opt, 0, sizeof *opt);
}

int lp_patcher_open(const lp_options *opt, lp_patcher **out) {
  if (!out) return LP_EINVAL;
  *out = nullptr;
  lp_options o;
  lp_options_init(&o);
  if (opt) o = *opt;
  auto *p = new (std::nothrow) lp_patcher;
  if (!p) return LP_ENOMEM;
  if (int rc = p->open(o); rc != 0) {
    if (lp::g_active.load() == p) lp::g_active.store(nullptr);
    delete p;
    return rc;
  }
  *out = p;
  return 0;
}

void lp_patcher_close(lp_patcher *p) {
  if (!p) return;
  p->close();
  delete p;
}

int lp_patcher_stats(const lp_patcher *p, lp_stats *s) {
  if (!p || !s) return LP_EINVAL;
  s->commits = p->commits.load();
  s->syncs = p->syncs.load();
  s->writes = p->writes.load();
  s->sites = p->sites.load();
  s->traps = p->traps.load();
  s->chained = lp::linux_platform::trap_signal_chained_count() - p->chained_at_open;
  s->evacuated = p->evacuated.load();
  s->kernel_icache_flushes = p->writer ? p->writer->kernel_icache_flushes() : 0;
  s->text_mprotects = p->writer ? p->writer->text_mprotects() : 0;
  s->stopped_rounds = p->stopped_rounds.load();
  s->stale_traps = p->stale_traps.load();
  return 0;
}

int lp_probe_at(lp_patcher *p, void *addr, lp_handler h, void *user, lp_probe **out) {
  if (!p || !out) return LP_EINVAL;
  *out = nullptr;
  return p->create_probe(addr, h, user, out);
}

int lp_probe_symbol(lp_patcher *p, const char *symbol, lp_handler h, void *user, lp_probe **out) {
  if (!p || !symbol || !out) return LP_EINVAL;
  lp::linux_platform::Symbol s;
  if (int rc = lp::linux_platform::lookup_symbol(symbol, &s); rc != 0) return rc;
  return lp_probe_at(p, reinterpret_cast<void *>(s.addr), h, user, out);
}

static int stage(lp_probe *pr, ProbeState st) {
  if (!pr) return LP_EINVAL;
  std::lock_guard lk(pr->owner->mu);
  if (pr->dead() || pr->staged == ProbeState::Removed) return LP_EREMOVED;
  if (pr->staged != st) {
    pr->staged = st;
    pr->owner->dirty.push_back(pr);
  }
  return 0;
}

int lp_probe_enable(lp_probe *pr) { return stage(pr, ProbeState::Enabled); }
int lp_probe_disable(lp_probe *pr) { return stage(pr, ProbeState::Disabled); }
int lp_probe_remove(lp_probe *pr) { return stage(pr, ProbeState::Removed); }

int lp_probe_is_jump(const lp_probe *pr) { return pr ? (pr->jump ? 1 : 0) : LP_EINVAL; }
int lp_probe_fallback(const lp_probe *pr) { return pr ? pr->fallback : LP_EINVAL; }
int lp_probe_protocol(const lp_probe *pr) {
  if (!pr) return LP_EINVAL;
  return pr->insn && pr->owner->backend->insn_sites_need_stop() ? LP_PROTOCOL_STOPPED : LP_PROTOCOL_BREAKPOINT;
}
void *lp_probe_address(const lp_probe *pr) { return pr ? reinterpret_cast<void *>(pr->shape.addr) : nullptr; }
size_t lp_probe_site_len(const lp_probe *pr) { return pr ? pr->shape.len : 0; }
uint64_t lp_probe_hits(const lp_probe *pr) { return pr ? pr->hits.load() : 0; }

int lp_probe_call(lp_patcher *p, void *fn, lp_entry_handler on_entry, lp_exit_handler on_exit, void *user,
                  lp_probe **out) {
  if (!p || !out) return LP_EINVAL;
  *out = nullptr;
  return p->create_call_probe(fn, on_entry, on_exit, user, out);
}

int lp_probe_call_symbol(lp_patcher *p, const char *symbol, lp_entry_handler on_entry, lp_exit_handler on_exit,
                         void *user, lp_probe **out) {
  if (!p || !symbol || !out) return LP_EINVAL;
  *out = nullptr;
  lp::linux_platform::Symbol s;
  if (int rc = lp::linux_platform::lookup_symbol(symbol, &s); rc != 0) return rc;
  return p->create_call_probe(reinterpret_cast<void *>(s.addr), on_entry, on_exit, user, out);
}

int lp_replace(lp_patcher *p, void *fn, void *replacement, lp_probe **out) {
  if (!p || !out) return LP_EINVAL;
  *out = nullptr;
  return p->create_replacement(fn, replacement, out);
}

int lp_replace_symbol(lp_patcher *p, const char *symbol, void *replacement, lp_probe **out) {
  if (!p || !symbol || !out) return LP_EINVAL;
  *out = nullptr;
  lp::linux_platform::Symbol s;
  if (int rc = lp::linux_platform::lookup_symbol(symbol, &s); rc != 0) return rc;
  return p->create_replacement(reinterpret_cast<void *>(s.addr), replacement, out);
}

void *lp_probe_original(const lp_probe *pr) {
  return pr && pr->kind == ProbeKind::Replace ? reinterpret_cast<void *>(pr->original_fn) : nullptr;
}

int lp_patcher_call_stats(const lp_patcher *p, lp_call_stats *s) {
  if (!p || !s) return LP_EINVAL;
  std::memset(s, 0, sizeof *s);
  s->exits = lp::CallRuntime::exits();
  s->pending = lp::CallRuntime::pending();
  if (const lp::CallRuntime *rt = p->calls.get()) {
    s->overflows = rt->overflows.load();
    s->unwound = rt->unwound.load();
    s->skipped = rt->skipped.load();
    s->skip_refused = rt->skip_refused.load();
  }
  s->unwind_hooks = p->unwind_hooks;
  s->unwind_missing = p->unwind_missing;
  return 0;
}

int lp_commit(lp_patcher *p) { return p ? p->commit() : LP_EINVAL; }

int lp_quiesce(lp_patcher *p, unsigned timeout_ms) { return p ? p->quiesce(timeout_ms, nullptr) : LP_EINVAL; }

int lp_lookup_symbol(const char *symbol, void **addr, size_t *size) {
  if (!symbol || !addr) return LP_EINVAL;
  lp::linux_platform::Symbol s;
  if (int rc = lp::linux_platform::lookup_symbol(symbol, &s); rc != 0) return rc;
  *addr = reinterpret_cast<void *>(s.addr);
  if (size) *size = s.size;
  return 0;
}

const char *lp_arch(void) { return LP_REGS_ARCH; }

int lp_supports_instruction_sites(void) {
  lp::mc::initialize_host_target();
  return lp::mc::Decoder::available(lp_arch()) ? 1 : 0;
}

} // extern "C"
