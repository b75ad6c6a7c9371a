// Built-in RV64GC decoder (no LLVM). See decoder_impl.hpp. PLACEHOLDER: being written.
#include "mc/decoder_impl.hpp"

namespace lp::mc {

std::unique_ptr<Decoder::Impl> make_builtin_decoder(std::string_view arch, std::string_view, std::string *error) {
  if (error) *error = "lp::mc: built-in decoder for '" + std::string(arch) + "' not available yet";
  return nullptr;
}

} // namespace lp::mc
