// Every bad input gets a named error.
#include <gtest/gtest.h>

#include <atomic>
#include <sched.h>
#include <cstdio>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libpatch/patch.h"
#include "libpatch/patch.hpp"
#include "test_functions.hpp"

namespace {
void nop_handler(lp_regs *, void *) {}

struct Open {
  lp_patcher *p = nullptr;
  explicit Open(int policy = LP_PROBE_JUMP_OR_TRAP) {
    lp_options o;
    lp_options_init(&o);
    o.policy = policy;
    EXPECT_EQ(lp_patcher_open(&o, &p), 0);
  }
  ~Open() { lp_patcher_close(p); }
};
} // namespace

// Without /proc (a minimal initramfs that did not mount it) libpatch cannot
// see the process's executable mappings: lp_patcher_open says so, instead of
// every probe failing with LP_ENOTEXEC. A child in a mount namespace of its
// own unmounts /proc (root: CLONE_NEWNS needs CAP_SYS_ADMIN).
TEST(Api, NoProcIsNamed) {
  const pid_t c = fork();
  ASSERT_GE(c, 0);
  if (c == 0) {
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(77);
    if (umount2("/proc", MNT_DETACH) != 0) _exit(78);
    if (FILE *f = std::fopen("/proc/self/maps", "re")) { // qemu-user answers that open itself
      std::fclose(f);
      _exit(79);
    }
    lp_patcher *p = nullptr;
    const int rc = lp_patcher_open(nullptr, &p);
    _exit(rc == LP_ENOPROC ? 0 : rc == 0 ? 2 : 3);
  }
  int st = 0;
  ASSERT_EQ(waitpid(c, &st, 0), c);
  ASSERT_TRUE(WIFEXITED(st));
  if (WEXITSTATUS(st) == 77) GTEST_SKIP() << "needs CAP_SYS_ADMIN (unshare(CLONE_NEWNS)) to unmount /proc in a child";
  if (WEXITSTATUS(st) == 79)
    GTEST_SKIP() << "/proc/self/maps is still readable without /proc: qemu-user synthesises it (the guest kernel "
                    "case runs in the riscv64-linux suite)";
  EXPECT_NE(WEXITSTATUS(st), 78) << "umount2(/proc) failed in the child";
  EXPECT_EQ(WEXITSTATUS(st), 0) << (WEXITSTATUS(st) == 2 ? "lp_patcher_open succeeded without /proc"
                                                         : "lp_patcher_open failed with another code than LP_ENOPROC");
  EXPECT_STREQ(lp_strerror(LP_ENOPROC), "LP_ENOPROC: /proc/self/maps cannot be read (is /proc mounted?)");
}

TEST(Api, NotExecutable) {
  Open o;
  lp_probe *pr = nullptr;
  EXPECT_EQ(lp_probe_at(o.p, &lpt_data, nop_handler, nullptr, &pr), LP_ENOTEXEC);
  int stack_var = 0;
  EXPECT_EQ(lp_probe_at(o.p, &stack_var, nop_handler, nullptr, &pr), LP_ENOTEXEC);
  EXPECT_EQ(pr, nullptr);
}

TEST(Api, NotASiteOrNotABoundary) {
  Open o;
  lp_probe *pr = nullptr;
  auto *inside = reinterpret_cast<char *>(&lpt_long_insn) + 2; // in the middle of an instruction
  // A build without a decoder for its ISA cannot tell a boundary from the
  // inside of an instruction: it refuses every non-sled address as LP_ENOTSUP.
  const int no_insn = lp_supports_instruction_sites() ? 0 : LP_ENOTSUP;
  EXPECT_EQ(lp_probe_at(o.p, inside, nop_handler, nullptr, &pr), no_insn ? no_insn : LP_EBOUNDARY);
  // A function without a sled is a site only where instruction sites are supported.
  const int rc = lp_probe_at(o.p, reinterpret_cast<void *>(&lpt_plain), nop_handler, nullptr, &pr);
  EXPECT_EQ(rc, no_insn) << lp_strerror(rc);
}

TEST(Api, ProbeAlreadyExists) {
  Open o;
  lp_probe *a = nullptr, *b = nullptr;
  ASSERT_EQ(lp_probe_at(o.p, reinterpret_cast<void *>(&lpt_add), nop_handler, nullptr, &a), 0);
  EXPECT_EQ(lp_probe_at(o.p, reinterpret_cast<void *>(&lpt_add), nop_handler, nullptr, &b), LP_EEXIST);
  EXPECT_EQ(lp_probe_symbol(o.p, "lpt_add", nop_handler, nullptr, &b), LP_EEXIST);
}

