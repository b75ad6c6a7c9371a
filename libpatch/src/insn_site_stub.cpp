// Builds without LLVM MC (cross builds): no instruction sites.
#include "insn_site.hpp"

#include "libpatch/patch.h"

namespace lp {
int prepare_insn_probe(lp_patcher &, lp_probe &, uintptr_t) { return LP_EBOUNDARY; }
} // namespace lp
