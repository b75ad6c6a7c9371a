// riscv64 live tests (run under qemu-riscv64 in the cross presets, or natively on
// a RISC-V Linux machine): entry sleds of both encodings, jump and trap probes,
// lp_regs contents and write-back, FP/fcsr preservation, the TLS depth counter,
// every sync method, both writers, SIGILL chaining, concurrent toggling.
#include <atomic>
#include <cfenv>
#include <csignal>
#include <cstring>
#include <string>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <ucontext.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "libpatch/patch.h"
#include "libpatch/regs.h"

#include "encoding.hpp"
#include "hwprobe.hpp"
#include "trampoline.hpp"

extern "C" {
extern __thread uint64_t lp_tramp_depth __attribute__((tls_model("initial-exec")));
uint64_t rv_sled_g8(uint64_t);
uint64_t rv_sled_g4(uint64_t);
uint64_t rv_sled_c8(uint64_t);
uint64_t rv_sled_c2(uint64_t);
uint64_t rv_sled_c4(uint64_t);
uint64_t rv_sled_split_c(uint64_t);
void rv_real_unimp(void);
}

// The flavour's own compiler sled: 8 bytes either way.
#if defined(__riscv_compressed)
#define RV_PATCHABLE __attribute__((noinline, used, patchable_function_entry(4)))
constexpr uint32_t kOwnUnit = 2;
#else
#define RV_PATCHABLE __attribute__((noinline, used, patchable_function_entry(2)))
constexpr uint32_t kOwnUnit = 4;
#endif

extern "C" {
RV_PATCHABLE uint64_t rv_own(uint64_t x) { return x * 3 + 1; }
RV_PATCHABLE uint64_t rv_own2(uint64_t x) { return x * 5 + 2; }
RV_PATCHABLE int rv_round_mode(void) { return fegetround(); }
RV_PATCHABLE uint64_t rv_many(uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                              uint64_t a6, uint64_t a7, uint64_t s0, uint64_t s1, double f0, double f1,
                              double f2, double f3, double f4, double f5, double f6, double f7) {
  return a0 + 2 * a1 + 3 * a2 + 4 * a3 + 5 * a4 + 6 * a5 + 7 * a6 + 8 * a7 + 9 * s0 + 10 * s1 +
         uint64_t(f0 + 2 * f1 + 3 * f2 + 4 * f3 + 5 * f4 + 6 * f5 + 7 * f6 + 8 * f7);
}
}

