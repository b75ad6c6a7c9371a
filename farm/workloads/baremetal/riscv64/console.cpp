// Console output through the SBI legacy putchar (OpenSBI 1.1, QEMU 7.2: no DBCN),
// the JSON result line, power-off through the sifive_test device, failure path.
#include "bm.hpp"

namespace bm {
namespace {
uint32_t g_console_lock = 0;
uint32_t g_failing = 0;
} // namespace

void putc(char c) { sbi::putchar(c); }
void puts(const char *s) {
  while (*s) putc(*s++);
}
void put_u64(uint64_t v) {
  char tmp[24];
  int i = 0;
  do {
    tmp[i++] = char('0' + v % 10);
    v /= 10;
  } while (v);
  while (i) putc(tmp[--i]);
}
void put_hex(uint64_t v) {
  puts("0x");
  for (int s = 60; s >= 0; s -= 4) putc("0123456789abcdef"[(v >> s) & 15]);
}
void console_lock() {
  while (__atomic_exchange_n(&g_console_lock, 1u, __ATOMIC_ACQUIRE)) cpu_relax();
}
void console_unlock() { __atomic_store_n(&g_console_lock, 0u, __ATOMIC_RELEASE); }

bool streq(const char *a, const char *b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}

Json::Json() { raw("{"); }
void Json::raw(const char *s) {
  while (*s && n + 1 < sizeof buf) buf[n++] = *s++;
  buf[n] = 0;
}
void Json::key(const char *k) {
  if (!first) raw(",");
  first = false;
  raw("\"");
  raw(k);
  raw("\":");
}
void Json::str(const char *k, const char *v) {
  key(k);
  raw("\"");
  // Escape what JSON requires; our strings are plain ASCII.
  for (; *v; ++v) {
    char c[3] = {*v, 0, 0};
    if (*v == '"' || *v == '\\') c[0] = '\\', c[1] = *v;
    else if ((unsigned char)*v < 0x20) c[0] = '?';
    raw(c);
  }
  raw("\"");
}
void Json::u64(const char *k, uint64_t v) {
  key(k);
  char tmp[24];
  int i = 0;
  do {
    tmp[i++] = char('0' + v % 10);
    v /= 10;
  } while (v);
  char out[24];
  int j = 0;
  while (i) out[j++] = tmp[--i];
  out[j] = 0;
  raw(out);
}
void Json::hex(const char *k, uint64_t v) {
  char out[19] = "0x";
  for (int i = 0; i < 16; ++i) out[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
  out[18] = 0;
  str(k, out);
}
void Json::boolean(const char *k, bool v) {
  key(k);
  raw(v ? "true" : "false");
}
void Json::emit() {
  raw("}");
  console_lock();
  puts(buf);
  putc('\n');
  console_unlock();
}

void power_off(uint32_t code) {
  // sifive_test (qemu virt, 0x100000): 0x5555 = pass (qemu exits 0),
  // (code << 16) | 0x3333 = fail (qemu exits with `code`).
  volatile uint32_t *test = reinterpret_cast<volatile uint32_t *>(0x100000);
  fence_rw_rw();
  *test = code == 0 ? 0x5555u : ((code & 0xffffu) << 16) | 0x3333u;
  for (;;) asm volatile("wfi");
}

uint64_t ms_since(uint64_t t0) {
  const uint64_t tb = g_plat.timebase ? g_plat.timebase : 10000000;
  return (rdtime() - t0) * 1000 / tb;
}

void fail(int code, const char *reason, uint64_t a, uint64_t b, uint64_t c) {
  BM_CSR_CLEAR(sstatus, kSstatusSie);
  if (__atomic_exchange_n(&g_failing, 1u, __ATOMIC_ACQ_REL)) {
    for (;;) asm volatile("wfi"); // somebody else is already reporting
  }
  const HartData *hd = this_hart();
  // Another hart may hold the console lock forever if it failed mid-print; do not wait long.
  for (int i = 0; i < 1000000 && __atomic_load_n(&g_console_lock, __ATOMIC_RELAXED); ++i) cpu_relax();
  __atomic_store_n(&g_console_lock, 0u, __ATOMIC_RELAXED);
  console_lock();
  puts("bm: FAIL hart ");
  put_u64(hd->hartid);
  puts(": ");
  puts(reason);
  puts(" [");
  put_hex(a);
  puts(" ");
  put_hex(b);
  puts(" ");
  put_hex(c);
  puts("]\n");
  console_unlock();
  Json j;
  j.str("workload", "baremetal");
  j.str("isa", BM_ISA);
  j.str("sync", sync_mode_name(g_plat.mode));
  j.u64("hart", hd->hartid);
  j.u64("code", uint64_t(code));
  j.str("reason", reason);
  j.hex("a", a);
  j.hex("b", b);
  j.hex("c", c);
  j.str("verdict", "fail");
  j.emit();
  power_off(uint32_t(code));
}

} // namespace bm
