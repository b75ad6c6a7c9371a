// The one A64 code writer of the aarch64 backend: 32-bit words into a buffer
// that will execute at `at`, bounded by a capacity fixed at construction.
//
// Every generator runs twice: a dry run (buf == nullptr) that only counts, and,
// when the count fits the capacity, the real run. A run that would pass the
// capacity stops storing and marks itself overflowed, so nothing is ever written
// past the buffer even when a caller forgets the dry run; callers check
// ok() and report LP_EINVAL. The same generator code feeds both runs, so the
// size the dry run measured is the size written (the relocator's plan uses the
// same writer).
#pragma once

#include <cstddef>
#include <cstdint>

#include "encoding.hpp"

namespace lp::aarch64 {

class Asm {
public:
  Asm(uint8_t *buf, uintptr_t at, size_t cap) : buf_(buf), at_(at), cap_(cap) {}

  void w(uint32_t insn) {
    if (n_ + 4 > cap_) {
      overflow_ = true;
      n_ += 4; // a dry run keeps counting (its cap is SIZE_MAX)
      return;
    }
    if (buf_) put32(buf_ + n_, insn);
    n_ += 4;
  }
  uintptr_t pc() const { return at_ + n_; }
  size_t size() const { return n_; }
  bool ok() const { return !overflow_; }

  // rd = target, from the current pc: ADR (+-1 MiB), else ADRP + ADD (+-4 GiB),
  // else MOVZ + MOVKs. Always succeeds.
  void la(unsigned rd, uintptr_t target) {
    const int64_t off = int64_t(target) - int64_t(pc());
    if (fits_adr(off)) {
      w(enc_adr(rd, off));
      return;
    }
    const int64_t pages = int64_t(target & ~uintptr_t(0xfff)) - int64_t(pc() & ~uintptr_t(0xfff));
    if (fits_adrp(pages)) {
      w(enc_adrp(rd, pages));
      if ((target & 0xfff) != 0) w(enc_add_imm(rd, rd, uint32_t(target & 0xfff)));
      return;
    }
    mov_imm(rd, uint64_t(target));
  }
  // rd = v (MOVZ, then a MOVK for every other nonzero halfword).
  void mov_imm(unsigned rd, uint64_t v) {
    w(enc_movz(rd, uint16_t(v), 0));
    for (unsigned sh = 16; sh < 64; sh += 16)
      if (uint16_t(v >> sh) != 0) w(enc_movk(rd, uint16_t(v >> sh), sh));
  }
  // B target: false when out of B's reach (nothing emitted).
  bool b(uintptr_t target) {
    const int64_t off = int64_t(target) - int64_t(pc());
    if (!fits_b(off)) return false;
    w(enc_b(off));
    return true;
  }

private:
  uint8_t *buf_;
  uintptr_t at_;
  size_t cap_;
  size_t n_ = 0;
  bool overflow_ = false;
};

// Runs `gen(Asm&) -> int` dry, then into `buf` when the code fits `cap` bytes.
// Returns gen's error, LP_EINVAL-style `too_big` when it does not fit, else 0;
// *size (optional) gets the code size.
template <class Gen> int emit_bounded(uint8_t *buf, uintptr_t at, size_t cap, int too_big, size_t *size, Gen gen) {
  Asm dry(nullptr, at, SIZE_MAX);
  if (int rc = gen(dry); rc != 0) return rc;
  if (dry.size() > cap) return too_big;
  Asm a(buf, at, cap);
  if (int rc = gen(a); rc != 0) return rc;
  if (!a.ok() || a.size() != dry.size()) return too_big;
  if (size) *size = a.size();
  return 0;
}

} // namespace lp::aarch64