namespace {

using Fn = uint64_t (*)(uint64_t);

bool hart_c() { return (getauxval(AT_HWCAP) & (1ul << ('C' - 'A'))) != 0; }

struct Counter {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> last_pc{0};
  std::atomic<uint64_t> last_depth{0};
};

void count(lp_regs *r, void *u) {
  auto *c = static_cast<Counter *>(u);
  c->hits.fetch_add(1);
  c->last_pc.store(lp_regs_pc(r));
  c->last_depth.store(lp_tramp_depth);
}

// The patcher a test has open: closed after the test if an ASSERT left early,
// so one failure does not turn every later test into LP_EBUSY.
lp_patcher *g_open = nullptr;
void close_patcher(lp_patcher *p) {
  lp_patcher_close(p);
  if (g_open == p) g_open = nullptr;
}
struct CloseLeftovers : testing::EmptyTestEventListener {
  void OnTestEnd(const testing::TestInfo &) override {
    if (g_open) close_patcher(g_open);
  }
};
const bool g_listener = [] {
  testing::UnitTest::GetInstance()->listeners().Append(new CloseLeftovers);
  return true;
}();

lp_patcher *open_patcher(int sync = LP_SYNC_DEFAULT, int writer = LP_WRITER_DEFAULT, int policy = LP_PROBE_JUMP_OR_TRAP) {
  lp_options o;
  lp_options_init(&o);
  o.sync = sync;
  o.writer = writer;
  o.policy = policy;
  lp_patcher *p = nullptr;
  EXPECT_EQ(lp_patcher_open(&o, &p), 0);
  g_open = p;
  return p;
}

// One site through its whole life: enable -> calls hit, disable -> no hits,
// re-enable, remove, probe again at the normalised site.
// expect_jump: 1 jump, 0 trap, -1 either (a 4-byte site takes a jump only when
// the pool found a trampoline within jal's +-1 MiB; else it falls back to a trap).
void exercise(Fn fn, uint64_t add, int policy, int expect_jump_) {
  lp_patcher *p = open_patcher(LP_SYNC_DEFAULT, LP_WRITER_DEFAULT, policy);
  ASSERT_NE(p, nullptr);
  Counter c;
  for (int round = 0; round < 2; ++round) { // round 1: the site is normalised already
    lp_probe *pr = nullptr;
    ASSERT_EQ(lp_probe_at(p, reinterpret_cast<void *>(fn), count, &c, &pr), 0);
    const bool expect_jump = expect_jump_ < 0 ? lp_probe_is_jump(pr) == 1 : expect_jump_ == 1;
    EXPECT_EQ(lp_probe_is_jump(pr), expect_jump ? 1 : 0);
    // A trap probe the jump-or-trap policy fell back to says why; otherwise 0.
    if (policy == LP_PROBE_JUMP_OR_TRAP && !expect_jump) {
      EXPECT_LT(lp_probe_fallback(pr), 0);
      EXPECT_EQ(std::string(lp_strerror(lp_probe_fallback(pr))).find("unknown"), std::string::npos);
    } else {
      EXPECT_EQ(lp_probe_fallback(pr), 0);
    }
    EXPECT_EQ(lp_probe_address(pr), reinterpret_cast<void *>(fn));
    c.hits = 0;
    EXPECT_EQ(fn(100), 100 + add);
    EXPECT_EQ(c.hits.load(), 0u);
    ASSERT_EQ(lp_probe_enable(pr), 0);
    ASSERT_EQ(lp_commit(p), 0);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(fn(uint64_t(i)), uint64_t(i) + add);
    EXPECT_EQ(c.hits.load(), 10u);
    EXPECT_EQ(c.last_pc.load(), reinterpret_cast<uintptr_t>(fn));
    EXPECT_EQ(c.last_depth.load(), expect_jump ? 1u : 0u);
    EXPECT_EQ(lp_tramp_depth, 0u);
    ASSERT_EQ(lp_probe_disable(pr), 0);
    ASSERT_EQ(lp_commit(p), 0);
    EXPECT_EQ(fn(5), 5 + add);
    EXPECT_EQ(c.hits.load(), 10u);
    ASSERT_EQ(lp_probe_enable(pr), 0);
    ASSERT_EQ(lp_commit(p), 0);
    EXPECT_EQ(fn(6), 6 + add);
    EXPECT_EQ(c.hits.load(), 11u);
    ASSERT_EQ(lp_probe_remove(pr), 0);
    ASSERT_EQ(lp_commit(p), 0);
    EXPECT_EQ(fn(7), 7 + add);
    EXPECT_EQ(c.hits.load(), 11u);
  }
  close_patcher(p);
  EXPECT_EQ(fn(8), 8 + add);
}

TEST(Rv64Live, Arch) {
  EXPECT_STREQ(lp_arch(), "riscv64");
  const auto &h = lp::riscv64::hart_info();
  // qemu-user has no riscv_hwprobe (ENOSYS): the AT_HWCAP path answers there.
  std::printf("hart: C=%d source=%s hwprobe_errno=%ld hwcap=%#llx\n", h.has_c,
              lp::riscv64::hart_source_name(h.source), h.hwprobe_errno, (unsigned long long)h.hwcap);
  if (h.source == lp::riscv64::HartSource::Hwcap) {
    EXPECT_EQ(h.has_c, hart_c());
  }
}

TEST(Rv64Live, OwnSledJumpAndTrap) {
  auto fn = reinterpret_cast<Fn>(&rv_own);
  lp_patcher *p = open_patcher();
  Counter c;
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_symbol(p, "rv_own", count, &c, &pr), 0);
  EXPECT_EQ(lp_probe_address(pr), reinterpret_cast<void *>(&rv_own));
  EXPECT_EQ(lp_probe_is_jump(pr), 1);
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_commit(p), 0);
  EXPECT_EQ(fn(10), 31u);
  EXPECT_EQ(c.hits.load(), 1u);
  // The site: jal t0 (or auipc t0 + jalr t0) and nothing else in 8 bytes.
  const auto *b = reinterpret_cast<const uint8_t *>(&rv_own);
  const uint32_t w0 = lp::riscv64::get32(b);
  unsigned rd = 99;
  int32_t off = 0;
  EXPECT_TRUE(lp::riscv64::decode_jal(w0, &rd, &off) ? rd == lp::riscv64::kT0
                                                        : lp::riscv64::is_auipc(w0, lp::riscv64::kT0));
  close_patcher(p);
  // Disabled form after close: j .+8 then the rest of the sled.
  lp::riscv64::Ilen ilen;
  EXPECT_EQ(lp::riscv64::skip_len(b, 32, &ilen), 8u);
  EXPECT_EQ(uint32_t(ilen), kOwnUnit);
  EXPECT_EQ(fn(10), 31u);
}

