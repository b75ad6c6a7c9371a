// riscv64 instruction sites, live under running threads: both site jumps
// (`jal x0`, and `auipc rX; jalr x0` through a register proven dead), and
// threads caught inside a displaced range -- between two original instructions
// when a site is enabled, between the far jump's auipc and jalr when it is
// disabled -- are evacuated to an equivalent place (insn_sites.S).
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/auxv.h>

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "libpatch/patch.h"

extern "C" {
int64_t rv_far_split(int64_t);
int64_t rv_near_split_c(int64_t);
}

namespace {

bool hart_c() { return (getauxval(AT_HWCAP) & (1ul << ('C' - 'A'))) != 0; }

void count(lp_regs *, void *u) { static_cast<std::atomic<uint64_t> *>(u)->fetch_add(1); }

uint32_t word_at(const void *p) {
  const auto *b = static_cast<const uint8_t *>(p);
  return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}

struct Result {
  uint64_t evac_enable = 0, evac_disable = 0, hits = 0, bad = 0;
  int rounds = 0;
  uint32_t first_word = 0;
};

// Threads call f (expecting f(x) == x + k) while the site at f's entry is
// probed, enabled and removed, commit after commit, until both directions have
// evacuated someone (or 300 rounds).
Result hammer(int64_t (*f)(int64_t), int64_t k, bool need_disable_evacuation) {
  Result res;
  lp_options o;
  lp_options_init(&o);
  o.policy = LP_PROBE_JUMP;
  lp_patcher *p = nullptr;
  EXPECT_EQ(lp_patcher_open(&o, &p), 0);
  if (!p) return res;
  std::atomic<uint64_t> hits{0}, bad{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> th;
  for (int t = 0; t < 4; ++t)
    th.emplace_back([&, t] {
      int64_t i = int64_t(t) << 40;
      while (!stop.load(std::memory_order_relaxed))
        for (int n = 0; n < 64; ++n, ++i)
          if (f(i) != i + k) bad.fetch_add(1);
    });
  for (; res.rounds < 300; ++res.rounds) {
    if (res.evac_enable >= 3 && (!need_disable_evacuation || res.evac_disable >= 3) && res.rounds >= 5) break;
    for (int spin = 0; spin < 50; ++spin) sched_yield();
    lp_probe *pr = nullptr;
    const int rc = lp_probe_at(p, reinterpret_cast<void *>(f), count, &hits, &pr);
    EXPECT_EQ(rc, 0) << lp_strerror(rc);
    if (rc != 0) break;
    EXPECT_EQ(lp_probe_is_jump(pr), 1);
    lp_stats s0{}, s1{}, s2{};
    lp_patcher_stats(p, &s0);
    EXPECT_EQ(lp_probe_enable(pr), 0);
    EXPECT_EQ(lp_commit(p), 0);
    lp_patcher_stats(p, &s1);
    res.first_word = word_at(reinterpret_cast<const void *>(f));
    for (int spin = 0; spin < 50; ++spin) sched_yield();
    EXPECT_EQ(lp_probe_remove(pr), 0);
    EXPECT_EQ(lp_commit(p), 0);
    lp_patcher_stats(p, &s2);
    res.evac_enable += s1.evacuated - s0.evacuated;
    res.evac_disable += s2.evacuated - s1.evacuated;
  }
  stop = true;
  for (auto &t : th) t.join();
  res.hits = hits.load();
  res.bad = bad.load();
  lp_patcher_close(p);
  return res;
}

} // namespace

TEST(Rv64InsnSiteLive, FarJumpThroughADeadRegister) {
  // insn_sites.S walls the function in: only the far site jump reaches it.
  const Result r = hammer(rv_far_split, 13, true);
  std::printf("far: %d rounds, %llu hits, evacuated %llu entering / %llu leaving the jump form\n", r.rounds,
              (unsigned long long)r.hits, (unsigned long long)r.evac_enable, (unsigned long long)r.evac_disable);
  // auipc a5 (x15): the register the liveness scan found dead.
  EXPECT_EQ(r.first_word & 0xfff, (15u << 7) | 0x17u);
  EXPECT_EQ(r.bad, 0u);
  EXPECT_GT(r.hits, 0u);
  EXPECT_GT(r.evac_enable, 0u) << "no thread was caught between the two original instructions";
  EXPECT_GT(r.evac_disable, 0u) << "no thread was caught between the far jump's auipc and jalr";
}

TEST(Rv64InsnSiteLive, NearJumpOverTwoCompressedInstructions) {
  if (!hart_c()) GTEST_SKIP() << "compressed code needs a hart with C";
  const Result r = hammer(rv_near_split_c, 9, false);
  std::printf("near: %d rounds, %llu hits, evacuated %llu entering / %llu leaving the jump form\n", r.rounds,
              (unsigned long long)r.hits, (unsigned long long)r.evac_enable, (unsigned long long)r.evac_disable);
  EXPECT_EQ(r.first_word & 0xfff, 0x06fu); // jal x0
  EXPECT_EQ(r.bad, 0u);
  EXPECT_GT(r.hits, 0u);
  EXPECT_GT(r.evac_enable, 0u) << "no thread was caught between the two compressed instructions";
}
