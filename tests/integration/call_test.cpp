// Call probes on live code (label exit-probes): exit handlers and their
// words, skipped calls, every way a call can end without returning (longjmp,
// exceptions, thread exit and cancellation), deep recursion, tail calls,
// signal handlers, fork, disable/remove while inside, backtrace(), function
// replacement, and bad input. Jump and trap flavours where both exist.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <execinfo.h>
#include <pthread.h>
#include <sched.h>
#include <stdexcept>
#include <string>
#include <sys/mman.h>
#include <sys/wait.h>
#include <tuple>
#include <unistd.h>
#include <vector>

#include "call_functions.hpp"
#include "libpatch/patch.h"
#include "libpatch/regs.h"

// Death tests: the threadsafe style re-executes the test binary, which a
// foreign binary under qemu-user cannot do (no binfmt_misc: execve fails with
// ENOEXEC); the cross builds use the fork-only style.
#ifndef LPT_DEATH_TEST_STYLE
#define LPT_DEATH_TEST_STYLE "threadsafe"
#endif

namespace {

template <class R, class... A> void *fnp(R (*f)(A...)) { return reinterpret_cast<void *>(f); }

// ---- what a handler can check about its call, per architecture ----

// The real return address, at the function's entry (before the swap): the
// API's accessor, checked against the arch's register file.
uintptr_t return_address_at_entry(const lp_regs *r) {
#if defined(__x86_64__)
  const uintptr_t raw = *reinterpret_cast<const uintptr_t *>(r->rsp);
#elif defined(__riscv)
  const uintptr_t raw = r->x[1];
#elif defined(__aarch64__)
  const uintptr_t raw = r->x[30];
#endif
  const uintptr_t api = lp_regs_return_address(r);
  return api == raw ? api : 0; // 0 never matches a return address the tests expect
}
// The caller's stack pointer once the call has returned.
uintptr_t caller_sp_after_return(const lp_regs *r) {
#if defined(__x86_64__)
  return r->rsp + 8;
#elif defined(__riscv)
  return r->x[2];
#elif defined(__aarch64__)
  return r->sp;
#endif
}

// The order handlers ran in: +id at entry, -id at exit.
struct Seq {
  std::atomic<int> n{0};
  int v[64] = {};
  void add(int x) {
    const int i = n.fetch_add(1);
    if (i < 64) v[i] = x;
  }
  std::vector<int> get() const { return std::vector<int>(v, v + std::min(n.load(), 64)); }
};

struct Track {
  explicit Track(int id_ = 0) : id(id_) {}
  int id;
  Seq *seq = nullptr;
  bool exit_only = false; // no entry handler: the words must still be zero at exit
  bool skip = false;      // the entry skips calls whose first argument is skip_arg
  int skip_arg = 0;
  long skip_value = 0;
  int ret_mul = 1; // the exit multiplies the (int) return value
  std::atomic<int> entries{0}, exits{0}, null_words{0}, dirty_words{0}, bad_pc{0}, bad_sp{0};
  std::atomic<long> last_arg{0}, last_ret{0};
  std::atomic<uintptr_t> exit_pc{0};
};

// Entry: words zero, then keeps {caller sp after the return, return address}
// in them for the exit to compare with what it sees.
int track_entry(lp_regs *r, uint64_t *call, void *u) {
  Track &t = *static_cast<Track *>(u);
  t.entries.fetch_add(1);
  const long a0 = long(lp_regs_arg(r, 0));
  t.last_arg.store(a0);
  if (t.seq) t.seq->add(t.id);
  if (!call) {
    t.null_words.fetch_add(1);
  } else {
    if (call[0] != 0 || call[1] != 0) t.dirty_words.fetch_add(1);
    call[0] = caller_sp_after_return(r);
    call[1] = return_address_at_entry(r);
  }
  if (t.skip && int(a0) == t.skip_arg) {
    lp_regs_set_ret(r, uintptr_t(t.skip_value));
    return LP_CALL_SKIP;
  }
  return LP_CALL_RUN;
}

void track_exit(lp_regs *r, uint64_t *call, void *u) {
  Track &t = *static_cast<Track *>(u);
  t.exits.fetch_add(1);
  const uintptr_t ret = lp_regs_ret(r);
  t.last_ret.store(long(ret));
  t.exit_pc.store(lp_regs_pc(r));
  if (t.seq) t.seq->add(-t.id);
  if (!call) {
    t.null_words.fetch_add(1);
  } else if (t.exit_only) {
    if (call[0] != 0 || call[1] != 0) t.dirty_words.fetch_add(1);
  } else {
    if (lp_regs_pc(r) != call[1]) t.bad_pc.fetch_add(1);
    if (lp_regs_sp(r) != call[0]) t.bad_sp.fetch_add(1);
  }
  if (t.ret_mul != 1) lp_regs_set_ret(r, uintptr_t(intptr_t(int(ret) * t.ret_mul)));
}

int last_int(const Track &t) { return int(t.last_ret.load()); }

// Every exit saw the pc and sp its entry predicted, and clean words.
#define EXPECT_CLEAN(t)                                                                                          \
  do {                                                                                                           \
    EXPECT_EQ((t).bad_pc.load(), 0) << "exit pc != the return address seen at entry (" #t ")";                  \
    EXPECT_EQ((t).bad_sp.load(), 0) << "exit sp != the caller's sp after the return (" #t ")";                  \
    EXPECT_EQ((t).dirty_words.load(), 0) << "call words not zero at entry (" #t ")";                           \
    EXPECT_EQ((t).null_words.load(), 0) << "call words NULL (" #t ")";                                         \
  } while (0)

template <class F> bool eventually(F f) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!f()) {
    if (std::chrono::steady_clock::now() > end) return false;
    sched_yield();
  }
  return true;
}

class CallsBase : public ::testing::Test {
protected:
  virtual int policy() const = 0;
  void SetUp() override {
    lpc_chain_mode = 0;
    lpc_inside = 0;
    lpc_release = 0;
    reopen(0);
  }
  void TearDown() override { close(); }
  void reopen(unsigned flags) {
    close();
    lp_options o;
    lp_options_init(&o);
    o.policy = policy();
    o.flags = flags;
    const int rc = lp_patcher_open(&o, &p_);
    ASSERT_EQ(rc, 0) << lp_strerror(rc);
  }
  void close() {
    if (p_) lp_patcher_close(p_);
    p_ = nullptr;
  }
  // A call probe, created and enabled (staged: the caller commits).
  lp_probe *call(void *fn, lp_entry_handler en, lp_exit_handler ex, void *user) {
    lp_probe *pr = nullptr;
    const int rc = lp_probe_call(p_, fn, en, ex, user, &pr);
    EXPECT_EQ(rc, 0) << lp_strerror(rc);
    if (rc != 0) return nullptr;
    EXPECT_EQ(lp_probe_is_jump(pr), policy() == LP_PROBE_TRAP ? 0 : 1);
    EXPECT_EQ(lp_probe_original(pr), nullptr); // not a replacement
    EXPECT_EQ(lp_probe_enable(pr), 0);
    return pr;
  }
  lp_probe *track(void *fn, Track &t) { return call(fn, track_entry, track_exit, &t); }
  lp_call_stats stats() const {
    lp_call_stats s{};
    EXPECT_EQ(lp_patcher_call_stats(p_, &s), 0);
    return s;
  }
  void commit() { ASSERT_EQ(lp_commit(p_), 0); }
  lp_patcher *p_ = nullptr;
};

class Calls : public CallsBase, public ::testing::WithParamInterface<int> {
protected:
  int policy() const override { return GetParam(); }
  void longjmp_case(int mode);
};

std::string policy_name(int policy) { return policy == LP_PROBE_TRAP ? "trap" : "jump"; }

} // namespace

// ============================================================================
// 1. Exits: return value, words, pc and sp; entry-only and exit-only probes.
// ============================================================================

TEST_P(Calls, ExitSeesReturnValueWordsPcAndSp) {
  Track t(1);
  lp_probe *pr = track(fnp(lpc_add), t);
  ASSERT_NE(pr, nullptr);
  EXPECT_EQ(lpc_add(2, 3), 5);
  EXPECT_EQ(t.entries.load(), 0); // staged, not committed
  commit();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(lpc_add(i, 100), i + 100);
  EXPECT_EQ(t.entries.load(), 10);
  EXPECT_EQ(t.exits.load(), 10);
  EXPECT_EQ(t.last_arg.load(), 9);
  EXPECT_EQ(last_int(t), 109);
  EXPECT_NE(t.exit_pc.load(), 0u);
  EXPECT_CLEAN(t);
  const lp_call_stats s = stats();
  EXPECT_EQ(s.exits, 10u);
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.overflows, 0u);
  EXPECT_EQ(s.unwound, 0u);
  EXPECT_EQ(s.skipped, 0u);
  // Disabled: neither handler runs.
  ASSERT_EQ(lp_probe_disable(pr), 0);
  commit();
  EXPECT_EQ(lpc_add(1, 1), 2);
  EXPECT_EQ(t.entries.load(), 10);
  EXPECT_EQ(t.exits.load(), 10);
}

