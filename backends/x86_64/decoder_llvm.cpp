// x86-64 rules of the LLVM MC decoder engine (mc/llvm_engine.hpp): triple,
// target initialisation, and how LLVM's operands become lp::mc::Insn fields
// (control flow from MCInstrDesc, RIP-relative memory operands with the byte
// offset of their disp32 so the relocator can rewrite it). Library
// lp_mc_llvm_x86_64 (links LLVM's X86 Desc/Info/Disassembler statically).
#include <cstring>

#include <llvm/MC/MCInstrDesc.h>

#include "mc/llvm_engine.hpp"
#include "mc_target.hpp"

extern "C" void LLVMInitializeX86TargetInfo();
extern "C" void LLVMInitializeX86TargetMC();
extern "C" void LLVMInitializeX86Disassembler();

namespace lp::x86_64 {
namespace {

using namespace lp::mc;
using mc::llvm_engine::Context;

enum : unsigned { kRip, kEip }; // Context::arch_reg slots

int32_t le32(const uint8_t *p) {
  uint32_t v = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  return int32_t(v);
}

void initialize() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeX86TargetInfo();
    LLVMInitializeX86TargetMC();
    LLVMInitializeX86Disassembler();
  });
}

std::string features(std::string_view caller) { return std::string(caller); }

void setup(Context &ctx, bool *has_c) {
  *has_c = false;
  for (unsigned r = 1; r < ctx.regs().getNumRegs(); ++r) {
    llvm::StringRef nm = ctx.regs().getName(r);
    if (nm == "RIP") ctx.arch_reg[kRip] = r;
    if (nm == "EIP") ctx.arch_reg[kEip] = r;
  }
}

// LLVM returns a lone x86 prefix (no opcode after it within the bytes, or an
// invalid one) as a pseudo instruction of its own; the CPU never executes a
// prefix alone, so for us those bytes do not decode.
bool reject(llvm::StringRef nm) { return nm.endswith("_PREFIX"); }

void fill(const Context &ctx, const llvm::MCInst &mi, const uint8_t *bytes, Insn *out) {
  const unsigned rip = ctx.arch_reg[kRip], eip = ctx.arch_reg[kEip];
  const llvm::MCInstrDesc &d = ctx.insns().get(mi.getOpcode());
  const std::string &n = out->name;
  const bool pcrel0 = d.getNumOperands() > 0 && d.operands()[0].OperandType == llvm::MCOI::OPERAND_PCREL;
  if (d.isCall()) {
    out->flow = pcrel0 ? Flow::Call : Flow::IndirectCall;
  } else if (d.isReturn()) {
    out->flow = Flow::Return;
  } else if (d.isBranch()) {
    if (d.isIndirectBranch() || !pcrel0)
      out->flow = Flow::IndirectJump;
    else if (d.isConditionalBranch())
      out->flow = Flow::CondBranch;
    else
      out->flow = Flow::Jump;
  } else if (n == "INT3" || n == "TRAP" || n == "UD1Wm" || n == "UD1Lm" || n == "UD1Qm" || n == "UD1Wr" ||
             n == "UD1Lr" || n == "UD1Qr" || n == "HLT" || n == "UD2B") {
    out->flow = Flow::Trap;
  }
  // RIP/EIP-relative memory operand: X86 memory operands are 5 MCOperands
  // (base, scale, index, disp, segment).
  for (unsigned i = 0; i + 3 < mi.getNumOperands(); ++i) {
    const auto &op = mi.getOperand(i);
    if (!op.isReg() || (op.getReg() != rip && op.getReg() != eip)) continue;
    out->reads_pc = true;
    const auto &dop = mi.getOperand(i + 3);
    if (op.getReg() != rip || !dop.isImm()) break; // eip-relative or symbolic: not rewritable
    out->rip_relative = true;
    out->disp = dop.getImm();
    out->mem_target = out->address + out->length + uint64_t(out->disp);
    out->disp_size = 4;
    // Find the disp32 in the encoding: a candidate that holds the value and,
    // when perturbed, changes the decoded displacement the same way.
    for (int o = int(out->length) - 4; o >= 1; --o) {
      if (le32(bytes + o) != int32_t(out->disp)) continue;
      uint8_t tmp[16];
      std::memcpy(tmp, bytes, out->length);
      tmp[o + 1] ^= 0x5a;
      llvm::MCInst m2;
      uint64_t l2 = 0;
      if (!ctx.raw_decode(tmp, out->length, out->address, m2, l2) || l2 != out->length ||
          m2.getOpcode() != mi.getOpcode() || m2.getNumOperands() != mi.getNumOperands())
        continue;
      const auto &d2 = m2.getOperand(i + 3);
      if (d2.isImm() && d2.getImm() == int64_t(le32(tmp + o))) {
        out->disp_offset = uint32_t(o);
        break;
      }
    }
    if (out->disp_offset == 0) out->rip_relative = false; // could not locate: not rewritable
    break;
  }
  if (out->has_target) out->reads_pc = true;
}


constinit const mc::llvm_engine::ArchRules kRules = {
    Arch::X86_64, "x86_64-unknown-linux-gnu", &initialize, 15, &features, &setup, &reject, &fill,
};

} // namespace

std::unique_ptr<mc::Decoder::Impl> make_llvm_decoder(std::string_view features, std::string *error) {
  return mc::llvm_engine::make_decoder(kRules, features, error);
}

} // namespace lp::x86_64
