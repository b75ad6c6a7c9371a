// The AArch64 backend on the real library (aarch64 builds: qemu-aarch64, the
// arm64 guest). Byte states of every phase of every entry transition through
// the shipped engine, the register file a handler sees and writes, what an
// instruction site keeps live across its trampoline, the sled variants.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <sys/mman.h>
#include <vector>

#include "backend.hpp"
#include "encoding.hpp"
#include "engine/protocol.hpp"
#include "trampoline.hpp"
#include "libpatch/patch.h"
#include "libpatch/regs.h"

namespace a64 = lp::aarch64;

extern "C" {
long a64_args(long, long, long, long, long, long, long, long, double, double, double, double, double, double,
              double, double);
long a64_live_across(long x0, long x1);
void a64_live_site(void);
long a64_bti_sled(long);
// -fpatchable-function-entry=3,1: one NOP before the symbol, two at it.
__attribute__((noipa, patchable_function_entry(3, 1))) long a64_prefixed(long x) { return x * 3; }
}

namespace {

// ---- byte states ----------------------------------------------------------

struct Text {
  uint8_t bytes[64] = {};
  std::vector<uint32_t> firsts;  // the first word after every store
  std::vector<std::pair<uint32_t, uint32_t>> pairs; // (old, new) of every store
  int syncs = 0;
};

int rec_write(void *ctx, uintptr_t addr, const uint8_t *src, uint32_t g) {
  auto *t = static_cast<Text *>(ctx);
  if (g != 4 || (addr & 3) != 0) return -1;
  const uintptr_t base = reinterpret_cast<uintptr_t>(t->bytes);
  const uint32_t old = a64::get32(t->bytes + (addr - base));
  std::memcpy(t->bytes + (addr - base), src, 4);
  t->pairs.push_back({old, a64::get32(src)});
  t->firsts.push_back(a64::get32(t->bytes));
  return 0;
}
int rec_sync(void *ctx, lp::engine::SyncPoint, bool) {
  ++static_cast<Text *>(ctx)->syncs;
  return 0;
}

} // namespace

TEST(A64States, EveryStoreOfEveryEntryTransitionIsListed) {
  const lp::Backend &b = lp::host_backend();
  ASSERT_STREQ(b.arch(), "aarch64");
  ASSERT_EQ(b.granule(), 4u);
  alignas(16) static uint8_t sled[16];
  for (int i = 0; i < 2; ++i) a64::put32(sled + 4 * i, a64::kNop);
  a64::put32(sled + 8, a64::kRet);
  lp::SiteShape s;
  ASSERT_EQ(b.probe_site(reinterpret_cast<uintptr_t>(sled), sizeof sled, &s), 0);
  EXPECT_EQ(s.len, 8u);
  EXPECT_TRUE(s.entry_sled);
  uint8_t disabled[32], jump[32], trap[32];
  b.disabled_bytes(s, sled, disabled);
  ASSERT_EQ(b.jump_bytes(s, s.addr + 0x10000, jump), 0);
  b.trap_bytes(s, disabled, trap);
  EXPECT_EQ(a64::get32(jump), a64::enc_b(0x10000));
  EXPECT_EQ(a64::get32(trap), a64::trap_insn());
  EXPECT_EQ(a64::get32(jump + 4), a64::kNop) << "only the first word ever changes";
  const uint8_t *states[] = {disabled, jump, trap};
  for (const uint8_t *from : states)
    for (const uint8_t *to : states) {
      if (from == to) continue;
      lp::engine::Transition t;
      b.make_transition(s, from, to, &t);
      Text text;
      std::memcpy(text.bytes, from, s.len);
      t.addr = reinterpret_cast<uintptr_t>(text.bytes);
      lp::engine::EngineOps ops;
      ops.ctx = &text;
      ops.granule = 4;
      ops.write = rec_write;
      ops.sync = rec_sync;
      lp::engine::EngineStats st;
      ASSERT_EQ(lp::engine::run_batch(ops, &t, 1, &st), lp::engine::EngineError::Ok);
      EXPECT_EQ(text.syncs, 3);
      EXPECT_EQ(std::memcmp(text.bytes, to, s.len), 0);
      EXPECT_FALSE(t.evacuate);
      // Every store is between two listed instructions: the breakpoint
      // protocol covers it, the stopped protocol is never needed.
      for (auto [o, n] : text.pairs) EXPECT_TRUE(a64::concurrent_modification_safe(o, n)) << std::hex << o << " -> " << n;
      for (uint32_t w : text.firsts) EXPECT_NE(a64::classify(w), a64::Kind::Other) << std::hex << w;
    }
}

