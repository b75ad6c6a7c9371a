// A real trap instruction or raise() in the program reaches the program's own
// handler exactly as without libpatch, whether that handler was installed
// before or after the patcher opened; with no handler the process dies of the
// same signal.
#include <gtest/gtest.h>

#include <atomic>
#include <sys/wait.h>
#include <unistd.h>

#include "libpatch/patch.h"
#include "test_functions.hpp"

namespace {

std::atomic<int> g_program_traps{0};
std::atomic<int> g_last_code{0};

void program_handler(int, siginfo_t *si, void *uc) {
  g_program_traps++;
  g_last_code = si->si_code;
  if (si->si_code > 0) lpt_skip_real_trap(uc); // a CPU trap: step over it
}

void install_program_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = program_handler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(LPT_TRAP_SIGNAL, &sa, nullptr), 0);
}

void restore_default() { signal(LPT_TRAP_SIGNAL, SIG_DFL); }

void count(lp_regs *, void *u) { ++*static_cast<std::atomic<int> *>(u); }

// Enables a trap probe so libpatch's own traps are live at the same time.
lp_probe *live_trap_probe(lp_patcher *p, std::atomic<int> *hits) {
  lp_probe *pr = nullptr;
  EXPECT_EQ(lp_probe_symbol(p, "lpt_add", count, hits, &pr), 0);
  EXPECT_EQ(lp_probe_enable(pr), 0);
  EXPECT_EQ(lp_commit(p), 0);
  return pr;
}

lp_patcher *open_trap_policy() {
  lp_options o;
  lp_options_init(&o);
  o.policy = LP_PROBE_TRAP;
  lp_patcher *p = nullptr;
  EXPECT_EQ(lp_patcher_open(&o, &p), 0);
  return p;
}

} // namespace

TEST(Chaining, HandlerInstalledBeforeOpen) {
  g_program_traps = 0;
  install_program_handler();
  lp_patcher *p = open_trap_policy();
  std::atomic<int> hits{0};
  live_trap_probe(p, &hits);
  LPT_REAL_TRAP();
  EXPECT_EQ(g_program_traps.load(), 1);
  raise(LPT_TRAP_SIGNAL);
  EXPECT_EQ(g_program_traps.load(), 2);
  EXPECT_LE(g_last_code.load(), 0); // raise() is SI_TKILL
  EXPECT_EQ(lpt_add(1, 2), 3);      // libpatch's own trap, resolved without the program seeing it
  EXPECT_EQ(hits.load(), 1);
  EXPECT_EQ(g_program_traps.load(), 2);
  lp_stats st{};
  lp_patcher_stats(p, &st);
  EXPECT_GE(st.chained, 2u);
  lp_patcher_close(p);
  LPT_REAL_TRAP(); // after close the program's handler is back in place
  EXPECT_EQ(g_program_traps.load(), 3);
  restore_default();
}

TEST(Chaining, HandlerInstalledAfterOpen) {
  g_program_traps = 0;
  lp_patcher *p = open_trap_policy();
  install_program_handler(); // replaces libpatch's handler...
  raise(LPT_TRAP_SIGNAL);
  EXPECT_EQ(g_program_traps.load(), 1);
  std::atomic<int> hits{0};
  live_trap_probe(p, &hits); // ...which the commit re-asserts, chaining to the program's
  EXPECT_EQ(lpt_add(2, 2), 4);
  EXPECT_EQ(hits.load(), 1);
  LPT_REAL_TRAP();
  raise(LPT_TRAP_SIGNAL);
  EXPECT_EQ(g_program_traps.load(), 3);
  lp_patcher_close(p);
  restore_default();
}

TEST(Chaining, DefaultActionStillKills) {
  for (int how = 0; how < 2; ++how) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      restore_default();
      lp_patcher *p = open_trap_policy();
      std::atomic<int> hits{0};
      live_trap_probe(p, &hits);
      if (lpt_add(1, 1) != 2 || hits.load() != 1) _exit(3);
      if (how == 0) LPT_REAL_TRAP();
      else raise(LPT_TRAP_SIGNAL);
      _exit(4); // not reached
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), LPT_TRAP_SIGNAL);
  }
}

TEST(Chaining, IgnoredSignalFromRaiseStaysIgnored) {
  signal(LPT_TRAP_SIGNAL, SIG_IGN);
  lp_patcher *p = open_trap_policy();
  raise(LPT_TRAP_SIGNAL); // ignored, as without libpatch
  SUCCEED();
  lp_patcher_close(p);
  restore_default();
}
