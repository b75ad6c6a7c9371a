// When a transition of an instruction site must evacuate: the phase-1 sync
// then moves every thread parked at a boundary strictly inside the site to an
// equivalent place outside it, before phase 2 rewrites the bytes behind the
// trap. Shared by the core (patcher.cpp) and tools/torn-fetch, which checks
// that this rule leaves no thread in a torn instruction.
#pragma once

#include <cstdint>
#include <cstring>

namespace lp {

// original / jump: the site's displaced instructions and its enabled (jump)
// bytes; cur -> next: the transition; multi: the original bytes hold more than
// one instruction; far: the jump is the two-instruction RISC-V auipc+jalr.
inline bool insn_transition_evacuates(bool multi, bool far, const uint8_t *original, const uint8_t *jump,
                                      const uint8_t *cur, const uint8_t *next, uint32_t len, uint32_t trap_len) {
  // Leaving the original instructions: a thread can be between two of them,
  // and is in danger when the bytes behind the trap change (a trap probe
  // changes the first instruction only).
  if (multi && std::memcmp(cur, original, len) == 0 &&
      std::memcmp(next + trap_len, original + trap_len, len - trap_len) != 0)
    return true;
  // Leaving the far jump: a thread can be between its auipc and its jalr.
  return far && jump && std::memcmp(cur, jump, len) == 0;
}

} // namespace lp
