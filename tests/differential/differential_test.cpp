// Results are identical with and without a probe at *every* instruction
// boundary of functions with loops, branches, pc-relative data and calls, for
// jump probes (relocated out-of-line copies) and trap probes alike.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <unistd.h>
#include <vector>

#include "libpatch/patch.h"
#include "mc/decoder.hpp"
#include "mc/target.hpp"

extern "C" {
int64_t lpd_sum_loop(int64_t);
int64_t lpd_pcrel(int64_t);
int64_t lpd_branches(int64_t);
int64_t lpd_fib(int64_t);
int64_t lpd_calls(int64_t);
int64_t lpd_body_nop(int64_t);
}

namespace {

using Fn = int64_t (*)(int64_t);
struct Subject {
  const char *name;
  Fn fn;
};
const Subject kSubjects[] = {{"lpd_sum_loop", lpd_sum_loop},
                             {"lpd_pcrel", lpd_pcrel},
                             {"lpd_branches", lpd_branches},
                             {"lpd_fib", lpd_fib},
                             {"lpd_calls", lpd_calls}};
const int64_t kInputs[] = {-9, -1, 0, 1, 2, 3, 7, 12, 33, 100, 257, 4099, 123457};

// Far layout: nothing can be mapped within jal's +-1 MiB of the subjects, so
// every jump there is the far form, which needs a provably dead register: only
// a few boundaries have one, the rest take trap probes (whose copies leave
// through exit traps). Which layout a process has is a property of its address
// space, read from /proc/self/maps the way the trampoline pool looks for room
// (exec_memory.cpp map_near: a 256 KiB chunk just above a mapping or just
// below the next, wholly within reach): the static riscv64 binary holds ~1.7
// MiB of text from 0x10000 up, and under qemu-user the heap starts right after
// .bss and fills the rest of the reach; a riscv64 Linux kernel randomizes the
// start of brk, leaving room after .bss, so the same binary is near there (the
// riscv64-linux suites). differential_near_tests links the subjects' section
// at 256 MiB, with free space around it: near everywhere. Asked after the
// test's probes were made (the heap as the pool saw it); a trampoline chunk of
// libpatch's already within reach means near.
#if defined(__riscv)
bool far_layout() {
  constexpr int64_t kReach = 1 << 20;   // jal
  constexpr uint64_t kChunk = 256 * 1024; // the pool's chunk
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  const int64_t site = int64_t(reinterpret_cast<uintptr_t>(&lpd_sum_loop));
  auto in_reach = [&](uint64_t a) { return int64_t(a) - site > -kReach && int64_t(a) - site < kReach; };
  auto fits = [&](uint64_t a) { return in_reach(a) && in_reach(a + kChunk); };
  FILE *f = std::fopen("/proc/self/maps", "r");
  if (!f) return true;
  char line[512];
  uint64_t prev_end = 0x10000;
  bool room = false;
  while (std::fgets(line, sizeof line, f)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line, "%lx-%lx", &lo, &hi) != 2) continue;
    if (std::strstr(line, "libpatch-trampolines") && in_reach(lo)) room = true;
    if (lo > prev_end && lo - prev_end >= kChunk + 2 * page &&
        (fits(lo - kChunk - page) || fits(prev_end + page)))
      room = true;
    if (hi > prev_end) prev_end = hi;
  }
  std::fclose(f);
  return !(room || fits(prev_end + page));
}
#else
bool far_layout() { return false; }
#endif

std::atomic<uint64_t> g_hits{0};
void count(lp_regs *, void *) { g_hits.fetch_add(1, std::memory_order_relaxed); }

std::vector<int64_t> outputs(Fn f) {
  std::vector<int64_t> v;
  for (int64_t x : kInputs) v.push_back(f == lpd_fib ? f((x & 15) + 3) : f == lpd_sum_loop ? f(x & 1023) : f(x));
  return v;
}

std::vector<uintptr_t> boundaries(const char *sym) {
  void *addr = nullptr;
  size_t size = 0;
  EXPECT_EQ(lp_lookup_symbol(sym, &addr, &size), 0) << sym;
  lp::mc::initialize_all_targets();
  auto dec = lp::mc::Decoder::create(lp_arch());
  std::vector<uintptr_t> out;
  const auto *code = static_cast<const uint8_t *>(addr);
  for (size_t off = 0; off < size;) {
    const lp::mc::Insn in = dec->decode(code + off, size - off, uintptr_t(addr) + off);
    if (!in.valid || in.length == 0) break;
    out.push_back(uintptr_t(addr) + off);
    off += in.length;
  }
  return out;
}

