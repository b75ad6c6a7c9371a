// lp::mc::initialize_host_target(): the one ISA libpatch runs on, so the shipped
// library carries no other ISA's relocator or LLVM target (library lp_mc_host,
// part of libpatch). LP_ARCH_* and LP_MC_LLVM are set by the build.
#include "mc/target.hpp"

#if LP_ARCH_X86_64
#include "x86_64/mc_target.hpp"
namespace lp_host = lp::x86_64;
#elif LP_ARCH_RISCV64
#include "riscv64/mc_target.hpp"
namespace lp_host = lp::riscv64;
#elif LP_ARCH_AARCH64
#include "aarch64/mc_target.hpp"
namespace lp_host = lp::aarch64;
#endif

namespace lp::mc {

void initialize_host_target() {
#if LP_ARCH_X86_64 || LP_ARCH_RISCV64 || LP_ARCH_AARCH64
  register_target(lp_host::mc_target());
#if LP_MC_LLVM
  register_llvm_decoder(lp_host::mc_target().arch, &lp_host::make_llvm_decoder);
#endif
#endif
}

} // namespace lp::mc
