// lp::mc — an arch-neutral instruction decoder. Two engines (decoder_impl.hpp):
// LLVM MC where the build has it (native hosted builds: x86-64, riscv64 and
// aarch64 tools/tests), and built-in decoders for the cross builds, which have
// no LLVM (RV64GC: backends/riscv64/decoder.hpp; A64: backends/aarch64/decoder.hpp).
// Both are per-ISA code under backends/<arch>/, registered behind this
// interface (mc/target.hpp): create() finds only what was registered.
//
// This header is LLVM-free on purpose (pimpl): the core and the relocators include
// it without pulling in LLVM or any target header. One Decoder serves one
// (arch, feature string) pair and is immutable after creation, so decode() may be
// called from several threads at once. NOT async-signal-safe (it allocates):
// decode at probe-creation time, never from a trap handler.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lp::mc {

enum class Arch : uint8_t { X86_64, RISCV64, AARCH64 };

// Control-flow class of one instruction, as the relocators need it.
enum class Flow : uint8_t {
  None,          // falls through, no control transfer
  CondBranch,    // direct conditional branch (jcc, jrcxz, loop, beq..., c.beqz...; A64 b.cond
                 // (b.al / b.nv too), bc.cond, cbz, cbnz, tbz, tbnz)
  Jump,          // direct unconditional jump (jmp rel, jal x0, c.j; A64 b)
  Call,          // direct call (call rel32, jal rd!=x0; A64 bl)
  IndirectJump,  // jmp reg/mem, jalr x0 (not a return), c.jr (not ra); A64 br, braa(z), brab(z)
  IndirectCall,  // call reg/mem, jalr rd!=x0, c.jalr; A64 blr, blraa(z), blrab(z)
  Return,        // ret, jalr x0,0(ra), c.jr ra; A64 ret, retaa, retab
  Trap,          // int3, ud2, ud1, hlt, c.unimp, unimp, ebreak; A64 brk, hlt, udf, and what is
                 // UNDEFINED at EL0 (hvc, smc, dcps1-3, eret, eretaa, eretab, drps): never falls through
};

struct Insn {
  bool valid = false;          // false: the bytes do not decode (illegal / truncated)
  uint32_t length = 0;         // bytes; 0 when !valid
  uint64_t address = 0;        // the address it was decoded at
  unsigned opcode = 0;         // engine's opcode number (opaque; compare names instead)
  std::string name;            // LLVM opcode name, e.g. "JCC_1", "C_BEQZ", "AUIPC"
  std::string text;            // assembly text, e.g. "jne 0x1010", "beqz a0, 0x1018"
  std::string mnemonic;        // its first word, e.g. "jne", "beqz" (prefixes included: "lock")

  Flow flow = Flow::None;
  bool is_branch = false;      // any jump/branch (direct or indirect), not a call
  bool is_call = false;
  bool is_return = false;
  bool is_indirect = false;
  bool is_conditional = false;
  bool may_load = false;
  bool may_store = false;

  // Direct control-transfer target (MCInstrAnalysis::evaluateBranch; only for
  // branches and calls: an A64 adrp / ldr literal, which LLVM also evaluates, has
  // its address in mem_target instead).
  bool has_target = false;
  uint64_t target = 0;

  // x86-64 RIP-relative memory operand: effective address and where the disp32
  // sits in the encoding (so a relocator can rewrite it). mem_target is also
  // the A64 adr/adrp value and ldr-literal address (below); rip_relative is x86 only.
  bool rip_relative = false;
  uint64_t mem_target = 0;
  uint32_t disp_offset = 0;    // byte offset of the displacement in the instruction
  uint32_t disp_size = 0;      // 4 when rip_relative
  int64_t disp = 0;

  // The instruction reads the pc: RISC-V auipc, jal, jalr rd!=x0 (link),
  // branches; x86 rip/eip operands and direct branches; A64: see below.
  bool reads_pc = false;
  // RISC-V registers (x0..x31) and immediate of the decoded instruction, when
  // meaningful: rd/rs1/rs2 = -1 when absent. For compressed instructions these
  // are the expanded registers (c.beqz a0 -> rs1 = 10).
  int rd = -1, rs1 = -1, rs2 = -1;
  int64_t imm = 0;
  // RISC-V: integer registers (bit i = x_i; x0 never set) the instruction reads
  // and writes, explicit and implicit operands alike (c.jalr writes ra, c.addi16sp
  // reads and writes sp...). FP registers are not included. A liveness scan
  // uses them to find a register that is dead at a site.
  uint32_t gpr_read = 0, gpr_written = 0;
  bool compressed = false;     // RISC-V 16-bit encoding

