// riscv64 rules of the LLVM MC decoder engine (mc/llvm_engine.hpp): triple,
// target initialisation, the rv64gc base features, and how LLVM's operands
// become lp::mc::Insn fields (control flow, rd/rs1/rs2/imm, the GPR read and
// write masks the liveness scan uses). The built-in decoder (decoder.cpp) is
// held to exactly these rules. Library lp_mc_llvm_riscv64 (links LLVM's RISCV
// Desc/Info/Disassembler statically).
#include <llvm/MC/MCInstrDesc.h>

#include "mc/llvm_engine.hpp"
#include "mc_target.hpp"

extern "C" void LLVMInitializeRISCVTargetInfo();
extern "C" void LLVMInitializeRISCVTargetMC();
extern "C" void LLVMInitializeRISCVDisassembler();

namespace lp::riscv64 {
namespace {

using namespace lp::mc;
using mc::llvm_engine::Context;

constexpr int kRa = 1; // x1

void initialize() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeRISCVTargetInfo();
    LLVMInitializeRISCVTargetMC();
    LLVMInitializeRISCVDisassembler();
  });
}

// rv64g(c) base: what Linux user space runs. The caller's string comes last
// so "-c" overrides the default "+c".
std::string features(std::string_view caller) {
  std::string base = "+m,+a,+f,+d,+c";
  return caller.empty() ? base : base + "," + std::string(caller);
}

// Whether compressed instructions decode: c.nop.
void setup(Context &ctx, bool *has_c) {
  const uint8_t cnop[2] = {0x01, 0x00};
  llvm::MCInst mi;
  uint64_t len = 0;
  *has_c = ctx.raw_decode(cnop, 2, 0, mi, len) && len == 2;
}

// The integer register number of an LLVM RISC-V register ("X0".."X31"), or -1.
int x_reg(const Context &ctx, unsigned reg) {
  if (reg == 0) return -1;
  llvm::StringRef nm = ctx.regs().getName(reg);
  if (nm.size() < 2 || nm[0] != 'X') return -1;
  unsigned v = 0;
  if (nm.drop_front().getAsInteger(10, v) || v > 31) return -1;
  return int(v);
}

void fill(const Context &ctx, const llvm::MCInst &mi, const uint8_t *, Insn *out) {
  auto gpr = [&](const llvm::MCOperand &op) { return ctx.gpr(op); };
  const std::string &n = out->name;
  {
    const llvm::MCInstrDesc &d = ctx.insns().get(mi.getOpcode());
    auto mark = [&](uint32_t *mask, unsigned reg) {
      const int x = x_reg(ctx, reg);
      if (x > 0) *mask |= 1u << x;
    };
    for (unsigned i = 0; i < mi.getNumOperands(); ++i)
      if (mi.getOperand(i).isReg()) mark(i < d.getNumDefs() ? &out->gpr_written : &out->gpr_read, mi.getOperand(i).getReg());
    for (llvm::MCPhysReg r : d.implicit_defs()) mark(&out->gpr_written, r);
    for (llvm::MCPhysReg r : d.implicit_uses()) mark(&out->gpr_read, r);
  }
  out->compressed = out->length == 2;
  auto opn = [&](unsigned i) -> const llvm::MCOperand * {
    return i < mi.getNumOperands() ? &mi.getOperand(i) : nullptr;
  };
  auto imm_of = [&](unsigned i) -> int64_t {
    auto *o = opn(i);
    return o && o->isImm() ? o->getImm() : 0;
  };
  static const char *const kBranches[] = {"BEQ", "BNE", "BLT", "BGE", "BLTU", "BGEU"};
  bool is_b = false;
  for (const char *b : kBranches)
    if (n == b) is_b = true;
  if (n == "AUIPC") {
    out->rd = gpr(mi.getOperand(0));
    out->imm = imm_of(1);
    out->reads_pc = true;
  } else if (n == "JAL") {
    out->rd = gpr(mi.getOperand(0));
    out->imm = imm_of(1);
    out->reads_pc = true;
    out->flow = out->rd == 0 ? Flow::Jump : Flow::Call;
  } else if (n == "JALR") {
    out->rd = gpr(mi.getOperand(0));
    out->rs1 = gpr(mi.getOperand(1));
    out->imm = imm_of(2);
    if (out->rd == 0)
      out->flow = (out->rs1 == kRa && out->imm == 0) ? Flow::Return : Flow::IndirectJump;
    else {
      out->flow = Flow::IndirectCall;
      out->reads_pc = true; // the link value
    }
  } else if (is_b) {
    out->rs1 = gpr(mi.getOperand(0));
    out->rs2 = gpr(mi.getOperand(1));
    out->imm = imm_of(2);
    out->reads_pc = true;
    out->flow = Flow::CondBranch;
  } else if (n == "C_BEQZ" || n == "C_BNEZ") {
    out->rs1 = gpr(mi.getOperand(0));
    out->rs2 = 0;
    out->imm = imm_of(1);
    out->reads_pc = true;
    out->flow = Flow::CondBranch;
  } else if (n == "C_J") {
    out->rd = 0;
    out->imm = imm_of(0);
    out->reads_pc = true;
    out->flow = Flow::Jump;
  } else if (n == "C_JAL") { // RV32 only, kept for completeness
    out->rd = kRa;
    out->imm = imm_of(0);
    out->reads_pc = true;
    out->flow = Flow::Call;
  } else if (n == "C_JR") {
    out->rd = 0;
    out->rs1 = gpr(mi.getOperand(0));
    out->flow = out->rs1 == kRa ? Flow::Return : Flow::IndirectJump;
  } else if (n == "C_JALR") {
    out->rd = kRa;
    out->rs1 = gpr(mi.getOperand(0));
    out->reads_pc = true;
    out->flow = Flow::IndirectCall;
  } else if (n == "C_UNIMP" || n == "UNIMP" || n == "EBREAK" || n == "C_EBREAK") {
    // (ecall returns to the next instruction: an ordinary, relocatable instruction)
    out->flow = Flow::Trap;
  }
  // Direct targets that evaluateBranch did not report (compressed variants on
  // some LLVM versions): compute from the immediate.
  if (!out->has_target && (out->flow == Flow::CondBranch || out->flow == Flow::Jump || out->flow == Flow::Call)) {
    out->has_target = true;
    out->target = out->address + uint64_t(out->imm);
  }
}

constinit const mc::llvm_engine::ArchRules kRules = {
    Arch::RISCV64, "riscv64-unknown-linux-gnu", &initialize, 4, &features, &setup, nullptr, &fill,
};

} // namespace

std::unique_ptr<mc::Decoder::Impl> make_llvm_decoder(std::string_view features, std::string *error) {
  return mc::llvm_engine::make_decoder(kRules, features, error);
}

} // namespace lp::riscv64
