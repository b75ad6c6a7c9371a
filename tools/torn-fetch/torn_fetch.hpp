// torn-fetch: what can a hart fetch while a site is being rewritten?
//
// For a site transition (engine::Transition, built with the shipped backend
// encoders), runs the shipped protocol engine against a simulated text and
// records its stores and syncs. Between two syncs a fetching hart may observe any
// subset of that epoch's stores (no ordering for instruction fetch), each store
// torn into pieces of the hardware's fetch/store atomicity g when g is smaller
// than the store. Every such state is decoded with LLVM MC from the site start
// and from every place a thread can be parked (old-code boundaries before the
// evacuating sync, and every boundary a thread reaches while walking the site)
// and classified:
//   old  - the walk executes only complete old instructions
//   new  - only complete new instructions
//   trap - the walk starts with the protocol's trap at the site start
//   torn - anything else (a different instruction, an illegal encoding that is not
//          the site's trap, or a mix of old and new instructions)
// The same is done for a naive direct write (no protocol) of the new bytes.
//
// Each engine store reaches the text through a writer, which decides the stores
// the hardware really sees (Writer):
//   mprotect                 one store of the protocol's granule (store_granule)
//   procmem                  what the /proc/self/mem writer ships: the shipped
//                            procmem_store_plan() (libpatch/platform/linux/
//                            text_writer.hpp) copied by the kernel's memcpy model
//   procmem-linux-6.1-naive  the granule-byte pwrite() as the writer issued it
//                            before the plan, copied by Linux 6.1's riscv memcpy:
//                            byte stores unless co-aligned (riscv64 only; NOT shipped,
//                            the expected-negative row: torn on a hart with C)
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

#include "engine/protocol.hpp"

namespace lp::tornfetch {

enum class TrapRule : uint8_t {
  X86Int3,      // int3 at the site start
  RiscvCHart,   // first halfword 0x0000 (c.unimp) at the site start
  RiscvNoCHart, // first halfword with low bits != 11 at the site start (illegal w/o C)
};

enum class Mode : uint8_t { Protocol, Naive };

enum class Writer : uint8_t {
  Mprotect,           // "mprotect"
  Procmem,            // "procmem"
  ProcmemLinux61Naive // "procmem-linux-6.1-naive"
};
const char *writer_name(Writer w);
bool parse_writer(const std::string &s, Writer *out);

// One store as the hardware executes it: `bytes` at `addr`, naturally aligned.
struct Store {
  uintptr_t addr = 0;
  std::vector<uint8_t> bytes;
};

// Linux 6.1 copy_to_user_page()'s memcpy(dst, src, n) as the stores it issues,
// in order: arch "riscv64" follows arch/riscv/lib/memcpy.S (byte head to 8-byte
// alignment and 16 x sd blocks from 128 bytes when dst and src are co-aligned
// mod 8; the tail in lw/sw when src, dst and src + n are all 4-aligned, else
// lb/sb); "x86_64" is modelled as byte stores (rep movsb; exact for n = 1, the
// only size the x86 writer issues). Store addresses are destinations, bytes
// from `data`.
std::vector<Store> linux61_memcpy_stores(const std::string &arch, uintptr_t dst, uintptr_t src, const uint8_t *data,
                                         size_t n);

// The kernel-side source of a /proc/self/mem write: fs/proc/base.c mem_rw()
// copies the user buffer into a page from __get_free_page() and copies from its
// start (any page-aligned address models it).
inline constexpr uintptr_t kProcMemBouncePage = 0x7f0000000000;

// What the hardware sees for one engine store of `granule` bytes `src` at `addr`
// through writer `w` on `arch`; `current` is the text's 4 bytes at addr & ~3.
// Empty when the writer refuses the store.
std::vector<Store> writer_stores(Writer w, const std::string &arch, uintptr_t addr, const uint8_t *src,
                                 uint32_t granule, const uint8_t *current);

struct Case {
  std::string name;          // e.g. "x86-64 entry: nop5 -> call rel32"
  std::string arch;          // "x86_64" | "riscv64"
  std::string hart;          // "x86-64", "rv64gc hart (C)", "rv64g hart (no C)"
  std::string features;      // decoder features ("" / "+c" / "-c")
  std::string kind;          // "entry" | "instruction"
  bool shipped = true;       // a protocol x writer libpatch ships: must be torn-free at its granule
  Writer writer = Writer::Mprotect;
  uint32_t granule = 1;      // declared store granule of the protocol (EngineOps::granule)
  TrapRule trap = TrapRule::X86Int3;
  engine::Transition t;
  std::vector<uint8_t> after; // the bytes following the site (the rest of the function)
};

struct Example {
  uint32_t start = 0;        // walk start offset
  std::string bytes;         // hex of the site state
  std::string why;           // decoded text at the failing step
};

struct GranuleResult {
  uint32_t g = 0;            // hardware atomicity (bytes)
  Mode mode = Mode::Protocol;
  uint64_t states = 0;       // distinct observable states (over all epochs)
  uint64_t walks = 0;        // (state, start) pairs decoded
  uint64_t n_old = 0, n_new = 0, n_trap = 0, n_torn = 0; // walks by class
  uint64_t torn_states = 0;  // states with at least one torn walk
  bool sampled = false;      // an epoch had too many pieces: random sample instead of all
  std::vector<Example> examples; // first few torn walks
};

struct CaseResult {
  Case c;
  std::vector<GranuleResult> protocol; // per g
  std::vector<GranuleResult> naive;    // per g
  uint32_t min_g_protocol = 0;         // smallest g with no torn state (0: none in the list)
  uint32_t min_g_naive = 0;
  bool ok_at_declared = false;         // protocol has no torn state at g = declared granule
  std::string error;                   // setup failure (engine refused, decoder missing)
};

struct Options {
  std::vector<uint32_t> granules{1, 2, 4, 8};
  uint32_t max_exhaustive_pieces = 16; // beyond: sample `samples` states per epoch
  uint32_t samples = 1u << 16;
  uint32_t max_examples = 3;
  bool all_sites = false;              // every relocatable boundary of the samples
  bool naive = true;
  bool show_examples = false;          // to_table: one torn example per torn cell
  // Writers to model, each transition once per writer its arch has (the naive
  // procmem one on riscv64 only: on x86-64 the shipped procmem writer issues
  // the same 1-byte pwrite).
  std::vector<Writer> writers{Writer::Mprotect, Writer::Procmem, Writer::ProcmemLinux61Naive};
};

// The shipped transitions: entry sleds for x86-64 and riscv64 (both hart kinds),
// both directions, plus instruction sites of the sample functions relocated by
// the relocators; each once per writer of opt.writers (transition-major order).
std::vector<Case> shipped_cases(const Options &opt);

CaseResult analyse(const Case &c, const Options &opt);

std::string to_table(const std::vector<CaseResult> &rs, const Options &opt);
std::string to_json(const std::vector<CaseResult> &rs, const Options &opt);

} // namespace lp::tornfetch