TEST(A64States, StoresLeavingOrEnteringAnInstructionNeedTheStoppedProtocol) {
  const lp::Backend &b = lp::host_backend();
  alignas(4) static uint8_t word[4];
  uint8_t brk[4], jmp[4], orig[4];
  a64::put32(orig, a64::enc_add_imm(0, 0, 1)); // add x0, x0, #1
  a64::put32(brk, a64::trap_insn());
  a64::put32(jmp, a64::enc_b(0x1000));
  std::memcpy(word, orig, 4);
  const uintptr_t w = reinterpret_cast<uintptr_t>(word);
  EXPECT_TRUE(b.store_needs_stop(w, brk, 4)) << "original -> BRK";
  std::memcpy(word, brk, 4);
  EXPECT_FALSE(b.store_needs_stop(w, jmp, 4)) << "BRK -> B is listed";
  EXPECT_TRUE(b.store_needs_stop(w, orig, 4)) << "BRK -> original";
  std::memcpy(word, jmp, 4);
  EXPECT_FALSE(b.store_needs_stop(w, brk, 4)) << "B -> BRK is listed";
  EXPECT_TRUE(b.store_needs_stop(w, brk, 2)) << "a narrower store is never live-safe";
  EXPECT_TRUE(b.insn_sites_need_stop());
}

TEST(A64States, AGoneTrapRunsTheWordNowThere) {
  const lp::Backend &b = lp::host_backend();
  alignas(4) static uint8_t word[4];
  const uintptr_t w = reinterpret_cast<uintptr_t>(word);
  uintptr_t to = 0;
  a64::put32(word, a64::kNop);
  EXPECT_EQ(b.gone_trap(w, &to), lp::GoneTrap::Resume);
  EXPECT_EQ(to, w + 4);
  a64::put32(word, a64::enc_b(0x4000));
  EXPECT_EQ(b.gone_trap(w, &to), lp::GoneTrap::AsTrap);
  a64::put32(word, a64::enc_bl(0x4000));
  EXPECT_EQ(b.gone_trap(w, &to), lp::GoneTrap::Refetch) << "BL is never ours";
  a64::put32(word, a64::enc_add_imm(0, 0, 1));
  EXPECT_EQ(b.gone_trap(w, &to), lp::GoneTrap::Refetch);
}

// ---- live -----------------------------------------------------------------

namespace {

struct Patcher {
  lp_patcher *p = nullptr;
  explicit Patcher(int policy) {
    lp_options o;
    lp_options_init(&o);
    o.policy = policy;
    EXPECT_EQ(lp_patcher_open(&o, &p), 0);
  }
  ~Patcher() { lp_patcher_close(p); }
};

struct ArgsSeen {
  std::atomic<int> hits{0};
  uint64_t x[8] = {};
  double d[8] = {};
  uintptr_t pc = 0, sp = 0, lr = 0;
};

void on_args(lp_regs *r, void *u) {
  auto *s = static_cast<ArgsSeen *>(u);
  for (int i = 0; i < 8; ++i) {
    s->x[i] = r->x[i];
    std::memcpy(&s->d[i], &r->v[i][0], 8);
  }
  s->pc = r->pc;
  s->sp = r->sp;
  s->lr = lp_regs_return_address(r);
  // Written back: the function sees x0 = 100 and d0 = 0.5 instead.
  r->x[0] = 100;
  const double half = 0.5;
  std::memcpy(&r->v[0][0], &half, 8);
  s->hits.fetch_add(1);
}

class A64Live : public ::testing::TestWithParam<int> {};

} // namespace

