#include "encoding.hpp"

namespace lp::x86_64 {
namespace {
bool encode_rel32(uint8_t opcode, uintptr_t site, uintptr_t target, uint8_t out[5]) {
  // In unsigned arithmetic (wraps) so far-apart addresses can't overflow.
  const int64_t rel = int64_t(uint64_t(target) - uint64_t(site + 5));
  if (rel < INT32_MIN || rel > INT32_MAX) return false;
  const uint32_t r = uint32_t(int32_t(rel));
  out[0] = opcode;
  for (int i = 0; i < 4; ++i) out[1 + i] = uint8_t(r >> (8 * i));
  return true;
}
} // namespace

bool is_nop5(const uint8_t *p) {
  for (uint32_t i = 0; i < kSiteLen; ++i)
    if (p[i] != kNop5[i]) return false;
  return true;
}

bool encode_call(uintptr_t site, uintptr_t target, uint8_t out[5]) { return encode_rel32(0xe8, site, target, out); }
bool encode_jmp(uintptr_t site, uintptr_t target, uint8_t out[5]) { return encode_rel32(0xe9, site, target, out); }

void make_transition(uintptr_t site, const uint8_t *old_bytes, const uint8_t *new_bytes, uint32_t len,
                     bool evacuate, engine::Transition *t) {
  t->addr = site;
  t->len = len;
  t->trap_len = kTrapLen;
  for (uint32_t i = 0; i < len; ++i) {
    t->old_bytes[i] = old_bytes[i];
    t->new_bytes[i] = new_bytes[i];
  }
  t->trap_bytes[0] = kInt3;
  t->evacuate = evacuate;
}

} // namespace lp::x86_64
