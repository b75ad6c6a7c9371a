// Sample functions (assembled from x86_64.s / riscv64.s / aarch64.s by gen.py)
// shared by the relocator tests, the fuzzer seeds and torn-fetch's
// instruction-site cases.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace lp::samples {

struct SampleFn {
  const char *name;
  uint32_t offset; // from the start of the blob
  uint32_t size;
};

#include "samples.inc"

struct Blob {
  const char *flavour;         // "x86_64", "riscv64gc", "riscv64g", "aarch64"
  const unsigned char *code;
  size_t size;
  const SampleFn *fns;
  size_t nfns;
};

inline constexpr Blob kBlobs[] = {
    {"x86_64", k_x86_64_code, sizeof k_x86_64_code, k_x86_64_fns, sizeof k_x86_64_fns / sizeof(SampleFn)},
    {"riscv64gc", k_riscv64gc_code, sizeof k_riscv64gc_code, k_riscv64gc_fns,
     sizeof k_riscv64gc_fns / sizeof(SampleFn)},
    {"riscv64g", k_riscv64g_code, sizeof k_riscv64g_code, k_riscv64g_fns, sizeof k_riscv64g_fns / sizeof(SampleFn)},
    // aarch64.s (Debian's aarch64-linux-gnu-as): torn-fetch's aarch64 instruction sites.
    {"aarch64", k_aarch64_code, sizeof k_aarch64_code, k_aarch64_fns, sizeof k_aarch64_fns / sizeof(SampleFn)},
};

inline const Blob *blob(const char *flavour) {
  auto same = [](const char *a, const char *c) {
    while (*a && *a == *c) ++a, ++c;
    return *a == 0 && *c == 0;
  };
  for (const Blob &b : kBlobs)
    if (same(b.flavour, flavour)) return &b;
  return nullptr;
}

// Data objects in the blobs (not code).
inline bool is_data(const SampleFn &f) {
  const char *n = f.name;
  return (n[0] == 'x' || n[0] == 'r' || n[0] == 'a') && n[1] == '_' && n[2] == 'd' && n[3] == 'a' && n[4] == 't' && n[5] == 'a';
}

} // namespace lp::samples