TEST_P(Calls, NestedCallsKeepTheirOwnWords) {
  Seq seq;
  Track a(1), b(2), c(3);
  a.seq = b.seq = c.seq = &seq;
  ASSERT_NE(track(fnp(lpc_chain_a), a), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_b), b), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_c), c), nullptr);
  commit();
  EXPECT_EQ(lpc_chain_a(10), 13);
  EXPECT_EQ(last_int(c), 11);
  EXPECT_EQ(last_int(b), 12);
  EXPECT_EQ(last_int(a), 13);
  EXPECT_EQ(seq.get(), (std::vector<int>{1, 2, 3, -3, -2, -1}));
  for (Track *t : {&a, &b, &c}) {
    EXPECT_EQ(t->entries.load(), 1);
    EXPECT_EQ(t->exits.load(), 1);
    EXPECT_CLEAN(*t);
  }
  EXPECT_EQ(stats().pending, 0u);
}

TEST_P(Calls, ExitChangesTheReturnValue) {
  Track t(1);
  t.ret_mul = 10;
  lp_probe *pr = track(fnp(lpc_twice), t);
  ASSERT_NE(pr, nullptr);
  commit();
  EXPECT_EQ(lpc_twice(4), 80);
  EXPECT_EQ(last_int(t), 8); // the exit saw the function's own value
  ASSERT_EQ(lp_probe_disable(pr), 0);
  commit();
  EXPECT_EQ(lpc_twice(4), 8); // negative control
  EXPECT_CLEAN(t);
}

TEST_P(Calls, EntryOnlyProbe) {
  Track t(1);
  ASSERT_NE(call(fnp(lpc_twice), track_entry, nullptr, &t), nullptr);
  commit();
  EXPECT_EQ(lpc_twice(5), 10);
  EXPECT_EQ(lpc_twice(6), 12);
  EXPECT_EQ(t.entries.load(), 2);
  EXPECT_EQ(t.last_arg.load(), 6);
  EXPECT_EQ(t.exits.load(), 0);
  const lp_call_stats s = stats();
  EXPECT_EQ(s.exits, 0u);
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.overflows, 0u);
}

TEST_P(Calls, ExitOnlyProbeBySymbol) {
  Track t(1);
  t.exit_only = true;
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_call_symbol(p_, "lpc_six", nullptr, track_exit, &t, &pr), 0);
  EXPECT_NE(lp_probe_address(pr), nullptr);
  ASSERT_EQ(lp_probe_enable(pr), 0);
  commit();
  EXPECT_EQ(lpc_six(1, 2, 3, 4, 5, 6), 91);
  EXPECT_EQ(lpc_six(-1, -2, -3, -4, -5, -6), -91);
  EXPECT_EQ(t.entries.load(), 0);
  EXPECT_EQ(t.exits.load(), 2);
  EXPECT_EQ(t.last_ret.load(), -91);
  EXPECT_EQ(t.dirty_words.load(), 0) << "words not zero at an exit without entry handler";
  EXPECT_EQ(t.null_words.load(), 0);
  EXPECT_EQ(stats().exits, 2u);
}

#if defined(__x86_64__)
// A function with an endbr64 before its sled: the landing pad stays, the call
// probe works as on any sled.
TEST_P(Calls, ExitOfAFunctionWithEndbr64) {
  Track t(1);
  lp_probe *pr = track(fnp(lpc_cet), t);
  ASSERT_NE(pr, nullptr);
  EXPECT_EQ(lp_probe_address(pr), static_cast<char *>(fnp(lpc_cet)) + 4);
  commit();
  EXPECT_EQ(lpc_cet(41), 42);
  EXPECT_EQ(t.exits.load(), 1);
  EXPECT_EQ(last_int(t), 42);
  EXPECT_CLEAN(t);
  EXPECT_EQ(std::memcmp(fnp(lpc_cet), "\xf3\x0f\x1e\xfa", 4), 0) << "the endbr64 was overwritten";
}
#endif

// ============================================================================
// 2. Skipped calls (return-value override).
// ============================================================================

TEST_P(Calls, EntryCanSkipTheCall) {
  Track t(1);
  t.skip = true;
  t.skip_arg = 7;
  t.skip_value = 42;
  ASSERT_NE(track(fnp(lpc_counted), t), nullptr);
  commit();
  const int runs = lpc_body_runs.load();
  EXPECT_EQ(lpc_counted(7), 42);
  EXPECT_EQ(lpc_body_runs.load(), runs) << "the skipped body ran";
  EXPECT_EQ(t.exits.load(), 0) << "a skipped call has no exit";
  lp_call_stats s = stats();
  EXPECT_EQ(s.skipped, 1u);
  EXPECT_EQ(s.pending, 0u);
  // Negative control: another argument runs the body and the exit.
  EXPECT_EQ(lpc_counted(8), 9);
  EXPECT_EQ(lpc_body_runs.load(), runs + 1);
  EXPECT_EQ(t.exits.load(), 1);
  EXPECT_EQ(last_int(t), 9);
  s = stats();
  EXPECT_EQ(s.skipped, 1u);
  EXPECT_EQ(s.exits, 1u);
  EXPECT_EQ(t.entries.load(), 2);
  EXPECT_CLEAN(t);
}

TEST_P(Calls, EntryOnlyProbeCanSkipTheCall) {
  Track t(1);
  t.skip = true;
  t.skip_arg = 3;
  t.skip_value = -5;
  ASSERT_NE(call(fnp(lpc_counted), track_entry, nullptr, &t), nullptr);
  commit();
  const int runs = lpc_body_runs.load();
  EXPECT_EQ(lpc_counted(3), -5);
  EXPECT_EQ(lpc_body_runs.load(), runs);
  EXPECT_EQ(lpc_counted(4), 5);
  EXPECT_EQ(lpc_body_runs.load(), runs + 1);
  EXPECT_EQ(stats().skipped, 1u);
}

TEST_P(Calls, SkippedCallInsideAProbedCall) {
  Seq seq;
  Track a(1), b(2), c(3);
  a.seq = b.seq = c.seq = &seq;
  b.skip = true;
  b.skip_arg = 1;
  b.skip_value = 42;
  ASSERT_NE(track(fnp(lpc_chain_a), a), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_b), b), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_c), c), nullptr);
  commit();
  EXPECT_EQ(lpc_chain_a(1), 43); // b's override, plus a's own + 1
  EXPECT_EQ(seq.get(), (std::vector<int>{1, 2, -1}));
  EXPECT_EQ(last_int(a), 43);
  EXPECT_EQ(c.entries.load(), 0);
  EXPECT_EQ(b.exits.load(), 0);
  EXPECT_EQ(lpc_chain_a(2), 5); // not skipped
  EXPECT_EQ(a.exits.load(), 2);
  EXPECT_EQ(b.exits.load(), 1);
  EXPECT_EQ(c.exits.load(), 1);
  const lp_call_stats s = stats();
  EXPECT_EQ(s.skipped, 1u);
  EXPECT_EQ(s.pending, 0u);
  EXPECT_CLEAN(a);
  EXPECT_CLEAN(b);
  EXPECT_CLEAN(c);
}

// ============================================================================
// 3. longjmp / siglongjmp across probed frames.
// ============================================================================

namespace {
std::atomic<int> g_usr2_add{0};
void usr2_siglongjmp(int) {
  g_usr2_add.store(lpc_add(20, 22)); // a probed call that returns, from the handler
  siglongjmp(lpc_sjb, 3);
}
} // namespace

void Calls::longjmp_case(int mode) {
  Track a(1), b(2), c(3), add(4);
  ASSERT_NE(track(fnp(lpc_chain_a), a), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_b), b), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_c), c), nullptr);
  ASSERT_NE(track(fnp(lpc_add), add), nullptr);
  struct sigaction sa {}, old{};
  sa.sa_handler = usr2_siglongjmp;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR2, &sa, &old), 0);
  commit();
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    volatile int landed = 0;
    lpc_chain_mode = mode;
    if (mode == 1) {
      if (setjmp(lpc_jb) == 0) {
        lpc_chain_a(1);
        ADD_FAILURE() << "lpc_chain_a returned";
      } else {
        landed = 1;
      }
    } else {
      if (sigsetjmp(lpc_sjb, 1) == 0) {
        lpc_chain_a(1);
        ADD_FAILURE() << "lpc_chain_a returned";
      } else {
        landed = 1;
      }
    }
    lpc_chain_mode = 0;
    EXPECT_EQ(landed, 1);
    // The jumped-over frames' exits never run; their entries are stale.
    EXPECT_EQ(a.exits.load() + b.exits.load() + c.exits.load(), 0);
    const lp_call_stats s = stats();
    EXPECT_EQ(s.unwound + s.pending, uint64_t(3 * (round + 1))) << "round " << round;
  }
  ASSERT_EQ(sigaction(SIGUSR2, &old, nullptr), 0);
  // The next probed entry reaps them.
  EXPECT_EQ(lpc_chain_a(1), 4);
  const lp_call_stats s = stats();
  EXPECT_EQ(s.unwound, uint64_t(3 * kRounds));
  EXPECT_EQ(s.pending, 0u);
  for (Track *t : {&a, &b, &c}) {
    EXPECT_EQ(t->entries.load(), kRounds + 1);
    EXPECT_EQ(t->exits.load(), 1);
    EXPECT_CLEAN(*t);
  }
  EXPECT_EQ(last_int(a), 4);
  // Subsequent calls balance.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(lpc_chain_a(i), i + 3);
  EXPECT_EQ(a.exits.load(), 6);
  EXPECT_EQ(c.exits.load(), 6);
  EXPECT_EQ(stats().unwound, uint64_t(3 * kRounds));
  if (mode == 3) {
    EXPECT_EQ(g_usr2_add.load(), 42);
    EXPECT_EQ(add.exits.load(), kRounds); // the handler's own call returned normally
    EXPECT_CLEAN(add);
  } else {
    EXPECT_EQ(add.entries.load(), 0);
  }
}

