// How bytes reach the text. The engine issues one naturally aligned store of
// `granule` bytes per call; a writer must turn that into ONE store the other
// cores observe atomically (the protocol's safety depends on it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace lp::linux_platform {

struct TextRange {
  uintptr_t lo = 0, hi = 0; // [lo, hi)
};

// A batch is one write window: begin() (optional) with every range the batch
// may store to, then the engine's writes and its three syncs, then finish()
// once, after the last sync (or after a rollback). The writes a sync must
// publish are plain stores (mprotect) or completed pwrite()s (procmem) before
// the sync's system call, so no writer needs to act at each sync.
class TextWriter {
public:
  virtual ~TextWriter() = default;
  virtual const char *name() const = 0;
  // Prepares the batch's text (the mprotect writer opens every page of it at
  // once). 0 or LP_E*; on failure the caller still calls finish().
  virtual int begin(const TextRange *ranges, size_t n) {
    (void)ranges;
    (void)n;
    return 0;
  }
  // Returns 0 or a negative LP_E* code.
  virtual int write(uintptr_t addr, const uint8_t *src, uint32_t granule) = 0;
  // Ends the write window. 0 or LP_E*.
  virtual int finish() { return 0; }
  // Icache flushes of every hart running this process that the kernel performed
  // on this writer's behalf (lp_stats.kernel_icache_flushes): one per
  // /proc/self/mem write on riscv64, none for mprotect or on x86-64.
  virtual uint64_t kernel_icache_flushes() const { return 0; }
  // mprotect() calls on the text (lp_stats.text_mprotects): the mprotect writer's.
  virtual uint64_t text_mprotects() const { return 0; }
};

// Makes the batch's pages RWX (never RW: other threads are executing them) from
// begin() to finish(), stores directly, and restores each page's protection at
// finish(). One mprotect per run of contiguous pages each way, per batch: every
// mprotect of a multi-threaded process is a TLB shootdown (an IPI, or an SBI
// remote sfence.vma, to every other core running it), which on the rv64gc
// Linux guest under TCG (4 harts on 2 host cores) costs ~13 ms when the other
// harts are busy (bash bench/kernel-costs/run.sh). The window used to be one protocol phase (six mprotects
// per page per batch); a batch-long window keeps W^X broken for the batch's
// three syncs instead of one: the same pages, the same process, no new reader.
// A write outside begin()'s ranges opens its page on the spot.
std::unique_ptr<TextWriter> make_mprotect_writer();

// ---- The /proc/self/mem writer's store plan ---------------------------------
//
// A pwrite() to /proc/self/mem does not store our bytes with our store: the
// kernel copies them with its own memcpy. Read from Linux 6.1 (Debian
// linux-source-6.1, 6.1.192):
//   fs/proc/base.c mem_rw() (876-931): copy_from_user() of the user buffer into a
//     kernel page from __get_free_page() (888, 903), then access_remote_vm(mm,
//     addr, page, len) (908): the kernel-side SOURCE is that page's start, page
//     aligned, whatever the user buffer's alignment.
//   mm/memory.c __access_remote_vm() (5744-5752): per target page,
//     copy_to_user_page(vma, page, addr, maddr + offset, buf, bytes), offset =
//     addr & (PAGE_SIZE-1): the DESTINATION has addr's alignment.
//   include/asm-generic/cacheflush.h copy_to_user_page (107-113): memcpy(dst, src,
//     len) then flush_icache_user_page(); riscv defines the latter as
//     flush_icache_mm(vma->vm_mm, 0) (arch/riscv/include/asm/cacheflush.h 25-26):
//     a fence.i here and on every other hart running the mm (SBI remote fence.i or
//     IPIs, arch/riscv/mm/cacheflush.c 39-77), for every write. On x86-64 it is
//     the empty generic one (asm-generic/cacheflush.h 87-92).
//   arch/riscv/lib/memcpy.S: below 128 bytes (15-16) straight to the tail (81-107):
//     "word-oriented copy if co-aligned" (86-90: source, destination AND source
//     end all 4-aligned -> 91-96, one lw/sw per 4 bytes), else one lb/sb PER BYTE
//     (100-105).
// So the engine's 2-byte store of a c.unimp trap or of a 2-byte head, handed to
// pwrite() as it is, becomes TWO byte stores on riscv (the source end, page + 2,
// is not 4-aligned): a hart fetching in between sees half an old and half a new
// parcel, exactly the 1-byte-atomicity state torn-fetch shows is unsafe on a hart
// with C (tools/torn-fetch: writer procmem-linux-6.1-naive).
//
// What the writer does instead (KernelCopy::CoalignedWord, riscv64): it writes
// the whole naturally aligned 4-byte word enclosing the store, the engine's
// bytes in their place and the word's other bytes re-written with the values the
// text holds now. Destination (the word's address) 4-aligned, source (the kernel
// page) 4-aligned, length 4 so the source end is 4-aligned: memcpy.S takes the
// word loop (87-90 fall through to 91-96) and stores it with ONE sw: the only
// bytes that change, the engine's, change together. A 4-aligned word never
// crosses a page, so __access_remote_vm issues one copy_to_user_page for it.
// The invariant that makes re-writing the other bytes harmless: nothing but the
// engine writes this text (protocol.hpp: "only this engine writes it"; one
// patcher per process, every commit under its mutex, its stores issued one after
// the other), so the values read just before the pwrite are the values the
// kernel's sw puts back: those bytes never change, for any fetching hart. The
// text is readable (the engine itself reads it with plain loads).
// What breaks without it: every 2-byte granule (all trap and head stores on a
// hart with C) tears. What would break it: a kernel whose memcpy does something
// else for a co-aligned 4-byte copy (byte or halfword stores: the torn states
// come back), or one that copies from an unaligned bounce buffer; re-check
// memcpy.S and mem_rw() when moving beyond 6.1. A granule-1 write (harts without
// C) stays safe under any memcpy: only one byte of the word differs. torn-fetch's
// `procmem` rows run this function through a model of that memcpy (torn-free
// wherever mprotect is); tests/unit/text_writer_test.cpp checks its bytes.
//
// x86-64 (KernelCopy::ByteExact): the engine's granule is 1, and a 1-byte copy is
// one byte store under every kernel memcpy variant (arch/x86/lib/memcpy_64.S
// 6.1: `rep movsb` with ERMS/REP_GOOD 39-41/56, memcpy_orig's movb 174-181; and
// no memcpy writes outside [dst, dst+len)). A byte store cannot tear, so x86
// passes the store through unchanged; widening would not help there (a 4-byte
// copy is `rep movsb`, four byte stores, on ERMS machines) and is never needed.
//
// aarch64 (KernelCopy::AlignedWord): the engine's granule is 4 (one A64
// instruction). copy_to_user_page (arch/arm64/mm/flush.c 43-49) is memcpy()
// then flush_ptrace_access(), which cleans the D-cache and invalidates the
// I-cache to the point of unification for a VM_EXEC mapping (the same
// maintenance aarch64/cache.hpp does). arch/arm64/lib/memcpy.S (6.1) copies 4..7
// bytes at L(copy8) (88-94) as `ldr A_lw, [src]; ldr B_lw, [srcend, -4]; str
// A_lw, [dstin]; str B_lw, [dstend, -4]`: for an aligned 4-byte copy, two
// 32-bit stores of the SAME new word to the same aligned address, each
// single-copy atomic. A fetching core sees the old word or the new one, never
// a mix, so the store passes through as it is.
enum class KernelCopy : uint8_t {
  ByteExact,     // x86-64: only granule-1 stores, passed through as they are
  CoalignedWord, // riscv64 (Linux 6.1 memcpy.S): the enclosing aligned 4-byte word
  AlignedWord,   // aarch64 (Linux 6.1 memcpy.S): only aligned granule-4 stores, as they are
};