TEST(Rv64Live, SledG8) {
  exercise(rv_sled_g8, 11, LP_PROBE_JUMP, true);
  exercise(rv_sled_g8, 11, LP_PROBE_TRAP, false);
}
TEST(Rv64Live, SledG4JalOnly) {
  exercise(rv_sled_g4, 13, LP_PROBE_JUMP_OR_TRAP, -1);
  exercise(rv_sled_g4, 13, LP_PROBE_TRAP, false);
}
TEST(Rv64Live, SledC8) {
  if (!hart_c()) GTEST_SKIP() << "hart without C cannot run c.nop sleds";
  exercise(rv_sled_c8, 17, LP_PROBE_JUMP, true);
  exercise(rv_sled_c8, 17, LP_PROBE_TRAP, false);
}
TEST(Rv64Live, SledC4At2Mod4) {
  if (!hart_c()) GTEST_SKIP() << "hart without C cannot run c.nop sleds";
  ASSERT_EQ(reinterpret_cast<uintptr_t>(&rv_sled_c4) % 4, 2u);
  exercise(rv_sled_c4, 29, LP_PROBE_JUMP_OR_TRAP, -1); // round 2 re-probes the normalised `j .+4`
  exercise(rv_sled_c4, 29, LP_PROBE_TRAP, false);
}
TEST(Rv64Live, SledC2TrapOnly) {
  if (!hart_c()) GTEST_SKIP() << "hart without C cannot run c.nop sleds";
  lp_patcher *p = open_patcher(LP_SYNC_DEFAULT, LP_WRITER_DEFAULT, LP_PROBE_JUMP);
  Counter c;
  lp_probe *pr = nullptr;
  EXPECT_EQ(lp_probe_at(p, reinterpret_cast<void *>(&rv_sled_c2), count, &c, &pr), LP_ETOOSHORT);
  close_patcher(p);
  // Under jump-or-trap the same site is a trap probe, and the reason is the one
  // the jump policy failed with.
  p = open_patcher();
  ASSERT_EQ(lp_probe_at(p, reinterpret_cast<void *>(&rv_sled_c2), count, &c, &pr), 0);
  EXPECT_EQ(lp_probe_is_jump(pr), 0);
  EXPECT_EQ(lp_probe_fallback(pr), LP_ETOOSHORT);
  close_patcher(p);
  exercise(rv_sled_c2, 19, LP_PROBE_JUMP_OR_TRAP, false); // falls back to a trap probe
}

TEST(Rv64Live, NotASite) {
  lp_patcher *p = open_patcher();
  Counter c;
  lp_probe *pr = nullptr;
  auto *f = reinterpret_cast<char *>(&rv_sled_g8);
  // Inside an instruction (the second half of a 4-byte nop, an odd address).
  EXPECT_EQ(lp_probe_at(p, f + 2, count, &c, &pr), LP_EBOUNDARY);
  EXPECT_EQ(lp_probe_at(p, f + 1, count, &c, &pr), LP_EBOUNDARY);
  // The body's `addi` is an instruction boundary: an instruction site.
  ASSERT_EQ(lp_probe_at(p, f + 8, count, &c, &pr), 0);
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_commit(p), 0);
  EXPECT_EQ(rv_sled_g8(100), 111);
  EXPECT_EQ(c.hits.load(), 1u);
  EXPECT_EQ(c.last_pc.load(), uintptr_t(f + 8));
  close_patcher(p);
}

// ---- registers ----

struct RegsSeen {
  uint64_t arg[10];
  double f[8];
  uint64_t sp, pc, ra, depth;
  int calls;
};