TEST_P(Calls, LongjmpAcrossProbedFrames) { longjmp_case(1); }
TEST_P(Calls, SiglongjmpAcrossProbedFrames) { longjmp_case(2); }
TEST_P(Calls, SiglongjmpFromASignalHandlerAcrossProbedFrames) { longjmp_case(3); }

// ============================================================================
// 4. C++ exceptions through probed frames.
// ============================================================================

namespace {
// The exception a statement lets out: its message, or "" when none.
template <class F> std::string what_of(F f) {
  try {
    f();
  } catch (const std::exception &e) {
    return e.what();
  }
  return "";
}
} // namespace

TEST_P(Calls, ExceptionCaughtAboveAllProbedFrames) {
  const std::string ref = what_of([] { lpc_ex_a(-5); }); // unprobed
  ASSERT_EQ(ref, "lpc_ex_c: -5");
  Track a(1), b(2), c(3);
  ASSERT_NE(track(fnp(lpc_ex_a), a), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_b), b), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_c), c), nullptr);
  commit();
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(what_of([] { lpc_ex_a(-5); }), ref) << "round " << round;
    EXPECT_EQ(a.exits.load() + b.exits.load() + c.exits.load(), 0);
  }
  EXPECT_EQ(lpc_ex_a(5), 7);
  for (Track *t : {&a, &b, &c}) {
    EXPECT_EQ(t->entries.load(), 4);
    EXPECT_EQ(t->exits.load(), 1);
    EXPECT_CLEAN(*t);
  }
  const lp_call_stats s = stats();
  EXPECT_EQ(s.unwound, 9u);
  EXPECT_EQ(s.pending, 0u);
  EXPECT_GT(s.unwind_hooks, 0u);
  EXPECT_EQ(s.unwind_missing, 0u);
}

TEST_P(Calls, ExceptionCaughtByAProbedFunctionInTheMiddle) {
  EXPECT_EQ(lpc_ex_top(-3), -99); // unprobed reference
  const std::string ref = lpc_caught;
  ASSERT_EQ(ref, "lpc_ex_c: -3");
  lpc_caught[0] = 0;
  Track top(1), mid(2), b(3), c(4);
  ASSERT_NE(track(fnp(lpc_ex_top), top), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_mid), mid), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_b), b), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_c), c), nullptr);
  commit();
  EXPECT_EQ(lpc_ex_top(-3), -99);
  EXPECT_EQ(std::string(lpc_caught), ref);
  EXPECT_EQ(top.exits.load(), 1);
  EXPECT_EQ(last_int(top), -99);
  EXPECT_EQ(mid.exits.load(), 1);
  EXPECT_EQ(last_int(mid), -100);
  EXPECT_EQ(b.exits.load(), 0);
  EXPECT_EQ(c.exits.load(), 0);
  lp_call_stats s = stats();
  EXPECT_EQ(s.unwound + s.pending, 2u);
  EXPECT_EQ(lpc_ex_top(3), 6);
  s = stats();
  EXPECT_EQ(s.unwound, 2u);
  EXPECT_EQ(s.pending, 0u);
  for (Track *t : {&top, &mid, &b, &c}) {
    EXPECT_EQ(t->entries.load(), 2);
    EXPECT_CLEAN(*t);
  }
  EXPECT_EQ(c.exits.load(), 1);
  EXPECT_EQ(top.exits.load(), 2);
}

TEST_P(Calls, RethrowThroughProbedFrames) {
  const std::string ref = what_of([] { lpc_ex_rethrow_top(-4); });
  ASSERT_EQ(ref, "lpc_ex_c: -4");
  ASSERT_EQ(lpc_rethrows.load(), 1);
  Track top(1), mid(2), b(3), c(4);
  ASSERT_NE(track(fnp(lpc_ex_rethrow_top), top), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_rethrow_mid), mid), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_b), b), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_c), c), nullptr);
  commit();
  EXPECT_EQ(what_of([] { lpc_ex_rethrow_top(-4); }), ref);
  EXPECT_EQ(lpc_rethrows.load(), 2);
  for (Track *t : {&top, &mid, &b, &c}) EXPECT_EQ(t->exits.load(), 0);
  EXPECT_EQ(lpc_ex_rethrow_top(4), 7);
  const lp_call_stats s = stats();
  EXPECT_EQ(s.unwound, 4u);
  EXPECT_EQ(s.pending, 0u);
  for (Track *t : {&top, &mid, &b, &c}) {
    EXPECT_EQ(t->entries.load(), 2);
    EXPECT_EQ(t->exits.load(), 1);
    EXPECT_CLEAN(*t);
  }
  EXPECT_EQ(s.unwind_missing, 0u);
}

TEST_P(Calls, RethrowExceptionPtrThroughProbedFrames) {
  lpc_stored = std::make_exception_ptr(std::runtime_error("stored"));
  const std::string ref = what_of([] { lpc_ex_ptr_a(1); });
  ASSERT_EQ(ref, "stored");
  Track a(1), b(2);
  ASSERT_NE(track(fnp(lpc_ex_ptr_a), a), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_ptr_b), b), nullptr);
  commit();
  EXPECT_EQ(what_of([] { lpc_ex_ptr_a(1); }), ref);
  EXPECT_EQ(what_of([] { lpc_ex_ptr_a(1); }), ref);
  EXPECT_EQ(a.exits.load() + b.exits.load(), 0);
  lpc_stored = nullptr;
  EXPECT_EQ(lpc_ex_ptr_a(5), 6);
  EXPECT_EQ(a.exits.load(), 1);
  EXPECT_EQ(b.exits.load(), 1);
  const lp_call_stats s = stats();
  EXPECT_EQ(s.unwound, 4u);
  EXPECT_EQ(s.pending, 0u);
  EXPECT_CLEAN(a);
  EXPECT_CLEAN(b);
}

// A destructor run by the unwind (a landing pad between probed frames) calls
// a probed function; variant: it also throws and catches inside itself.
class CallsCleanup : public CallsBase, public ::testing::WithParamInterface<std::tuple<int, bool>> {
protected:
  int policy() const override { return std::get<0>(GetParam()); }
};

TEST_P(CallsCleanup, DestructorDuringUnwindCallsProbedCode) {
  const bool nested = std::get<1>(GetParam());
  lpc_cleanup_nested_throw = nested;
  const int per_cleanup = nested ? 13 : 3;
  const std::string ref = what_of([] { lpc_ex_guard_top(-1); }); // unprobed
  ASSERT_EQ(ref, "lpc_ex_c: -1");
  ASSERT_EQ(lpc_cleanups.load(), per_cleanup);
  Track top(1), mid(2), b(3), c(4), add(5);
  ASSERT_NE(track(fnp(lpc_ex_guard_top), top), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_guard_mid), mid), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_b), b), nullptr);
  ASSERT_NE(track(fnp(lpc_ex_c), c), nullptr);
  ASSERT_NE(track(fnp(lpc_add), add), nullptr);
  commit();
  EXPECT_EQ(what_of([] { lpc_ex_guard_top(-1); }), ref);
  EXPECT_EQ(lpc_cleanups.load(), 2 * per_cleanup);
  EXPECT_EQ(add.exits.load(), 1); // the landing pad's call returned through its exit
  EXPECT_EQ(last_int(add), 3);
  for (Track *t : {&top, &mid, &b, &c}) EXPECT_EQ(t->exits.load(), 0);
  EXPECT_EQ(lpc_ex_guard_top(1), 4);
  EXPECT_EQ(lpc_cleanups.load(), 3 * per_cleanup);
  EXPECT_EQ(add.exits.load(), 2);
  for (Track *t : {&top, &mid, &b, &c, &add}) {
    EXPECT_EQ(t->exits.load(), t == &add ? 2 : 1);
    EXPECT_CLEAN(*t);
  }
  const lp_call_stats s = stats();
  EXPECT_EQ(s.unwound, 4u);
  EXPECT_EQ(s.pending, 0u);
  lpc_cleanup_nested_throw = 0;
}

