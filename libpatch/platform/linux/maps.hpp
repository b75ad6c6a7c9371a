// /proc/self/maps: which addresses are mapped, with which protection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lp::linux_platform {

struct Mapping {
  uintptr_t lo = 0, hi = 0;
  bool r = false, w = false, x = false;
  uint64_t offset = 0;
  std::string path;
  int prot() const; // PROT_* bits
};

// False when /proc/self/maps cannot be opened (no /proc mounted).
bool maps_readable();
std::vector<Mapping> read_maps();
std::optional<Mapping> mapping_of(uintptr_t addr);

} // namespace lp::linux_platform