  // AArch64 (A64). reads_pc: adr, adrp, the ldr-literal family, b, bl, b.cond,
  // bc.cond, cbz/cbnz, tbz/tbnz, and the calls' link (blr, blraa(z), blrab(z)).
  // The register fields hold register numbers 0..31 (31 is xzr/wzr or sp, as
  // the instruction defines it; SIMD&FP registers by their number), -1 absent:
  //   adr, adrp          rd = Xd; imm = the byte offset (adrp: page delta, a
  //                      multiple of 4096); mem_target = the value Xd gets
  //   LDRWl LDRXl LDRSWl LDRSl LDRDl LDRQl (ldr literal, GPR and SIMD&FP)
  //                      rd = Rt; imm = byte offset; mem_target = the literal's
  //                      address (the relocators load BY ADDRESS from it)
  //   PRFMl              rd = -1 (the prefetch operation is not a register);
  //                      imm, mem_target as above
  //   b, bl, b.cond, bc.cond, cbz/cbnz, tbz/tbnz
  //                      imm = target - address; cond = the condition (b.cond,
  //                      bc.cond); rs1 = Rt (cbz/cbnz, tbz/tbnz); test_bit (tbz/tbnz)
  //   br, blr, ret, braa(z), brab(z), blraa(z), blrab(z), retaa, retab
  //                      rs1 = Rn (30 for retaa/retab, which use x30 implicitly);
  //                      rs2 = Rm, the pointer-authentication modifier (braa,
  //                      brab, blraa, blrab; 31 = sp)
  //   load/store exclusive: exclusive = 1 for a load-exclusive (ldxr*, ldaxr*,
  //                      ldxp, ldaxp), 2 for a store-exclusive (stxr*, stlxr*,
  //                      stxp, stlxp); registers not filled
  // Every other A64 instruction leaves rd/rs1/rs2 = -1, imm = 0.
  uint8_t cond = 0;            // A64 b.cond / bc.cond condition, 0 (eq) .. 15 (nv)
  uint8_t test_bit = 0;        // A64 tbz / tbnz: the bit tested, 0..63
  uint8_t exclusive = 0;       // A64: 1 load-exclusive, 2 store-exclusive, 0 otherwise
};

enum class BoundaryStatus : uint8_t {
  Boundary,     // addr is the start of an instruction reached by linear decode
  Inside,       // addr falls inside an instruction
  OutOfRange,   // addr is not within [start, start + size)
  Undecodable,  // linear decode hit bytes that do not decode before reaching addr
};

class Decoder {
 public:
  // arch: "x86_64" (also "x86-64", "amd64"), "riscv64" or "aarch64" (also
  // "arm64"). features: an LLVM feature string, e.g. "+c" / "-c" for RISC-V
  // ("" = the arch default: x86-64 baseline; riscv64 = rv64gc; aarch64 = every
  // A64 extension LLVM knows, "+all"). Returns nullptr and sets *error on failure.
  // LLVM MC when registered for the arch, else the arch's built-in decoder.
  static std::unique_ptr<Decoder> create(std::string_view arch, std::string_view features = "",
                                         std::string *error = nullptr);
  // Always the arch's built-in decoder: the RV64 one (arch "riscv64"; features
  // "", "+c", "-c" or a comma list of +x/-x for x in m,a,f,d,c,zicsr,zifencei;
  // its `name`s are LLVM's opcode names, its `text` GNU-style assembly, no
  // aliases), or the A64 one (arch "aarch64"; features ""; what it decodes
  // and what it promises: backends/aarch64/decoder.hpp).
  static std::unique_ptr<Decoder> create_builtin(std::string_view arch, std::string_view features = "",
                                                 std::string *error = nullptr);
  // Whether create(arch) uses LLVM MC in this process (registered for arch).
  static bool uses_llvm(std::string_view arch);
  // Whether create(arch) can succeed: a target with a decoder is registered.
  static bool available(std::string_view arch);
  ~Decoder();
  Decoder(const Decoder &) = delete;
  Decoder &operator=(const Decoder &) = delete;

  Arch arch() const;
  const std::string &features() const;
  // Whether compressed (16-bit) RISC-V instructions decode (feature +c).
  bool has_compressed() const;
  // Smallest instruction alignment (x86 1, RISC-V 2 with C else 4, A64 4).
  uint32_t min_insn_align() const;
  // Every instruction's length when the ISA has only one (A64: 4), else 0.
  // Boundaries of a fixed-length ISA are its aligned addresses: boundary() and
  // is_boundary() then need no linear decode (a data word or an encoding the
  // decoder does not know before `addr` does not make `addr` undecodable).
  uint32_t fixed_insn_len() const;

  // Decodes one instruction from bytes[0, size) as if it sat at `address`.
  // Returns out->valid. with_text=false skips the (slow) assembly text.
  bool decode(const uint8_t *bytes, size_t size, uint64_t address, Insn *out, bool with_text = true) const;
  Insn decode(const uint8_t *bytes, size_t size, uint64_t address) const;

  // Linear decode of [start, start+size) (bytes given by `code`): all instruction
  // starts; stops at the first undecodable byte (returns false then, keeping what
  // was decoded).
  bool boundaries(const uint8_t *code, size_t size, uint64_t start, std::vector<uint64_t> *out) const;

  // Is `addr` an instruction boundary of the symbol [start, start+size)? Linear
  // decode from the symbol start (fixed-length ISAs: alignment, see
  // fixed_insn_len()). `code` points at the symbol's bytes.
  BoundaryStatus boundary(const uint8_t *code, size_t size, uint64_t start, uint64_t addr) const;
  bool is_boundary(const uint8_t *code, size_t size, uint64_t start, uint64_t addr) const {
    return boundary(code, size, start, addr) == BoundaryStatus::Boundary;
  }
  // In-process convenience: the symbol's bytes are read at `symbol_start` itself.
  bool is_boundary(uintptr_t symbol_start, size_t symbol_size, uintptr_t addr) const {
    return is_boundary(reinterpret_cast<const uint8_t *>(symbol_start), symbol_size, symbol_start, addr);
  }

  // Direct branch/jump/call targets of every instruction in [start, start+size)
  // (linear decode), with the address of the instruction that has it.
  struct Edge {
    uint64_t from;
    uint64_t to;
  };
  void direct_edges(const uint8_t *code, size_t size, uint64_t start, std::vector<Edge> *out) const;

  // The engine (opaque here; see decoder_impl.hpp).
  struct Impl;

 private:
  explicit Decoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

const char *flow_name(Flow f);

} // namespace lp::mc