// Negative control: without the unwinder hooks the same throw cannot pass the
// return trampoline (no unwind information): std::terminate.
TEST_P(Calls, WithoutUnwindHooksAThrowThroughProbedFramesTerminates) {
  GTEST_FLAG_SET(death_test_style, LPT_DEATH_TEST_STYLE);
  reopen(LP_FLAG_NO_UNWIND_HOOKS);
  Track a(1), b(2), c(3);
  lp_probe *pa = track(fnp(lpc_ex_a), a);
  lp_probe *pb = track(fnp(lpc_ex_b), b);
  lp_probe *pc = track(fnp(lpc_ex_c), c);
  ASSERT_TRUE(pa && pb && pc);
  commit();
  const lp_call_stats s = stats();
  EXPECT_EQ(s.unwind_hooks, 0u);
  EXPECT_EQ(s.unwind_missing, 0u);
  EXPECT_EQ(lpc_ex_a(1), 3); // returning calls are fine
  EXPECT_EQ(a.exits.load(), 1);
  EXPECT_DEATH((void)what_of([] { lpc_ex_a(-1); }), "terminate called after throwing");
  // Control of the control: with the probes disabled the same throw is caught.
  ASSERT_EQ(lp_probe_disable(pa), 0);
  ASSERT_EQ(lp_probe_disable(pb), 0);
  ASSERT_EQ(lp_probe_disable(pc), 0);
  commit();
  EXPECT_EQ(what_of([] { lpc_ex_a(-1); }), "lpc_ex_c: -1");
}

// ============================================================================
// 5. Recursion deeper than the shadow stack.
// ============================================================================

TEST_P(Calls, RecursionDeeperThanTheShadowStack) {
  constexpr int kN = 300; // kN + 1 calls
  constexpr int kOver = kN + 1 - LP_CALL_DEPTH;
  static_assert(kOver > 0);
  Track t(1);
  ASSERT_NE(track(fnp(lpc_recurse), t), nullptr);
  commit();
  EXPECT_EQ(lpc_recurse(kN), kN);
  EXPECT_EQ(t.entries.load(), kN + 1);
  EXPECT_EQ(t.null_words.load(), kOver) << "entries beyond LP_CALL_DEPTH get NULL words";
  EXPECT_EQ(t.exits.load(), LP_CALL_DEPTH);
  EXPECT_EQ(t.bad_pc.load(), 0);
  EXPECT_EQ(t.bad_sp.load(), 0);
  EXPECT_EQ(t.dirty_words.load(), 0);
  EXPECT_EQ(last_int(t), kN); // the outermost exit is the last one
  lp_call_stats s = stats();
  EXPECT_EQ(s.overflows, uint64_t(kOver));
  EXPECT_EQ(s.exits, uint64_t(kN + 1 - kOver));
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.unwound, 0u);
  // Shallow again: every call has its exit.
  EXPECT_EQ(lpc_recurse(10), 10);
  s = stats();
  EXPECT_EQ(s.overflows, uint64_t(kOver));
  EXPECT_EQ(s.exits, uint64_t(LP_CALL_DEPTH + 11));
}

// ============================================================================
// 6. Tail calls.
// ============================================================================

TEST_P(Calls, TailCallRunsBothExitsCalleeFirst) {
  EXPECT_EQ(lpt_tail_caller(4), 15); // unprobed: (4 + 1) * 3
  Seq seq;
  Track caller(1), callee(2);
  caller.seq = callee.seq = &seq;
  lp_probe *pcaller = track(fnp(lpt_tail_caller), caller);
  ASSERT_NE(pcaller, nullptr);
  ASSERT_NE(track(fnp(lpt_tail_callee), callee), nullptr);
  commit();
  EXPECT_EQ(lpt_tail_caller(4), 15);
  EXPECT_EQ(seq.get(), (std::vector<int>{1, 2, -2, -1}));
  EXPECT_EQ(caller.last_arg.load(), 4);
  EXPECT_EQ(callee.last_arg.load(), 5);
  EXPECT_EQ(last_int(callee), 15);
  EXPECT_EQ(last_int(caller), 15);
  EXPECT_CLEAN(caller);
  EXPECT_CLEAN(callee);
  lp_call_stats s = stats();
  EXPECT_EQ(s.exits, 2u);
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.unwound, 0u);
  // The callee called directly: its exit alone.
  EXPECT_EQ(lpt_tail_callee(2), 6);
  EXPECT_EQ(callee.exits.load(), 2);
  EXPECT_EQ(caller.exits.load(), 1);
  // The callee's exit changes the value: the caller's exit and the caller see it.
  callee.ret_mul = 2;
  EXPECT_EQ(lpt_tail_caller(1), 12);
  EXPECT_EQ(last_int(callee), 6);
  EXPECT_EQ(last_int(caller), 12);
  callee.ret_mul = 1;
  // Only the callee probed: one exit.
  ASSERT_EQ(lp_probe_disable(pcaller), 0);
  commit();
  EXPECT_EQ(lpt_tail_caller(0), 3);
  EXPECT_EQ(caller.exits.load(), 2);
  EXPECT_EQ(callee.exits.load(), 4);
  s = stats();
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.unwound, 0u);
  EXPECT_CLEAN(caller);
  EXPECT_CLEAN(callee);
}

// An exception out of a tail-call pair: the two frames share one return slot.
TEST_P(Calls, ExceptionThroughATailCall) {
  const std::string ref = what_of([] { lpt_tail_caller(-5); }); // unprobed
  ASSERT_EQ(ref, "lpt_tail_callee: -4");
  Track caller(1), callee(2);
  ASSERT_NE(track(fnp(lpt_tail_caller), caller), nullptr);
  ASSERT_NE(track(fnp(lpt_tail_callee), callee), nullptr);
  commit();
  EXPECT_EQ(what_of([] { lpt_tail_caller(-5); }), ref);
  EXPECT_EQ(caller.exits.load() + callee.exits.load(), 0);
  EXPECT_EQ(lpt_tail_caller(1), 6);
  EXPECT_EQ(caller.exits.load(), 1);
  EXPECT_EQ(callee.exits.load(), 1);
  EXPECT_EQ(last_int(caller), 6);
  EXPECT_CLEAN(caller);
  EXPECT_CLEAN(callee);
  const lp_call_stats s = stats();
  EXPECT_EQ(s.unwound, 2u);
  EXPECT_EQ(s.pending, 0u);
}

// ============================================================================
// 7. Signal handlers entering probed calls while the thread is inside one.
// ============================================================================

namespace {
std::atomic<int> g_sig_add{0}, g_sig_chain{0};
std::atomic<uintptr_t> g_sig_frame{0};
void usr1_calls_probed(int) {
  g_sig_frame.store(reinterpret_cast<uintptr_t>(__builtin_frame_address(0)));
  g_sig_add.store(lpc_add(40, 2));
  g_sig_chain.store(lpc_chain_a(1));
  lpc_release.store(1);
}

struct SpinThread {
  void *alt = nullptr;
  size_t alt_size = 0;
  int altstack_rc = -1;
  int result = 0;
};
void *spin_thread(void *a) {
  auto *s = static_cast<SpinThread *>(a);
  if (s->alt) {
    stack_t st{};
    st.ss_sp = s->alt;
    st.ss_size = s->alt_size;
    s->altstack_rc = sigaltstack(&st, nullptr);
  }
  s->result = lpc_spin_outer(21);
  if (s->alt) {
    stack_t st{};
    st.ss_flags = SS_DISABLE;
    sigaltstack(&st, nullptr);
  }
  return nullptr;
}

enum AltStack { kNoAltStack = 0, kAltAbove = 1, kAltBelow = 2 };
} // namespace

class CallsInSignalHandler : public CallsBase, public ::testing::WithParamInterface<std::tuple<int, int>> {
protected:
  int policy() const override { return std::get<0>(GetParam()); }
};