TEST(Api, EnableOfRemovedProbe) {
  Open o;
  lp_probe *a = nullptr;
  ASSERT_EQ(lp_probe_at(o.p, reinterpret_cast<void *>(&lpt_add), nop_handler, nullptr, &a), 0);
  ASSERT_EQ(lp_probe_enable(a), 0);
  ASSERT_EQ(lp_commit(o.p), 0);
  ASSERT_EQ(lp_probe_remove(a), 0);
  EXPECT_EQ(lp_probe_enable(a), LP_EREMOVED); // staged removal
  ASSERT_EQ(lp_commit(o.p), 0);
  EXPECT_EQ(lp_probe_enable(a), LP_EREMOVED);
  EXPECT_EQ(lp_probe_disable(a), LP_EREMOVED);
  EXPECT_EQ(lp_probe_remove(a), LP_EREMOVED);
  EXPECT_EQ(lpt_add(2, 3), 5);
  // The site can be probed again once the removal is committed.
  lp_probe *b = nullptr;
  EXPECT_EQ(lp_probe_at(o.p, reinterpret_cast<void *>(&lpt_add), nop_handler, nullptr, &b), 0);
}

TEST(Api, NullArguments) {
  Open o;
  lp_probe *pr = nullptr;
  EXPECT_EQ(lp_probe_at(o.p, reinterpret_cast<void *>(&lpt_add), nullptr, nullptr, &pr), LP_EINVAL);
  EXPECT_EQ(lp_probe_at(o.p, nullptr, nop_handler, nullptr, &pr), LP_EINVAL);
  EXPECT_EQ(lp_probe_at(o.p, reinterpret_cast<void *>(&lpt_add), nop_handler, nullptr, nullptr), LP_EINVAL);
  EXPECT_EQ(lp_probe_at(nullptr, reinterpret_cast<void *>(&lpt_add), nop_handler, nullptr, &pr), LP_EINVAL);
  EXPECT_EQ(lp_probe_symbol(o.p, nullptr, nop_handler, nullptr, &pr), LP_EINVAL);
  EXPECT_EQ(lp_probe_enable(nullptr), LP_EINVAL);
  EXPECT_EQ(lp_probe_fallback(nullptr), LP_EINVAL);
  EXPECT_EQ(lp_commit(nullptr), LP_EINVAL);
  EXPECT_EQ(lp_patcher_open(nullptr, nullptr), LP_EINVAL);
}

// Which protocol a probe's site changes by: the breakpoint protocol for every
// entry sled and, on x86-64 and RISC-V, every instruction site; the stopped
// protocol for AArch64 instruction sites (an arbitrary first instruction is not
// in B2.2.5's list), which costs one hold round per commit phase that stores
// such a word: enable = orig -> BRK (phase 1; BRK -> B in phase 3 is listed),
// disable = BRK -> orig (phase 3; B -> BRK in phase 1 is listed).
TEST(Api, ProtocolOfEachProbe) {
  Open o;
  EXPECT_EQ(lp_probe_protocol(nullptr), LP_EINVAL);
  lp_probe *sled = nullptr;
  ASSERT_EQ(lp_probe_at(o.p, reinterpret_cast<void *>(&lpt_add), nop_handler, nullptr, &sled), 0);
  EXPECT_EQ(lp_probe_protocol(sled), LP_PROTOCOL_BREAKPOINT);
  ASSERT_EQ(lp_probe_enable(sled), 0);
  ASSERT_EQ(lp_commit(o.p), 0);
  lp_stats st;
  ASSERT_EQ(lp_patcher_stats(o.p, &st), 0);
  EXPECT_EQ(st.stopped_rounds, 0u) << "an entry sled never needs the stopped protocol";
  EXPECT_EQ(lpt_add(2, 3), 5);
  if (!lp_supports_instruction_sites()) GTEST_SKIP() << "no instruction sites in this build";
  std::atomic<uint64_t> hits{0};
  lp_probe *insn = nullptr;
  ASSERT_EQ(lp_probe_at(o.p, reinterpret_cast<void *>(&lpt_long_insn), [](lp_regs *, void *u) {
    static_cast<std::atomic<uint64_t> *>(u)->fetch_add(1);
  }, &hits, &insn), 0);
#if defined(__aarch64__)
  const int want = LP_PROTOCOL_STOPPED;
  const uint64_t rounds_per_toggle = 1;
#else
  const int want = LP_PROTOCOL_BREAKPOINT;
  const uint64_t rounds_per_toggle = 0;
#endif
  EXPECT_EQ(lp_probe_protocol(insn), want);
  ASSERT_EQ(lp_probe_enable(insn), 0);
  ASSERT_EQ(lp_commit(o.p), 0);
  ASSERT_EQ(lp_patcher_stats(o.p, &st), 0);
  EXPECT_EQ(st.stopped_rounds, rounds_per_toggle);
  EXPECT_EQ(st.syncs, 3 * st.commits) << "a hold round is the phase's sync, not one more";
  lpt_long_insn();
  EXPECT_EQ(hits.load(), 1u);
  ASSERT_EQ(lp_probe_disable(insn), 0);
  ASSERT_EQ(lp_commit(o.p), 0);
  ASSERT_EQ(lp_patcher_stats(o.p, &st), 0);
  EXPECT_EQ(st.stopped_rounds, 2 * rounds_per_toggle);
  lpt_long_insn();
  EXPECT_EQ(hits.load(), 1u);
}