void regs_handler(lp_regs *r, void *u) {
  auto *s = static_cast<RegsSeen *>(u);
  for (unsigned i = 0; i < 10; ++i) s->arg[i] = lp_regs_arg(r, i);
  for (unsigned i = 0; i < 8; ++i) std::memcpy(&s->f[i], &r->f[10 + i], 8);
  s->sp = lp_regs_sp(r);
  s->pc = lp_regs_pc(r);
  s->ra = r->x[1];
  s->depth = lp_tramp_depth;
  ++s->calls;
  // Writes to argument registers apply: a0 += 1000, the 9th (stack) argument
  // *= 2, fa0 = 0.5 more.
  lp_regs_set_arg(r, 0, lp_regs_arg(r, 0) + 1000);
  lp_regs_set_arg(r, 8, lp_regs_arg(r, 8) * 2);
  double f0;
  std::memcpy(&f0, &r->f[10], 8);
  f0 += 0.5;
  std::memcpy(&r->f[10], &f0, 8);
  // Clobber what a C function may: FP temporaries, fcsr (rounding mode).
  volatile double x = 1.0;
  for (int i = 0; i < 8; ++i) x = x * 1.5 + 0.25;
  fesetround(FE_TOWARDZERO);
}

__attribute__((noinline)) uint64_t call_many() {
  return rv_many(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0);
}

void regs_case(int policy) {
  lp_patcher *p = open_patcher(LP_SYNC_DEFAULT, LP_WRITER_DEFAULT, policy);
  RegsSeen s{};
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_symbol(p, "rv_many", regs_handler, &s, &pr), 0);
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_commit(p), 0);
  const uint64_t plain = 1 + 4 + 9 + 16 + 25 + 36 + 49 + 64 + 81 + 100 + 204;
  const uint64_t got = call_many();
  ASSERT_EQ(s.calls, 1);
  for (unsigned i = 0; i < 10; ++i) EXPECT_EQ(s.arg[i], i + 1) << i;
  for (unsigned i = 0; i < 8; ++i) EXPECT_EQ(s.f[i], double(i + 1)) << i;
  EXPECT_EQ(s.pc, reinterpret_cast<uintptr_t>(&rv_many));
  EXPECT_EQ(s.sp % 16, 0u);
  EXPECT_EQ(s.depth, policy == LP_PROBE_TRAP ? 0u : 1u);
  // ra points back into call_many.
  EXPECT_GT(s.ra, reinterpret_cast<uintptr_t>(&call_many));
  EXPECT_LT(s.ra, reinterpret_cast<uintptr_t>(&call_many) + 256);
  // a0 + 1000, stack arg 9 doubled (+9*9), fa0 + 0.5 (truncated by the uint64 cast: +0).
  EXPECT_EQ(got, plain + 1000 + 81);
  // fcsr restored for the probed function: it sees the caller's rounding mode.
  fesetround(FE_UPWARD);
  lp_probe *pr2 = nullptr;
  ASSERT_EQ(lp_probe_symbol(p, "rv_round_mode", regs_handler, &s, &pr2), 0);
  ASSERT_EQ(lp_probe_enable(pr2), 0);
  ASSERT_EQ(lp_commit(p), 0);
  EXPECT_EQ(rv_round_mode(), FE_UPWARD);
  EXPECT_EQ(fegetround(), FE_UPWARD);
  fesetround(FE_TONEAREST);
  close_patcher(p);
}

TEST(Rv64Live, RegsJump) { regs_case(LP_PROBE_JUMP); }
TEST(Rv64Live, RegsTrap) { regs_case(LP_PROBE_TRAP); }

// ---- the trampoline with a TLS offset beyond 12 bits (lui + add) ----

struct BigTls {
  uint64_t pad[1024];
  uint64_t counter; // 8 KiB past the block's start: beyond a 12-bit offset from tp
};
__thread BigTls g_tls_big __attribute__((tls_model("initial-exec")));
#define g_tls_counter g_tls_big.counter

void tls_handler(lp_regs *r, void *u) {
  *static_cast<uint64_t *>(u) = g_tls_counter;
  r->x[10] += 1; // a0
}

