// The hart-WITHOUT-C path, live: a freestanding (no libc: Debian's riscv64
// libc is rv64gc code) rv64g program run as `QEMU_CPU=rv64,c=false
// qemu-riscv64`, so the emulated hart really has no C extension. It checks:
//   * AT_HWCAP has no 'C' (what hwprobe.cpp falls back to under qemu-user);
//   * the 1-byte trap (0x00 over the low byte of a nop) raises SIGILL with
//     si_code ILL_ILLOPC at the site;
//   * the bytes that are NOT a trap on a C hart (jal t0 with its low byte
//     zeroed = c.addi4spn there) do trap on this hart;
//   * the real protocol engine with granule 1 moves a live 2 x nop sled to
//     `j .+8`, to `jal t0, stub` and to the trap form and back, every state
//     executing correctly, and each trap taken mid-batch resolves.
// Prints "nonc-live: PASS" and exits 0, or exits with the failing check's number.
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ucontext.h>

#include "encoding.hpp"
#include "engine/protocol.hpp"

namespace rv = lp::riscv64;

extern "C" {
// What the compiler may call in freestanding code.
void *memcpy(void *d, const void *s, size_t n) {
  auto *a = static_cast<uint8_t *>(d);
  auto *b = static_cast<const uint8_t *>(s);
  for (size_t i = 0; i < n; ++i) a[i] = b[i];
  return d;
}
void *memset(void *d, int c, size_t n) {
  auto *a = static_cast<uint8_t *>(d);
  for (size_t i = 0; i < n; ++i) a[i] = uint8_t(c);
  return d;
}
}

namespace {

long sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  register long a0 asm("a0") = a;
  register long a1 asm("a1") = b;
  register long a2 asm("a2") = c;
  register long a3 asm("a3") = d;
  register long a4 asm("a4") = e;
  register long a5 asm("a5") = f;
  register long a7 asm("a7") = n;
  asm volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5), "r"(a7) : "memory");
  return a0;
}
constexpr long kWrite = 64, kExit = 93, kSigaction = 134, kMmap = 222;

void say(const char *s) {
  size_t n = 0;
  while (s[n]) ++n;
  sys(kWrite, 1, long(s), long(n));
}
[[noreturn]] void fail(int check) {
  say("nonc-live: FAIL\n");
  sys(kExit, check);
  __builtin_unreachable();
}

volatile int g_traps = 0;
volatile long g_code = 0;
volatile uintptr_t g_pc = 0;
volatile uintptr_t g_resume = 0; // 0: skip the 4-byte instruction; else resume there

void on_sigill(int, siginfo_t *si, void *ucv) {
  auto *uc = static_cast<ucontext_t *>(ucv);
  g_traps = g_traps + 1;
  g_code = si->si_code;
  g_pc = uc->uc_mcontext.__gregs[REG_PC];
  uc->uc_mcontext.__gregs[REG_PC] = g_resume ? g_resume : g_pc + 4;
}

struct KSigaction {
  void (*handler)(int, siginfo_t *, void *);
  unsigned long flags;
  unsigned long mask;
};

uint8_t *g_page; // RWX: [0, 64) the function, [512, ...) the stub "trampoline"
volatile int g_stub_calls = 0;

void fence_i() { asm volatile("fence.i" ::: "memory"); }
using Fn = long (*)(long);

long call_site() { return reinterpret_cast<Fn>(g_page)(5); }

int op_write(void *, uintptr_t addr, const uint8_t *src, uint32_t g) {
  if (g != 1) return -1;
  *reinterpret_cast<volatile uint8_t *>(addr) = *src; // one sb
  fence_i();
  // Mid-batch, a thread arriving now must see old, trap or new: run it.
  g_resume = uintptr_t(g_page) + 8; // a trap at the head resumes at the sled's end
  const long r = call_site();
  g_resume = 0;
  return r == 5 + 11 ? 0 : -2;
}
int op_sync(void *, lp::engine::SyncPoint, bool) {
  fence_i();
  return 0;
}