TEST_P(CallsInSignalHandler, HandlerCallsProbedFunctionsWhileThreadIsInside) {
  const int alt = std::get<1>(GetParam());
  Track spin(1), outer(2), add(3), a(4), b(5), c(6);
  ASSERT_NE(track(fnp(lpc_spin), spin), nullptr);
  ASSERT_NE(track(fnp(lpc_spin_outer), outer), nullptr);
  ASSERT_NE(track(fnp(lpc_add), add), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_a), a), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_b), b), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_c), c), nullptr);
  commit();

  // One mapping holds the thread's stack and its alternate signal stack, in
  // the order the case asks for: an alternate stack above the thread's makes
  // the handler's calls look like they were entered below (older than) the
  // interrupted ones, the case reaping by sp must not get wrong.
  constexpr size_t kHalf = 1 << 20;
  void *m = mmap(nullptr, 2 * kHalf, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  char *lo = static_cast<char *>(m), *hi = lo + kHalf;
  char *thread_stack = alt == kAltBelow ? hi : lo;
  SpinThread st;
  if (alt != kNoAltStack) {
    st.alt = alt == kAltAbove ? hi : lo;
    st.alt_size = kHalf;
  }
  struct sigaction sa {}, old{};
  sa.sa_handler = usr1_calls_probed;
  sa.sa_flags = alt != kNoAltStack ? SA_ONSTACK : 0;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (alt != kNoAltStack) ASSERT_EQ(pthread_attr_setstack(&attr, thread_stack, kHalf), 0);
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, &attr, spin_thread, &st), 0);
  pthread_attr_destroy(&attr);
  const bool inside = eventually([] { return lpc_inside.load() == 21; });
  EXPECT_TRUE(inside) << "the thread never entered lpc_spin";
  if (inside) EXPECT_EQ(pthread_kill(t, SIGUSR1), 0);
  else lpc_release = 1;
  pthread_join(t, nullptr);
  sigaction(SIGUSR1, &old, nullptr);
  munmap(m, 2 * kHalf);

  EXPECT_EQ(st.result, 43);
  EXPECT_EQ(g_sig_add.load(), 42);
  EXPECT_EQ(g_sig_chain.load(), 4);
  if (alt != kNoAltStack) {
    EXPECT_EQ(st.altstack_rc, 0);
    const uintptr_t f = g_sig_frame.load(), base = reinterpret_cast<uintptr_t>(st.alt);
    EXPECT_TRUE(f >= base && f < base + kHalf) << "the handler did not run on the alternate stack";
  }
  EXPECT_EQ(spin.exits.load(), 1);
  EXPECT_EQ(last_int(spin), 42);
  EXPECT_EQ(outer.exits.load(), 1);
  EXPECT_EQ(last_int(outer), 43);
  EXPECT_EQ(add.exits.load(), 1);
  EXPECT_EQ(last_int(add), 42);
  for (Track *x : {&spin, &outer, &add, &a, &b, &c}) {
    EXPECT_EQ(x->entries.load(), 1);
    EXPECT_EQ(x->exits.load(), 1);
    EXPECT_CLEAN(*x);
  }
  const lp_call_stats s = stats();
  EXPECT_EQ(s.unwound, 0u);
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.exits, 6u);
}

// ============================================================================
// 8. Threads exiting or cancelled inside probed frames.
// ============================================================================

namespace {
struct Worker {
  std::atomic<bool> stop{false};
  std::atomic<long> calls{0}, wrong{0};
};
void *add_worker(void *a) {
  auto *w = static_cast<Worker *>(a);
  for (int i = 0; !w->stop.load(); ++i) {
    if (lpc_add(i, 1) != i + 1) w->wrong.fetch_add(1);
    w->calls.fetch_add(1);
  }
  return nullptr;
}
void *end_thread(void *a) {
  lpc_end_outer(*static_cast<int *>(a));
  return reinterpret_cast<void *>(1); // not reached
}
struct ChainThread {
  int r = 0;
};
void *chain_thread(void *a) {
  static_cast<ChainThread *>(a)->r = lpc_chain_a(1) + lpc_add(3, 4);
  return nullptr;
}
} // namespace

class CallsThreadEnd : public CallsBase, public ::testing::WithParamInterface<std::tuple<int, int>> {
protected:
  int policy() const override { return std::get<0>(GetParam()); }
};

TEST_P(CallsThreadEnd, ThreadEndingInsideProbedFrames) {
  // 0 pthread_exit, 1 pthread_cancel in pause(), 2 pthread_exit with a
  // destructor that throws and catches on the way.
  int mode = std::get<1>(GetParam());
  Track outer(1), inner(2), add(3), a(4), b(5), c(6);
  ASSERT_NE(track(fnp(lpc_end_outer), outer), nullptr);
  ASSERT_NE(track(fnp(lpc_end_inner), inner), nullptr);
  ASSERT_NE(track(fnp(lpc_add), add), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_a), a), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_b), b), nullptr);
  ASSERT_NE(track(fnp(lpc_chain_c), c), nullptr);
  commit();
  lpc_guards_destroyed = 0;

  Worker w;
  pthread_t wt;
  ASSERT_EQ(pthread_create(&wt, nullptr, add_worker, &w), 0);
  EXPECT_TRUE(eventually([&] { return w.calls.load() > 0; }));

  pthread_t et;
  ASSERT_EQ(pthread_create(&et, nullptr, end_thread, &mode), 0);
  if (mode == 1) {
    const bool blocked = eventually([] { return lpc_inside.load() == 1; });
    EXPECT_TRUE(blocked) << "the thread never reached pause()";
    EXPECT_EQ(pthread_cancel(et), 0);
  }
  void *ret = nullptr;
  EXPECT_EQ(pthread_join(et, &ret), 0);
  EXPECT_EQ(ret, mode == 1 ? PTHREAD_CANCELED : nullptr);
  // The forced unwind ran both frames' destructors: it walked from the inner
  // frame into the outer one, past the inner's swapped return address.
  EXPECT_EQ(lpc_guards_destroyed.load(), mode == 2 ? 102 : 2);
  EXPECT_EQ(outer.entries.load(), 1);
  EXPECT_EQ(inner.entries.load(), 1);
  EXPECT_EQ(outer.exits.load(), 0);
  EXPECT_EQ(inner.exits.load(), 0);
  EXPECT_EQ(stats().unwound, 2u);

  // The other threads' probes keep working: the worker, a new thread (which
  // may reuse the ended thread's shadow stack), this one.
  const long seen = w.calls.load();
  EXPECT_TRUE(eventually([&] { return w.calls.load() > seen + 10; }));
  ChainThread ct;
  pthread_t nt;
  ASSERT_EQ(pthread_create(&nt, nullptr, chain_thread, &ct), 0);
  pthread_join(nt, nullptr);
  EXPECT_EQ(ct.r, 4 + 7);
  EXPECT_EQ(lpc_chain_a(2), 5);
  w.stop = true;
  pthread_join(wt, nullptr);
  EXPECT_EQ(w.wrong.load(), 0);
  EXPECT_EQ(add.entries.load(), add.exits.load());
  EXPECT_EQ(add.entries.load(), w.calls.load() + 1);
  for (Track *t : {&add, &a, &b, &c}) EXPECT_CLEAN(*t);
  EXPECT_EQ(a.exits.load(), 2);
  const lp_call_stats s = stats();
  EXPECT_EQ(s.unwound, 2u);
  EXPECT_EQ(s.pending, 0u);
}

// ============================================================================
// 9. fork() inside a probed function.
// ============================================================================

TEST_P(Calls, ForkInsideAProbedFunction) {
  Track f(1), add(2);
  ASSERT_NE(track(fnp(lpc_fork), f), nullptr);
  ASSERT_NE(track(fnp(lpc_add), add), nullptr);
  commit();
  fflush(nullptr);
  pid_t pid = -1;
  const int r = lpc_fork(5, &pid);
  if (pid == 0) {
    // The child: report through the exit status, nothing else.
    int code = 0;
    if (r != 105) code |= 1;
    if (f.exits.load() != 1) code |= 2;
    if (last_int(f) != 105) code |= 4;
    if (f.bad_pc.load() || f.bad_sp.load() || f.dirty_words.load()) code |= 8;
    if (lpc_add(1, 2) != 3 || add.exits.load() != 1) code |= 16;
    lp_call_stats s{};
    if (lp_patcher_call_stats(p_, &s) != 0 || s.pending != 0) code |= 32;
    _exit(code);
  }
  ASSERT_GT(pid, 0);
  EXPECT_EQ(r, 205);
  EXPECT_EQ(f.exits.load(), 1);
  EXPECT_EQ(last_int(f), 205);
  EXPECT_CLEAN(f);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child died: status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child's failed checks (bits): 1 result, 2 exit count, 4 exit's value, "
                                       "8 pc/sp/words, 16 a later call, 32 pending";
  EXPECT_EQ(add.entries.load(), 0); // the child's call was the child's
  EXPECT_EQ(stats().pending, 0u);
}

// ============================================================================
// 10. Disable / remove while a thread is inside.
// ============================================================================

namespace {
struct InsideThread {
  int result = 0;
  bool returned = false;
};
void *inside_thread(void *a) {
  auto *s = static_cast<InsideThread *>(a);
  s->result = lpc_spin_outer(9); // lpc_spin probed, lpc_spin_outer not: + 1 proves where it returned
  s->returned = true;
  return nullptr;
}
} // namespace

