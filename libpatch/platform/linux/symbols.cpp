#include "symbols.hpp"

#include <algorithm>
#include <cstring>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <mutex>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#include "libpatch/patch.h"

namespace lp::linux_platform {
namespace {

struct ObjSym {
  std::string name;
  uint64_t value; // link-time address
  uint64_t size;
};

struct ObjectSymbols {
  bool loaded = false;
  std::vector<ObjSym> syms;
  std::vector<uint32_t> by_value; // indices into syms, ascending value: address lookups are O(log n)
};

// No dynamically initialised namespace-scope object (lp_probe_symbol may run
// from a constructor before such an object is built): the cache is made on
// first use and never destroyed (a late lookup from a destructor stays valid).
constinit std::mutex g_mu;
std::unordered_map<std::string, ObjectSymbols> &cache() {
  static auto *c = new std::unordered_map<std::string, ObjectSymbols>();
  return *c;
}

// Reads the function symbols of an ELF file's .symtab and .dynsym.
void load_file(const std::string &path, ObjectSymbols &out) {
  out.loaded = true;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st {};
  if (fstat(fd, &st) != 0 || size_t(st.st_size) < sizeof(Elf64_Ehdr)) {
    close(fd);
    return;
  }
  const size_t size = size_t(st.st_size);
  void *map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return;
  const auto *base = static_cast<const uint8_t *>(map);
  const auto *eh = reinterpret_cast<const Elf64_Ehdr *>(base);
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_shoff == 0 || eh->e_shoff + uint64_t(eh->e_shnum) * sizeof(Elf64_Shdr) > size) {
    munmap(map, size);
    return;
  }
  const auto *sh = reinterpret_cast<const Elf64_Shdr *>(base + eh->e_shoff);
  for (unsigned i = 0; i < eh->e_shnum; ++i) {
    if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM) continue;
    if (sh[i].sh_link >= eh->e_shnum) continue;
    const Elf64_Shdr &strs = sh[sh[i].sh_link];
    if (sh[i].sh_offset + sh[i].sh_size > size || strs.sh_offset + strs.sh_size > size) continue;
    const auto *sym = reinterpret_cast<const Elf64_Sym *>(base + sh[i].sh_offset);
    const size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
    const char *str = reinterpret_cast<const char *>(base + strs.sh_offset);
    for (size_t k = 0; k < n; ++k) {
      const unsigned type = ELF64_ST_TYPE(sym[k].st_info);
      if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym[k].st_shndx == SHN_UNDEF) continue;
      if (sym[k].st_name >= strs.sh_size) continue;
      out.syms.push_back({std::string(str + sym[k].st_name), sym[k].st_value, sym[k].st_size});
    }
  }
  munmap(map, size);
  out.by_value.resize(out.syms.size());
  for (uint32_t i = 0; i < out.by_value.size(); ++i) out.by_value[i] = i;
  std::stable_sort(out.by_value.begin(), out.by_value.end(),
                   [&](uint32_t a, uint32_t b) { return out.syms[a].value < out.syms[b].value; });
}

// The symbol of `obj` containing link-time address `rel`, or nullptr. Looks at
// the symbols starting at or below it, nearest first (a few: nested symbols
// are rare; .symtab and .dynsym repeat each other).
const ObjSym *containing(const ObjectSymbols &obj, uint64_t rel) {
  auto it = std::upper_bound(obj.by_value.begin(), obj.by_value.end(), rel,
                             [&](uint64_t v, uint32_t i) { return v < obj.syms[i].value; });
  for (int n = 0; it != obj.by_value.begin() && n < 64; ++n) {
    const ObjSym &s = obj.syms[*--it];
    if (rel < s.value + (s.size ? s.size : 1)) return &s;
  }
  return nullptr;
}

struct Visit {
  const char *name = nullptr;   // lookup by name, or
  uintptr_t addr = 0;           // lookup by address
  Symbol *out = nullptr;
  bool found = false;
};

int visit_object(dl_phdr_info *info, size_t, void *arg) {
  auto *v = static_cast<Visit *>(arg);
  std::string path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
  if (path.find("linux-vdso") != std::string::npos) return 0;
  ObjectSymbols &obj = cache()[path];
  if (!obj.loaded) load_file(path, obj);
  const ObjSym *hit = nullptr;
  if (v->name) {
    for (const ObjSym &s : obj.syms)
      if (s.name == v->name) {
        hit = &s;
        break;
      }
  } else if (v->addr >= info->dlpi_addr) {
    hit = containing(obj, uint64_t(v->addr - info->dlpi_addr));
  }
  if (!hit) return 0;
  v->out->addr = uintptr_t(info->dlpi_addr + hit->value);
  v->out->size = size_t(hit->size);
  v->out->object = path;
  v->found = true;
  return 1;
}

} // namespace

int lookup_symbol(const char *name, Symbol *out) {
  if (!name || !*name || !out) return LP_EINVAL;
  std::lock_guard lk(g_mu);
  Visit v;
  v.name = name;
  v.out = out;
  dl_iterate_phdr(visit_object, &v);
  return v.found ? 0 : LP_ENOSYM;
}

int symbol_containing(uintptr_t addr, Symbol *out) {
  if (!out) return LP_EINVAL;
  std::lock_guard lk(g_mu);
  Visit v;
  v.addr = addr;
  v.out = out;
  dl_iterate_phdr(visit_object, &v);
  return v.found ? 0 : LP_ENOSYM;
}

} // namespace lp::linux_platform
