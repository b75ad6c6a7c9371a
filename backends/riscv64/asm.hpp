// A tiny RISC-V code emitter for the trampolines: 32-bit words into a buffer
// that will execute at `at`; counts past `cap` without writing so a dry run
// (buf == nullptr) measures the size.
#pragma once

#include <cstddef>
#include <cstdint>

#include "encoding.hpp"

namespace lp::riscv64 {

class Asm {
public:
  Asm(uint8_t *buf, uintptr_t at, size_t cap) : buf_(buf), at_(at), cap_(cap) {}
  void w(uint32_t insn) {
    if (n_ + 4 <= cap_ && buf_) put32(buf_ + n_, insn);
    n_ += 4;
  }
  uintptr_t pc() const { return at_ + n_; }
  // rd = target (auipc rd; addi rd, rd). false when out of reach.
  bool la(unsigned rd, uintptr_t target) {
    int32_t hi, lo;
    if (!split_pcrel(int64_t(target) - int64_t(pc()), &hi, &lo)) return false;
    w(enc_auipc(rd, hi));
    w(enc_addi(rd, rd, lo));
    return true;
  }
  // Adds `delta` to the 64-bit counter at tp + off (scratch: t2, t3).
  void tls_add(int32_t hi, int32_t lo, int32_t delta) {
    unsigned base = kTp;
    if (hi != 0) {
      w(enc_lui(kT3, hi));
      w(enc_add(kT3, kT3, kTp));
      base = kT3;
    }
    w(enc_ld(kT2, base, lo));
    w(enc_addi(kT2, kT2, delta));
    w(enc_sd(kT2, base, lo));
  }
  size_t size() const { return n_; }

private:
  uint8_t *buf_;
  uintptr_t at_;
  size_t cap_;
  size_t n_ = 0;
};

} // namespace lp::riscv64
