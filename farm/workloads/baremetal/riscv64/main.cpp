// The bare-metal multi-hart stress workload.
//
// The boot hart (whichever OpenSBI picked) is the patcher: it starts every other
// hart with SBI HSM, then toggles the probes on the patchable functions bm_f0..15
// with the libpatch protocol engine (libpatch/src/engine) and the RISC-V backend
// encodings (backends/riscv64), compiled freestanding into this image. The other
// harts are workers: they call bm_f0..15 in a tight loop and check every result;
// the probes' trampolines count hits but must not change results.
//
// Bootargs (device tree /chosen/bootargs, qemu -append "..."), all optional:
//   toggles=N     probe toggles (one probe switched on or off) in the stress phase:
//                 batches run until at least N were done (default BM_DEFAULT_TOGGLES)
//   batch=random|all  each batch toggles a random non-empty subset of the 16 probes
//                 (default) or all of them. Every batch costs three syncs, whatever its size.
//   sync=MODE     ipi (default) | rfence | none | noevac   (none/noevac: negative controls)
//   seed=N        PRNG seed: which sites each batch toggles, delays, worker inputs
//   delay=N       spin up to N (random) iterations between batches (default 0)
//   burst=N       workers run N loop iterations, then nap (wfi) until the next sync IPI or
//                 a nap=US microsecond timer; 0 = never nap. Default: 2 on QEMU's virt
//                 machine, 0 elsewhere. See docs/baremetal.md: on a host with fewer cores
//                 than vCPUs, naps let the vCPUs share the cores.
//   nap=US        longest nap in microseconds (default 200)
//   pwait=wfi|spin  how the patcher waits for sync acks: sleep until the last worker's
//                 IPI (default) or spin
//   linger=US     an interrupt that hits strictly inside a sled returns only after US
//                 microseconds (a preempted hart): makes the missing evacuation of the
//                 negative controls observable (with qemu -singlestep). Default 0.
//   selftest=unimp  a worker executes a real `unimp` outside any site: must fail (code 2)
//   stale=ok|fail   whether a stale trap (fetched after the sync that removed it) is
//                 tolerated and counted, or a failure. Default: ok on QEMU's virt
//                 machine (root compatible "riscv-virtio"), whose TCG does this, fail elsewhere.
#include "bm.hpp"

#ifndef BM_DEFAULT_TOGGLES
#define BM_DEFAULT_TOGGLES 100000
#endif

extern "C" char _secondary_start[];
extern "C" const uint64_t __start_bm_pfe[], __stop_bm_pfe[];

