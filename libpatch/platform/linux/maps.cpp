#include "maps.hpp"

#include <cinttypes>
#include <cstdio>
#include <sys/mman.h>

namespace lp::linux_platform {

int Mapping::prot() const { return (r ? PROT_READ : 0) | (w ? PROT_WRITE : 0) | (x ? PROT_EXEC : 0); }

std::vector<Mapping> read_maps() {
  std::vector<Mapping> out;
  FILE *f = std::fopen("/proc/self/maps", "re");
  if (!f) return out;
  char line[4096];
  while (std::fgets(line, sizeof line, f)) {
    Mapping m;
    char perms[8] = {};
    unsigned long long lo = 0, hi = 0, off = 0;
    int path_at = 0;
    if (std::sscanf(line, "%llx-%llx %7s %llx %*s %*s %n", &lo, &hi, perms, &off, &path_at) < 4) continue;
    m.lo = uintptr_t(lo);
    m.hi = uintptr_t(hi);
    m.r = perms[0] == 'r';
    m.w = perms[1] == 'w';
    m.x = perms[2] == 'x';
    m.offset = off;
    if (path_at > 0) {
      std::string p(line + path_at);
      while (!p.empty() && (p.back() == '\n' || p.back() == ' ')) p.pop_back();
      m.path = p;
    }
    out.push_back(std::move(m));
  }
  std::fclose(f);
  return out;
}

bool maps_readable() {
  FILE *f = std::fopen("/proc/self/maps", "re");
  if (!f) return false;
  std::fclose(f);
  return true;
}

std::optional<Mapping> mapping_of(uintptr_t addr) {
  for (auto &m : read_maps())
    if (addr >= m.lo && addr < m.hi) return m;
  return std::nullopt;
}

} // namespace lp::linux_platform
