// lp::mc targets: how the per-ISA decoding and relocation code in
// backends/<arch>/ plugs in behind the arch-neutral lp::mc interfaces, the way
// LLVM's targets register behind TargetRegistry.
//
// Direction of dependencies (no cycle): backends/<arch>/ include lp::mc's
// headers (decoder.hpp, reloc.hpp, target.hpp) and describe themselves in one
// `Target` (backends/<arch>/mc_target.cpp); lp::mc never includes a backend.
// Whoever links the target libraries registers them: libpatch registers the
// ISA it runs on (backends/host_target.cpp), tools and tests every ISA of the
// build (backends/all_targets.cpp).
//
// Constructor-safe by construction: the registry is constant-initialised
// (atomic pointers, no dynamic initialiser), registration is an explicit call
// (never a static constructor that a static link could drop or run late), and
// registering twice is harmless. Lookups are lock-free.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>

#include "mc/decoder.hpp"
#include "mc/reloc.hpp"

namespace lp::mc {

// Makes a decoder engine for one arch; features as for Decoder::create.
using DecoderFactory = std::unique_ptr<Decoder::Impl> (*)(std::string_view features, std::string *error);

// Everything lp::mc knows of one ISA. All members are required unless noted.
struct Target {
  Arch arch;
  const char *name;           // canonical name: "x86_64", "riscv64", "aarch64"
  const char *aliases[3];     // other accepted names ("x86-64", "amd64"), nullptr-padded
  uint32_t site_jump_len;     // bytes of the short site jump (x86 jmp rel32 5, RISC-V jal 4, A64 b 4)
  uint32_t site_far_len;      // bytes of the far form (RISC-V auipc+jalr 8; x86, A64: = site_jump_len)
  // The decoder of our own for this ISA (no LLVM), or nullptr when there is none.
  DecoderFactory make_builtin_decoder;
  Relocation (*plan_relocation)(const Decoder &dec, const RelocInput &in);
  Relocation (*relocate)(const Decoder &dec, const RelocInput &in, uintptr_t dest);
  bool (*encode_site_jump)(uintptr_t site, uintptr_t target, uint32_t displaced_len, unsigned scratch_reg,
                           uint8_t *out);
  // A register dead across the displaced range, or 0 (ISAs whose site jump needs none).
  unsigned (*find_scratch)(const Decoder &dec, const RelocInput &in, uint32_t displaced_len);
};

// Registers `t` (a static-storage object) for t.arch. Idempotent.
void register_target(const Target &t);
// Registers the LLVM MC engine for `arch` (preferred over the built-in decoder).
void register_llvm_decoder(Arch arch, DecoderFactory make);

const Target *find_target(Arch arch);                 // nullptr when not registered
const Target *find_target(std::string_view name);     // by name or alias
DecoderFactory find_llvm_decoder(Arch arch);          // nullptr when not registered

// Every ISA this build has (x86-64, riscv64 and aarch64 relocators, the built-in
// RV64 and A64 decoders, LLVM MC where linked): tools and tests. Library lp_mc_all.
void initialize_all_targets();
// Only the ISA libpatch runs on. Library lp_mc_host, part of libpatch itself.
void initialize_host_target();

} // namespace lp::mc
