// Jump and trap probes on live code: handler calls, registers, toggling,
// batching, writers and sync methods, trampoline reuse after a grace period.
#include <gtest/gtest.h>

#include <atomic>
#include <tuple>
#include <unistd.h>

#include "libpatch/patch.h"
#include "libpatch/regs.h"
#include "test_functions.hpp"

namespace {

struct Seen {
  std::atomic<int> hits{0};
  uintptr_t pc = 0;
  long args[6] = {};
};

void record(lp_regs *r, void *user) {
  auto *s = static_cast<Seen *>(user);
  s->pc = lp_regs_pc(r);
  for (unsigned i = 0; i < 6; ++i) s->args[i] = long(lp_regs_arg(r, i));
  s->hits++;
}

void double_first_arg(lp_regs *r, void *) { lp_regs_set_arg(r, 0, lp_regs_arg(r, 0) * 2); }

using Param = std::tuple<int /*policy*/, int /*writer*/, int /*sync*/>;

class LiveProbe : public ::testing::TestWithParam<Param> {
protected:
  void SetUp() override {
    lp_options o;
    lp_options_init(&o);
    std::tie(o.policy, o.writer, o.sync) = GetParam();
    const int rc = lp_patcher_open(&o, &p_);
    if (rc == LP_ENOTSUP) GTEST_SKIP() << "sync method not offered by this kernel: " << lp_strerror(rc);
    ASSERT_EQ(rc, 0) << lp_strerror(rc);
  }
  void TearDown() override { lp_patcher_close(p_); }
  int policy() const { return std::get<0>(GetParam()); }
  // Enables and disables `pr` in two commits; the patcher's stats around them.
  void toggle_once(lp_probe *pr, lp_stats *before, lp_stats *after) {
    ASSERT_EQ(lp_patcher_stats(p_, before), 0);
    ASSERT_EQ(lp_probe_enable(pr), 0);
    ASSERT_EQ(lp_commit(p_), 0);
    ASSERT_EQ(lp_probe_disable(pr), 0);
    ASSERT_EQ(lp_commit(p_), 0);
    ASSERT_EQ(lp_patcher_stats(p_, after), 0);
  }
  lp_patcher *p_ = nullptr;
};

} // namespace

TEST_P(LiveProbe, HandlerSeesArgumentsAndPc) {
  Seen s;
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_symbol(p_, "lpt_six", record, &s, &pr), 0);
  EXPECT_EQ(lp_probe_is_jump(pr), policy() == LP_PROBE_TRAP ? 0 : 1);
  EXPECT_EQ(lp_probe_fallback(pr), 0); // the kind its policy asked for
  EXPECT_EQ(lpt_six(1, 2, 3, 4, 5, 6), 91);
  EXPECT_EQ(s.hits.load(), 0); // created, not enabled
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_commit(p_), 0);
  EXPECT_EQ(lpt_six(1, 2, 3, 4, 5, 6), 91);
  EXPECT_EQ(s.hits.load(), 1);
  EXPECT_EQ(s.pc, reinterpret_cast<uintptr_t>(lp_probe_address(pr)));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(s.args[i], i + 1);
  ASSERT_EQ(lp_probe_disable(pr), 0);
  ASSERT_EQ(lp_commit(p_), 0);
  EXPECT_EQ(lpt_six(1, 2, 3, 4, 5, 6), 91);
  EXPECT_EQ(s.hits.load(), 1);
}

TEST_P(LiveProbe, HandlerCanRewriteArguments) {
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_symbol(p_, "lpt_add", double_first_arg, nullptr, &pr), 0);
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_commit(p_), 0);
  EXPECT_EQ(lpt_add(10, 1), 21);
}

TEST_P(LiveProbe, BatchOfSeveralProbesCostsThreeSyncs) {
  Seen a, b, c;
  lp_probe *pa, *pb, *pc;
  ASSERT_EQ(lp_probe_symbol(p_, "lpt_add", record, &a, &pa), 0);
  ASSERT_EQ(lp_probe_symbol(p_, "lpt_other", record, &b, &pb), 0);
  ASSERT_EQ(lp_probe_symbol(p_, "lpt_third", record, &c, &pc), 0);
  lp_stats s0{}, s1{};
  lp_patcher_stats(p_, &s0);
  lp_probe_enable(pa);
  lp_probe_enable(pb);
  lp_probe_enable(pc);
  ASSERT_EQ(lp_commit(p_), 0);
  lp_patcher_stats(p_, &s1);
  EXPECT_EQ(s1.syncs - s0.syncs, 3u);
  EXPECT_EQ(s1.commits - s0.commits, 1u);
  EXPECT_EQ(lpt_add(1, 1) + lpt_other(1) + lpt_third(4), 2 + 7 + 1);
  EXPECT_EQ(a.hits + b.hits + c.hits, 3);
  EXPECT_EQ(a.args[0], 1);
  EXPECT_EQ(b.args[0], 1);
  EXPECT_EQ(c.args[0], 4);
}

// lp_stats.kernel_icache_flushes: one per /proc/self/mem write on riscv64 (the
// kernel's flush_icache_mm of every hart running us), plus the 2 writes of the
// writer's open-time probe; none for mprotect, none on x86-64.
TEST_P(LiveProbe, KernelIcacheFlushesCountProcmemWritesOnRiscv) {
  Seen s;
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_symbol(p_, "lpt_add", record, &s, &pr), 0);
  lp_stats s0{}, s1{};
  ASSERT_NO_FATAL_FAILURE(toggle_once(pr, &s0, &s1));
  EXPECT_GT(s1.writes, s0.writes);