namespace bm {

Site g_sites[kNumSites];

namespace {

using lp::engine::EngineError;
using lp::engine::EngineStats;
using lp::riscv64::Ilen;

struct Config {
  uint64_t toggles = BM_DEFAULT_TOGGLES;
  uint64_t seed = 1;
  uint64_t delay = 0;
  uint64_t burst = 0;     // set from the machine before the bootargs are parsed
  uint64_t nap_us = 200;
  uint64_t linger_us = 0;
  bool selftest_unimp = false;
  bool batch_all = false;
  bool bad_arg = false;
  bool on_qemu = false;
};
Config g_cfg;
uint32_t g_go = 0;
uint32_t g_stop = 0;

uint64_t xorshift(uint64_t &s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

bool parse_u64(const char *s, uint64_t *out) {
  uint64_t v = 0;
  unsigned base = 10;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) base = 16, s += 2;
  if (!*s) return false;
  for (; *s; ++s) {
    unsigned d;
    if (*s >= '0' && *s <= '9') d = unsigned(*s - '0');
    else if (base == 16 && *s >= 'a' && *s <= 'f') d = unsigned(*s - 'a' + 10);
    else if (base == 16 && *s >= 'A' && *s <= 'F') d = unsigned(*s - 'A' + 10);
    else return false;
    v = v * base + d;
  }
  *out = v;
  return true;
}

void apply_arg(const char *k, const char *v) {
  if (streq(k, "toggles")) g_cfg.bad_arg |= !parse_u64(v, &g_cfg.toggles);
  else if (streq(k, "seed")) g_cfg.bad_arg |= !parse_u64(v, &g_cfg.seed);
  else if (streq(k, "delay")) g_cfg.bad_arg |= !parse_u64(v, &g_cfg.delay);
  else if (streq(k, "burst")) g_cfg.bad_arg |= !parse_u64(v, &g_cfg.burst);
  else if (streq(k, "nap")) g_cfg.bad_arg |= !parse_u64(v, &g_cfg.nap_us);
  else if (streq(k, "linger")) g_cfg.bad_arg |= !parse_u64(v, &g_cfg.linger_us);
  else if (streq(k, "sync")) {
    if (streq(v, "ipi")) g_plat.mode = SyncMode::Ipi;
    else if (streq(v, "rfence")) g_plat.mode = SyncMode::Rfence;
    else if (streq(v, "none")) g_plat.mode = SyncMode::None;
    else if (streq(v, "noevac")) g_plat.mode = SyncMode::NoEvac;
    else g_cfg.bad_arg = true;
  } else if (streq(k, "batch")) {
    if (streq(v, "random")) g_cfg.batch_all = false;
    else if (streq(v, "all")) g_cfg.batch_all = true;
    else g_cfg.bad_arg = true;
  } else if (streq(k, "pwait")) {
    if (streq(v, "wfi")) g_plat.patcher_wfi = true;
    else if (streq(v, "spin")) g_plat.patcher_wfi = false;
    else g_cfg.bad_arg = true;
  } else if (streq(k, "stale")) {
    if (streq(v, "ok")) g_plat.tolerate_stale = true;
    else if (streq(v, "fail")) g_plat.tolerate_stale = false;
    else g_cfg.bad_arg = true;
  } else if (streq(k, "selftest")) {
    if (streq(v, "unimp")) g_cfg.selftest_unimp = true;
    else g_cfg.bad_arg = true;
  }
  // Unknown keys are ignored: the farm may pass more than this image understands.
}

void parse_bootargs(const char *args, uint32_t len) {
  char buf[512];
  uint32_t n = 0;
  for (; n < len && n + 1 < sizeof buf && args[n]; ++n) buf[n] = args[n];
  buf[n] = 0;
  char *p = buf;
  while (*p) {
    while (*p == ' ') ++p;
    if (!*p) break;
    char *tok = p;
    while (*p && *p != ' ') ++p;
    if (*p) *p++ = 0;
    char *eq = tok;
    while (*eq && *eq != '=') ++eq;
    if (*eq) {
      *eq = 0;
      apply_arg(tok, eq + 1);
    } else {
      apply_arg(tok, "1");
    }
  }
}

void detect_c(HartData *hd) {
  hd->has_c = 1;
  store_release(&hd->probing_c, 1u);
  // Two c.nop: run as such on a hart with C; one illegal 32-bit word without C
  // (low bits 01), which the trap handler skips while probing_c is set.
  asm volatile(".2byte 0x0001\n\t.2byte 0x0001" ::: "memory");
  store_release(&hd->probing_c, 0u);
}

void worker_loop(HartData *hd) {
  uint64_t x = g_cfg.seed * 0x9e3779b97f4a7c15ull + (hd->hartid + 1) * 0xbf58476d1ce4e5b9ull;
  if (!x) x = 1;
  uint64_t calls = 0;
  const bool selftest = g_cfg.selftest_unimp && hd->hartid == g_plat.workers[0];
  store_release(&hd->state, uint32_t(kRunning));
  const uint64_t burst = g_cfg.burst;
  const uint64_t nap = g_cfg.nap_us * g_plat.timebase / 1000000;
  uint64_t left = burst;
  BM_CSR_SET(sie, kSieSsie | (burst ? kSieStie : 0));
  BM_CSR_SET(sstatus, kSstatusSie);
  while (!load_relaxed(&g_stop)) {
    if (burst && left-- == 0) {
      // Nap: wfi wakes on the next sync IPI (S-mode, or OpenSBI's M-mode one for
      // RFENCE) or the alarm; the pending interrupt is then taken right here,
      // outside every site.
      // SIE off while arming: an alarm taken between set_timer and wfi would
      // leave nothing to wake the wfi (wfi wakes on pending interrupts anyway).
      left = burst - 1;
      BM_CSR_CLEAR(sstatus, kSstatusSie);
      store_release(&hd->nap_seq, hd->nap_seq + 1); // odd: napping
      sbi::set_timer(rdtime() + nap);
      asm volatile("wfi" ::: "memory");
      store_release(&hd->nap_seq, hd->nap_seq + 1);
      BM_CSR_SET(sstatus, kSstatusSie);
    }
    xorshift(x);
    bm_anchor();
    for (uint32_t i = 0; i < kNumSites; ++i) {
      const uint64_t r = bm_site_fns[i](x + i);
      if (r != mix(x + i, i)) fail(5, "a probed function returned a wrong value", i, x + i, r);
    }
    store_relaxed(&hd->calls, ++calls); // quiescent point: outside every site
    if (selftest && calls == 1000) asm volatile("unimp");
  }
  BM_CSR_CLEAR(sstatus, kSstatusSie);
  store_release(&hd->state, uint32_t(kDone));
}

void setup_sites() {
#if defined(__riscv_compressed)
  const Ilen want_ilen = Ilen::C16;
#else
  const Ilen want_ilen = Ilen::G32;
#endif
  for (uint32_t i = 0; i < kNumSites; ++i) {
    Site &s = g_sites[i];
    s.addr = reinterpret_cast<uintptr_t>(bm_site_fns[i]);
    s.tramp = bm_tramps[i];
    // The compiler's list of sleds must name this function.
    bool listed = false;
    for (const uint64_t *e = __start_bm_pfe; e < __stop_bm_pfe; ++e) listed |= *e == s.addr;
    if (!listed) fail(8, "site not in __patchable_function_entries", s.addr, i);
    Ilen ilen;
    const uint32_t units = lp::riscv64::sled_units(reinterpret_cast<const uint8_t *>(s.addr), lp::engine::kMaxSiteBytes, &ilen);
    if (units != bm_sled_units[i] || ilen != want_ilen) fail(8, "unexpected sled", s.addr, units, uint64_t(ilen));
    s.ilen = ilen;
    s.len = units * uint32_t(ilen);
    for (uint32_t b = 0; b < s.len; ++b) s.off_bytes[b] = reinterpret_cast<const uint8_t *>(s.addr)[b];
    if (lp::riscv64::encode_entry_call(s.addr, s.tramp, s.len, s.ilen, s.on_bytes) != lp::riscv64::CallError::Ok)
      fail(8, "cannot encode the entry call", s.addr, s.tramp, s.len);
    const uint32_t first = lp::riscv64::get32(s.on_bytes);
    const bool is_jal = (first & 0x7f) == 0x6f;
    // Far trampolines live 2 MiB away: those sites must have taken the auipc+jalr form.
    if (is_jal == site_is_far(i)) fail(8, "unexpected call form", s.addr, s.tramp, first);
    bm_tramp_expect[i] = s.addr + (is_jal ? 4 : 8);
  }
  fence_rw_rw();
}

// Every worker's sum of hits (trampoline + trap) for site i.
uint64_t hits_of(uint32_t i) {
  uint64_t h = 0;
  for (uint32_t w = 0; w < g_plat.nworkers; ++w) {
    const HartData &d = bm_harts[g_plat.workers[w]];
    h += load_acquire(&d.hits[i]) + load_acquire(&d.trap_hits[i]);
  }
  return h;
}

void batch_all(bool on, EngineStats *st) {
  uint32_t idx[kNumSites];
  bool tgt[kNumSites];
  uint32_t n = 0;
  for (uint32_t i = 0; i < kNumSites; ++i)
    if (g_sites[i].on != on) idx[n] = i, tgt[n] = on, ++n;
  if (!n) return;
  const EngineError e = apply_batch(idx, tgt, n, st);
  if (e != EngineError::Ok) fail(7, "protocol engine failed", uint64_t(int64_t(int(e))), n);
}

// All probes off: no hart may hit any of them any more.
void check_quiet(EngineStats *st) {
  batch_all(false, st);
  grace_period();
  uint64_t before[kNumSites];
  for (uint32_t i = 0; i < kNumSites; ++i) before[i] = hits_of(i);
  grace_period();
  grace_period();
  for (uint32_t i = 0; i < kNumSites; ++i)
    if (hits_of(i) != before[i]) fail(1, "a disabled probe was still hit", i, before[i], hits_of(i));
}

// All probes on: every worker must hit every probe through its trampoline.
void check_live(EngineStats *st) {
  uint64_t snap[BM_MAX_HARTS][kNumSites];
  for (uint32_t w = 0; w < g_plat.nworkers; ++w)
    for (uint32_t i = 0; i < kNumSites; ++i) snap[w][i] = load_acquire(&bm_harts[g_plat.workers[w]].hits[i]);
  batch_all(true, st);
  const uint64_t t0 = rdtime();
  for (uint32_t w = 0; w < g_plat.nworkers; ++w) {
    const HartData &d = bm_harts[g_plat.workers[w]];
    for (uint32_t i = 0; i < kNumSites; ++i)
      while (load_acquire(&d.hits[i]) == snap[w][i]) {
        if (rdtime() - t0 > 20 * g_plat.timebase) fail(1, "an enabled probe was never hit", d.hartid, i);
        cpu_relax();
      }
  }
}

} // namespace

extern "C" void bm_secondary_main(uint64_t hartid) {
  HartData *hd = this_hart();
  hd->hartid = hartid;
  detect_c(hd);
  store_release(&hd->state, uint32_t(kReady));
  while (!load_acquire(&g_go)) cpu_relax();
  worker_loop(hd);
  for (;;) asm volatile("wfi");
}

extern "C" void bm_boot_main(uint64_t hartid, const void *fdt) {
  HartData *me = this_hart();
  me->hartid = hartid;
  g_plat.patcher_hart = uint32_t(hartid);
  me->present = 1;
  detect_c(me);

  uint32_t len = 0;
  if (const void *tb = fdt_prop(fdt, "cpus", "timebase-frequency", &len); tb && len == 4) {
    const uint8_t *b = static_cast<const uint8_t *>(tb);
    g_plat.timebase = uint64_t(b[0]) << 24 | uint64_t(b[1]) << 16 | uint64_t(b[2]) << 8 | b[3];
  }
  // QEMU's virt machine: "riscv-virtio" in the root's compatible list.
  if (const char *compat = static_cast<const char *>(fdt_prop(fdt, "", "compatible", &len))) {
    for (uint32_t off = 0; off < len; off += 1) {
      if (streq(compat + off, "riscv-virtio")) g_cfg.on_qemu = true;
      while (off < len && compat[off]) ++off;
    }
  }
  g_plat.tolerate_stale = g_cfg.on_qemu;
  g_cfg.burst = g_cfg.on_qemu ? 2 : 0;
  const char *args = static_cast<const char *>(fdt_prop(fdt, "chosen", "bootargs", &len));
  if (args) parse_bootargs(args, len);

  console_lock();
  puts("bm: " BM_ISA " image, boot hart ");
  put_u64(hartid);
  puts(", bootargs \"");
  if (args) puts(args);
  puts("\"\n");
  console_unlock();
  if (g_cfg.bad_arg) fail(8, "bad bootargs");
  g_plat.linger_ticks = g_cfg.linger_us * g_plat.timebase / 1000000;

  if (!sbi::probe_extension(sbi::kEidHsm)) fail(8, "SBI HSM extension missing");
  if (!sbi::probe_extension(sbi::kEidIpi)) fail(8, "SBI IPI extension missing");
  if (!sbi::probe_extension(sbi::kEidRfence)) fail(8, "SBI RFENCE extension missing");

  // Discover and start every other hart: whichever ids HSM knows (the boot hart is random).
  g_plat.all_mask = 1ul << hartid;
  for (uint64_t id = 0; id < BM_MAX_HARTS; ++id) {
    if (id == hartid) continue;
    const sbi::Ret st = sbi::hart_get_status(id);
    if (st.error != sbi::kOk) continue; // no such hart
    if (st.value != sbi::kHsmStopped) fail(8, "hart not in STOPPED state", id, uint64_t(st.value));
    const sbi::Ret r = sbi::hart_start(id, reinterpret_cast<uintptr_t>(_secondary_start), 0);
    if (r.error != sbi::kOk) fail(8, "hart_start failed", id, uint64_t(r.error));
    bm_harts[id].present = 1;
    g_plat.workers[g_plat.nworkers++] = uint32_t(id);
    g_plat.worker_mask |= 1ul << id;
    g_plat.all_mask |= 1ul << id;
  }
  bool any_c = me->has_c, all_c = me->has_c;
  const uint64_t t0 = rdtime();
  for (uint32_t w = 0; w < g_plat.nworkers; ++w) {
    HartData &d = bm_harts[g_plat.workers[w]];
    while (load_acquire(&d.state) != kReady) {
      if (rdtime() - t0 > 10 * g_plat.timebase) fail(8, "hart did not come up", g_plat.workers[w]);
      cpu_relax();
    }
    any_c |= d.has_c != 0;
    all_c &= d.has_c != 0;
  }
  // The trap must be illegal for every hart's decoder: if any hart has C it is the
  // 2-byte c.unimp (also illegal for a hart without C: low byte 0x00).
  g_plat.hart_has_c = any_c;

  setup_sites();
  BM_CSR_SET(sie, kSieSsie); // lets the workers' wake-up IPI end the patcher's wfi (SIE stays 0)
  EngineStats st;
  store_release(&g_go, 1u);
  for (uint32_t w = 0; w < g_plat.nworkers; ++w) {
    while (load_acquire(&bm_harts[g_plat.workers[w]].calls) == 0) {
      if (rdtime() - t0 > 20 * g_plat.timebase) fail(4, "worker made no call", g_plat.workers[w]);
      cpu_relax();
    }
  }

  // Functional check first: probes hit when on, silent when off.
  if (g_plat.nworkers) {
    check_live(&st);
    check_quiet(&st);
  }

  // Stress: every batch toggles a random non-empty subset of the sites.
  uint64_t rng = g_cfg.seed ? g_cfg.seed : 1;
  uint64_t site_toggles = 0;
  const uint64_t syncs_before = st.syncs;
  const uint64_t ts = rdtime();
  uint64_t batches = 0;
  for (uint64_t k = 0; site_toggles < g_cfg.toggles; ++k, ++batches) {
    const uint32_t mask = g_cfg.batch_all ? (1u << kNumSites) - 1
                                          : uint32_t(xorshift(rng) % ((1u << kNumSites) - 1)) + 1;
    uint32_t idx[kNumSites];
    bool tgt[kNumSites];
    uint32_t n = 0;
    for (uint32_t i = 0; i < kNumSites; ++i)
      if (mask & (1u << i)) idx[n] = i, tgt[n] = !g_sites[i].on, ++n;
    const EngineError e = apply_batch(idx, tgt, n, &st);
    if (e != EngineError::Ok) fail(7, "protocol engine failed", uint64_t(int64_t(int(e))), k);
    site_toggles += n;
    if (g_cfg.delay) {
      const uint64_t spins = xorshift(rng) % g_cfg.delay;
      for (uint64_t s = 0; s < spins; ++s) cpu_relax();
    }
  }
  const uint64_t elapsed_ticks = rdtime() - ts;
  const uint64_t stress_syncs = st.syncs - syncs_before;

  if (g_plat.nworkers) check_quiet(&st);
  else batch_all(false, &st);

  store_release(&g_stop, 1u);
  for (uint32_t w = 0; w < g_plat.nworkers; ++w) {
    while (load_acquire(&bm_harts[g_plat.workers[w]].state) != kDone) {
      if (rdtime() - ts > (elapsed_ticks + 20 * g_plat.timebase)) fail(4, "worker did not stop", g_plat.workers[w]);
      cpu_relax();
    }
  }

  // The text must be back to the compiled sleds, byte for byte.
  for (uint32_t i = 0; i < kNumSites; ++i) {
    const Site &s = g_sites[i];
    for (uint32_t b = 0; b < s.len; ++b)
      if (reinterpret_cast<const volatile uint8_t *>(s.addr)[b] != s.off_bytes[b])
        fail(1, "site text not restored", s.addr, b);
  }

  uint64_t iters = 0, tramp_hits = 0, trap_hits = 0, traps = 0, evacuations = 0, ipis = 0, stale = 0, lingers = 0;
  for (uint32_t w = 0; w < g_plat.nworkers; ++w) {
    const HartData &d = bm_harts[g_plat.workers[w]];
    iters += d.calls;
    traps += d.traps;
    evacuations += d.evacuations;
    ipis += d.ipis;
    stale += d.stale_traps;
    lingers += d.lingers;
    for (uint32_t i = 0; i < kNumSites; ++i) tramp_hits += d.hits[i], trap_hits += d.trap_hits[i];
  }
  // One call hits a probe at most once.
  for (uint32_t i = 0; i < kNumSites; ++i)
    if (hits_of(i) > iters) fail(1, "more probe hits than calls", i, hits_of(i), iters);
  if (me->traps || me->hits[0] || me->hits[1] || me->hits[2]) fail(1, "the patcher hart ran a site");

  const uint64_t ms = elapsed_ticks * 1000 / g_plat.timebase;
  Json j;
  j.str("workload", "baremetal");
  j.str("isa", BM_ISA);
  j.u64("harts", g_plat.nworkers + 1);
  j.u64("workers", g_plat.nworkers);
  j.u64("boot_hart", hartid);
  j.boolean("hart_has_c", any_c);
  j.boolean("all_harts_c", all_c);
  j.u64("granule", lp::riscv64::granule(g_plat.hart_has_c));
  j.str("sync", sync_mode_name(g_plat.mode));
  j.u64("seed", g_cfg.seed);
  j.u64("burst", g_cfg.burst);
  j.str("pwait", g_plat.patcher_wfi ? "wfi" : "spin");
  j.boolean("qemu", g_cfg.on_qemu);
  j.u64("sites", kNumSites);
  j.str("batch", g_cfg.batch_all ? "all" : "random");
  j.u64("batches", batches);
  j.u64("toggles", site_toggles);
  j.u64("calls", iters * kNumSites);
  j.u64("hits", tramp_hits + trap_hits);
  j.u64("trap_hits", trap_hits);
  j.u64("traps", traps);
  j.u64("stale_traps", stale);
  j.u64("evacuations", evacuations);
  j.u64("lingers", lingers);
  j.u64("syncs", stress_syncs);
  j.u64("ipi_rounds", g_plat.ipi_rounds);
  j.u64("ipis_taken", ipis);
  j.u64("evac_rounds", g_plat.evac_rounds);
  j.u64("rfences", g_plat.rfences);
  j.u64("grace_periods", g_plat.graces);
  j.u64("writes", st.writes);
  j.u64("elapsed_ms", ms);
  j.u64("toggles_per_s", ms ? site_toggles * 1000 / ms : 0);
  j.u64("batches_per_s", ms ? batches * 1000 / ms : 0);
  j.str("verdict", "pass");
  j.emit();
  power_off(0);
}

} // namespace bm