class Differential : public ::testing::TestWithParam<int> {};

} // namespace

TEST_P(Differential, EveryBoundaryOfEveryFunction) {
  const int policy = GetParam();
  lp_options o;
  lp_options_init(&o);
  o.policy = policy;
  lp_patcher *p = nullptr;
  ASSERT_EQ(lp_patcher_open(&o, &p), 0);
  size_t probed = 0, jumps = 0, refused = 0;
  for (const Subject &s : kSubjects) {
    const std::vector<int64_t> ref = outputs(s.fn);
    const auto bs = boundaries(s.name);
    ASSERT_GT(bs.size(), 3u) << s.name;
    for (uintptr_t b : bs) {
      lp_probe *pr = nullptr;
      const int rc = lp_probe_at(p, reinterpret_cast<void *>(b), count, nullptr, &pr);
      if (rc != 0) {
        // Only jump-only probes may be refused, and only with a precise reason.
        EXPECT_EQ(policy, LP_PROBE_JUMP) << s.name << "+" << (b - uintptr_t(bs[0])) << ": " << lp_strerror(rc);
        EXPECT_TRUE(rc == LP_ETOOSHORT || rc == LP_ERANGE || rc == LP_ERELOC) << lp_strerror(rc);
        ++refused;
        continue;
      }
      ++probed;
      jumps += lp_probe_is_jump(pr) == 1;
      ASSERT_EQ(lp_probe_enable(pr), 0);
      ASSERT_EQ(lp_commit(p), 0);
      EXPECT_EQ(outputs(s.fn), ref) << s.name << "+" << (b - bs[0]) << (lp_probe_is_jump(pr) ? " jump" : " trap");
      ASSERT_EQ(lp_probe_remove(pr), 0);
      ASSERT_EQ(lp_commit(p), 0);
      EXPECT_EQ(outputs(s.fn), ref) << s.name << "+" << (b - bs[0]) << " after removal";
    }
  }
  const bool far = far_layout();
  std::printf("layout: %s\n", far ? "far (no room within jal's reach)" : "near");
  EXPECT_GT(probed, far && policy == LP_PROBE_JUMP ? 5u : 40u);
  EXPECT_GT(g_hits.load(), 0u);
  if (policy != LP_PROBE_TRAP) EXPECT_GT(jumps, far ? 5u : probed / 3);
  std::printf("probed %zu boundaries (%zu jump, %zu trap), %zu refused, %llu hits\n", probed, jumps, probed - jumps,
              refused, (unsigned long long)g_hits.load());
  lp_patcher_close(p);
}

INSTANTIATE_TEST_SUITE_P(Policies, Differential,
                         ::testing::Values(LP_PROBE_JUMP_OR_TRAP, LP_PROBE_JUMP, LP_PROBE_TRAP),
                         [](const ::testing::TestParamInfo<int> &i) {
                           return std::string(i.param == LP_PROBE_JUMP ? "jump" : i.param == LP_PROBE_TRAP ? "trap" : "auto");
                         });

// Threads keep running the subjects (and checking them) while every boundary
// is probed, enabled, disabled and removed in batches: threads parked inside
// a displaced range are evacuated into the out-of-line copy.
TEST(DifferentialLive, BoundariesToggledUnderRunningThreads) {
  lp_options o;
  lp_options_init(&o);
  lp_patcher *p = nullptr;
  ASSERT_EQ(lp_patcher_open(&o, &p), 0);
  std::vector<std::vector<int64_t>> refs;
  for (const Subject &s : kSubjects) refs.push_back(outputs(s.fn));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, rounds{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      while (!stop.load()) {
        for (size_t i = 0; i < std::size(kSubjects); ++i)
          if (outputs(kSubjects[i].fn) != refs[i]) wrong++;
        rounds++;
      }
    });
  lp_stats st0{};
  lp_patcher_stats(p, &st0);
  for (int pass = 0; pass < 3; ++pass) {
    for (const Subject &s : kSubjects) {
      std::vector<lp_probe *> probes;
      for (uintptr_t b : boundaries(s.name)) {
        lp_probe *pr = nullptr;
        if (lp_probe_at(p, reinterpret_cast<void *>(b), count, nullptr, &pr) == 0) probes.push_back(pr);
      }
      // Alternate halves in batches, then remove them all.
      for (int k = 0; k < 4; ++k) {
        for (size_t i = 0; i < probes.size(); ++i) ((i + k) % 2 ? lp_probe_enable : lp_probe_disable)(probes[i]);
        ASSERT_EQ(lp_commit(p), 0);
      }
      for (lp_probe *pr : probes) lp_probe_remove(pr);
      ASSERT_EQ(lp_commit(p), 0);
    }
  }
  stop = true;
  for (auto &t : threads) t.join();
  lp_stats st{};
  lp_patcher_stats(p, &st);
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_GT(rounds.load(), 0u);
  std::printf("%llu rounds, %llu traps, %llu threads evacuated\n", (unsigned long long)rounds.load(),
              (unsigned long long)(st.traps - st0.traps), (unsigned long long)(st.evacuated - st0.evacuated));
  lp_patcher_close(p);
}