TEST(Rv64Live, TrampolineLargeTlsOffset) {
  uintptr_t tp;
  asm volatile("mv %0, tp" : "=r"(tp));
  g_tls_big.pad[0] = 1;
  const intptr_t off = intptr_t(reinterpret_cast<uintptr_t>(&g_tls_counter) - tp);
  ASSERT_GT(off, 2047) << "the layout put the counter near tp; the test needs it far";
  // A synthetic site in executable memory: [jal t0, tramp][addi a0, a0, 7][ret],
  // the trampoline slot 1 KiB further.
  const size_t sz = 4096;
  void *m = mmap(nullptr, sz, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  auto *b = static_cast<uint8_t *>(m);
  const uintptr_t site = reinterpret_cast<uintptr_t>(b), tramp = site + 1024;
  lp::TrampolineSpec spec;
  spec.site = site;
  spec.site_len = 4;
  spec.data = tramp + lp::riscv64::kDataOffset;
  spec.tls_depth = off;
  ASSERT_EQ(lp::riscv64::emit_entry_trampoline(b + 1024, tramp, spec), 0);
  uint64_t seen = 0;
  lp::TrampolineData d;
  d.handler = tls_handler;
  d.user = &seen;
  std::memcpy(b + 1024 + lp::riscv64::kDataOffset, &d, sizeof d);
  lp::riscv64::put32(b, lp::riscv64::enc_jal(lp::riscv64::kT0, 1024));
  lp::riscv64::put32(b + 4, lp::riscv64::enc_addi(10, 10, 7));
  lp::riscv64::put32(b + 8, lp::riscv64::enc_jalr(0, 1, 0));
  __builtin___clear_cache(reinterpret_cast<char *>(b), reinterpret_cast<char *>(b + sz));
  g_tls_counter = 41;
  const uint64_t r = reinterpret_cast<Fn>(b)(100);
  EXPECT_EQ(r, 108u); // a0 + 1 by the handler, + 7 after the site
  EXPECT_EQ(seen, 42u); // incremented around the handler
  EXPECT_EQ(g_tls_counter, 41u);
  munmap(m, sz);
}

// ---- sync methods and writers ----

bool membarrier_sync_core_available() {
  const long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  return q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE);
}

void sync_case(int sync) {
  lp_options o;
  lp_options_init(&o);
  o.sync = sync;
  lp_patcher *p = nullptr;
  const int rc = lp_patcher_open(&o, &p);
  if (rc == 0) g_open = p;
  if (sync == LP_SYNC_MEMBARRIER && !membarrier_sync_core_available()) {
    EXPECT_EQ(rc, LP_ENOTSUP);
    return;
  }
  ASSERT_EQ(rc, 0);
  Counter c;
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_at(p, reinterpret_cast<void *>(&rv_own2), count, &c, &pr), 0);
  lp_stats s0{}, s1{};
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_patcher_stats(p, &s0), 0);
  ASSERT_EQ(lp_commit(p), 0);
  ASSERT_EQ(lp_patcher_stats(p, &s1), 0);
  EXPECT_EQ(s1.syncs - s0.syncs, 3u);
  EXPECT_EQ(rv_own2(1), 7u);
  EXPECT_EQ(c.hits.load(), 1u);
  ASSERT_EQ(lp_probe_disable(pr), 0);
  ASSERT_EQ(lp_commit(p), 0);
  EXPECT_EQ(rv_own2(1), 7u);
  EXPECT_EQ(c.hits.load(), 1u);
  close_patcher(p);
}

TEST(Rv64Live, SyncDefault) { sync_case(LP_SYNC_DEFAULT); }
TEST(Rv64Live, SyncMembarrier) {
  std::printf("membarrier SYNC_CORE %s\n", membarrier_sync_core_available() ? "available" : "unavailable");
  sync_case(LP_SYNC_MEMBARRIER);
}
TEST(Rv64Live, SyncFlushIcache) { sync_case(LP_SYNC_FLUSH_ICACHE); }
TEST(Rv64Live, SyncSignal) { sync_case(LP_SYNC_SIGNAL); }