TEST_P(Calls, DisableWhileInsideStillRunsTheExit) {
  Track t(1);
  lp_probe *pr = track(fnp(lpc_spin), t);
  ASSERT_NE(pr, nullptr);
  commit();
  InsideThread it;
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, nullptr, inside_thread, &it), 0);
  EXPECT_TRUE(eventually([] { return lpc_inside.load() == 9; }));
  EXPECT_EQ(lp_probe_disable(pr), 0);
  EXPECT_EQ(lp_commit(p_), 0);
  EXPECT_EQ(stats().pending, 1u); // the thread's call
  lpc_release = 1;
  pthread_join(th, nullptr);
  EXPECT_TRUE(it.returned);
  EXPECT_EQ(it.result, 19);
  EXPECT_EQ(t.entries.load(), 1);
  EXPECT_EQ(t.exits.load(), 1) << "a call entered before the disable gets its exit";
  EXPECT_EQ(last_int(t), 18);
  EXPECT_CLEAN(t);
  // Disabled: a new call has neither handler.
  EXPECT_EQ(lpc_spin(3), 6);
  EXPECT_EQ(t.entries.load(), 1);
  EXPECT_EQ(t.exits.load(), 1);
  EXPECT_EQ(stats().pending, 0u);
  // And the probe still works when enabled again.
  ASSERT_EQ(lp_probe_enable(pr), 0);
  commit();
  EXPECT_EQ(lpc_spin(4), 8);
  EXPECT_EQ(t.exits.load(), 2);
  EXPECT_EQ(lp_quiesce(p_, 2000), 0);
}

TEST_P(Calls, RemoveWhileInsideReturnsWithoutTheExit) {
  Track t(1);
  lp_probe *pr = track(fnp(lpc_spin), t);
  ASSERT_NE(pr, nullptr);
  commit();
  InsideThread it;
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, nullptr, inside_thread, &it), 0);
  EXPECT_TRUE(eventually([] { return lpc_inside.load() == 9; }));
  EXPECT_EQ(lp_probe_remove(pr), 0);
  EXPECT_EQ(lp_commit(p_), 0);
  lpc_release = 1;
  pthread_join(th, nullptr);
  EXPECT_TRUE(it.returned);
  EXPECT_EQ(it.result, 19);
  EXPECT_EQ(t.entries.load(), 1);
  EXPECT_EQ(t.exits.load(), 0) << "no handler of a removed probe runs";
  EXPECT_EQ(stats().pending, 0u);
  EXPECT_EQ(lp_quiesce(p_, 2000), 0);
  EXPECT_EQ(lp_probe_enable(pr), LP_EREMOVED);
  EXPECT_EQ(lpc_spin(3), 6);
  EXPECT_EQ(t.entries.load(), 1);
  // The function can take a new call probe.
  Track u(2);
  ASSERT_NE(track(fnp(lpc_spin), u), nullptr);
  commit();
  EXPECT_EQ(lpc_spin(5), 10);
  EXPECT_EQ(u.exits.load(), 1);
  EXPECT_EQ(last_int(u), 10);
  EXPECT_EQ(t.exits.load(), 0);
}

// ============================================================================
// 11. backtrace() through probed frames.
// ============================================================================

namespace {
// The one frame of a trace that depends on the call site in the test body:
// the return address into it, which the capture reports.
struct Trace {
  static constexpr int kMax = 64;
  void *pc[kMax] = {};
  int n = 0;
  void *site = nullptr; // bt_capture's return address
};
__attribute__((noipa)) void bt_capture(Trace *t) {
  t->site = __builtin_extract_return_addr(__builtin_return_address(0));
  t->n = lpc_bt_a(t->pc, Trace::kMax);
}
// `got` is `want` frame for frame, but for the call site of bt_capture.
void expect_same_trace(const Trace &want, const Trace &got, const char *what) {
  ASSERT_EQ(got.n, want.n) << what;
  int sites = 0;
  for (int i = 0; i < want.n; ++i) {
    if (want.pc[i] == want.site) {
      EXPECT_EQ(got.pc[i], got.site) << what << ": frame " << i << " (the test body)";
      ++sites;
    } else {
      EXPECT_EQ(got.pc[i], want.pc[i]) << what << ": frame " << i;
    }
  }
  EXPECT_EQ(sites, 1) << what << ": the test body's frame is not in the trace";
}
} // namespace

TEST_P(Calls, BacktraceThroughProbedFramesIsUnchanged) {
  Trace base, probed, disabled;
  bt_capture(&base); // before any call probe (and the unwinder hooks) exists
  ASSERT_GT(base.n, 4);
  Track a(1), b(2), c(3);
  lp_probe *pr[3] = {track(fnp(lpc_bt_a), a), track(fnp(lpc_bt_b), b), track(fnp(lpc_bt_c), c)};
  ASSERT_TRUE(pr[0] && pr[1] && pr[2]);
  commit();
  bt_capture(&probed);
  expect_same_trace(base, probed, "probed");
  for (lp_probe *q : pr) ASSERT_EQ(lp_probe_disable(q), 0);
  commit();
  bt_capture(&disabled);
  expect_same_trace(base, disabled, "disabled");
  for (Track *t : {&a, &b, &c}) {
    EXPECT_EQ(t->entries.load(), 1);
    EXPECT_EQ(t->exits.load(), 1) << "exits after a backtrace";
    EXPECT_CLEAN(*t);
  }
  EXPECT_EQ(last_int(a), probed.n);
  const lp_call_stats s = stats();
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.unwound, 0u);
  EXPECT_GT(s.unwind_hooks, 0u);
  EXPECT_EQ(s.unwind_missing, 0u);
}

// Negative control: without the hooks the walk stops at the return trampoline.
TEST_P(Calls, WithoutUnwindHooksBacktraceStopsAtTheTrampoline) {
  reopen(LP_FLAG_NO_UNWIND_HOOKS);
  Trace base, probed;
  bt_capture(&base);
  ASSERT_GT(base.n, 4);
  Track a(1), b(2), c(3);
  ASSERT_NE(track(fnp(lpc_bt_a), a), nullptr);
  ASSERT_NE(track(fnp(lpc_bt_b), b), nullptr);
  ASSERT_NE(track(fnp(lpc_bt_c), c), nullptr);
  commit();
  bt_capture(&probed);
  EXPECT_LT(probed.n, base.n) << "the trace went past the return trampoline without the hooks";
  // Identical up to the first swapped return address (lpc_bt_c's), the
  // trampoline, where the walk ends.
  int same = 0;
  while (same < probed.n && probed.pc[same] == base.pc[same]) ++same;
  EXPECT_GE(same, 1);
  EXPECT_EQ(same, probed.n - 1) << "only the last frame (the trampoline) differs";
  for (Track *t : {&a, &b, &c}) EXPECT_EQ(t->exits.load(), 1); // the program itself is unharmed
  EXPECT_EQ(stats().unwind_hooks, 0u);
}

// ============================================================================
// 12. Function replacement.
// ============================================================================

namespace {
lp_probe *g_repl = nullptr;
extern "C" int lpt_times100(int x) { return x * 100; }
extern "C" int lpt_original_plus1(int x) {
  auto orig = reinterpret_cast<int (*)(int)>(lp_probe_original(g_repl));
  return orig(x) + 1;
}
extern "C" int lpt_original_plus1000(int x) {
  auto orig = reinterpret_cast<int (*)(int)>(lp_probe_original(g_repl));
  return orig(x) + 1000;
}
extern "C" int lpt_minus(int x) { return -x; }
} // namespace

TEST_P(Calls, ReplacementRedirectsAndRestores) {
  lp_probe *r = nullptr;
  ASSERT_EQ(lp_replace(p_, fnp(lpc_repl), fnp(lpt_times100), &r), 0);
  EXPECT_NE(lp_probe_original(r), nullptr);
  EXPECT_EQ(lp_probe_is_jump(r), policy() == LP_PROBE_TRAP ? 0 : 1);
  EXPECT_EQ(lpc_repl(3), 6); // staged only
  ASSERT_EQ(lp_probe_enable(r), 0);
  commit();
  EXPECT_EQ(lpc_repl(3), 300);
  ASSERT_EQ(lp_probe_disable(r), 0);
  commit();
  EXPECT_EQ(lpc_repl(3), 6);
  ASSERT_EQ(lp_probe_enable(r), 0);
  commit();
  EXPECT_EQ(lpc_repl(4), 400);
  ASSERT_EQ(lp_probe_remove(r), 0);
  commit();
  EXPECT_EQ(lpc_repl(4), 8);
}

TEST_P(Calls, ReplacementCallsTheOriginal) {
  ASSERT_EQ(lp_replace_symbol(p_, "lpc_repl", fnp(lpt_original_plus1), &g_repl), 0);
  ASSERT_EQ(lp_probe_enable(g_repl), 0);
  commit();
  EXPECT_EQ(lpc_repl(3), 7);
  auto orig = reinterpret_cast<int (*)(int)>(lp_probe_original(g_repl));
  ASSERT_NE(orig, nullptr);
  EXPECT_EQ(orig(5), 10); // the original, while replaced
  EXPECT_EQ(lp_probe_hits(g_repl) > 0, policy() == LP_PROBE_TRAP);
  g_repl = nullptr;
}

