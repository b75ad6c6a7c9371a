// The built-in RV64GC decoder (decoder.cpp): riscv64 decoding without LLVM, for
// the riscv64 cross builds (Debian 12 has no riscv64 LLVM libraries). Held to
// LLVM MC on the host, encoding by encoding (tests/mc/builtin_decoder_test.cpp).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "mc/decoder_impl.hpp"

namespace lp::riscv64 {

// features: "" (rv64gc) or a comma list of +x / -x for x in m, a, f, d, c,
// zicsr, zifencei (e.g. "-c": rv64g). nullptr + *error for a bad list.
std::unique_ptr<mc::Decoder::Impl> make_builtin_decoder(std::string_view features, std::string *error);

} // namespace lp::riscv64