// The plan of each ISA's writer (torn-fetch models them from here).
enum class ProcmemIsa : uint8_t { X86_64, Riscv64, Aarch64 };
constexpr KernelCopy procmem_kernel_copy(ProcmemIsa isa) {
  return isa == ProcmemIsa::Riscv64   ? KernelCopy::CoalignedWord
         : isa == ProcmemIsa::Aarch64 ? KernelCopy::AlignedWord
                                      : KernelCopy::ByteExact;
}
#if defined(__riscv)
inline constexpr KernelCopy kHostKernelCopy = procmem_kernel_copy(ProcmemIsa::Riscv64);
inline constexpr bool kProcmemFlushesIcache = true;  // flush_icache_mm per write
#elif defined(__aarch64__)
inline constexpr KernelCopy kHostKernelCopy = procmem_kernel_copy(ProcmemIsa::Aarch64);
inline constexpr bool kProcmemFlushesIcache = false; // maintenance by VA, broadcast: no IPI
#else
inline constexpr KernelCopy kHostKernelCopy = procmem_kernel_copy(ProcmemIsa::X86_64);
inline constexpr bool kProcmemFlushesIcache = false; // flush_icache_user_page is empty
#endif

// The one pwrite() the writer issues for one engine store.
struct ProcmemStore {
  uintptr_t addr = 0;
  uint32_t len = 0;           // 0: refused (not a naturally aligned 1/2/4-byte store,
                              // or a granule the kernel would split: x86 > 1)
  alignas(4) uint8_t bytes[4] = {};
};

// Pure: the pwrite() for the engine's store of `granule` bytes `src` at `addr`.
// `current` is the 4 bytes the text holds now at addr & ~3 (CoalignedWord only;
// may be null for ByteExact). Used by the writer and by torn-fetch, which feeds
// its result through a model of the kernel's memcpy.
ProcmemStore procmem_store_plan(KernelCopy k, uintptr_t addr, const uint8_t *src, uint32_t granule,
                                const uint8_t *current);

struct ProcmemOptions {
  KernelCopy copy = kHostKernelCopy;
  // Tests only: skip the riscv64 check that the writes reach instruction fetch
  // (refused under qemu-user) for text that is read back, never executed.
  bool require_fetch_coherence = true;
};

// pwrite() to /proc/self/mem: the kernel writes through FOLL_FORCE, so the text
// mapping never becomes writable in this process (W^X holds throughout). Each
// engine store becomes one pwrite() of procmem_store_plan()'s store.
// Returns nullptr and sets *err when /proc/self/mem cannot be opened (or, on
// riscv64, when its writes do not reach instruction fetch: qemu-user).
std::unique_ptr<TextWriter> make_procmem_writer(int *err, const ProcmemOptions &opt = {});

// One store of 1, 2 or 4 bytes (used by the mprotect writer and by tests).
void store_granule(uintptr_t addr, const uint8_t *src, uint32_t granule);

} // namespace lp::linux_platform