TEST_P(A64Live, HandlerSeesAndWritesIntegerAndFpArguments) {
  Patcher pt(GetParam());
  ArgsSeen s;
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_at(pt.p, reinterpret_cast<void *>(&a64_args), on_args, &s, &pr), 0);
  EXPECT_EQ(lp_probe_protocol(pr), LP_PROTOCOL_BREAKPOINT);
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_commit(pt.p), 0);
  // 100 + 2 + ... + 8, and (long)(0.5 + 2.25 + ... + 8.25) = (long)(0.5 + 2+...+8 + 7*0.25)
  const long got = a64_args(1, 2, 3, 4, 5, 6, 7, 8, 1.25, 2.25, 3.25, 4.25, 5.25, 6.25, 7.25, 8.25);
  EXPECT_EQ(got, 100 + 35 + long(0.5 + 35 + 7 * 0.25));
  ASSERT_EQ(s.hits.load(), 1);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(s.x[i], uint64_t(i + 1)) << "x" << i;
    EXPECT_EQ(s.d[i], i + 1.25) << "d" << i;
  }
  EXPECT_EQ(s.pc, reinterpret_cast<uintptr_t>(&a64_args));
  EXPECT_EQ(s.sp % 16, 0u);
  EXPECT_NE(s.lr, 0u);
}

namespace {
void clobber(lp_regs *, void *u) {
  // Everything AAPCS64 lets a callee clobber, and more: the trampoline (or the
  // trap handler) must put back what the site had, from lp_regs.
  asm volatile("mov x9, #0\n mov x16, #0\n mov x17, #0\n movi v16.2d, #0\n movi v8.2d, #0\n cmp x9, #1"
               ::: "x9", "x16", "x17", "v8", "v16", "cc", "memory");
  static_cast<std::atomic<int> *>(u)->fetch_add(1);
}
} // namespace

TEST_P(A64Live, AnInstructionSiteKeepsFlagsAndRegistersLive) {
  if (!lp_supports_instruction_sites()) GTEST_SKIP() << "no instruction sites in this build";
  const long want_eq = a64_live_across(5, 13), want_ne = a64_live_across(6, 13);
  ASSERT_EQ(want_eq, 1000 + 3 + 5 + 7 + 13 + 11);
  ASSERT_EQ(want_ne, 2000 + 3 + 5 + 7 + 13 + 11);
  Patcher pt(GetParam());
  std::atomic<int> hits{0};
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_at(pt.p, reinterpret_cast<void *>(&a64_live_site), clobber, &hits, &pr), 0);
  EXPECT_EQ(lp_probe_protocol(pr), LP_PROTOCOL_STOPPED);
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_commit(pt.p), 0);
  EXPECT_EQ(a64_live_across(5, 13), want_eq);
  EXPECT_EQ(a64_live_across(6, 13), want_ne);
  EXPECT_EQ(hits.load(), 2);
  lp_stats st;
  ASSERT_EQ(lp_patcher_stats(pt.p, &st), 0);
  EXPECT_EQ(st.stopped_rounds, 1u);
}

TEST_P(A64Live, SledAfterBtiAndPrefixedSled) {
  Patcher pt(GetParam());
  std::atomic<int> hits{0};
  auto count = [](lp_regs *, void *u) { static_cast<std::atomic<int> *>(u)->fetch_add(1); };
  lp_probe *bti = nullptr, *pre = nullptr;
  ASSERT_EQ(lp_probe_at(pt.p, reinterpret_cast<void *>(&a64_bti_sled), count, &hits, &bti), 0);
  EXPECT_EQ(lp_probe_address(bti), reinterpret_cast<char *>(&a64_bti_sled) + 4) << "the BTI stays first";
  ASSERT_EQ(lp_probe_at(pt.p, reinterpret_cast<void *>(&a64_prefixed), count, &hits, &pre), 0);
  EXPECT_EQ(lp_probe_address(pre), reinterpret_cast<void *>(&a64_prefixed));
  EXPECT_EQ(lp_probe_site_len(pre), 8u) << "=3,1: two NOPs at the symbol";
  ASSERT_EQ(lp_probe_enable(bti), 0);
  ASSERT_EQ(lp_probe_enable(pre), 0);
  ASSERT_EQ(lp_commit(pt.p), 0);
  EXPECT_EQ(a64::get32(reinterpret_cast<const uint8_t *>(&a64_bti_sled)), a64::kBtiC);
  EXPECT_EQ(a64_bti_sled(41), 42);
  EXPECT_EQ(a64_prefixed(14), 42);
  EXPECT_EQ(hits.load(), 2);
}

