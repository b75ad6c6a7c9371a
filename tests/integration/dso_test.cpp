// Symbols and probes in a shared object, and symbols of libc.
#include <gtest/gtest.h>

#include <atomic>

#include "libpatch/patch.h"

extern "C" int lpt_dso_square(int x);

namespace {
void count(lp_regs *, void *u) { ++*static_cast<std::atomic<int> *>(u); }
} // namespace

TEST(SharedObject, LookupFindsLibraryAndLibcSymbols) {
  void *addr = nullptr;
  size_t size = 0;
  ASSERT_EQ(lp_lookup_symbol("lpt_dso_square", &addr, &size), 0);
  EXPECT_EQ(addr, reinterpret_cast<void *>(&lpt_dso_square));
  EXPECT_GT(size, 0u);
  ASSERT_EQ(lp_lookup_symbol("fopen", &addr, &size), 0); // libc's .dynsym
  EXPECT_NE(addr, nullptr);
  EXPECT_EQ(lp_lookup_symbol("lpt_no_such_symbol", &addr, &size), LP_ENOSYM);
}

TEST(SharedObject, JumpAndTrapProbesInALibrary) {
  for (int policy : {LP_PROBE_JUMP, LP_PROBE_TRAP}) {
    lp_options o;
    lp_options_init(&o);
    o.policy = policy;
    lp_patcher *p = nullptr;
    ASSERT_EQ(lp_patcher_open(&o, &p), 0);
    std::atomic<int> hits{0};
    lp_probe *pr = nullptr;
    ASSERT_EQ(lp_probe_symbol(p, "lpt_dso_square", count, &hits, &pr), 0);
    EXPECT_EQ(lp_probe_is_jump(pr), policy == LP_PROBE_JUMP ? 1 : 0);
    ASSERT_EQ(lp_probe_enable(pr), 0);
    ASSERT_EQ(lp_commit(p), 0);
    EXPECT_EQ(lpt_dso_square(9), 81);
    EXPECT_EQ(hits.load(), 1);
    lp_patcher_close(p); // restores the site
    EXPECT_EQ(lpt_dso_square(3), 9);
    EXPECT_EQ(hits.load(), 1);
  }
}
