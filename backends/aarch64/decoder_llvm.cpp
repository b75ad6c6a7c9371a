// aarch64 rules of the LLVM MC decoder engine (mc/llvm_engine.hpp): triple,
// target initialisation, the features (every A64 extension LLVM knows: a
// relocator must understand whatever the program contains), and how LLVM's
// operands become lp::mc::Insn fields (flow by opcode name, the pc-relative
// operands, the exclusive kind; mc/decoder.hpp says what each field holds).
// The built-in decoder (decoder.cpp) is held to exactly these rules. Library
// lp_mc_llvm_aarch64 (links LLVM's AArch64 Desc/Info/Utils/Disassembler
// statically; native host builds only).
#include <cstring>

#include "mc/llvm_engine.hpp"
#include "mc_target.hpp"

extern "C" void LLVMInitializeAArch64TargetInfo();
extern "C" void LLVMInitializeAArch64TargetMC();
extern "C" void LLVMInitializeAArch64Disassembler();

namespace lp::aarch64 {
namespace {

using namespace lp::mc;
using mc::llvm_engine::Context;

void initialize() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeAArch64TargetInfo();
    LLVMInitializeAArch64TargetMC();
    LLVMInitializeAArch64Disassembler();
  });
}

// "+all": every extension's encodings decode (SVE, SME, MTE, PAuth, HBC, MOPS,
// ...); the caller's string comes last.
std::string features(std::string_view caller) {
  std::string base = "+all";
  return caller.empty() ? base : base + "," + std::string(caller);
}

void setup(Context &ctx, bool *has_c) {
  *has_c = false;
  ctx.fixed_insn_len = 4;
}

bool one_of(const std::string &n, std::initializer_list<const char *> names) {
  for (const char *x : names)
    if (n == x) return true;
  return false;
}
bool starts(const std::string &n, const char *p) { return n.compare(0, std::strlen(p), p) == 0; }

void fill(const Context &ctx, const llvm::MCInst &mi, const uint8_t *, Insn *out) {
  const std::string &n = out->name;
  auto imm_of = [&](unsigned i) -> int64_t {
    return i < mi.getNumOperands() && mi.getOperand(i).isImm() ? mi.getOperand(i).getImm() : 0;
  };
  auto reg_of = [&](unsigned i) -> int { return i < mi.getNumOperands() ? ctx.gpr(mi.getOperand(i)) : -1; };
  // LLVM evaluates adrp and the literal loads as "branches" too; only real
  // control transfers keep a target (their address goes to mem_target).
  const uint64_t evaluated = out->target;
  const bool evaluated_ok = out->has_target;
  out->has_target = false;
  out->target = 0;
  auto branch = [&](Flow f) {
    out->flow = f;
    out->reads_pc = true;
    out->has_target = evaluated_ok;
    out->target = evaluated;
    out->imm = int64_t(evaluated - out->address);
  };
  if (n == "B") {
    branch(Flow::Jump);
  } else if (n == "BL") {
    branch(Flow::Call);
  } else if (n == "Bcc" || n == "BCcc") {
    branch(Flow::CondBranch);
    out->cond = uint8_t(imm_of(0) & 15);
  } else if (one_of(n, {"CBZW", "CBZX", "CBNZW", "CBNZX"})) {
    branch(Flow::CondBranch);
    out->rs1 = reg_of(0);
  } else if (one_of(n, {"TBZW", "TBZX", "TBNZW", "TBNZX"})) {
    branch(Flow::CondBranch);
    out->rs1 = reg_of(0);
    out->test_bit = uint8_t(imm_of(1) & 63);
  } else if (one_of(n, {"BR", "BRAAZ", "BRABZ"})) {
    out->flow = Flow::IndirectJump;
    out->rs1 = reg_of(0);
  } else if (one_of(n, {"BRAA", "BRAB"})) {
    out->flow = Flow::IndirectJump;
    out->rs1 = reg_of(0);
    out->rs2 = reg_of(1);
  } else if (one_of(n, {"BLR", "BLRAAZ", "BLRABZ"})) {
    out->flow = Flow::IndirectCall;
    out->reads_pc = true; // the link
    out->rs1 = reg_of(0);
  } else if (one_of(n, {"BLRAA", "BLRAB"})) {
    out->flow = Flow::IndirectCall;
    out->reads_pc = true;
    out->rs1 = reg_of(0);
    out->rs2 = reg_of(1);
  } else if (n == "RET") {
    out->flow = Flow::Return;
    out->rs1 = reg_of(0);
  } else if (n == "RETAA" || n == "RETAB") {
    out->flow = Flow::Return;
    out->rs1 = 30; // x30, implicitly
  } else if (one_of(n, {"BRK", "HLT", "UDF", "HVC", "SMC", "DCPS1", "DCPS2", "DCPS3", "ERET", "ERETAA", "ERETAB",
                        "DRPS"})) {
    // (svc returns to the next instruction: an ordinary, relocatable instruction)
    out->flow = Flow::Trap;
  } else if (n == "ADR") {
    out->rd = reg_of(0);
    out->imm = imm_of(1);
    out->mem_target = out->address + uint64_t(out->imm);
    out->reads_pc = true;
  } else if (n == "ADRP") {
    out->rd = reg_of(0);
    out->imm = imm_of(1) * 4096;
    out->mem_target = (out->address & ~uint64_t(0xfff)) + uint64_t(out->imm);
    out->reads_pc = true;
  } else if (one_of(n, {"LDRWl", "LDRXl", "LDRSWl", "LDRSl", "LDRDl", "LDRQl", "PRFMl"})) {
    if (n != "PRFMl") out->rd = reg_of(0);
    out->imm = imm_of(1) * 4;
    out->mem_target = out->address + uint64_t(out->imm);
    out->reads_pc = true;
  } else if (starts(n, "LDXR") || starts(n, "LDAXR") || starts(n, "LDXP") || starts(n, "LDAXP")) {
    out->exclusive = 1;
  } else if (starts(n, "STXR") || starts(n, "STLXR") || starts(n, "STXP") || starts(n, "STLXP")) {
    out->exclusive = 2;
  }
}

constinit const mc::llvm_engine::ArchRules kRules = {
    Arch::AARCH64, "aarch64-unknown-linux-gnu", &initialize, 4, &features, &setup, nullptr, &fill,
};

} // namespace

std::unique_ptr<mc::Decoder::Impl> make_llvm_decoder(std::string_view features, std::string *error) {
  return mc::llvm_engine::make_decoder(kRules, features, error);
}

} // namespace lp::aarch64
