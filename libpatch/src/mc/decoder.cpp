// lp::mc::Decoder: the engine-independent part (see decoder_impl.hpp for the
// two engines). create() picks LLVM MC when the build has it, else the built-in
// RISC-V decoder.
#include "mc/decoder_impl.hpp"

#include <cstring>

// Set (to 1) by the build for the targets that link LLVM.
#ifndef LP_HAVE_LLVM_MC
#define LP_HAVE_LLVM_MC 0
#endif

namespace lp::mc {

const char *flow_name(Flow f) {
  switch (f) {
  case Flow::None: return "none";
  case Flow::CondBranch: return "cond-branch";
  case Flow::Jump: return "jump";
  case Flow::Call: return "call";
  case Flow::IndirectJump: return "indirect-jump";
  case Flow::IndirectCall: return "indirect-call";
  case Flow::Return: return "return";
  case Flow::Trap: return "trap";
  }
  return "?";
}

Decoder::Decoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Decoder::~Decoder() = default;

std::unique_ptr<Decoder> Decoder::create(std::string_view arch, std::string_view features, std::string *error) {
#if LP_HAVE_LLVM_MC
  std::unique_ptr<Impl> im = make_llvm_decoder(arch, features, error);
#else
  std::unique_ptr<Impl> im = make_builtin_decoder(arch, features, error);
#endif
  if (!im) return nullptr;
  return std::unique_ptr<Decoder>(new Decoder(std::move(im)));
}

std::unique_ptr<Decoder> Decoder::create_builtin(std::string_view arch, std::string_view features,
                                                 std::string *error) {
  std::unique_ptr<Impl> im = make_builtin_decoder(arch, features, error);
  if (!im) return nullptr;
  return std::unique_ptr<Decoder>(new Decoder(std::move(im)));
}

bool Decoder::uses_llvm() { return LP_HAVE_LLVM_MC != 0; }

Arch Decoder::arch() const { return impl_->arch; }
const std::string &Decoder::features() const { return impl_->features; }
bool Decoder::has_compressed() const { return impl_->has_c; }
uint32_t Decoder::min_insn_align() const {
  return impl_->arch == Arch::X86_64 ? 1u : (impl_->has_c ? 2u : 4u);
}

bool Decoder::decode(const uint8_t *bytes, size_t size, uint64_t address, Insn *out, bool with_text) const {
  *out = Insn{};
  out->address = address;
  if (!bytes || size == 0) return false;
  if (!impl_->decode(bytes, size, address, out, with_text)) {
    *out = Insn{};
    out->address = address;
    return false;
  }
  switch (out->flow) {
  case Flow::CondBranch: out->is_branch = out->is_conditional = true; break;
  case Flow::Jump: out->is_branch = true; break;
  case Flow::Call: out->is_call = true; break;
  case Flow::IndirectJump: out->is_branch = out->is_indirect = true; break;
  case Flow::IndirectCall: out->is_call = out->is_indirect = true; break;
  case Flow::Return: out->is_return = out->is_indirect = true; break;
  default: break;
  }
  return true;
}

Insn Decoder::decode(const uint8_t *bytes, size_t size, uint64_t address) const {
  Insn i;
  decode(bytes, size, address, &i);
  return i;
}

bool Decoder::boundaries(const uint8_t *code, size_t size, uint64_t start, std::vector<uint64_t> *out) const {
  size_t off = 0;
  Insn in;
  while (off < size) {
    if (!decode(code + off, size - off, start + off, &in, false)) return false;
    out->push_back(start + off);
    off += in.length;
  }
  return true;
}

BoundaryStatus Decoder::boundary(const uint8_t *code, size_t size, uint64_t start, uint64_t addr) const {
  if (addr < start || addr >= start + size) return BoundaryStatus::OutOfRange;
  uint64_t off = 0;
  Insn in;
  while (start + off < addr) {
    if (!decode(code + off, size - off, start + off, &in, false)) return BoundaryStatus::Undecodable;
    off += in.length;
  }
  return start + off == addr ? BoundaryStatus::Boundary : BoundaryStatus::Inside;
}

void Decoder::direct_edges(const uint8_t *code, size_t size, uint64_t start, std::vector<Edge> *out) const {
  size_t off = 0;
  Insn in;
  while (off < size) {
    if (!decode(code + off, size - off, start + off, &in, false)) {
      off += min_insn_align(); // resynchronise past undecodable bytes
      continue;
    }
    if (in.has_target) out->push_back({start + off, in.target});
    off += in.length;
  }
}

} // namespace lp::mc