TEST_P(Calls, ReplacementAndCallProbeInOneCommit) {
  lp_probe *r = nullptr;
  ASSERT_EQ(lp_replace(p_, fnp(lpc_repl), fnp(lpt_times100), &r), 0);
  ASSERT_EQ(lp_probe_enable(r), 0);
  Track t(1);
  ASSERT_NE(track(fnp(lpc_twice), t), nullptr);
  lp_stats s0{}, s1{};
  ASSERT_EQ(lp_patcher_stats(p_, &s0), 0);
  commit();
  ASSERT_EQ(lp_patcher_stats(p_, &s1), 0);
  EXPECT_EQ(s1.syncs - s0.syncs, 3u);
  EXPECT_EQ(s1.commits - s0.commits, 1u);
  EXPECT_EQ(lpc_repl(2), 200);
  EXPECT_EQ(lpc_twice(4), 8);
  EXPECT_EQ(t.exits.load(), 1);
  EXPECT_EQ(last_int(t), 8);
  EXPECT_CLEAN(t);
}

TEST_P(Calls, ReplacementOfAFunctionWithoutASled) {
  if (!lp_supports_instruction_sites()) GTEST_SKIP() << "no instruction sites in this build";
  const int ref = lpc_plain(4);
  ASSERT_EQ(ref, (4 * 3 + 7) ^ 0x55);
  ASSERT_EQ(lp_replace(p_, fnp(lpc_plain), fnp(lpt_original_plus1000), &g_repl), 0);
  EXPECT_EQ(lp_probe_address(g_repl), fnp(lpc_plain));
  EXPECT_GT(lp_probe_site_len(g_repl), 0u);
  auto orig = reinterpret_cast<int (*)(int)>(lp_probe_original(g_repl));
  ASSERT_NE(orig, nullptr);
  ASSERT_EQ(lp_probe_enable(g_repl), 0);
  commit();
  EXPECT_EQ(lpc_plain(4), ref + 1000);
  EXPECT_EQ(orig(4), ref); // the relocated prologue, then the rest
  EXPECT_EQ(orig(-2), lpc_plain(-2) - 1000);
  ASSERT_EQ(lp_probe_disable(g_repl), 0);
  commit();
  EXPECT_EQ(lpc_plain(4), ref);
  g_repl = nullptr;
}

TEST_P(Calls, ThreadInsideWhenReplacementCommitsFinishesInTheOriginal) {
  InsideThread it;
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, nullptr, inside_thread, &it), 0);
  EXPECT_TRUE(eventually([] { return lpc_inside.load() == 9; }));
  lp_probe *r = nullptr;
  EXPECT_EQ(lp_replace(p_, fnp(lpc_spin), fnp(lpt_minus), &r), 0);
  EXPECT_EQ(lp_probe_enable(r), 0);
  EXPECT_EQ(lp_commit(p_), 0);
  EXPECT_EQ(lpc_spin(5), -5); // new calls run the replacement (it does not wait)
  lpc_release = 1;
  pthread_join(th, nullptr);
  EXPECT_TRUE(it.returned);
  EXPECT_EQ(it.result, 19); // the original's value (9 * 2) + 1
  EXPECT_EQ(lp_probe_disable(r), 0);
  commit();
  EXPECT_EQ(lpc_spin(5), 10);
}

// ============================================================================
// 13. Bad input.
// ============================================================================

namespace {
int nop_entry(lp_regs *, uint64_t *, void *) { return LP_CALL_RUN; }
void nop_exit(lp_regs *, uint64_t *, void *) {}
void nop_handler(lp_regs *, void *) {}

struct Open {
  lp_patcher *p = nullptr;
  Open() { EXPECT_EQ(lp_patcher_open(nullptr, &p), 0); }
  ~Open() { lp_patcher_close(p); }
};
void *tail_caller_middle() { return reinterpret_cast<char *>(&lpt_tail_caller) + LPT_TAIL_CALLER_SLED; }
} // namespace

TEST(CallsBadInput, ProbeCallArguments) {
  Open o;
  ASSERT_NE(o.p, nullptr);
  lp_probe *pr = reinterpret_cast<lp_probe *>(8);
  EXPECT_EQ(lp_probe_call(o.p, fnp(lpc_add), nullptr, nullptr, nullptr, &pr), LP_EINVAL);
  EXPECT_EQ(pr, nullptr);
  EXPECT_EQ(lp_probe_call(nullptr, fnp(lpc_add), nop_entry, nop_exit, nullptr, &pr), LP_EINVAL);
  EXPECT_EQ(lp_probe_call(o.p, fnp(lpc_add), nop_entry, nop_exit, nullptr, nullptr), LP_EINVAL);
  EXPECT_EQ(lp_probe_call(o.p, nullptr, nop_entry, nop_exit, nullptr, &pr), LP_EINVAL);
  EXPECT_EQ(lp_probe_call_symbol(o.p, nullptr, nop_entry, nop_exit, nullptr, &pr), LP_EINVAL);
  EXPECT_EQ(lp_probe_call_symbol(nullptr, "lpc_add", nop_entry, nop_exit, nullptr, &pr), LP_EINVAL);
  EXPECT_EQ(lp_probe_call_symbol(o.p, "lpc_add", nullptr, nullptr, nullptr, &pr), LP_EINVAL);
  EXPECT_EQ(lp_probe_call_symbol(o.p, "lpc_no_such_function", nop_entry, nop_exit, nullptr, &pr), LP_ENOSYM);
  // Not executable.
  EXPECT_EQ(lp_probe_call(o.p, &lpc_body_runs, nop_entry, nop_exit, nullptr, &pr), LP_ENOTEXEC);
  EXPECT_EQ(pr, nullptr);
}

TEST(CallsBadInput, ProbeCallNeedsAFunctionEntry) {
  Open o;
  lp_probe *pr = nullptr;
  // An instruction boundary inside a function (after its sled), and one
  // inside a function without a sled.
  EXPECT_EQ(lp_probe_call(o.p, tail_caller_middle(), nop_entry, nop_exit, nullptr, &pr), LP_ENOTSUP);
  EXPECT_EQ(pr, nullptr);
  // Negative control: the same function at its entry is fine.
  EXPECT_EQ(lp_probe_call(o.p, fnp(lpt_tail_caller), nop_entry, nop_exit, nullptr, &pr), 0);
  EXPECT_NE(pr, nullptr);
}

TEST(CallsBadInput, OneProbePerFunction) {
  Open o;
  lp_probe *a = nullptr, *b = nullptr;
  ASSERT_EQ(lp_probe_call(o.p, fnp(lpc_add), nop_entry, nop_exit, nullptr, &a), 0);
  EXPECT_EQ(lp_probe_call(o.p, fnp(lpc_add), nop_entry, nullptr, nullptr, &b), LP_EEXIST);
  EXPECT_EQ(lp_probe_call_symbol(o.p, "lpc_add", nullptr, nop_exit, nullptr, &b), LP_EEXIST);
  EXPECT_EQ(lp_probe_at(o.p, fnp(lpc_add), nop_handler, nullptr, &b), LP_EEXIST);
  EXPECT_EQ(lp_replace(o.p, fnp(lpc_add), fnp(lpt_minus), &b), LP_EEXIST);
  // Still when the first is enabled and committed (the sled then holds its
  // jump or trap, not the nops).
  ASSERT_EQ(lp_probe_enable(a), 0);
  ASSERT_EQ(lp_commit(o.p), 0);
  EXPECT_EQ(lp_probe_call(o.p, fnp(lpc_add), nop_entry, nop_exit, nullptr, &b), LP_EEXIST);
  EXPECT_EQ(lp_probe_at(o.p, fnp(lpc_add), nop_handler, nullptr, &b), LP_EEXIST);
  EXPECT_EQ(lp_replace(o.p, fnp(lpc_add), fnp(lpt_minus), &b), LP_EEXIST);
  // The other way round: a plain probe first.
  ASSERT_EQ(lp_probe_at(o.p, fnp(lpc_twice), nop_handler, nullptr, &a), 0);
  EXPECT_EQ(lp_probe_call(o.p, fnp(lpc_twice), nop_entry, nop_exit, nullptr, &b), LP_EEXIST);
  // A replacement first.
  ASSERT_EQ(lp_replace(o.p, fnp(lpc_repl), fnp(lpt_minus), &a), 0);
  EXPECT_EQ(lp_probe_call(o.p, fnp(lpc_repl), nop_entry, nop_exit, nullptr, &b), LP_EEXIST);
  EXPECT_EQ(lp_replace(o.p, fnp(lpc_repl), fnp(lpt_times100), &b), LP_EEXIST);
  EXPECT_EQ(b, nullptr);
}