TEST(Api, UnknownSymbol) {
  Open o;
  lp_probe *pr = nullptr;
  EXPECT_EQ(lp_probe_symbol(o.p, "no_such_function_anywhere", nop_handler, nullptr, &pr), LP_ENOSYM);
  EXPECT_EQ(lp_probe_symbol(o.p, "", nop_handler, nullptr, &pr), LP_EINVAL);
}

TEST(Api, CommitWithNothingStagedIsANoOp) {
  Open o;
  lp_stats before{}, after{};
  lp_patcher_stats(o.p, &before);
  EXPECT_EQ(lp_commit(o.p), 0);
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_at(o.p, reinterpret_cast<void *>(&lpt_add), nop_handler, nullptr, &pr), 0);
  EXPECT_EQ(lp_commit(o.p), 0); // created but never enabled
  ASSERT_EQ(lp_probe_disable(pr), 0);
  EXPECT_EQ(lp_commit(o.p), 0); // disable of a disabled probe
  lp_patcher_stats(o.p, &after);
  EXPECT_EQ(after.syncs, before.syncs);
  EXPECT_EQ(after.commits, before.commits);
}

TEST(Api, OnePatcherPerProcess) {
  Open o;
  lp_patcher *second = nullptr;
  EXPECT_EQ(lp_patcher_open(nullptr, &second), LP_EBUSY);
  EXPECT_EQ(second, nullptr);
}

TEST(Api, BadOptions) {
  lp_patcher *p = nullptr;
  lp_options o;
  lp_options_init(&o);
  o.writer = 99;
  EXPECT_EQ(lp_patcher_open(&o, &p), LP_EINVAL);
  lp_options_init(&o);
  o.sync = -1;
  EXPECT_EQ(lp_patcher_open(&o, &p), LP_EINVAL);
  lp_options_init(&o);
  o.policy = 7;
  EXPECT_EQ(lp_patcher_open(&o, &p), LP_EINVAL);
  lp_options_init(&o);
  o.flags = 0x80; // no such flag
  EXPECT_EQ(lp_patcher_open(&o, &p), LP_EINVAL);
  lp_options_init(&o);
  o.signal = SIGSEGV; // not a real-time signal
  EXPECT_EQ(lp_patcher_open(&o, &p), LP_EINVAL);
#if !defined(__riscv)
  lp_options_init(&o);
  o.sync = LP_SYNC_FLUSH_ICACHE;
  EXPECT_EQ(lp_patcher_open(&o, &p), LP_ENOTSUP);
#endif
  // A failed open leaves the process free to open one.
  ASSERT_EQ(lp_patcher_open(nullptr, &p), 0);
  lp_patcher_close(p);
}

TEST(Api, EveryErrorHasAName) {
  for (int e = LP_ENOPROC; e <= 0; ++e) EXPECT_EQ(std::string(lp_strerror(e)).rfind("LP_", 0), 0u) << e;
  EXPECT_STREQ(lp_strerror(LP_ENOTEXEC), "LP_ENOTEXEC: address is not in an executable mapping");
  EXPECT_EQ(std::string(lp_strerror(-999)).rfind("LP_E?", 0), 0u);
}

TEST(Api, CppWrapperReportsErrors) {
  auto p = libpatch::Patcher::open();
  ASSERT_TRUE(p);
  auto bad = p->probe_at(&lpt_data, nop_handler);
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error(), LP_ENOTEXEC);
  auto good = p->probe_symbol("lpt_other", nop_handler);
  ASSERT_TRUE(good);
  EXPECT_EQ(good->enable(), 0);
  EXPECT_EQ(p->commit(), 0);
  EXPECT_EQ(lpt_other(2), 14);
}

namespace {
int plus_one(lp_regs *, uint64_t *call, void *) {
  if (call) call[0] = 1;
  return LP_CALL_RUN;
}
void add_hundred(lp_regs *r, uint64_t *call, void *) { lp_regs_set_ret(r, lp_regs_ret(r) + 100 * call[0]); }
int third_doubled(int x) { return 2 * x; }
} // namespace

TEST(Api, CppWrapperCallsAndReplacements) {
  auto p = libpatch::Patcher::open();
  ASSERT_TRUE(p);
  auto bad = p->probe_call(reinterpret_cast<char *>(&lpt_long_insn) + 2, plus_one, add_hundred);
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error(), LP_ENOTSUP); // not a function's entry
  EXPECT_EQ(p->replace_symbol("lpt_third", nullptr).error(), LP_EINVAL);
  auto call = p->probe_call_symbol("lpt_other", plus_one, add_hundred);
  ASSERT_TRUE(call) << call.message();
  auto repl = p->replace_symbol("lpt_third", reinterpret_cast<void *>(&third_doubled));
  ASSERT_TRUE(repl) << repl.message();
  EXPECT_EQ(call->original<int(int)>(), nullptr);
  const int third_before = lpt_third(5);
  EXPECT_EQ(call->enable(), 0);
  EXPECT_EQ(repl->enable(), 0);
  EXPECT_EQ(p->commit(), 0);
  EXPECT_EQ(lpt_other(2), 114);
  EXPECT_EQ(lpt_third(5), 10);
  EXPECT_EQ(repl->original<int(int)>()(5), third_before);
}
