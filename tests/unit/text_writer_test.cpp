// The text writers (libpatch/platform/linux/text_writer.hpp): the /proc/self/mem
// store plan for every granule and alignment (a pure function: the one the
// writer and torn-fetch use), and both writers producing exactly the engine's
// bytes in real text, read back directly and through /proc/self/mem.
//
// Where this runs: natively on x86-64 (the procmem writer, 1-byte granule, the
// host kernel). In the riscv64 builds under qemu-user the procmem writer is
// refused at open (LP_ENOTSUP: its writes never reach qemu's translated code),
// which the test checks; the riscv64 writer code itself (the aligned-word plan,
// the icache-flush counter) is still run on text that is only read back, with
// the fetch-coherence check skipped (ProcmemOptions::require_fetch_coherence),
// the pwrite served by the x86-64 host kernel. Whether Linux 6.1's riscv memcpy
// really stores the word with one sw is a property of the guest kernel: see
// docs/riscv64.md (Writers) for what a test inside a riscv64 guest checks.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#include "libpatch/patch.h"
#include "platform/linux/text_writer.hpp"

using namespace lp::linux_platform;

namespace {

const uint8_t kCur[4] = {0x11, 0x22, 0x33, 0x44};
const uint8_t kSrc[4] = {0xa0, 0xa1, 0xa2, 0xa3};

std::vector<uint8_t> bytes(const ProcmemStore &s) { return std::vector<uint8_t>(s.bytes, s.bytes + s.len); }

} // namespace

// ---- the store plan ----

TEST(ProcmemPlan, TwoByteAtAFourAlignedAddressIsTheWholeWord) {
  const ProcmemStore s = procmem_store_plan(KernelCopy::CoalignedWord, 0x10000, kSrc, 2, kCur);
  EXPECT_EQ(s.addr, 0x10000u);
  ASSERT_EQ(s.len, 4u);
  EXPECT_EQ(bytes(s), (std::vector<uint8_t>{0xa0, 0xa1, 0x33, 0x44}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s.bytes) % 4, 0u); // the user buffer is 4-aligned too
}

TEST(ProcmemPlan, TwoByteAtTwoModFourWritesTheEnclosingWord) {
  const ProcmemStore s = procmem_store_plan(KernelCopy::CoalignedWord, 0x10006, kSrc, 2, kCur);
  EXPECT_EQ(s.addr, 0x10004u);
  ASSERT_EQ(s.len, 4u);
  EXPECT_EQ(bytes(s), (std::vector<uint8_t>{0x11, 0x22, 0xa0, 0xa1}));
}

TEST(ProcmemPlan, FourByteIsItself) {
  const ProcmemStore s = procmem_store_plan(KernelCopy::CoalignedWord, 0x10008, kSrc, 4, kCur);
  EXPECT_EQ(s.addr, 0x10008u);
  ASSERT_EQ(s.len, 4u);
  EXPECT_EQ(bytes(s), (std::vector<uint8_t>(kSrc, kSrc + 4)));
}

TEST(ProcmemPlan, OneByteOnRiscvIsTheWordAtEveryOffset) {
  for (uint32_t off = 0; off < 4; ++off) {
    const ProcmemStore s = procmem_store_plan(KernelCopy::CoalignedWord, 0x10000 + off, kSrc, 1, kCur);
    EXPECT_EQ(s.addr, 0x10000u) << off;
    ASSERT_EQ(s.len, 4u) << off;
    std::vector<uint8_t> want(kCur, kCur + 4);
    want[off] = 0xa0;
    EXPECT_EQ(bytes(s), want) << off;
  }
}

TEST(ProcmemPlan, OneByteOnX86PassesThrough) {
  for (uint32_t off = 0; off < 4; ++off) {
    const ProcmemStore s = procmem_store_plan(KernelCopy::ByteExact, 0x401000 + off, kSrc, 1, nullptr);
    EXPECT_EQ(s.addr, 0x401000u + off);
    ASSERT_EQ(s.len, 1u);
    EXPECT_EQ(s.bytes[0], 0xa0);
  }
}

