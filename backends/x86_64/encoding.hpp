// x86-64 encodings and site transitions (the int3 reference backend).
// Freestanding: usable by the engine tests and the torn-fetch tool alike.
//
// An entry site is the 5-byte nop `0f 1f 44 00 00` that
// -fpatchable-function-entry=5 (or the kernel's ftrace) emits. A jump probe turns
// it into `call rel32` (e8 xx xx xx xx) to a trampoline; the trap is int3 (cc),
// one byte, so the granule is 1. Old and new are single instructions: no thread
// can be parked inside the site, so no evacuation is needed.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/protocol.hpp"

namespace lp::x86_64 {

inline constexpr uint8_t kInt3 = 0xcc;
inline constexpr uint8_t kNop5[5] = {0x0f, 0x1f, 0x44, 0x00, 0x00};
inline constexpr uint32_t kSiteLen = 5;
inline constexpr uint32_t kGranule = 1;
inline constexpr uint32_t kTrapLen = 1;

bool is_nop5(const uint8_t *p);

// `call rel32` from `site` to `target`; false when out of +-2 GiB.
bool encode_call(uintptr_t site, uintptr_t target, uint8_t out[5]);
// `jmp rel32` from `site` to `target`; false when out of +-2 GiB.
bool encode_jmp(uintptr_t site, uintptr_t target, uint8_t out[5]);

void make_transition(uintptr_t site, const uint8_t *old_bytes, const uint8_t *new_bytes, uint32_t len,
                     bool evacuate, engine::Transition *out);

} // namespace lp::x86_64
