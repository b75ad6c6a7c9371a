// lp::mc::Decoder engine on LLVM MC (hosted native builds). See decoder_impl.hpp.
#include "mc/decoder_impl.hpp"

#include <cstring>
#include <mutex>

#include <llvm/ADT/ArrayRef.h>
#include <llvm/MC/MCAsmInfo.h>
#include <llvm/MC/MCContext.h>
#include <llvm/MC/MCDisassembler/MCDisassembler.h>
#include <llvm/MC/MCInst.h>
#include <llvm/MC/MCInstPrinter.h>
#include <llvm/MC/MCInstrAnalysis.h>
#include <llvm/MC/MCInstrDesc.h>
#include <llvm/MC/MCInstrInfo.h>
#include <llvm/MC/MCRegisterInfo.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/MCTargetOptions.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/TargetParser/Triple.h>

namespace lp::mc {

namespace {

void init_llvm_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeX86TargetInfo();
    LLVMInitializeX86TargetMC();
    LLVMInitializeX86Disassembler();
    LLVMInitializeRISCVTargetInfo();
    LLVMInitializeRISCVTargetMC();
    LLVMInitializeRISCVDisassembler();
  });
}

int32_t le32(const uint8_t *p) {
  uint32_t v = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  return int32_t(v);
}

// LLVM's printer separates operands with tabs and runs of spaces: one space.
std::string normalise_text(const std::string &s) {
  std::string t;
  bool sp = false;
  for (char c : s) {
    if (c == '\t' || c == ' ') {
      sp = !t.empty();
      continue;
    }
    if (sp) t += ' ';
    sp = false;
    t += c;
  }
  return t;
}

struct LlvmImpl final : Decoder::Impl {
  std::string triple_name;
  llvm::Triple triple;
  const llvm::Target *target = nullptr;
  std::unique_ptr<llvm::MCRegisterInfo> mri;
  std::unique_ptr<llvm::MCAsmInfo> mai;
  std::unique_ptr<llvm::MCSubtargetInfo> sti;
  std::unique_ptr<llvm::MCInstrInfo> mii;
  std::unique_ptr<llvm::MCContext> ctx;
  std::unique_ptr<llvm::MCDisassembler> dis;
  std::unique_ptr<llvm::MCInstrAnalysis> mia;
  std::unique_ptr<llvm::MCInstPrinter> printer;
  unsigned rip = 0, eip = 0; // x86 register numbers
  unsigned ra_enc = 1;       // RISC-V x1
  // The printer keeps mutable state; decode() is otherwise const and reentrant.
  mutable std::mutex print_mu;

  bool raw_decode(const uint8_t *bytes, size_t size, uint64_t address, llvm::MCInst &mi, uint64_t &len) const {
    if (size == 0) return false;
    llvm::ArrayRef<uint8_t> ref(bytes, size);
    len = 0;
    auto st = dis->getInstruction(mi, len, ref, address, llvm::nulls());
    return st == llvm::MCDisassembler::Success && len > 0 && len <= size;
  }

  int gpr(const llvm::MCOperand &op) const {
    if (!op.isReg() || op.getReg() == 0) return -1;
    return int(mri->getEncodingValue(op.getReg()));
  }

  void fill_x86(const llvm::MCInst &mi, const uint8_t *bytes, Insn *out) const;
  void fill_riscv(const llvm::MCInst &mi, Insn *out) const;
  int x_reg(unsigned reg) const;
  bool decode(const uint8_t *bytes, size_t size, uint64_t address, Insn *out, bool with_text) const override;
};

