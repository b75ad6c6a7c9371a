// The aarch64 lp::mc target (mc/target.hpp): the built-in A64 decoder and the
// relocator behind the arch-neutral lp::mc entry points. Where LLVM is linked
// (native hosted builds: tools and tests on the host) its engine is registered
// too and preferred (decoder_llvm.cpp).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "mc/target.hpp"

namespace lp::aarch64 {

const mc::Target &mc_target();
// The LLVM MC engine for aarch64 (decoder_llvm.cpp, library lp_mc_llvm_aarch64).
std::unique_ptr<mc::Decoder::Impl> make_llvm_decoder(std::string_view features, std::string *error);

} // namespace lp::aarch64