// site: [0,8) sled, then `addi a0, a0, 11; ret`. stub at 512: counts nothing
// (it can't touch memory without a data pointer), returns to site + 8:
// `addi a0, a0, 0; jalr x0, 4(t0)` (jal t0 links site + 4; +4 = the sled's end).
void build() {
  rv::fill_nops(g_page, 8, rv::Ilen::G32);
  rv::put32(g_page + 8, rv::enc_addi(10, 10, 11));
  rv::put32(g_page + 12, rv::enc_jalr(0, 1, 0));
  rv::put32(g_page + 512, rv::enc_addi(10, 10, 0));
  rv::put32(g_page + 516, rv::enc_jalr(0, rv::kT0, 4));
  fence_i();
}

bool move(const uint8_t *from, const uint8_t *to) {
  lp::engine::Transition t;
  rv::make_site_transition(uintptr_t(g_page), 8, rv::Ilen::G32, false, from, to, &t);
  lp::engine::EngineOps ops;
  ops.granule = rv::granule(false);
  ops.write = op_write;
  ops.sync = op_sync;
  return lp::engine::run_batch(ops, &t, 1, nullptr) == lp::engine::EngineError::Ok;
}

} // namespace

extern "C" [[noreturn]] void nonc_main(uintptr_t *sp) {
  // auxv after argc, argv[], NULL, envp[], NULL.
  uintptr_t *p = sp + 1 + sp[0] + 1;
  while (*p) ++p;
  uint64_t hwcap = 0;
  for (++p; p[0]; p += 2)
    if (p[0] == 16 /* AT_HWCAP */) hwcap = p[1];
  if (hwcap == 0 || (hwcap & (1u << ('C' - 'A')))) fail(1); // run with QEMU_CPU=rv64,c=false

  KSigaction sa{on_sigill, SA_SIGINFO, 0};
  if (sys(kSigaction, SIGILL, long(&sa), 0, 8) != 0) fail(2);
  const long m = sys(kMmap, 0, 4096, 7 /* RWX */, 0x22 /* MAP_PRIVATE|ANON */, -1, 0);
  if (m < 0 && m > -4096) fail(3);
  g_page = reinterpret_cast<uint8_t *>(m);

  // 1-byte trap over a nop: SIGILL / ILL_ILLOPC at the site.
  build();
  if (call_site() != 16) fail(4);
  g_page[0] = 0x00;
  fence_i();
  g_resume = uintptr_t(g_page) + 8;
  if (call_site() != 16 || g_traps != 1 || g_code != ILL_ILLOPC || g_pc != uintptr_t(g_page)) fail(5);
  g_resume = 0;

  // jal t0 with its low byte zeroed: c.addi4spn on a C hart, a trap here.
  build();
  rv::put32(g_page, rv::enc_jal(rv::kT0, 0x400));
  g_page[0] = 0;
  fence_i();
  g_resume = uintptr_t(g_page) + 8;
  if (call_site() != 16 || g_traps != 2 || g_code != ILL_ILLOPC) fail(6);
  g_resume = 0;

  // The protocol, live, granule 1: raw -> jal -> skip -> trap -> jal -> skip.
  build();
  uint8_t raw[8], skip[8], jal[8], trap[8];
  rv::fill_nops(raw, 8, rv::Ilen::G32);
  rv::encode_skip(8, rv::Ilen::G32, skip);
  if (rv::encode_entry_call(uintptr_t(g_page), uintptr_t(g_page) + 512, 8, rv::Ilen::G32, jal) != rv::CallError::Ok)
    fail(7);
  for (int i = 0; i < 8; ++i) trap[i] = skip[i];
  rv::trap_bytes(false, trap);
  if (rv::trap_len(false) != 1 || trap[0] != 0 || trap[1] != skip[1]) fail(8);
  const uint8_t *seq[] = {raw, jal, skip, trap, jal, skip};
  for (int i = 0; i + 1 < 6; ++i) {
    if (!move(seq[i], seq[i + 1])) fail(10 + i);
    for (int b = 0; b < 8; ++b)
      if (g_page[b] != seq[i + 1][b]) fail(20 + i);
    g_resume = uintptr_t(g_page) + 8;
    if (call_site() != 16) fail(30 + i);
    g_resume = 0;
  }
  if (g_traps < 4) fail(40); // the batches' traps were taken and resolved
  say("nonc-live: PASS (hart without C: 1-byte trap, granule 1)\n");
  sys(kExit, 0);
  __builtin_unreachable();
}

asm(R"(
        .text
        .globl _start
        .type _start, @function
_start:
        .option push
        .option norelax
        la gp, __global_pointer$
        .option pop
        mv a0, sp
        andi sp, sp, -16
        call nonc_main
)");