// Does a pwrite to /proc/self/mem reach code this process then executes? (No
// under qemu-user: its translation cache never sees such writes.)
bool procmem_exec_coherent() {
  const int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  void *m = mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  bool ok = false;
  if (m != MAP_FAILED) {
    uint8_t code[8];
    auto run = [&](int v) {
      lp::riscv64::put32(code, lp::riscv64::enc_addi(10, 0, v));
      lp::riscv64::put32(code + 4, lp::riscv64::enc_jalr(0, 1, 0));
      if (pwrite(fd, code, 8, off_t(reinterpret_cast<uintptr_t>(m))) != 8) return -1;
      syscall(259, 0, 0, 0);
      asm volatile("fence.i" ::: "memory");
      return reinterpret_cast<int (*)()>(m)();
    };
    ok = run(1) == 1 && run(2) == 2;
    munmap(m, 4096);
  }
  close(fd);
  return ok;
}

TEST(Rv64Live, WriterMprotect) {
  lp_patcher *p = open_patcher(LP_SYNC_DEFAULT, LP_WRITER_MPROTECT);
  ASSERT_NE(p, nullptr);
  Counter c;
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_at(p, reinterpret_cast<void *>(&rv_own2), count, &c, &pr), 0);
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_commit(p), 0);
  EXPECT_EQ(rv_own2(2), 12u);
  EXPECT_EQ(c.hits.load(), 1u);
  close_patcher(p);
}

TEST(Rv64Live, WriterProcMem) {
  const bool coherent = procmem_exec_coherent();
  std::printf("/proc/self/mem writes %s instruction fetch\n", coherent ? "reach" : "do NOT reach");
  lp_options o;
  lp_options_init(&o);
  o.writer = LP_WRITER_PROCMEM;
  lp_patcher *p = nullptr;
  const int rc = lp_patcher_open(&o, &p);
  if (rc == 0) g_open = p;
  if (!coherent) {
    EXPECT_EQ(rc, LP_ENOTSUP); // refused at open, not silently ineffective
    if (rc == 0) close_patcher(p);
    return;
  }
  ASSERT_EQ(rc, 0);
  Counter c;
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_at(p, reinterpret_cast<void *>(&rv_own2), count, &c, &pr), 0);
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_commit(p), 0);
  EXPECT_EQ(rv_own2(2), 12u);
  EXPECT_EQ(c.hits.load(), 1u);
  close_patcher(p);
}

// ---- a real illegal instruction is the program's business ----

std::atomic<int> g_prog_sigill{0};
void prog_sigill(int, siginfo_t *si, void *uc_) {
  g_prog_sigill.fetch_add(1);
  auto *uc = static_cast<ucontext_t *>(uc_);
  if (si->si_code == ILL_ILLOPC) uc->uc_mcontext.__gregs[REG_PC] += 4; // skip the 4-byte unimp
}

TEST(Rv64Live, RealUnimpIsChained) {
  struct sigaction sa {}, old{};
  sa.sa_sigaction = prog_sigill;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGILL, &sa, &old), 0);
  lp_patcher *p = open_patcher(LP_SYNC_DEFAULT, LP_WRITER_DEFAULT, LP_PROBE_TRAP);
  Counter c;
  lp_probe *pr = nullptr;
  ASSERT_EQ(lp_probe_at(p, reinterpret_cast<void *>(&rv_sled_g8), count, &c, &pr), 0);
  ASSERT_EQ(lp_probe_enable(pr), 0);
  ASSERT_EQ(lp_commit(p), 0);
  EXPECT_EQ(rv_sled_g8(1), 12u);
  EXPECT_EQ(c.hits.load(), 1u);
  EXPECT_EQ(g_prog_sigill.load(), 0);
  rv_real_unimp();
  EXPECT_EQ(g_prog_sigill.load(), 1);
  lp_stats st{};
  lp_patcher_stats(p, &st);
  EXPECT_GE(st.chained, 1u);
  EXPECT_EQ(c.hits.load(), 1u);
  close_patcher(p);
  sigaction(SIGILL, &old, nullptr);
}

TEST(Rv64Live, RealUnimpKillsWithSigill) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGILL, SIG_DFL);
    lp_patcher *p = nullptr;
    if (lp_patcher_open(nullptr, &p) != 0) _exit(3);
    Counter c;
    lp_probe *pr = nullptr;
    if (lp_probe_at(p, reinterpret_cast<void *>(&rv_sled_g8), count, &c, &pr) != 0) _exit(4);
    lp_probe_enable(pr);
    lp_commit(p);
    rv_real_unimp();
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGILL);
}

