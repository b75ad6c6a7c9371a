// probe-hit: cost of one call through a probed function, per probe state:
// uninstrumented (sled never touched), disabled site (probe committed off),
// jump probe, trap probe, and a probe on the first instruction after the sled
// (an instruction site: relocated out of line). Prints ns per call and ratios.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "../bench_util.hpp"
#include "libpatch/patch.h"
#include "libpatch/patchable.h"

extern "C" {
LP_PATCHABLE uint64_t bench_plain(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
LP_PATCHABLE uint64_t bench_disabled(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
LP_PATCHABLE uint64_t bench_jump(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
LP_PATCHABLE uint64_t bench_trap(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
LP_PATCHABLE uint64_t bench_body(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
}

namespace {
uint64_t g_hits;
void handler(lp_regs *, void *) { ++g_hits; }

using Fn = uint64_t (*)(uint64_t);
Fn volatile g_fn; // through a volatile pointer: the compiler can't inline or hoist

double ns_per_call(Fn f, uint64_t n) {
  g_fn = f;
  return lp_bench::median_of(5, [&] {
    const double t0 = lp_bench::now_s();
    uint64_t acc = 0;
    for (uint64_t i = 0; i < n; ++i) acc += g_fn(i);
    const double t = lp_bench::now_s() - t0;
    if (acc == 42) std::puts("");
    return t * 1e9 / double(n);
  });
}

// The first instruction after fn's entry sled (found by an entry probe that is
// removed before it is ever committed).
void *body_site(lp_patcher *p, void *fn) {
  lp_probe *entry = nullptr;
  if (int rc = lp_probe_at(p, fn, handler, nullptr, &entry); rc != 0) {
    std::fprintf(stderr, "probe-hit: %s\n", lp_strerror(rc));
    std::exit(1);
  }
  void *site = static_cast<char *>(lp_probe_address(entry)) + lp_probe_site_len(entry);
  lp_probe_remove(entry);
  return site;
}

lp_probe *probe(lp_patcher *p, void *fn, int enable) {
  lp_probe *pr = nullptr;
  if (int rc = lp_probe_at(p, fn, handler, nullptr, &pr); rc != 0) {
    std::fprintf(stderr, "probe-hit: %s\n", lp_strerror(rc));
    std::exit(1);
  }
  lp_probe_enable(pr);
  lp_commit(p);
  if (!enable) {
    lp_probe_disable(pr);
    lp_commit(p);
  }
  return pr;
}
} // namespace

int open_with(int policy, lp_patcher **p, unsigned flags = 0) {
  lp_options o;
  lp_options_init(&o);
  o.policy = policy;
  o.flags = flags;
  const int rc = lp_patcher_open(&o, p);
  if (rc != 0) std::fprintf(stderr, "probe-hit: %s\n", lp_strerror(rc));
  return rc;
}

int main(int argc, char **argv) {
  const uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000000;
  const uint64_t n_trap = n / 100 ? n / 100 : 1;
  lp_patcher *p = nullptr;
  // One patcher per process at a time, and the probe kind is a patcher
  // policy: jump-probe states first, then the trap probe.
  if (open_with(LP_PROBE_JUMP, &p) != 0) return 1;
  probe(p, reinterpret_cast<void *>(&bench_disabled), 0);
  probe(p, reinterpret_cast<void *>(&bench_jump), 1);
  const double plain = ns_per_call(bench_plain, n);
  const double disabled = ns_per_call(bench_disabled, n);
  const double jump = ns_per_call(bench_jump, n);
  lp_patcher_close(p);
  // The handler above only touches integer registers: the promise the
  // LP_FLAG_HANDLER_GPR_ONLY fast path needs.
  if (open_with(LP_PROBE_JUMP, &p, LP_FLAG_HANDLER_GPR_ONLY) != 0) return 1;
  probe(p, reinterpret_cast<void *>(&bench_jump), 1);
  const double jump_gpr = ns_per_call(bench_jump, n);
  lp_patcher_close(p);
  // An instruction site: a jump where one fits (riscv64 static binaries: the
  // far form needs a dead register), else a trap probe; reported as such.
  if (open_with(LP_PROBE_JUMP_OR_TRAP, &p) != 0) return 1;
  lp_probe *body = probe(p, body_site(p, reinterpret_cast<void *>(&bench_body)), 1);
  const bool body_jump = lp_probe_is_jump(body) == 1;
  const double insn = ns_per_call(bench_body, body_jump ? n : n_trap);
  lp_patcher_close(p);
  if (open_with(LP_PROBE_TRAP, &p) != 0) return 1;
  probe(p, reinterpret_cast<void *>(&bench_trap), 1);
  const double trap = ns_per_call(bench_trap, n_trap);
  lp_patcher_close(p);

  std::printf("probe-hit (%s), median of 5 runs\n", lp_arch());
  std::printf("  %-22s %10.2f ns/call\n", "uninstrumented call", plain);
  std::printf("  %-22s %10.2f ns/call\n", "disabled site", disabled);
  std::printf("  %-22s %10.2f ns/call  (probe cost %.2f ns over the call)\n", "jump probe", jump, jump - plain);
  std::printf("  %-22s %10.2f ns/call  (probe cost %.2f ns over the call)\n", "jump probe, GPR-only", jump_gpr,
              jump_gpr - plain);
  std::printf("  %-22s %10.2f ns/call  (probe cost %.2f ns over the call)\n", "trap probe", trap, trap - plain);
  std::printf("  %-22s %10.2f ns/call  (probe cost %.2f ns over the call; %s probe)\n", "instruction site", insn,
              insn - plain, body_jump ? "jump" : "trap");
  std::printf("  ratio trap/jump (probe cost) %.1fx   jump/uninstrumented %.2fx   disabled/uninstrumented %.2fx\n",
              (trap - plain) / (jump - plain > 0.01 ? jump - plain : 0.01), jump / plain, disabled / plain);
  std::printf("{\"bench\":\"probe-hit\",\"arch\":\"%s\",\"plain_ns\":%.3f,\"disabled_ns\":%.3f,\"jump_ns\":%.3f,"
              "\"trap_ns\":%.3f,\"jump_cost_ns\":%.3f,\"trap_cost_ns\":%.3f,\"jump_gpr_only_ns\":%.3f,"
              "\"insn_site_ns\":%.3f,\"insn_site_kind\":\"%s\"}\n",
              lp_arch(), plain, disabled, jump, trap, jump - plain, trap - plain, jump_gpr, insn,
              body_jump ? "jump" : "trap");
  return 0;
}
