// The x86-64 lp::mc target (mc/target.hpp): this backend's relocator behind the
// arch-neutral lp::mc entry points. x86-64 has no built-in decoder: decoding is
// LLVM MC (decoder_llvm.cpp), registered separately where LLVM is linked.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "mc/target.hpp"

namespace lp::x86_64 {

const mc::Target &mc_target();
// The LLVM MC engine for x86-64 (decoder_llvm.cpp, library lp_mc_llvm_x86_64).
std::unique_ptr<mc::Decoder::Impl> make_llvm_decoder(std::string_view features, std::string *error);

} // namespace lp::x86_64