TEST(ProcmemPlan, RefusesWhatTheKernelWouldSplitOrTheEngineNeverIssues) {
  // x86 memcpy_orig stores 2 bytes as three movb: never issued, refused.
  EXPECT_EQ(procmem_store_plan(KernelCopy::ByteExact, 0x401000, kSrc, 2, kCur).len, 0u);
  EXPECT_EQ(procmem_store_plan(KernelCopy::ByteExact, 0x401000, kSrc, 4, kCur).len, 0u);
  // Not naturally aligned, or not a 1/2/4-byte granule.
  EXPECT_EQ(procmem_store_plan(KernelCopy::CoalignedWord, 0x10001, kSrc, 2, kCur).len, 0u);
  EXPECT_EQ(procmem_store_plan(KernelCopy::CoalignedWord, 0x10002, kSrc, 4, kCur).len, 0u);
  EXPECT_EQ(procmem_store_plan(KernelCopy::CoalignedWord, 0x10000, kSrc, 3, kCur).len, 0u);
  EXPECT_EQ(procmem_store_plan(KernelCopy::CoalignedWord, 0x10000, kSrc, 8, kCur).len, 0u);
  EXPECT_EQ(procmem_store_plan(KernelCopy::CoalignedWord, 0x10000, kSrc, 0, kCur).len, 0u);
  // The word plan needs the text's current bytes.
  EXPECT_EQ(procmem_store_plan(KernelCopy::CoalignedWord, 0x10000, kSrc, 2, nullptr).len, 0u);
}

TEST(ProcmemPlan, EachIsaUsesItsPlan) {
#if defined(__riscv)
  EXPECT_EQ(kHostKernelCopy, KernelCopy::CoalignedWord);
  EXPECT_TRUE(kProcmemFlushesIcache);
#elif defined(__aarch64__)
  EXPECT_EQ(kHostKernelCopy, KernelCopy::AlignedWord);
  EXPECT_FALSE(kProcmemFlushesIcache);
#else
  EXPECT_EQ(kHostKernelCopy, KernelCopy::ByteExact);
  EXPECT_FALSE(kProcmemFlushesIcache);
#endif
  EXPECT_EQ(procmem_kernel_copy(ProcmemIsa::Riscv64), KernelCopy::CoalignedWord);
  EXPECT_EQ(procmem_kernel_copy(ProcmemIsa::X86_64), KernelCopy::ByteExact);
  EXPECT_EQ(procmem_kernel_copy(ProcmemIsa::Aarch64), KernelCopy::AlignedWord);
}

