// Built against an installed libpatch through find_package(libpatch).
#include <cstdio>
#include <libpatch/patch.hpp>
#include <libpatch/patchable.h>

extern "C" LP_PATCHABLE int target(int x) { return x + 1; }
static int hits;
static void on_hit(lp_regs *, void *) { ++hits; }

int main() {
  auto p = libpatch::Patcher::open();
  if (!p) return 1;
  auto pr = p->probe_symbol("target", on_hit);
  if (!pr || pr->enable() != 0 || p->commit() != 0) return 2;
  const int r = target(1);
  std::printf("target(1)=%d hits=%d\n", r, hits);
  return (r == 2 && hits == 1) ? 0 : 3;
}