INSTANTIATE_TEST_SUITE_P(Kinds, A64Live, ::testing::Values(LP_PROBE_JUMP, LP_PROBE_TRAP),
                         [](const ::testing::TestParamInfo<int> &i) { return i.param == LP_PROBE_JUMP ? "jump" : "trap"; });

// ---- beyond B's reach -------------------------------------------------------

namespace {

// Every free gap within `reach` (plus a margin) of `site` reserved PROT_NONE,
// so the trampoline pool finds no room a B at the site could reach; released
// at the end. (The gaps are read first: nothing allocates while reserving.)
struct ReserveNear {
  std::vector<std::pair<void *, size_t>> held;
  ReserveNear(uintptr_t site, uint64_t reach) {
    const uint64_t margin = 4u << 20;
    const uint64_t lo = site > reach + margin ? site - reach - margin : 0x10000;
    const uint64_t hi = site + reach + margin;
    std::vector<std::pair<uint64_t, uint64_t>> gaps;
    gaps.reserve(512);
    FILE *f = std::fopen("/proc/self/maps", "r");
    if (!f) return;
    char line[512];
    uint64_t prev = lo;
    while (std::fgets(line, sizeof line, f)) {
      unsigned long a = 0, b = 0;
      if (std::sscanf(line, "%lx-%lx", &a, &b) != 2) continue;
      if (a > prev && prev < hi) gaps.push_back({prev, std::min<uint64_t>(a, hi)});
      if (b > prev) prev = b;
    }
    std::fclose(f);
    if (prev < hi) gaps.push_back({prev, hi});
    held.reserve(gaps.size());
    for (auto [a, b] : gaps) {
      if (b <= a) continue;
      void *m = mmap(reinterpret_cast<void *>(a), b - a, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
      if (m != MAP_FAILED) held.push_back({m, b - a});
    }
  }
  ~ReserveNear() {
    for (auto [m, n] : held) munmap(m, n);
  }
};

} // namespace

// No trampoline within B's +-128 MiB (every gap there reserved): the far entry
// form is not built (docs/aarch64.md, "Not handled"), so under
// LP_PROBE_JUMP_OR_TRAP the probe is a trap probe that says why (LP_ERANGE) and
// works, and under LP_PROBE_JUMP the probe is refused with that reason.
TEST(A64Reach, BeyondBReachAJumpProbeFallsBackToATrapWithLP_ERANGE) {
  const uintptr_t site = reinterpret_cast<uintptr_t>(&a64_args);
  ReserveNear r(site, uint64_t(a64::kReach));
  ASSERT_FALSE(r.held.empty());
  {
    Patcher pt(LP_PROBE_JUMP_OR_TRAP);
    ArgsSeen s;
    lp_probe *pr = nullptr;
    ASSERT_EQ(lp_probe_at(pt.p, reinterpret_cast<void *>(&a64_args), on_args, &s, &pr), 0);
    EXPECT_EQ(lp_probe_is_jump(pr), 0);
    EXPECT_EQ(lp_probe_fallback(pr), LP_ERANGE) << lp_strerror(lp_probe_fallback(pr));
    ASSERT_EQ(lp_probe_enable(pr), 0);
    ASSERT_EQ(lp_commit(pt.p), 0);
    const long got = a64_args(1, 2, 3, 4, 5, 6, 7, 8, 1.25, 2.25, 3.25, 4.25, 5.25, 6.25, 7.25, 8.25);
    EXPECT_EQ(got, 100 + 35 + long(0.5 + 35 + 7 * 0.25));
    EXPECT_EQ(s.hits.load(), 1);
  }
  {
    Patcher pt(LP_PROBE_JUMP);
    ArgsSeen s;
    lp_probe *pr = nullptr;
    EXPECT_EQ(lp_probe_at(pt.p, reinterpret_cast<void *>(&a64_args), on_args, &s, &pr), LP_ERANGE);
  }
}