#if defined(__riscv)
  const bool flushes = std::get<1>(GetParam()) == LP_WRITER_PROCMEM;
#else
  const bool flushes = false;
#endif
  EXPECT_EQ(s1.kernel_icache_flushes - s0.kernel_icache_flushes, flushes ? s1.writes - s0.writes : 0u);
  EXPECT_EQ(s1.kernel_icache_flushes, flushes ? s1.writes + 2 : 0u);
}

// lp_stats.text_mprotects: the mprotect writer opens the batch's text once and
// closes it once per commit, whatever the 3 syncs (it used to be 2 per page per
// phase: 6 per commit); procmem never.
TEST_P(LiveProbe, TextMprotectsAreTwoPerCommitRun) {
  Seen s;
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_symbol(p_, "lpt_add", record, &s, &pr), 0);
  const uintptr_t a = reinterpret_cast<uintptr_t>(lp_probe_address(pr));
  const size_t pg = size_t(sysconf(_SC_PAGESIZE));
  const uint64_t pages = (a + lp_probe_site_len(pr) - 1) / pg - a / pg + 1;
  lp_stats s0{}, s1{};
  ASSERT_NO_FATAL_FAILURE(toggle_once(pr, &s0, &s1));
  EXPECT_EQ(s1.syncs - s0.syncs, 6u);
  const bool mprotect_writer = std::get<1>(GetParam()) != LP_WRITER_PROCMEM;
  // The site's page(s) are one run of contiguous pages: 2 mprotects a commit.
  EXPECT_EQ(s1.text_mprotects - s0.text_mprotects, mprotect_writer ? 4u : 0u) << pages << " page(s)";
}

TEST_P(LiveProbe, ManyToggles) {
  Seen s;
  lp_probe *pr;
  ASSERT_EQ(lp_probe_symbol(p_, "lpt_other", record, &s, &pr), 0);
  int expected = 0;
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ((i % 2 ? lp_probe_disable : lp_probe_enable)(pr), 0);
    ASSERT_EQ(lp_commit(p_), 0);
    EXPECT_EQ(lpt_other(i), 7 * i);
    if (i % 2 == 0) ++expected;
  }
  EXPECT_EQ(s.hits.load(), expected);
}

TEST_P(LiveProbe, RemoveQuiesceAndReprobeReusesTrampolines) {
  Seen s;
  for (int round = 0; round < 200; ++round) {
    lp_probe *pr;
    ASSERT_EQ(lp_probe_symbol(p_, "lpt_third", record, &s, &pr), 0) << round;
    ASSERT_EQ(lp_probe_enable(pr), 0);
    ASSERT_EQ(lp_commit(p_), 0);
    EXPECT_EQ(lpt_third(10), 7);
    ASSERT_EQ(lp_probe_remove(pr), 0);
    ASSERT_EQ(lp_commit(p_), 0);
    EXPECT_EQ(lpt_third(10), 7);
    if (round % 50 == 49) EXPECT_EQ(lp_quiesce(p_, 1000), 0);
  }
  EXPECT_EQ(s.hits.load(), 200);
}

std::string param_name(const ::testing::TestParamInfo<Param> &i) {
  static const char *kinds[] = {"auto", "jump", "trap"};
  static const char *writers[] = {"default", "mprotect", "procmem"};
  static const char *syncs[] = {"default", "membarrier", "flushicache", "signal"};
  return std::string(kinds[std::get<0>(i.param)]) + "_" + writers[std::get<1>(i.param)] + "_" +
         syncs[std::get<2>(i.param)];
}

#if defined(__riscv)
#define LPT_SYNCS LP_SYNC_DEFAULT, LP_SYNC_MEMBARRIER, LP_SYNC_SIGNAL, LP_SYNC_FLUSH_ICACHE
#else
#define LPT_SYNCS LP_SYNC_DEFAULT, LP_SYNC_MEMBARRIER, LP_SYNC_SIGNAL
#endif

INSTANTIATE_TEST_SUITE_P(
    KindsWritersSyncs, LiveProbe,
    ::testing::Combine(::testing::Values(LP_PROBE_JUMP, LP_PROBE_TRAP),
                       ::testing::Values(LP_WRITER_MPROTECT, LP_WRITER_PROCMEM),
                       ::testing::Values(LPT_SYNCS)),
    param_name);

// The GPR-only fast path: integer arguments are still seen and preserved.
TEST(GprOnlyHandlers, JumpProbeWithoutVectorSaves) {
  lp_options o;
  lp_options_init(&o);
  o.policy = LP_PROBE_JUMP;
  o.flags = LP_FLAG_HANDLER_GPR_ONLY;
  lp_patcher *p = nullptr;
  ASSERT_EQ(lp_patcher_open(&o, &p), 0);
  Seen s;
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_symbol(p, "lpt_six", record, &s, &pr), 0);
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_commit(p), 0);
  EXPECT_EQ(lpt_six(1, 2, 3, 4, 5, 6), 91);
  EXPECT_EQ(s.hits.load(), 1);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(s.args[i], i + 1);
  lp_patcher_close(p);
}
