// lp::mc::initialize_all_targets(): every ISA of this build (library lp_mc_all,
// for tools and tests). It lives here, beside the backends, because it is the
// one place that names them all (as LLVM's InitializeAllTargets does): lp::mc
// itself never includes a backend. LP_MC_LLVM_* are set by the build for the
// ISAs whose LLVM MC engine is linked.
#include "mc/target.hpp"

#include "aarch64/mc_target.hpp"
#include "riscv64/mc_target.hpp"
#include "x86_64/mc_target.hpp"

namespace lp::mc {

void initialize_all_targets() {
  register_target(x86_64::mc_target());
  register_target(riscv64::mc_target());
  register_target(aarch64::mc_target());
#if LP_MC_LLVM_X86_64
  register_llvm_decoder(Arch::X86_64, &x86_64::make_llvm_decoder);
#endif
#if LP_MC_LLVM_RISCV64
  register_llvm_decoder(Arch::RISCV64, &riscv64::make_llvm_decoder);
#endif
#if LP_MC_LLVM_AARCH64
  register_llvm_decoder(Arch::AARCH64, &aarch64::make_llvm_decoder);
#endif
}

} // namespace lp::mc