// ---- concurrency: callers on 4 threads while the main thread toggles ----

void toggle_case(Fn fn, Fn ref, int sync) {
  lp_patcher *p = open_patcher(sync);
  ASSERT_NE(p, nullptr);
  Counter cj, ct;
  lp_probe *pj = nullptr;
  ASSERT_EQ(lp_probe_at(p, reinterpret_cast<void *>(fn), count, &cj, &pj), 0);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> calls{0}, bad{0};
  std::vector<std::thread> th;
  for (int t = 0; t < 4; ++t)
    th.emplace_back([&, t] {
      uint64_t i = uint64_t(t) << 32;
      while (!stop.load(std::memory_order_relaxed)) {
        if (fn(i) != ref(i)) bad.fetch_add(1);
        ++i;
        calls.fetch_add(1, std::memory_order_relaxed);
      }
    });
  for (int round = 0; round < 60; ++round) {
    ASSERT_EQ(lp_probe_enable(pj), 0);
    ASSERT_EQ(lp_commit(p), 0);
    ASSERT_EQ(lp_probe_disable(pj), 0);
    ASSERT_EQ(lp_commit(p), 0);
    if (round % 10 == 9) { // swap to a fresh probe (new trampoline) at the same site
      ASSERT_EQ(lp_probe_remove(pj), 0);
      ASSERT_EQ(lp_commit(p), 0);
      ASSERT_EQ(lp_probe_at(p, reinterpret_cast<void *>(fn), count, round % 20 == 9 ? &ct : &cj, &pj), 0);
    }
  }
  stop = true;
  for (auto &t : th) t.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_LE(cj.hits.load() + ct.hits.load(), calls.load());
  std::printf("calls %llu hits %llu\n", (unsigned long long)calls.load(),
              (unsigned long long)(cj.hits.load() + ct.hits.load()));
  lp_stats st{};
  lp_patcher_stats(p, &st);
  std::printf("commits %llu syncs %llu traps %llu evacuated %llu\n", (unsigned long long)st.commits,
              (unsigned long long)st.syncs, (unsigned long long)st.traps, (unsigned long long)st.evacuated);
  close_patcher(p);
}

TEST(Rv64Live, ConcurrentToggleOwn) { toggle_case(reinterpret_cast<Fn>(&rv_own2), [](uint64_t x) -> uint64_t { return 5 * x + 2; }, LP_SYNC_DEFAULT); }
TEST(Rv64Live, ConcurrentToggleG8Signal) { toggle_case(rv_sled_g8, [](uint64_t x) -> uint64_t { return x + 11; }, LP_SYNC_SIGNAL); }
TEST(Rv64Live, ConcurrentToggleC8) {
  if (!hart_c()) GTEST_SKIP();
  toggle_case(rv_sled_c8, [](uint64_t x) -> uint64_t { return x + 17; }, LP_SYNC_FLUSH_ICACHE);
}

// ---- evacuation, live: threads parked inside a raw c.nop sled ----