// aarch64: an aligned word passes through as it is (arm64 memcpy stores it
// with 32-bit stores); anything else is refused, never issued.
TEST(ProcmemPlan, AlignedWordPassesOnlyAlignedWords) {
  static const uint8_t kSrc[4] = {0x1f, 0x20, 0x03, 0xd5};
  const ProcmemStore st = procmem_store_plan(KernelCopy::AlignedWord, 0x10004, kSrc, 4, nullptr);
  ASSERT_EQ(st.len, 4u);
  EXPECT_EQ(st.addr, 0x10004u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(st.bytes[i], kSrc[i]);
  EXPECT_EQ(procmem_store_plan(KernelCopy::AlignedWord, 0x10002, kSrc, 4, nullptr).len, 0u) << "misaligned";
  EXPECT_EQ(procmem_store_plan(KernelCopy::AlignedWord, 0x10000, kSrc, 2, nullptr).len, 0u) << "a halfword";
  EXPECT_EQ(procmem_store_plan(KernelCopy::AlignedWord, 0x10000, kSrc, 1, nullptr).len, 0u) << "a byte";
}

// ---- the writers on real text ----

namespace {

// Two pages of R-X text holding a known pattern (written before it became R-X).
struct Text {
  Text() {
    pg = size_t(sysconf(_SC_PAGESIZE));
    void *m = mmap(nullptr, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return;
    p = static_cast<uint8_t *>(m);
    for (size_t i = 0; i < 2 * pg; ++i) p[i] = uint8_t(i * 7 + 1);
    model.assign(p, p + 2 * pg);
    if (mprotect(p, 2 * pg, PROT_READ | PROT_EXEC) != 0) p = nullptr;
  }
  ~Text() {
    if (p) munmap(p, 2 * pg);
  }
  uintptr_t at(size_t off) const { return reinterpret_cast<uintptr_t>(p) + off; }
  // The text as the process sees it, and as the kernel reads it back.
  std::vector<uint8_t> direct() const { return std::vector<uint8_t>(p, p + 2 * pg); }
  std::vector<uint8_t> via_procmem() const {
    std::vector<uint8_t> v(2 * pg);
    const int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || pread(fd, v.data(), v.size(), off_t(at(0))) != ssize_t(v.size())) v.clear();
    if (fd >= 0) close(fd);
    return v;
  }
  size_t pg = 0;
  uint8_t *p = nullptr;
  std::vector<uint8_t> model; // what the text must hold
};

// Every granule at every aligned offset of a word, in the middle of a page and
// at the last word of the first page; only the engine's bytes may change.
void exercise(TextWriter &w, Text &t, const std::vector<uint32_t> &granules, uint64_t *writes) {
  for (size_t base : {size_t(64), t.pg - 4})
    for (uint32_t g : granules)
      for (uint32_t off = 0; off < 4; off += g) {
        const size_t o = base + off;
        uint8_t src[4];
        for (uint32_t i = 0; i < g; ++i) src[i] = uint8_t(0xc0 + 16 * g + off + i);
        ASSERT_EQ(w.write(t.at(o), src, g), 0) << w.name() << " g=" << g << " +" << o;
        ++*writes;
        for (uint32_t i = 0; i < g; ++i) t.model[o + i] = src[i];
        ASSERT_EQ(w.finish(), 0);
        ASSERT_EQ(t.direct(), t.model) << w.name() << " g=" << g << " +" << o;
      }
  const std::vector<uint8_t> back = t.via_procmem();
  ASSERT_FALSE(back.empty()) << "pread(/proc/self/mem)";
  EXPECT_EQ(back, t.model) << w.name();
}

} // namespace

TEST(TextWriters, MprotectWritesExactlyTheEngineBytes) {
  Text t;
  ASSERT_NE(t.p, nullptr);
  auto w = make_mprotect_writer();
  uint64_t writes = 0;
  exercise(*w, t, {1, 2, 4}, &writes);
  EXPECT_EQ(w->kernel_icache_flushes(), 0u);
}

namespace {

// "rwxp"-style permissions of the mapping holding `a`, from /proc/self/maps.
std::string perms_at(uintptr_t a) {
  FILE *f = std::fopen("/proc/self/maps", "r");
  if (!f) return "?";
  char line[512];
  std::string out = "unmapped";
  while (std::fgets(line, sizeof line, f)) {
    unsigned long lo = 0, hi = 0;
    char perms[8] = {};
    if (std::sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && a >= lo && a < hi) out = std::string(perms, 3);
  }
  std::fclose(f);
  return out;
}

} // namespace

// One write window per batch: begin() opens every page of the batch with one
// mprotect per run of contiguous pages, writes add none, finish() restores
// with one per run; a write outside begin()'s ranges opens its own page.
TEST(TextWriters, MprotectOneWindowPerBatch) {
  const size_t pg = size_t(sysconf(_SC_PAGESIZE));
  void *m = mmap(nullptr, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  auto *p = static_cast<uint8_t *>(m);
  std::memset(p, 0x13, 4 * pg);
  ASSERT_EQ(mprotect(p, 4 * pg, PROT_READ | PROT_EXEC), 0);
  const auto at = [&](size_t off) { return reinterpret_cast<uintptr_t>(p) + off; };
  auto w = make_mprotect_writer();
  EXPECT_EQ(w->begin(nullptr, 0), 0);
  EXPECT_EQ(w->text_mprotects(), 0u);
  // Pages 0-1 (one site straddling them) and page 3: two runs.
  const TextRange r[] = {{at(pg - 2), at(pg + 2)}, {at(3 * pg + 8), at(3 * pg + 12)}, {at(100), at(104)}};
  ASSERT_EQ(w->begin(r, 3), 0);
  EXPECT_EQ(w->text_mprotects(), 2u);
  EXPECT_EQ(perms_at(at(0)), "rwx");
  EXPECT_EQ(perms_at(at(pg)), "rwx");
  EXPECT_EQ(perms_at(at(2 * pg)), "r-x");
  EXPECT_EQ(perms_at(at(3 * pg)), "rwx");
  const uint8_t b2[2] = {0xaa, 0xbb};
  ASSERT_EQ(w->write(at(pg - 2), b2, 2), 0);
  ASSERT_EQ(w->write(at(pg), b2, 2), 0);
  ASSERT_EQ(w->write(at(3 * pg + 8), b2, 2), 0);
  EXPECT_EQ(w->text_mprotects(), 2u); // no mprotect per write or per phase
  ASSERT_EQ(w->write(at(2 * pg + 4), b2, 2), 0); // outside the ranges: its own page
  EXPECT_EQ(w->text_mprotects(), 3u);
  ASSERT_EQ(w->finish(), 0);
  EXPECT_EQ(w->text_mprotects(), 4u); // pages 0-3 are one run now
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(perms_at(at(i * pg)), "r-x") << "page " << i;
  EXPECT_EQ(p[pg - 2], 0xaa);
  EXPECT_EQ(p[pg + 1], 0xbb);
  EXPECT_EQ(p[2 * pg + 4], 0xaa);
  EXPECT_EQ(p[3 * pg + 9], 0xbb);
  EXPECT_EQ(p[3 * pg + 10], 0x13);
  EXPECT_EQ(w->finish(), 0); // nothing open: nothing to do
  EXPECT_EQ(w->text_mprotects(), 4u);
  ASSERT_EQ(munmap(p, 4 * pg), 0);
  // Text that is not mapped (a page this writer never saw) is named, and
  // nothing was opened.
  void *g = mmap(nullptr, pg, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(g, MAP_FAILED);
  ASSERT_EQ(munmap(g, pg), 0);
  const uintptr_t ga = reinterpret_cast<uintptr_t>(g);
  const TextRange gone[] = {{ga, ga + 4}};
  EXPECT_EQ(w->begin(gone, 1), LP_ENOTEXEC);
  EXPECT_EQ(w->finish(), 0);
  EXPECT_EQ(w->text_mprotects(), 4u);
}

TEST(TextWriters, ProcmemOpensNativelyAndIsRefusedUnderQemuUser) {
  int err = 0;
  auto w = make_procmem_writer(&err);
#if defined(__riscv) || defined(__aarch64__)
  if (!w) {
    // qemu-user (docs/riscv64.md, docs/aarch64.md): refused, not silently ineffective.
    EXPECT_EQ(err, LP_ENOTSUP);
    std::printf("procmem writer refused (LP_ENOTSUP): its writes do not reach instruction fetch here\n");
    return;
  }
#endif
#if defined(__riscv)
  // A real riscv64 kernel: the open-time probe's two pwrites already cost flushes.
  EXPECT_EQ(w->kernel_icache_flushes(), 2u);
#elif defined(__aarch64__)
  EXPECT_EQ(w->kernel_icache_flushes(), 0u); // the kernel's maintenance is by VA, no IPI
#else
  ASSERT_NE(w, nullptr) << err;
  EXPECT_EQ(w->kernel_icache_flushes(), 0u);
#endif
  Text t;
  ASSERT_NE(t.p, nullptr);
  const uint64_t before = w->kernel_icache_flushes();
  uint64_t writes = 0;
  // The engine's granules: 1 on x86-64 (and harts without C), 2 on harts with C.
#if defined(__riscv)
  exercise(*w, t, {1, 2, 4}, &writes);
#elif defined(__aarch64__)
  exercise(*w, t, {4}, &writes);
  // arm64's memcpy stores fewer than 4 bytes byte by byte: refused.
  const uint8_t two[2] = {1, 2};
  EXPECT_EQ(w->write(t.at(128), two, 2), LP_EINVAL);
  EXPECT_EQ(t.direct(), t.model);
#else
  exercise(*w, t, {1}, &writes);
  // x86-64 refuses a store its kernel memcpy would split.
  const uint8_t two[2] = {1, 2};
  EXPECT_EQ(w->write(t.at(128), two, 2), LP_EINVAL);
  EXPECT_EQ(t.direct(), t.model);
#endif
  EXPECT_EQ(w->kernel_icache_flushes() - before, kProcmemFlushesIcache ? writes : 0u);
}

// The word plan through a real pwrite, on any kernel (under qemu-user the host's):
// the neighbouring bytes come back unchanged, one write (and, on riscv64, one
// counted icache flush) per engine store.
TEST(TextWriters, ProcmemWordPlanLeavesTheNeighboursIntact) {
  ProcmemOptions o;
  o.copy = KernelCopy::CoalignedWord;
  o.require_fetch_coherence = false; // read back only, never executed
  int err = 0;
  auto w = make_procmem_writer(&err, o);
  ASSERT_NE(w, nullptr) << err;
  EXPECT_STREQ(w->name(), "procmem");
  Text t;
  ASSERT_NE(t.p, nullptr);
  uint64_t writes = 0;
  exercise(*w, t, {1, 2, 4}, &writes);
  EXPECT_EQ(w->kernel_icache_flushes(), kProcmemFlushesIcache ? writes : 0u);
  // Misaligned engine stores are refused and write nothing.
  const uint8_t two[2] = {1, 2};
  EXPECT_EQ(w->write(t.at(129), two, 2), LP_EINVAL);
  EXPECT_EQ(t.direct(), t.model);
}

TEST(TextWriters, ProcmemBytePlanPassesOneByteThrough) {
  ProcmemOptions o;
  o.copy = KernelCopy::ByteExact;
  o.require_fetch_coherence = false;
  int err = 0;
  auto w = make_procmem_writer(&err, o);
  ASSERT_NE(w, nullptr) << err;
  Text t;
  ASSERT_NE(t.p, nullptr);
  uint64_t writes = 0;
  exercise(*w, t, {1}, &writes);
  EXPECT_EQ(w->kernel_icache_flushes(), kProcmemFlushesIcache ? writes : 0u);
}
