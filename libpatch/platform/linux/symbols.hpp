// Symbol lookup in the running process: the main executable and every loaded
// shared object, from their ELF .symtab (when not stripped) and .dynsym.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lp::linux_platform {

struct Symbol {
  uintptr_t addr = 0;
  size_t size = 0;
  std::string object;
};

// 0, LP_ENOSYM or LP_EINVAL. Function symbols (STT_FUNC / STT_GNU_IFUNC) only.
int lookup_symbol(const char *name, Symbol *out);
// The function symbol containing `addr` (for boundary checks). 0 or LP_ENOSYM.
int symbol_containing(uintptr_t addr, Symbol *out);

} // namespace lp::linux_platform
