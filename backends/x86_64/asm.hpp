// The x86-64 trampoline writer: raw bytes, little-endian immediates and
// rip-relative displacements into a buffer that will execute at `at`.
//
// Bounded, like riscv64/asm.hpp: nothing is ever written at or past `cap`
// (the bytes are only counted), so a generator runs once as a dry run
// (buf == nullptr) to learn its size and once for real, and an emitter whose
// code would overflow its slot fails (`fits()` false) without having touched
// the bytes after it -- the slot's data words live there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace lp::x86_64 {

class Asm {
public:
  Asm(uint8_t *buf, uintptr_t at, size_t cap) : buf_(buf), at_(at), cap_(cap) {}
  void bytes(std::initializer_list<uint8_t> b) {
    for (uint8_t x : b) put(x);
  }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) put(uint8_t(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) put(uint8_t(v >> (8 * i)));
  }
  // rel32 to `target` for an instruction that ends right after the displacement.
  void rel32_to(uintptr_t target) { u32(uint32_t(int32_t(int64_t(target) - int64_t(at_ + n_ + 4)))); }
  // Whether a rel32 from the end of a displacement starting now reaches `target`.
  bool rel32_reaches(uintptr_t target) const {
    const int64_t d = int64_t(target) - int64_t(at_ + n_ + 4);
    return d >= INT32_MIN && d <= INT32_MAX;
  }
  uintptr_t pc() const { return at_ + n_; }
  size_t size() const { return n_; }
  bool fits() const { return n_ <= cap_; }

private:
  void put(uint8_t x) {
    if (buf_ && n_ < cap_) buf_[n_] = x;
    ++n_;
  }
  uint8_t *buf_;
  uintptr_t at_;
  size_t cap_;
  size_t n_ = 0;
};

} // namespace lp::x86_64
