// Threads calling probed functions while batches toggle them (the stress
// workload's engine, small), with every writer and sync method.
#include <gtest/gtest.h>

#include "libpatch/patch.h"
#include "stress.hpp"

namespace {
struct Case {
  int writer, sync, policy;
  const char *name;
};
class Concurrency : public ::testing::TestWithParam<Case> {};
} // namespace

TEST_P(Concurrency, ResultsStayCorrectWhileToggling) {
  lp_stress::Config c;
  c.threads = 3;
  c.functions = 32;
  c.batches = GetParam().sync == LP_SYNC_SIGNAL ? 40 : 150;
  c.writer = GetParam().writer;
  c.sync = GetParam().sync;
  c.policy = GetParam().policy;
  const lp_stress::Result r = lp_stress::run(c);
  if (r.error == LP_ENOTSUP) GTEST_SKIP() << lp_strerror(r.error);
  EXPECT_TRUE(r.pass()) << r.json(c);
  EXPECT_EQ(r.wrong_results, 0u);
  EXPECT_EQ(r.unexpected_signals, 0u);
  EXPECT_GT(r.calls, 0u);
  EXPECT_EQ(r.batches, c.batches);
  EXPECT_EQ(r.syncs, 3 * r.commits); // three syncs per batch, whatever its size
}

INSTANTIATE_TEST_SUITE_P(
    Matrix, Concurrency,
    ::testing::Values(Case{LP_WRITER_MPROTECT, LP_SYNC_MEMBARRIER, LP_PROBE_JUMP, "mprotect_membarrier_jump"},
                      Case{LP_WRITER_PROCMEM, LP_SYNC_MEMBARRIER, LP_PROBE_JUMP, "procmem_membarrier_jump"},
                      Case{LP_WRITER_MPROTECT, LP_SYNC_SIGNAL, LP_PROBE_JUMP, "mprotect_signal_jump"},
                      Case{LP_WRITER_PROCMEM, LP_SYNC_SIGNAL, LP_PROBE_TRAP, "procmem_signal_trap"},
                      Case{LP_WRITER_MPROTECT, LP_SYNC_DEFAULT, LP_PROBE_TRAP, "mprotect_default_trap"}),
    [](const ::testing::TestParamInfo<Case> &i) { return std::string(i.param.name); });
