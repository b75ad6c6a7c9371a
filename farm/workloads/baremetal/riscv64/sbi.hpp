// SBI calls (ecall to OpenSBI in M-mode) and the few CSR / fence helpers the
// image needs. Header-only, freestanding.
#pragma once

#include <stdint.h>

namespace bm::sbi {

struct Ret {
  long error;
  long value;
};

inline Ret call(long eid, long fid, long a0 = 0, long a1 = 0, long a2 = 0) {
  register long r0 asm("a0") = a0;
  register long r1 asm("a1") = a1;
  register long r2 asm("a2") = a2;
  register long r6 asm("a6") = fid;
  register long r7 asm("a7") = eid;
  asm volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r6), "r"(r7) : "memory");
  return {r0, r1};
}

inline constexpr long kOk = 0;
inline constexpr long kErrInvalidParam = -3;

inline constexpr long kEidLegacyPutchar = 0x01;
inline constexpr long kEidBase = 0x10;
inline constexpr long kEidIpi = 0x735049;       // "sPI"
inline constexpr long kEidRfence = 0x52464E43;  // "RFNC"
inline constexpr long kEidHsm = 0x48534D;       // "HSM"
inline constexpr long kEidTime = 0x54494D45;    // "TIME"

inline constexpr long kHsmStarted = 0;
inline constexpr long kHsmStopped = 1;
inline constexpr long kHsmStartPending = 2;

inline void putchar(char c) {
  register long r0 asm("a0") = (unsigned char)c;
  register long r7 asm("a7") = kEidLegacyPutchar;
  asm volatile("ecall" : "+r"(r0) : "r"(r7) : "a1", "memory");
}
inline void set_timer(uint64_t stime) { call(kEidTime, 0, long(stime)); }
inline bool probe_extension(long eid) { return call(kEidBase, 3, eid).value != 0; }
inline Ret hart_start(unsigned long hartid, uintptr_t addr, long opaque) {
  return call(kEidHsm, 0, long(hartid), long(addr), opaque);
}
inline Ret hart_get_status(unsigned long hartid) { return call(kEidHsm, 2, long(hartid)); }
inline Ret send_ipi(unsigned long mask, unsigned long base) { return call(kEidIpi, 0, long(mask), long(base)); }
inline Ret remote_fence_i(unsigned long mask, unsigned long base) {
  return call(kEidRfence, 0, long(mask), long(base));
}

} // namespace bm::sbi

namespace bm {

#define BM_CSR_READ(csr)                                                                           \
  ({                                                                                               \
    unsigned long v_;                                                                              \
    asm volatile("csrr %0, " #csr : "=r"(v_)::"memory");                                           \
    v_;                                                                                            \
  })
#define BM_CSR_SET(csr, bits) asm volatile("csrs " #csr ", %0" ::"r"((unsigned long)(bits)) : "memory")
#define BM_CSR_CLEAR(csr, bits) asm volatile("csrc " #csr ", %0" ::"r"((unsigned long)(bits)) : "memory")

inline constexpr unsigned long kSstatusSie = 1ul << 1;
inline constexpr unsigned long kSipSsip = 1ul << 1;
inline constexpr unsigned long kSieSsie = 1ul << 1;
inline constexpr unsigned long kCauseInterrupt = 1ul << 63;
inline constexpr unsigned long kIrqSSoft = 1;
inline constexpr unsigned long kIrqSTimer = 5;
inline constexpr unsigned long kSieStie = 1ul << 5;
inline constexpr unsigned long kExcIllegal = 2;

inline void fence_rw_rw() { asm volatile("fence rw, rw" ::: "memory"); }
inline void fence_i() { asm volatile("fence.i" ::: "memory"); }
inline uint64_t rdtime() {
  uint64_t t;
  asm volatile("rdtime %0" : "=r"(t));
  return t;
}
inline void cpu_relax() { asm volatile("nop; nop; nop; nop" ::: "memory"); }

template <class T> inline T load_acquire(const T *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
template <class T> inline T load_relaxed(const T *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
template <class T> inline void store_release(T *p, T v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
template <class T> inline void store_relaxed(T *p, T v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

} // namespace bm
