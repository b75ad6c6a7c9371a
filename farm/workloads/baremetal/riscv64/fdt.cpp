// Minimal flattened device tree reader: finds a property of a top-level node
// (/chosen bootargs, /cpus timebase-frequency) or of the root (node ""). OpenSBI hands the tree to the
// S-mode image in a1.
#include "bm.hpp"

namespace bm {
namespace {
uint32_t be32(const void *p) {
  const uint8_t *b = static_cast<const uint8_t *>(p);
  return uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3];
}
// "cpus" matches "cpus" and "cpus@0".
bool node_matches(const char *name, const char *want) {
  while (*want && *name == *want) ++name, ++want;
  return *want == 0 && (*name == 0 || *name == '@');
}
} // namespace

const void *fdt_prop(const void *fdt, const char *node, const char *prop, uint32_t *len) {
  if (!fdt || be32(fdt) != 0xd00dfeedu) return nullptr;
  const uint8_t *base = static_cast<const uint8_t *>(fdt);
  const uint32_t total = be32(base + 4);
  const uint8_t *p = base + be32(base + 8);     // off_dt_struct
  const char *strings = reinterpret_cast<const char *>(base + be32(base + 12));
  const uint8_t *end = base + total;
  int depth = 0;
  bool in_node = false;
  while (p + 4 <= end) {
    const uint32_t tok = be32(p);
    p += 4;
    if (tok == 1) { // FDT_BEGIN_NODE
      const char *name = reinterpret_cast<const char *>(p);
      uint32_t l = 0;
      while (p + l < end && name[l]) ++l;
      p += (l + 4) & ~3u;
      ++depth;
      if (depth == 2) in_node = node_matches(name, node);
    } else if (tok == 2) { // FDT_END_NODE
      if (depth == 2) in_node = false;
      --depth;
    } else if (tok == 3) { // FDT_PROP
      const uint32_t l = be32(p);
      const char *name = strings + be32(p + 4);
      const uint8_t *val = p + 8;
      p = val + ((l + 3) & ~3u);
      const bool here = node[0] == 0 ? depth == 1 : depth == 2 && in_node; // "" = the root
      if (here && streq(name, prop)) {
        if (len) *len = l;
        return val;
      }
    } else if (tok == 4) { // FDT_NOP
    } else {               // FDT_END or garbage
      break;
    }
  }
  return nullptr;
}

} // namespace bm
