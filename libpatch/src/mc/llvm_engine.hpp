// The LLVM MC decoder engine (decoder_llvm.cpp), generic over ISAs; what is
// particular to an ISA (its triple, which LLVM target to initialise, how its
// operands map to lp::mc::Insn fields) lives in backends/<arch>/decoder_llvm.cpp
// as one ArchRules, the way a target plugs into LLVM's own MC layer.
//
// Private to the libraries that link LLVM (lp_mc_llvm, lp_mc_llvm_<arch>):
// this header includes LLVM headers. Nothing else may include it.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <llvm/MC/MCInst.h>
#include <llvm/MC/MCInstrInfo.h>
#include <llvm/MC/MCRegisterInfo.h>

#include "mc/decoder_impl.hpp"

namespace lp::mc::llvm_engine {

// What an ISA's rules may read of a decoder: the register and instruction
// tables, and a raw re-decode (x86 uses it to locate a displacement).
class Context {
 public:
  virtual ~Context() = default;
  virtual const llvm::MCRegisterInfo &regs() const = 0;
  virtual const llvm::MCInstrInfo &insns() const = 0;
  virtual bool raw_decode(const uint8_t *bytes, size_t size, uint64_t address, llvm::MCInst &mi,
                          uint64_t &len) const = 0;
  // Per-decoder values the rules computed at creation (ArchRules::setup).
  unsigned arch_reg[4] = {};
  // setup: every instruction's length when the ISA has only one (A64: 4), else 0
  // (becomes Decoder::fixed_insn_len()).
  uint32_t fixed_insn_len = 0;
  // The x_i register number of an MC register, -1 if not one (encoding value).
  int gpr(const llvm::MCOperand &op) const {
    if (!op.isReg() || op.getReg() == 0) return -1;
    return int(regs().getEncodingValue(op.getReg()));
  }
};

struct ArchRules {
  Arch arch;
  const char *triple;                 // e.g. "x86_64-unknown-linux-gnu"
  void (*initialize)();               // LLVMInitialize<T>{TargetInfo,TargetMC,Disassembler}, once
  uint32_t max_insn_len;              // never let LLVM look further
  // The LLVM feature string for the caller's features (defaults added).
  std::string (*features)(std::string_view caller);
  // Once per decoder, after the MC objects exist: fills ctx.arch_reg and
  // ctx.fixed_insn_len; sets has_c.
  void (*setup)(Context &ctx, bool *has_c);
  // A decoded pseudo the CPU never executes alone (x86 lone prefix): not an instruction.
  bool (*reject)(llvm::StringRef opcode_name);
  // Fills the ISA fields of *out (flow, pc-relative operands, registers);
  // out->valid/length/name/text/may_load/may_store/has_target are set already.
  void (*fill)(const Context &ctx, const llvm::MCInst &mi, const uint8_t *bytes, Insn *out);
};

// A decoder engine for `rules`; nullptr + *error when LLVM has no such target.
std::unique_ptr<Decoder::Impl> make_decoder(const ArchRules &rules, std::string_view features, std::string *error);

} // namespace lp::mc::llvm_engine