// Puts the raw sled (4 x c.nop) back while no thread runs the function.
void reset_raw_sled(uint8_t *site) {
  const uintptr_t pg = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = uintptr_t(site) & ~(pg - 1);
  ASSERT_EQ(mprotect(reinterpret_cast<void *>(lo), 2 * pg, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
  for (int i = 0; i < 4; ++i) lp::riscv64::put16(site + 2 * i, lp::riscv64::kCNop);
  __builtin___clear_cache(reinterpret_cast<char *>(site), reinterpret_cast<char *>(site + 8));
  ASSERT_EQ(mprotect(reinterpret_cast<void *>(lo), 2 * pg, PROT_READ | PROT_EXEC), 0);
}

// A SIGILL libpatch does not resolve is chained to the handler installed
// before it: this one says where the thread was and what memory held there at
// that moment, then ends the process (a trap executed where memory no longer
// holds one is a thread running bytes the last sync retired).
uint8_t *g_diag_site;
void diagnose_sigill(int, siginfo_t *si, void *ucv) {
  const auto *uc = static_cast<const ucontext_t *>(ucv);
  const uintptr_t pc = uc->uc_mcontext.__gregs[REG_PC];
  char buf[256];
  const uint8_t *m = reinterpret_cast<const uint8_t *>(pc);
  const long off = long(pc - uintptr_t(g_diag_site));
  const int n = std::snprintf(buf, sizeof buf,
                              "diagnose_sigill: unresolved SIGILL (si_code %d) at pc %#lx = site%+ld; memory at pc "
                              "now: %02x %02x %02x %02x; site: %02x%02x %02x%02x %02x%02x %02x%02x\n",
                              si->si_code, (unsigned long)pc, off, m[0], m[1], m[2], m[3], g_diag_site[1],
                              g_diag_site[0], g_diag_site[3], g_diag_site[2], g_diag_site[5], g_diag_site[4],
                              g_diag_site[7], g_diag_site[6]);
  if (n > 0) (void)!write(2, buf, size_t(n));
  _exit(3);
}

// The sled straddles a page boundary after its first c.nop (sleds.S), where
// qemu ends a translation block and can deliver a signal: threads hammering the
// function are caught at +2 by the phase-1 signal round of raw -> jal commits.
// Without evacuation they would resume into the jal's high half.
TEST(Rv64Live, EvacuationFromInsideARawSled) {
  if (!hart_c()) GTEST_SKIP();
  auto *site = reinterpret_cast<uint8_t *>(&rv_sled_split_c);
  ASSERT_EQ(uintptr_t(site + 2) % uintptr_t(sysconf(_SC_PAGESIZE)), 0u) << "the sled must straddle a page";
  g_diag_site = site;
  struct sigaction diag {}, prev_ill {};
  diag.sa_sigaction = diagnose_sigill;
  diag.sa_flags = SA_SIGINFO;
  sigemptyset(&diag.sa_mask);
  ASSERT_EQ(sigaction(SIGILL, &diag, &prev_ill), 0); // before the patcher: it chains to this one
  lp_patcher *p = open_patcher(LP_SYNC_DEFAULT, LP_WRITER_DEFAULT, LP_PROBE_JUMP);
  ASSERT_NE(p, nullptr);
  Counter c;
  std::atomic<bool> stop{false}, pause{false};
  std::atomic<int> paused{0};
  std::atomic<uint64_t> calls{0}, bad{0};
  std::vector<std::thread> th;
  for (int t = 0; t < 4; ++t)
    th.emplace_back([&, t] {
      uint64_t i = uint64_t(t) << 40;
      while (!stop.load(std::memory_order_relaxed)) {
        if (pause.load(std::memory_order_acquire)) {
          paused.fetch_add(1);
          while (pause.load(std::memory_order_acquire)) sched_yield();
          paused.fetch_sub(1);
        }
        for (int k = 0; k < 64; ++k, ++i)
          if (rv_sled_split_c(i) != i + 23) bad.fetch_add(1);
        calls.fetch_add(64, std::memory_order_relaxed);
      }
    });
  uint64_t evacuated = 0;
  int rounds = 0;
  for (; rounds < 300 && (evacuated < 3 || rounds < 5); ++rounds) {
    pause.store(true);
    while (paused.load() != 4) sched_yield();
    reset_raw_sled(site);
    pause.store(false);
    while (paused.load() != 0) sched_yield();
    for (int spin = 0; spin < 100; ++spin) sched_yield(); // let them run into the sled
    lp_probe *pr = nullptr;
    ASSERT_EQ(lp_probe_at(p, site, count, &c, &pr), 0);
    ASSERT_EQ(lp_probe_enable(pr), 0);
    lp_stats s0{}, s1{};
    lp_patcher_stats(p, &s0);
    ASSERT_EQ(lp_commit(p), 0); // raw sled -> jal t0: evacuating
    lp_patcher_stats(p, &s1);
    evacuated += s1.evacuated - s0.evacuated;
    ASSERT_EQ(lp_probe_remove(pr), 0);
    ASSERT_EQ(lp_commit(p), 0);
  }
  stop = true;
  for (auto &t : th) t.join();
  std::printf("rounds %d, calls %llu, hits %llu, threads evacuated from inside the sled: %llu\n", rounds,
              (unsigned long long)calls.load(), (unsigned long long)c.hits.load(), (unsigned long long)evacuated);
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(evacuated, 0u) << "no thread was ever caught inside the sled";
  close_patcher(p);
  sigaction(SIGILL, &prev_ill, nullptr);
}

} // namespace
