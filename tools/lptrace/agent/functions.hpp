// The functions of the running process: every defined STT_FUNC symbol (with a
// size) of .symtab and .dynsym of the executable and of every loaded shared
// object, read from their files (dl_iterate_phdr gives the objects and their
// load biases). What `lptrace -f [OBJECT:]FUNCTION` patterns select from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lptrace {

struct Function {
  std::string object; // basename of the object's file ("ls", "libc.so.6")
  std::string name;
  uintptr_t addr = 0;
  uint64_t size = 0;
};

// A loaded ELF object: its file, the name patterns see (the basename; for the
// executable the name of /proc/self/exe), and its load bias.
struct LoadedObject {
  std::string path;
  std::string name;
  uintptr_t bias = 0;
  bool is_main = false; // the executable (the first object)
};
std::vector<LoadedObject> loaded_objects();

// The functions of one object: every (address, name) once, aliases (readdir
// and readdir64) listed under each of their names, so a pattern may name any.
std::vector<Function> functions_of(const LoadedObject &o);

// functions_of every loaded object, the executable's first.
std::vector<Function> list_functions();

// `[OBJECT_GLOB:]FUNCTION_GLOB` (fnmatch). OBJECT_GLOB "main" also matches the
// executable whatever its name. Empty on a malformed pattern, with `why`.
struct Pattern {
  std::string object; // "" = any object
  std::string function;
};
bool parse_pattern(const std::string &text, Pattern *out, std::string *why);
bool matches(const Pattern &p, const Function &f, bool is_main);

} // namespace lptrace
