#include "functions.hpp"

#include <array>
#include <utility>

#include "libpatch/patchable.h"

namespace lp_stress {
namespace {

template <unsigned I> LP_PATCHABLE uint64_t fn(uint64_t x) {
  asm volatile("" ::: "memory"); // a real body each (no identical-code folding)
  return expected(I, x);
}

template <unsigned... I> constexpr std::array<Fn, sizeof...(I)> table(std::integer_sequence<unsigned, I...>) {
  return {&fn<I>...};
}

constexpr std::array<Fn, kMaxFunctions> kTable = table(std::make_integer_sequence<unsigned, kMaxFunctions>{});

} // namespace

const Fn *functions() { return kTable.data(); }

} // namespace lp_stress
