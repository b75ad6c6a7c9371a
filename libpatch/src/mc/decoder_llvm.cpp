// lp::mc::Decoder engine on LLVM MC (hosted native builds), generic over ISAs.
// See decoder_impl.hpp; the ISA rules are backends/<arch>/decoder_llvm.cpp.
#include "mc/llvm_engine.hpp"

#include <cstring>

#include <llvm/ADT/ArrayRef.h>
#include <llvm/MC/MCAsmInfo.h>
#include <llvm/MC/MCContext.h>
#include <llvm/MC/MCDisassembler/MCDisassembler.h>
#include <llvm/MC/MCInstPrinter.h>
#include <llvm/MC/MCInstrAnalysis.h>
#include <llvm/MC/MCInstrDesc.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/MCTargetOptions.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/TargetParser/Triple.h>

namespace lp::mc::llvm_engine {

namespace {

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

struct LlvmImpl final : Decoder::Impl, Context {
  const ArchRules *rules = nullptr;
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
  // The printer keeps mutable state; decode() is otherwise const and reentrant.
  mutable std::mutex print_mu;

  const llvm::MCRegisterInfo &regs() const override { return *mri; }
  const llvm::MCInstrInfo &insns() const override { return *mii; }
  bool raw_decode(const uint8_t *bytes, size_t size, uint64_t address, llvm::MCInst &mi,
                  uint64_t &len) const override {
    if (size == 0) return false;
    llvm::ArrayRef<uint8_t> ref(bytes, size);
    len = 0;
    auto st = dis->getInstruction(mi, len, ref, address, llvm::nulls());
    return st == llvm::MCDisassembler::Success && len > 0 && len <= size;
  }
  bool decode(const uint8_t *bytes, size_t size, uint64_t address, Insn *out, bool with_text) const override;
};

bool LlvmImpl::decode(const uint8_t *bytes, size_t size, uint64_t address, Insn *out, bool with_text) const {
  if (size > rules->max_insn_len) size = rules->max_insn_len;
  llvm::MCInst mi;
  uint64_t len = 0;
  if (!raw_decode(bytes, size, address, mi, len)) return false;
  llvm::StringRef nm = mii->getName(mi.getOpcode());
  if (rules->reject && rules->reject(nm)) return false;
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
  rules->fill(*this, mi, bytes, out);
  return true;
}

} // namespace

std::unique_ptr<Decoder::Impl> make_decoder(const ArchRules &rules, std::string_view features, std::string *error) {
  // LLVM's target registry is a process-wide list; initialise each target once.
  rules.initialize();
  auto im = std::make_unique<LlvmImpl>();
  im->rules = &rules;
  im->arch = rules.arch;
  im->features = std::string(features);
  const std::string triple_name = rules.triple;
  const std::string feat = rules.features(features);
  im->triple = llvm::Triple(triple_name);
  std::string err;
  im->target = llvm::TargetRegistry::lookupTarget(triple_name, err);
  if (!im->target) {
    if (error) *error = "lp::mc: " + err;
    return nullptr;
  }
  const llvm::Target &t = *im->target;
  im->mri.reset(t.createMCRegInfo(triple_name));
  llvm::MCTargetOptions opts;
  if (im->mri) im->mai.reset(t.createMCAsmInfo(*im->mri, triple_name, opts));
  im->sti.reset(t.createMCSubtargetInfo(triple_name, "", feat));
  im->mii.reset(t.createMCInstrInfo());
  if (!im->mri || !im->mai || !im->sti || !im->mii) {
    if (error) *error = "lp::mc: cannot create MC objects for " + triple_name;
    return nullptr;
  }
  im->ctx = std::make_unique<llvm::MCContext>(im->triple, im->mai.get(), im->mri.get(), im->sti.get());
  im->dis.reset(t.createMCDisassembler(*im->sti, *im->ctx));
  im->mia.reset(t.createMCInstrAnalysis(im->mii.get()));
  im->printer.reset(t.createMCInstPrinter(im->triple, 0, *im->mai, *im->mii, *im->mri));
  if (!im->dis || !im->mia || !im->printer) {
    if (error) *error = "lp::mc: no disassembler / analysis / printer for " + triple_name;
    return nullptr;
  }
  im->printer->setPrintImmHex(true);
  rules.setup(*im, &im->has_c);
  im->fixed_len = im->fixed_insn_len;
  return im;
}

} // namespace lp::mc::llvm_engine
