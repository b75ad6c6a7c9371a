#include "text_writer.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#include "libpatch/patch.h"
#include "maps.hpp"

namespace lp::linux_platform {

void store_granule(uintptr_t addr, const uint8_t *src, uint32_t granule) {
  // A single volatile access of the granule's width compiles to one store
  // instruction (sb/sh/sw, mov byte/word/dword); memcpy could split it.
  switch (granule) {
  case 1:
    *reinterpret_cast<volatile uint8_t *>(addr) = src[0];
    break;
  case 2: {
    uint16_t v;
    std::memcpy(&v, src, 2);
    *reinterpret_cast<volatile uint16_t *>(addr) = v;
    break;
  }
  default: {
    uint32_t v;
    std::memcpy(&v, src, 4);
    *reinterpret_cast<volatile uint32_t *>(addr) = v;
    break;
  }
  }
}

ProcmemStore procmem_store_plan(KernelCopy k, uintptr_t addr, const uint8_t *src, uint32_t granule,
                                const uint8_t *current) {
  ProcmemStore st;
  if ((granule != 1 && granule != 2 && granule != 4) || (addr & (granule - 1)) != 0) return st;
  if (k == KernelCopy::ByteExact) {
    // A 1-byte copy is one byte store under any memcpy; wider ones are split
    // (x86 memcpy_orig stores 2 bytes as three movb): refused, never issued.
    if (granule != 1) return st;
    st.addr = addr;
    st.len = 1;
    st.bytes[0] = src[0];
    return st;
  }
  if (k == KernelCopy::AlignedWord) {
    // One 32-bit store (twice, the same word) in arm64's memcpy; narrower
    // copies are byte stores (L(copy4)) and never needed: refused.
    if (granule != 4) return st;
    st.addr = addr;
    st.len = 4;
    for (uint32_t i = 0; i < 4; ++i) st.bytes[i] = src[i];
    return st;
  }
  if (!current) return st;
  // CoalignedWord: the aligned word, the store's bytes in their place.
  st.addr = addr & ~uintptr_t(3);
  st.len = 4;
  for (uint32_t i = 0; i < 4; ++i) st.bytes[i] = current[i];
  for (uint32_t i = 0; i < granule; ++i) st.bytes[(addr - st.addr) + i] = src[i];
  return st;
}

namespace {

long page_size() {
  static const long p = sysconf(_SC_PAGESIZE);
  return p;
}

class MprotectWriter final : public TextWriter {
public:
  const char *name() const override { return "mprotect"; }

  int begin(const TextRange *ranges, size_t n) override {
    const uintptr_t ps = uintptr_t(page_size());
    std::vector<uintptr_t> pages;
    for (size_t i = 0; i < n; ++i) {
      if (ranges[i].hi <= ranges[i].lo) continue;
      for (uintptr_t pg = ranges[i].lo & ~(ps - 1); pg < ranges[i].hi; pg += ps)
        if (!is_open(pg)) pages.push_back(pg);
    }
    std::sort(pages.begin(), pages.end());
    pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
    if (pages.empty()) return 0;
    // The pages' protections now (a library may have been unloaded and its
    // range mapped again since the last batch): one read of the maps for all.
    const std::vector<Mapping> maps = read_maps();
    for (uintptr_t pg : pages) {
      auto m = std::find_if(maps.begin(), maps.end(), [&](const Mapping &x) { return pg >= x.lo && pg < x.hi; });
      if (m == maps.end()) return LP_ENOTEXEC;
      prot_[pg] = m->prot();
    }
    return protect_runs(pages, /*open=*/true);
  }

  int write(uintptr_t addr, const uint8_t *src, uint32_t granule) override {
    const uintptr_t page = addr & ~uintptr_t(page_size() - 1);
    if (int rc = open_page(page); rc != 0) return rc;
    store_granule(addr, src, granule);
    return 0;
  }

  int finish() override {
    std::vector<uintptr_t> pages;
    pages.swap(open_);
    std::sort(pages.begin(), pages.end());
    const int rc = protect_runs(pages, /*open=*/false);
    prot_.clear(); // known for one batch only (see begin)
    return rc;
  }

  uint64_t text_mprotects() const override { return mprotects_; }

  ~MprotectWriter() override { finish(); }

private:
  bool is_open(uintptr_t page) const { return std::find(open_.begin(), open_.end(), page) != open_.end(); }

  // A write outside begin()'s ranges: its page alone.
  int open_page(uintptr_t page) {
    if (is_open(page)) return 0;
    if (!prot_.count(page)) {
      auto m = mapping_of(page);
      if (!m) return LP_ENOTEXEC;
      prot_[page] = m->prot();
    }
    return protect_runs({page}, /*open=*/true);
  }

