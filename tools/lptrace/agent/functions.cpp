#include "functions.hpp"

#include <elf.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>

namespace lptrace {
namespace {

std::string basename_of(const std::string &p) {
  const auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

int collect(struct dl_phdr_info *info, size_t, void *data) {
  auto *objs = static_cast<std::vector<LoadedObject> *>(data);
  std::string path = info->dlpi_name ? info->dlpi_name : "";
  const bool first = objs->empty();
  if (path.empty()) {
    if (!first) return 0;    // the vdso and friends: no file
    path = "/proc/self/exe"; // the first object is the executable
  }
  std::string name = basename_of(path);
  if (first) {
    char buf[4096];
    const ssize_t r = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (r > 0) name = basename_of(std::string(buf, size_t(r)));
  }
  objs->push_back({path, name, uintptr_t(info->dlpi_addr), first});
  return 0;
}

void read_object(const LoadedObject &o, const std::string &name, std::set<std::pair<uintptr_t, std::string>> *seen,
                 std::vector<Function> *out) {
  const int fd = open(o.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size < off_t(sizeof(Elf64_Ehdr))) {
    close(fd);
    return;
  }
  const size_t len = size_t(st.st_size);
  void *m = mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return;
  const auto *base = static_cast<const uint8_t *>(m);
  const auto *eh = reinterpret_cast<const Elf64_Ehdr *>(base);
  const bool ok = std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
                  eh->e_shoff != 0 && eh->e_shentsize == sizeof(Elf64_Shdr) &&
                  eh->e_shoff + uint64_t(eh->e_shnum) * sizeof(Elf64_Shdr) <= len;
  if (ok) {
    const auto *sh = reinterpret_cast<const Elf64_Shdr *>(base + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; ++i) {
      if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM) continue;
      if (sh[i].sh_link >= eh->e_shnum || sh[i].sh_entsize != sizeof(Elf64_Sym)) continue;
      const Elf64_Shdr &strs = sh[sh[i].sh_link];
      if (sh[i].sh_offset + sh[i].sh_size > len || strs.sh_offset + strs.sh_size > len) continue;
      const auto *syms = reinterpret_cast<const Elf64_Sym *>(base + sh[i].sh_offset);
      const size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
      for (size_t k = 0; k < n; ++k) {
        const Elf64_Sym &s = syms[k];
        if (ELF64_ST_TYPE(s.st_info) != STT_FUNC || s.st_shndx == SHN_UNDEF || s.st_size == 0) continue;
        if (s.st_name >= strs.sh_size) continue;
        const uintptr_t addr = o.bias + s.st_value;
        const char *nm = reinterpret_cast<const char *>(base + strs.sh_offset + s.st_name);
        std::string sym(nm, strnlen(nm, strs.sh_size - s.st_name));
        // .symtab and .dynsym name most functions twice: once per (address, name).
        if (!seen->insert({addr, sym}).second) continue;
        out->push_back({name, std::move(sym), addr, s.st_size});
      }
    }
  }
  munmap(m, len);
}

} // namespace

std::vector<LoadedObject> loaded_objects() {
  std::vector<LoadedObject> objs;
  dl_iterate_phdr(collect, &objs);
  return objs;
}

std::vector<Function> functions_of(const LoadedObject &o) {
  std::vector<Function> out;
  std::set<std::pair<uintptr_t, std::string>> seen;
  read_object(o, o.name, &seen, &out);
  return out;
}

std::vector<Function> list_functions() {
  std::vector<Function> out;
  std::set<std::pair<uintptr_t, std::string>> seen; // across objects too: one (address, name) once
  for (const LoadedObject &o : loaded_objects()) read_object(o, o.name, &seen, &out);
  return out;
}

bool parse_pattern(const std::string &text, Pattern *out, std::string *why) {
  Pattern p;
  const auto colon = text.find(':');
  if (colon == std::string::npos) {
    p.function = text;
  } else {
    p.object = text.substr(0, colon);
    p.function = text.substr(colon + 1);
    if (p.object.empty()) {
      *why = "empty object before ':' in '" + text + "'";
      return false;
    }
    if (p.function.find(':') != std::string::npos) {
      *why = "more than one ':' in '" + text + "' (the form is [OBJECT:]FUNCTION)";
      return false;
    }
  }
  if (p.function.empty()) {
    *why = "no function in '" + text + "' (the form is [OBJECT:]FUNCTION, globs allowed)";
    return false;
  }
  *out = p;
  return true;
}

bool matches(const Pattern &p, const Function &f, bool is_main) {
  if (!p.object.empty() && fnmatch(p.object.c_str(), f.object.c_str(), 0) != 0 && !(is_main && p.object == "main"))
    return false;
  return fnmatch(p.function.c_str(), f.name.c_str(), 0) == 0;
}

} // namespace lptrace