#if defined(__x86_64__)
// With -fcf-protection the site is the sled after the endbr64: a second probe
// on the function is refused all the same, before and after the first commits.
TEST(CallsBadInput, OneProbePerFunctionAfterAnEndbr64) {
  Open o;
  ASSERT_EQ(std::memcmp(fnp(lpc_cet), "\xf3\x0f\x1e\xfa", 4), 0) << "lpc_cet does not start with endbr64";
  lp_probe *a = nullptr, *b = nullptr;
  ASSERT_EQ(lp_probe_call(o.p, fnp(lpc_cet), nop_entry, nop_exit, nullptr, &a), 0);
  EXPECT_EQ(lp_probe_address(a), static_cast<char *>(fnp(lpc_cet)) + 4);
  EXPECT_EQ(lp_probe_call(o.p, fnp(lpc_cet), nop_entry, nop_exit, nullptr, &b), LP_EEXIST);
  EXPECT_EQ(lp_probe_at(o.p, fnp(lpc_cet), nop_handler, nullptr, &b), LP_EEXIST);
  EXPECT_EQ(lp_replace(o.p, fnp(lpc_cet), fnp(lpt_minus), &b), LP_EEXIST);
  ASSERT_EQ(lp_probe_enable(a), 0);
  ASSERT_EQ(lp_commit(o.p), 0);
  EXPECT_EQ(lp_probe_call(o.p, fnp(lpc_cet), nop_entry, nop_exit, nullptr, &b), LP_EEXIST);
  EXPECT_EQ(lp_probe_at(o.p, fnp(lpc_cet), nop_handler, nullptr, &b), LP_EEXIST);
  EXPECT_EQ(lp_replace(o.p, fnp(lpc_cet), fnp(lpt_minus), &b), LP_EEXIST);
  EXPECT_EQ(b, nullptr);
  EXPECT_EQ(lpc_cet(1), 2);
}
#endif

TEST(CallsBadInput, ReplaceArguments) {
  Open o;
  lp_probe *pr = reinterpret_cast<lp_probe *>(8);
  EXPECT_EQ(lp_replace(o.p, fnp(lpc_repl), nullptr, &pr), LP_EINVAL);
  EXPECT_EQ(pr, nullptr);
  EXPECT_EQ(lp_replace(nullptr, fnp(lpc_repl), fnp(lpt_minus), &pr), LP_EINVAL);
  EXPECT_EQ(lp_replace(o.p, fnp(lpc_repl), fnp(lpt_minus), nullptr), LP_EINVAL);
  EXPECT_EQ(lp_replace(o.p, nullptr, fnp(lpt_minus), &pr), LP_EINVAL);
  EXPECT_EQ(lp_replace_symbol(o.p, nullptr, fnp(lpt_minus), &pr), LP_EINVAL);
  EXPECT_EQ(lp_replace_symbol(o.p, "lpc_no_such_function", fnp(lpt_minus), &pr), LP_ENOSYM);
  // Only a function's entry takes a replacement.
  EXPECT_EQ(lp_replace(o.p, tail_caller_middle(), fnp(lpt_minus), &pr), LP_EBOUNDARY);
  EXPECT_EQ(pr, nullptr);
  EXPECT_EQ(lp_probe_original(nullptr), nullptr);
}

TEST(CallsBadInput, CallStatsArguments) {
  lp_call_stats s{};
  EXPECT_EQ(lp_patcher_call_stats(nullptr, &s), LP_EINVAL);
  Open o;
  EXPECT_EQ(lp_patcher_call_stats(o.p, nullptr), LP_EINVAL);
  EXPECT_EQ(lp_patcher_call_stats(o.p, &s), 0);
  EXPECT_EQ(s.exits + s.overflows + s.unwound + s.skipped + s.pending, 0u);
}

TEST(CallsBadInput, RemovedButNotCommittedIsBusy) {
  Open o;
  lp_probe *a = nullptr, *b = nullptr;
  ASSERT_EQ(lp_probe_call(o.p, fnp(lpc_add), nop_entry, nop_exit, nullptr, &a), 0);
  ASSERT_EQ(lp_probe_enable(a), 0);
  ASSERT_EQ(lp_commit(o.p), 0);
  ASSERT_EQ(lp_probe_remove(a), 0);
  EXPECT_EQ(lp_probe_call(o.p, fnp(lpc_add), nop_entry, nop_exit, nullptr, &b), LP_EBUSY);
  ASSERT_EQ(lp_commit(o.p), 0);
  EXPECT_EQ(lp_probe_call(o.p, fnp(lpc_add), nop_entry, nop_exit, nullptr, &b), 0);
}

TEST(CallsBadInput, UnknownOptionFlag) {
  lp_options o;
  lp_options_init(&o);
  o.flags = 1u << 31;
  lp_patcher *p = nullptr;
  EXPECT_EQ(lp_patcher_open(&o, &p), LP_EINVAL);
  o.flags = (LP_FLAG_HANDLER_GPR_ONLY | LP_FLAG_NO_UNWIND_HOOKS) << 1;
  EXPECT_EQ(lp_patcher_open(&o, &p), LP_EINVAL);
  // Every known flag is accepted (and the refused opens left nothing open).
  o.flags = LP_FLAG_HANDLER_GPR_ONLY | LP_FLAG_NO_UNWIND_HOOKS;
  ASSERT_EQ(lp_patcher_open(&o, &p), 0);
  lp_patcher_close(p);
}

// ============================================================================

namespace {
std::string policy_param(const ::testing::TestParamInfo<int> &i) { return policy_name(i.param); }
std::string cleanup_param(const ::testing::TestParamInfo<std::tuple<int, bool>> &i) {
  return policy_name(std::get<0>(i.param)) + (std::get<1>(i.param) ? "_nested_throw" : "_plain");
}
std::string signal_param(const ::testing::TestParamInfo<std::tuple<int, int>> &i) {
  static const char *const alt[] = {"same_stack", "altstack_above", "altstack_below"};
  return policy_name(std::get<0>(i.param)) + "_" + alt[std::get<1>(i.param)];
}
std::string thread_end_param(const ::testing::TestParamInfo<std::tuple<int, int>> &i) {
  static const char *const mode[] = {"_pthread_exit", "_pthread_cancel", "_pthread_exit_nested_catch"};
  return policy_name(std::get<0>(i.param)) + mode[std::get<1>(i.param)];
}
} // namespace

// ============================================================================
// A call probe on a function without a sled: an instruction site at its first
// instruction (Debian's code has no sleds). Exits as on a sled; a skip
// request runs the call and is counted.
// ============================================================================

TEST_P(Calls, CallProbeOnAFunctionWithoutASled) {
  if (!lp_supports_instruction_sites()) GTEST_SKIP() << "this build has no decoder: no instruction sites";
  int want[10];
  for (int i = 0; i < 10; ++i) want[i] = lpc_plain(i);
  Track t(7);
  t.skip = true;
  t.skip_arg = 5;
  t.skip_value = 4242;
  lp_probe *pr = nullptr;
  const int rc = lp_probe_call(p_, fnp(lpc_plain), track_entry, track_exit, &t, &pr);
  ASSERT_EQ(rc, 0) << lp_strerror(rc);
  EXPECT_EQ(lp_probe_address(pr), fnp(lpc_plain));
  ASSERT_EQ(lp_probe_enable(pr), 0);
  commit();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(lpc_plain(i), want[i]) << i; // 5 too: the skip is refused there
  EXPECT_EQ(t.entries.load(), 10);
  EXPECT_EQ(t.exits.load(), 10);
  EXPECT_EQ(last_int(t), want[9]);
  EXPECT_CLEAN(t);
  const lp_call_stats s = stats();
  EXPECT_EQ(s.skip_refused, 1u);
  EXPECT_EQ(s.skipped, 0u);
  EXPECT_EQ(s.pending, 0u);
  // Disabled: back to the plain function, nothing pending.
  ASSERT_EQ(lp_probe_disable(pr), 0);
  commit();
  EXPECT_EQ(lpc_plain(3), want[3]);
  EXPECT_EQ(t.entries.load(), 10);
}

INSTANTIATE_TEST_SUITE_P(Kinds, Calls, ::testing::Values(LP_PROBE_JUMP, LP_PROBE_TRAP), policy_param);
INSTANTIATE_TEST_SUITE_P(Kinds, CallsCleanup,
                         ::testing::Combine(::testing::Values(LP_PROBE_JUMP, LP_PROBE_TRAP),
                                            ::testing::Values(false, true)),
                         cleanup_param);
INSTANTIATE_TEST_SUITE_P(Kinds, CallsInSignalHandler,
                         ::testing::Combine(::testing::Values(LP_PROBE_JUMP, LP_PROBE_TRAP),
                                            ::testing::Values(int(kNoAltStack), int(kAltAbove), int(kAltBelow))),
                         signal_param);
INSTANTIATE_TEST_SUITE_P(Kinds, CallsThreadEnd,
                         ::testing::Combine(::testing::Values(LP_PROBE_JUMP, LP_PROBE_TRAP), ::testing::Values(0, 1, 2)),
                         thread_end_param);
