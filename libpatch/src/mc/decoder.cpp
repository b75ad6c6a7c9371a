// lp::mc::Decoder: the engine-independent part (see decoder_impl.hpp for the
// two engines), and the target registry of mc/target.hpp. create() picks the
// LLVM MC engine when one is registered for the arch, else the arch's
// built-in decoder.
#include "mc/decoder_impl.hpp"

#include <atomic>
#include <cstring>

#include "mc/target.hpp"

namespace lp::mc {

namespace {

constexpr unsigned kArchs = 3; // Arch::X86_64, Arch::RISCV64, Arch::AARCH64

// Constant-initialised: usable from any constructor, before or after main.
constinit std::atomic<const Target *> g_targets[kArchs] = {};
constinit std::atomic<DecoderFactory> g_llvm[kArchs] = {};

unsigned slot(Arch a) { return unsigned(a) < kArchs ? unsigned(a) : kArchs; }

} // namespace

void register_target(const Target &t) {
  if (slot(t.arch) < kArchs) g_targets[slot(t.arch)].store(&t, std::memory_order_release);
}

void register_llvm_decoder(Arch arch, DecoderFactory make) {
  if (slot(arch) < kArchs) g_llvm[slot(arch)].store(make, std::memory_order_release);
}

const Target *find_target(Arch arch) {
  return slot(arch) < kArchs ? g_targets[slot(arch)].load(std::memory_order_acquire) : nullptr;
}

const Target *find_target(std::string_view name) {
  for (unsigned i = 0; i < kArchs; ++i) {
    const Target *t = g_targets[i].load(std::memory_order_acquire);
    if (!t) continue;
    if (name == t->name) return t;
    for (const char *a : t->aliases)
      if (a && name == a) return t;
  }
  return nullptr;
}

DecoderFactory find_llvm_decoder(Arch arch) {
  return slot(arch) < kArchs ? g_llvm[slot(arch)].load(std::memory_order_acquire) : nullptr;
}

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

namespace {
const Target *target_or_error(std::string_view arch, std::string *error) {
  const Target *t = find_target(arch);
  if (!t && error)
    *error = "lp::mc: no target registered for arch '" + std::string(arch) +
             "' (unsupported arch, or lp::mc::initialize_*_target() not called)";
  return t;
}
} // namespace

std::unique_ptr<Decoder> Decoder::create(std::string_view arch, std::string_view features, std::string *error) {
  const Target *t = target_or_error(arch, error);
  if (!t) return nullptr;
  DecoderFactory make = find_llvm_decoder(t->arch);
  if (!make) make = t->make_builtin_decoder;
  if (!make) {
    if (error) *error = "lp::mc: no decoder for " + std::string(t->name) + " in this build (LLVM MC not linked)";
    return nullptr;
  }
  std::unique_ptr<Impl> im = make(features, error);
  if (!im) return nullptr;
  return std::unique_ptr<Decoder>(new Decoder(std::move(im)));
}

std::unique_ptr<Decoder> Decoder::create_builtin(std::string_view arch, std::string_view features,
                                                 std::string *error) {
  const Target *t = target_or_error(arch, error);
  if (!t) return nullptr;
  if (!t->make_builtin_decoder) {
    if (error) *error = "lp::mc: no built-in decoder for " + std::string(t->name) + " (only LLVM MC)";
    return nullptr;
  }
  std::unique_ptr<Impl> im = t->make_builtin_decoder(features, error);
  if (!im) return nullptr;
  return std::unique_ptr<Decoder>(new Decoder(std::move(im)));
}

bool Decoder::uses_llvm(std::string_view arch) {
  const Target *t = find_target(arch);
  return t && find_llvm_decoder(t->arch);
}

bool Decoder::available(std::string_view arch) {
  const Target *t = find_target(arch);
  return t && (find_llvm_decoder(t->arch) || t->make_builtin_decoder);
}

Arch Decoder::arch() const { return impl_->arch; }
const std::string &Decoder::features() const { return impl_->features; }
bool Decoder::has_compressed() const { return impl_->has_c; }
uint32_t Decoder::min_insn_align() const {
  if (impl_->fixed_len) return impl_->fixed_len;
  return impl_->arch == Arch::X86_64 ? 1u : (impl_->has_c ? 2u : 4u);
}
uint32_t Decoder::fixed_insn_len() const { return impl_->fixed_len; }

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
  if (const uint32_t n = impl_->fixed_len) // every aligned word is an instruction start
    return (addr - start) % n == 0 && start % n == 0 ? BoundaryStatus::Boundary : BoundaryStatus::Inside;
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
