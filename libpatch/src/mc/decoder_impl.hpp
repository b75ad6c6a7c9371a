// The two decoder engines behind lp::mc::Decoder (private to lp::mc).
//
//  * decoder_llvm.cpp    LLVM MC (x86-64, riscv64, aarch64): hosted native builds,
//                        where Debian ships LLVM for the host; the per-ISA
//                        operand rules are backends/<arch>/decoder_llvm.cpp.
//  * backends/riscv64/decoder.cpp
//                        a table-driven RV64GC decoder of our own, no LLVM: the
//                        riscv64 cross builds (Debian has no riscv64 LLVM
//                        libraries to link against a cross toolchain). It is
//                        checked against LLVM MC instruction by instruction on
//                        the host (tests/mc/builtin_decoder_test.cpp).
//  * backends/aarch64/decoder.cpp
//                        the A64 subset the relocator and the core need (every
//                        pc-relative, control-flow, exclusive and trapping
//                        encoding exactly; the rest by block), for the aarch64
//                        cross build (no arm64 LLVM there either); held to LLVM
//                        MC on the host (tests/mc/builtin_decoder_aarch64_test.cpp).
//
// An engine fills one Insn: validity, length, names, text, flow, target and the
// per-arch operand fields; Decoder::decode derives the is_* summary flags from
// `flow`, so both engines agree on them by construction.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "mc/decoder.hpp"

namespace lp::mc {

struct Decoder::Impl {
  virtual ~Impl() = default;
  Arch arch{};
  std::string features; // as the caller gave them
  bool has_c = false;   // compressed RISC-V instructions decode
  uint32_t fixed_len = 0; // every instruction's length (A64: 4), 0 when variable
  // *out is value-initialised with out->address set. Returns out->valid.
  virtual bool decode(const uint8_t *bytes, size_t size, uint64_t address, Insn *out, bool with_text) const = 0;
};


} // namespace lp::mc