void LlvmImpl::fill_x86(const llvm::MCInst &mi, const uint8_t *bytes, Insn *out) const {
  const llvm::MCInstrDesc &d = mii->get(mi.getOpcode());
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
      if (!raw_decode(tmp, out->length, out->address, m2, l2) || l2 != out->length ||
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

// The integer register number of an LLVM RISC-V register ("X0".."X31"), or -1.
int LlvmImpl::x_reg(unsigned reg) const {
  if (reg == 0) return -1;
  llvm::StringRef nm = mri->getName(reg);
  if (nm.size() < 2 || nm[0] != 'X') return -1;
  unsigned v = 0;
  if (nm.drop_front().getAsInteger(10, v) || v > 31) return -1;
  return int(v);
}

void LlvmImpl::fill_riscv(const llvm::MCInst &mi, Insn *out) const {
  const std::string &n = out->name;
  {
    const llvm::MCInstrDesc &d = mii->get(mi.getOpcode());
    auto mark = [&](uint32_t *mask, unsigned reg) {
      const int x = x_reg(reg);
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
      out->flow = (out->rs1 == int(ra_enc) && out->imm == 0) ? Flow::Return : Flow::IndirectJump;
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
    out->rd = int(ra_enc);
    out->imm = imm_of(0);
    out->reads_pc = true;
    out->flow = Flow::Call;
  } else if (n == "C_JR") {
    out->rd = 0;
    out->rs1 = gpr(mi.getOperand(0));
    out->flow = out->rs1 == int(ra_enc) ? Flow::Return : Flow::IndirectJump;
  } else if (n == "C_JALR") {
    out->rd = int(ra_enc);
    out->rs1 = gpr(mi.getOperand(0));
    out->reads_pc = true;
    out->flow = Flow::IndirectCall;
  } else if (n == "C_UNIMP" || n == "UNIMP" || n == "EBREAK" || n == "C_EBREAK") {
    // (ecall returns to the next instruction: an ordinary, relocatable instruction)
    out->flow = Flow::Trap;
  }
}

bool LlvmImpl::decode(const uint8_t *bytes, size_t size, uint64_t address, Insn *out, bool with_text) const {
  // x86 instructions are at most 15 bytes; never let LLVM look further.
  if (arch == Arch::X86_64 && size > 15) size = 15;
  if (arch == Arch::RISCV64 && size > 4) size = 4;
  llvm::MCInst mi;
  uint64_t len = 0;
  if (!raw_decode(bytes, size, address, mi, len)) return false;
  llvm::StringRef nm = mii->getName(mi.getOpcode());
  // LLVM returns a lone x86 prefix (no opcode after it within `size`, or an
  // invalid one) as a pseudo instruction of its own; the CPU never executes a
  // prefix alone, so for us those bytes do not decode.
  if (arch == Arch::X86_64 && nm.endswith("_PREFIX")) return false;
  out->valid = true;
  out->length = uint32_t(len);
  out->opcode = mi.getOpcode();
  out->name = nm.str();
  if (with_text) {
    std::string s;
    llvm::raw_string_ostream os(s);
    {
      std::lock_guard<std::mutex> lk(print_mu);
      printer->printInst(&mi, address, "", *sti, os);
    }
    os.flush();
    out->text = normalise_text(s);
    out->mnemonic = out->text.substr(0, out->text.find(' '));
  }
  const llvm::MCInstrDesc &d = mii->get(mi.getOpcode());
  out->may_load = d.mayLoad();
  out->may_store = d.mayStore();
  uint64_t tgt = 0;
  if (mia->evaluateBranch(mi, address, len, tgt)) {
    out->has_target = true;
    out->target = tgt;
  }
  if (arch == Arch::X86_64)
    fill_x86(mi, bytes, out);
  else
    fill_riscv(mi, out);
  // Direct targets that evaluateBranch did not report (RISC-V compressed
  // variants on some LLVM versions): compute from the immediate.
  if (!out->has_target && arch == Arch::RISCV64 &&
      (out->flow == Flow::CondBranch || out->flow == Flow::Jump || out->flow == Flow::Call)) {
    out->has_target = true;
    out->target = address + uint64_t(out->imm);
  }
  return true;
}

} // namespace

std::unique_ptr<Decoder::Impl> make_llvm_decoder(std::string_view arch, std::string_view features,
                                                 std::string *error) {
  init_llvm_once();
  auto im = std::make_unique<LlvmImpl>();
  std::string feat(features);
  if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
    im->arch = Arch::X86_64;
    im->triple_name = "x86_64-unknown-linux-gnu";
  } else if (arch == "riscv64" || arch == "rv64") {
    im->arch = Arch::RISCV64;
    im->triple_name = "riscv64-unknown-linux-gnu";
    // rv64g(c) base: what Linux user space runs. The caller's string comes last
    // so "-c" overrides the default "+c".
    std::string base = "+m,+a,+f,+d,+c";
    feat = feat.empty() ? base : base + "," + feat;
  } else {
    if (error) *error = "lp::mc: unsupported arch '" + std::string(arch) + "'";
    return nullptr;
  }
  im->features = std::string(features);
  im->triple = llvm::Triple(im->triple_name);
  std::string err;
  im->target = llvm::TargetRegistry::lookupTarget(im->triple_name, err);
  if (!im->target) {
    if (error) *error = "lp::mc: " + err;
    return nullptr;
  }
  const llvm::Target &t = *im->target;
  im->mri.reset(t.createMCRegInfo(im->triple_name));
  llvm::MCTargetOptions opts;
  if (im->mri) im->mai.reset(t.createMCAsmInfo(*im->mri, im->triple_name, opts));
  im->sti.reset(t.createMCSubtargetInfo(im->triple_name, "", feat));
  im->mii.reset(t.createMCInstrInfo());
  if (!im->mri || !im->mai || !im->sti || !im->mii) {
    if (error) *error = "lp::mc: cannot create MC objects for " + im->triple_name;
    return nullptr;
  }
  im->ctx = std::make_unique<llvm::MCContext>(im->triple, im->mai.get(), im->mri.get(), im->sti.get());
  im->dis.reset(t.createMCDisassembler(*im->sti, *im->ctx));
  im->mia.reset(t.createMCInstrAnalysis(im->mii.get()));
  im->printer.reset(t.createMCInstPrinter(im->triple, 0, *im->mai, *im->mii, *im->mri));
  if (!im->dis || !im->mia || !im->printer) {
    if (error) *error = "lp::mc: no disassembler / analysis / printer for " + im->triple_name;
    return nullptr;
  }
  im->printer->setPrintImmHex(true);
  for (unsigned r = 1; r < im->mri->getNumRegs(); ++r) {
    llvm::StringRef nm = im->mri->getName(r);
    if (nm == "RIP") im->rip = r;
    if (nm == "EIP") im->eip = r;
  }
  if (im->arch == Arch::RISCV64) {
    // Probe whether compressed instructions decode: c.nop.
    const uint8_t cnop[2] = {0x01, 0x00};
    llvm::MCInst mi;
    uint64_t len = 0;
    im->has_c = im->raw_decode(cnop, 2, 0, mi, len) && len == 2;
  }
  return im;
}

} // namespace lp::mc
