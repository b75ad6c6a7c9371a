// A tiny x86-64 machine-code emitter for the trampolines: raw bytes plus
// little-endian immediates and rip-relative displacements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace lp::x86_64 {

class Asm {
public:
  Asm(uint8_t *buf, uintptr_t at) : buf_(buf), at_(at) {}
  void bytes(std::initializer_list<uint8_t> b) {
    for (uint8_t x : b) buf_[n_++] = x;
  }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) buf_[n_++] = uint8_t(v >> (8 * i));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) buf_[n_++] = uint8_t(v >> (8 * i));
  }
  // rel32 to `target` for an instruction that ends right after the displacement.
  void rel32_to(uintptr_t target) { u32(uint32_t(int32_t(int64_t(target) - int64_t(at_ + n_ + 4)))); }
  size_t size() const { return n_; }

private:
  uint8_t *buf_;
  uintptr_t at_;
  size_t n_ = 0;
};

} // namespace lp::x86_64