TEST(DifferentialLive, OverlappingSitesAreRefused) {
  lp_options o;
  lp_options_init(&o);
  lp_patcher *p = nullptr;
  ASSERT_EQ(lp_patcher_open(&o, &p), 0);
  // For adjacent boundaries a < b: with a probe at a, a probe at b is refused
  // exactly when b lies inside the bytes a's probe rewrites.
  bool inside = false, outside = false;
  for (const Subject &s : kSubjects) {
    const auto bs = boundaries(s.name);
    for (size_t i = 0; i + 1 < bs.size() && !(inside && outside); ++i) {
      lp_probe *a = nullptr, *b = nullptr;
      if (lp_probe_at(p, reinterpret_cast<void *>(bs[i]), count, nullptr, &a) != 0) continue;
      const size_t len = lp_probe_site_len(a);
      ASSERT_GE(len, 1u);
      const int rc = lp_probe_at(p, reinterpret_cast<void *>(bs[i + 1]), count, nullptr, &b);
      if (bs[i + 1] < bs[i] + len) {
        EXPECT_EQ(rc, LP_EEXIST) << s.name << "+" << (bs[i] - bs[0]);
        inside = true;
        ASSERT_EQ(lp_probe_remove(a), 0);
        ASSERT_EQ(lp_commit(p), 0);
        // Once the first probe's removal is committed, the place is free.
        EXPECT_EQ(lp_probe_at(p, reinterpret_cast<void *>(bs[i + 1]), count, nullptr, &b), 0);
        ASSERT_EQ(lp_probe_remove(b), 0);
      } else {
        EXPECT_EQ(rc, 0) << s.name << "+" << (bs[i + 1] - bs[0]) << ": " << lp_strerror(rc);
        outside = true;
        ASSERT_EQ(lp_probe_remove(a), 0);
        if (rc == 0) ASSERT_EQ(lp_probe_remove(b), 0);
      }
      ASSERT_EQ(lp_commit(p), 0);
    }
  }
  EXPECT_TRUE(outside);
  // Somewhere a site covers more than one instruction -- except in rv64g code
  // with only the 4-byte `jal` form, and on AArch64 (one `B` word, always):
  // one instruction per site.
#if defined(__aarch64__)
  EXPECT_FALSE(inside);
#elif defined(__riscv) && !defined(__riscv_compressed)
  const bool far = far_layout();
  std::printf("layout: %s\n", far ? "far (no room within jal's reach)" : "near");
  if (!far)
    EXPECT_FALSE(inside);
  else
    EXPECT_TRUE(inside);
#else
  EXPECT_TRUE(inside);
#endif
  lp_patcher_close(p);
}

// A nop sled shape inside a function body is not an entry site: an entry
// trampoline would clobber the red zone (x86-64) or t0 (RISC-V), both live
// there (body_nops.S). It must become an instruction site.
TEST(DifferentialLive, NopInsideABodyIsAnInstructionSite) {
  const auto bs = boundaries("lpd_body_nop");
  ASSERT_GE(bs.size(), 3u);
  for (int policy : {LP_PROBE_JUMP_OR_TRAP, LP_PROBE_TRAP}) {
    lp_options o;
    lp_options_init(&o);
    o.policy = policy;
    lp_patcher *p = nullptr;
    ASSERT_EQ(lp_patcher_open(&o, &p), 0);
    std::atomic<uint64_t> hits{0};
    lp_probe *pr = nullptr;
    ASSERT_EQ(lp_probe_at(p, reinterpret_cast<void *>(bs[1]), [](lp_regs *, void *u) {
      static_cast<std::atomic<uint64_t> *>(u)->fetch_add(1);
    }, &hits, &pr), 0);
    ASSERT_EQ(lp_probe_enable(pr), 0);
    ASSERT_EQ(lp_commit(p), 0);
    for (int64_t x : {0, 41, -7, 1 << 20}) EXPECT_EQ(lpd_body_nop(x), x + 1) << "policy " << policy;
    EXPECT_EQ(hits.load(), 4u);
    lp_patcher_close(p);
  }
}
