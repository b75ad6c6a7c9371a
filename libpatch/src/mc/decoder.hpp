// lp::mc — an arch-neutral instruction decoder. Two engines (decoder_impl.hpp):
// LLVM MC where the build has it (native hosted builds: x86-64 and riscv64), and
// a built-in RV64GC decoder for the riscv64 cross builds, which have no LLVM.
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

enum class Arch : uint8_t { X86_64, RISCV64 };

// Control-flow class of one instruction, as the relocators need it.
enum class Flow : uint8_t {
  None,          // falls through, no control transfer
  CondBranch,    // direct conditional branch (jcc, jrcxz, loop, beq..., c.beqz...)
  Jump,          // direct unconditional jump (jmp rel, jal x0, c.j)
  Call,          // direct call (call rel32, jal rd!=x0)
  IndirectJump,  // jmp reg/mem, jalr x0 (not a return), c.jr (not ra)
  IndirectCall,  // call reg/mem, jalr rd!=x0, c.jalr
  Return,        // ret, jalr x0,0(ra), c.jr ra
  Trap,          // int3, ud2, ud1, hlt, c.unimp, unimp, ebreak: never falls through
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

  // Direct control-transfer target (MCInstrAnalysis::evaluateBranch).
  bool has_target = false;
  uint64_t target = 0;

  // x86-64 RIP-relative memory operand: effective address and where the disp32
  // sits in the encoding (so a relocator can rewrite it).
  bool rip_relative = false;
  uint64_t mem_target = 0;
  uint32_t disp_offset = 0;    // byte offset of the displacement in the instruction
  uint32_t disp_size = 0;      // 4 when rip_relative
  int64_t disp = 0;

  // RISC-V: the instruction reads the pc (auipc, jal, jalr rd!=x0 link, branches).
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
};

enum class BoundaryStatus : uint8_t {
  Boundary,     // addr is the start of an instruction reached by linear decode
  Inside,       // addr falls inside an instruction
  OutOfRange,   // addr is not within [start, start + size)
  Undecodable,  // linear decode hit bytes that do not decode before reaching addr
};

class Decoder {
 public:
  // arch: "x86_64" (also "x86-64", "amd64") or "riscv64". features: an LLVM
  // feature string, e.g. "+c" / "-c" for RISC-V ("" = the arch default: x86-64
  // baseline; riscv64 = rv64gc). Returns nullptr and sets *error on failure.
  // LLVM MC when registered for the arch, else the arch's built-in decoder.
  static std::unique_ptr<Decoder> create(std::string_view arch, std::string_view features = "",
                                         std::string *error = nullptr);
  // Always the built-in RV64 decoder (arch "riscv64"; features "", "+c", "-c" or
  // a comma list of +x/-x for x in m,a,f,d,c,zicsr,zifencei). Its `name`s are
  // LLVM's opcode names, its `text` is GNU-style assembly (no aliases).
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
  // Smallest instruction alignment (x86 1, RISC-V 2 with C else 4).
  uint32_t min_insn_align() const;

  // Decodes one instruction from bytes[0, size) as if it sat at `address`.
  // Returns out->valid. with_text=false skips the (slow) assembly text.
  bool decode(const uint8_t *bytes, size_t size, uint64_t address, Insn *out, bool with_text = true) const;
  Insn decode(const uint8_t *bytes, size_t size, uint64_t address) const;

  // Linear decode of [start, start+size) (bytes given by `code`): all instruction
  // starts; stops at the first undecodable byte (returns false then, keeping what
  // was decoded).
  bool boundaries(const uint8_t *code, size_t size, uint64_t start, std::vector<uint64_t> *out) const;

  // Is `addr` an instruction boundary of the symbol [start, start+size)? Linear
  // decode from the symbol start. `code` points at the symbol's bytes.
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