  // Opens (RWX) or restores sorted, distinct `pages`: one mprotect per run of
  // contiguous pages with the same original protection. Opening stops at the
  // first failure (the pages opened so far are in open_, restored by finish);
  // restoring goes on past one and reports it.
  int protect_runs(const std::vector<uintptr_t> &pages, bool open) {
    const uintptr_t ps = uintptr_t(page_size());
    int rc = 0;
    for (size_t i = 0; i < pages.size();) {
      const int prot = prot_[pages[i]];
      size_t j = i + 1;
      while (j < pages.size() && pages[j] == pages[j - 1] + ps && prot_[pages[j]] == prot) ++j;
      const int want = open ? (prot | PROT_READ | PROT_WRITE | PROT_EXEC) : prot;
      ++mprotects_;
      if (mprotect(reinterpret_cast<void *>(pages[i]), (j - i) * ps, want) != 0) {
        rc = LP_EWRITE;
        if (open) return rc;
      } else if (open) {
        open_.insert(open_.end(), pages.begin() + long(i), pages.begin() + long(j));
      }
      i = j;
    }
    return rc;
  }

  // Original protection of the pages of the batch in progress.
  std::unordered_map<uintptr_t, int> prot_;
  std::vector<uintptr_t> open_;
  uint64_t mprotects_ = 0;
};

class ProcMemWriter final : public TextWriter {
public:
  ProcMemWriter(int fd, KernelCopy copy, uint64_t flushes) : fd_(fd), copy_(copy), flushes_(flushes) {}
  ~ProcMemWriter() override { close(fd_); }
  const char *name() const override { return "procmem"; }
  int write(uintptr_t addr, const uint8_t *src, uint32_t granule) override {
    // The store plan (text_writer.hpp): on riscv64 the enclosing aligned word,
    // its other bytes read from the text now (only the engine writes it, one
    // store at a time), so the kernel's memcpy stores it with one sw.
    alignas(4) uint8_t current[4];
    if (copy_ == KernelCopy::CoalignedWord) {
      const uint32_t w = *reinterpret_cast<const volatile uint32_t *>(addr & ~uintptr_t(3));
      std::memcpy(current, &w, 4);
    }
    const ProcmemStore st = procmem_store_plan(copy_, addr, src, granule, current);
    if (st.len == 0) return LP_EINVAL;
    ssize_t n;
    do {
      n = pwrite(fd_, st.bytes, st.len, off_t(st.addr));
    } while (n < 0 && errno == EINTR);
    // copy_to_user_page ran (and flushed every hart's icache on riscv) once the
    // kernel wrote anything.
    if (kProcmemFlushesIcache && n > 0) flushes_.fetch_add(1, std::memory_order_relaxed);
    return n == ssize_t(st.len) ? 0 : LP_EWRITE;
  }
  uint64_t kernel_icache_flushes() const override { return flushes_.load(std::memory_order_relaxed); }

private:
  int fd_;
  KernelCopy copy_;
  std::atomic<uint64_t> flushes_;
};

} // namespace

std::unique_ptr<TextWriter> make_mprotect_writer() { return std::make_unique<MprotectWriter>(); }

#if defined(__riscv) || defined(__aarch64__)
// ---- RISC-V and AArch64 under qemu-user: does a /proc/self/mem write reach
// instruction fetch? ----
// qemu-user passes the pwrite() to the host kernel, which writes guest memory
// behind the back of qemu's translation cache: code already translated keeps
// running its old bytes (measured: qemu-riscv64 and qemu-aarch64 7.2). Probe
// it once on a private page of our own: write `return 1`, run it, write
// `return 2`, run it again; a writer whose second write is not executed is
// refused with LP_ENOTSUP (docs/riscv64.md, docs/aarch64.md). On a real kernel
// the second run returns 2.
// Its pwrite()s count as kernel icache flushes too on riscv64 (*writes).
bool procmem_reaches_fetch(int fd, uint64_t *writes) {
  const long pg = sysconf(_SC_PAGESIZE);
  void *m = mmap(nullptr, size_t(pg), PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return false;
  auto run = [&](uint32_t v) -> long {
#if defined(__riscv)
    const uint32_t code[2] = {(v << 20) | (10u << 7) | 0x13u /* addi a0, x0, v */, 0x00008067u /* ret */};
#else
    const uint32_t code[2] = {0x52800000u | (v << 5) /* movz w0, #v */, 0xd65f03c0u /* ret */};
#endif
    const ssize_t n = pwrite(fd, code, sizeof code, off_t(reinterpret_cast<uintptr_t>(m)));
    if (n > 0 && kProcmemFlushesIcache) ++*writes;
    if (n != ssize_t(sizeof code)) return -1;
#if defined(__riscv)
    syscall(259 /* riscv_flush_icache */, 0, 0, 0);
    asm volatile("fence.i" ::: "memory");
#else
    __builtin___clear_cache(static_cast<char *>(m), static_cast<char *>(m) + sizeof code);
#endif
    return reinterpret_cast<long (*)()>(m)();
  };
  const bool ok = run(1) == 1 && run(2) == 2;
  munmap(m, size_t(pg));
  return ok;
}
#endif

std::unique_ptr<TextWriter> make_procmem_writer(int *err, const ProcmemOptions &opt) {
  const int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (err) *err = LP_ENOTSUP;
    return nullptr;
  }
  uint64_t probe_writes = 0;
#if defined(__riscv) || defined(__aarch64__)
  if (opt.require_fetch_coherence && !procmem_reaches_fetch(fd, &probe_writes)) {
    close(fd);
    if (err) *err = LP_ENOTSUP;
    return nullptr;
  }
#endif
  return std::make_unique<ProcMemWriter>(fd, opt.copy, probe_writes);
}

} // namespace lp::linux_platform
