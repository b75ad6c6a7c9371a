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
//   old      - the walk executes only complete old instructions
//   new      - only complete new instructions
//   trap     - the walk starts with the protocol's trap at the site start
//   torn     - anything else (a different instruction, an illegal encoding that is
//              not the site's trap, or a mix of old and new instructions)
//   unlisted - (aarch64 only) the walk executes a word that a store of this epoch,
//              made while threads run, changes between two instructions that are
//              not both in B2.2.5's concurrent-modification list (below)
// A state with a torn or an unlisted walk is a torn state (torn_states; the
// unlisted ones are also counted apart, unlisted_states).
// The same is done for a naive direct write (no protocol) of the new bytes.
//
// Each engine store reaches the text through a writer, which decides the stores
// the hardware really sees (Writer):
//   mprotect                 one store of the protocol's granule (store_granule;
//                            aarch64: one 32-bit str)
//   procmem                  what the /proc/self/mem writer ships: the shipped
//                            procmem_store_plan() (libpatch/platform/linux/
//                            text_writer.hpp) copied by the kernel's memcpy model
//                            (aarch64: KernelCopy::AlignedWord, the 4-byte pwrite
//                            as it is, which Linux 6.1's arm64 memcpy stores as two
//                            32-bit stores of the same word: linux61_memcpy_stores)
//   procmem-linux-6.1-naive  the granule-byte pwrite() as the writer issued it
//                            before the plan, copied by Linux 6.1's riscv memcpy:
//                            byte stores unless co-aligned (riscv64 only; NOT shipped,
//                            the expected-negative row: torn on a hart with C)
//
// aarch64 rows (arch "aarch64", hart "aarch64", decoder features "", granule 4,
// TrapRule::A64Brk). Built like the other rows from the shipped ISA code: the
// entry sleds' bytes from backends/aarch64/encoding.hpp (kNop, encode_entry_jump,
// trap_insn), instruction sites from the aarch64 relocator over samples/aarch64.s
// (relocate, encode_site_jump); the Transition the way A64Backend::make_transition
// (backends/aarch64/backend.cpp) builds it (len = site length, trap_len = 4, trap
// = BRK #0xc9, no evacuation), its class being host-only code:
//   entry sleds, protocol "breakpoint": `-fpatchable-function-entry=2` (2 x NOP),
//     alone and after `bti c` (the site starts after it, as A64Backend::site_start
//     says), NOP <-> B trampoline (jump probes) and NOP <-> BRK #0xc9 (trap probes),
//     both directions: the only toggles the backend makes (a jump probe never
//     becomes a trap probe in place; B -> BRK and BRK -> B occur as the phases of
//     those). Every store is a listed pair, so the patcher holds none of them.
//   instruction sites, protocol "stopped" (what lp_probe_protocol() reports for
//     them): the word at a relocatable boundary <-> B (jump probes) and <-> BRK
//     #0xc9 (trap probes). The stores leaving or entering the original word are
//     held (held_stores), unless that word is itself listed (a `b` or `bl`
//     site: every store is then a listed pair and none is held).
//   the expected negative (NOT shipped): an instruction site's "-> b" made with
//     the plain breakpoint protocol, no hold round ("[no hold round]" in its name):
//     its phase-1 store (original -> BRK) runs under other threads and must be
//     reported unlisted at g = 4.
// The hazard on AArch64 is semantic, not a torn word: every aligned 32-bit store
// is single-copy atomic, but a thread executing a word while another changes it
// is only guaranteed the old or the new instruction when BOTH are in B2.2.5's
// list (lp::aarch64::concurrent_modification_safe(): B, BL, BRK, HVC, ISB, NOP,
// SMC, SVC); otherwise CONSTRAINED UNPREDICTABLE. So in the aarch64 rows:
//   * a hardware store made while threads run that changes a word from `a` to `b`
//     with !concurrent_modification_safe(a, b) makes every walk of its epoch that
//     executes that word unlisted, whether the state has the store or not (the
//     thread may be executing it while it changes, until the sync);
//   * protocol "stopped" models the patcher's hold round (libpatch/src/patcher.cpp
//     op_write / lp_patcher::sync): an engine store for which A64Backend::
//     store_needs_stop() holds (g != 4, or its old or new word not in the list)
//     is deferred to the sync closing its epoch and made while every other thread
//     is held: it is applied atomically at the epoch's end, never observed
//     mid-change, and no walk of any epoch sees it in flight (held_stores);
//   * protocol "breakpoint" makes every store while threads run.
// A naive direct write on aarch64 follows the same rule (an entry sled's NOP -> B
// is then fine at g = 4; an instruction site is unlisted unless its instruction
// is itself listed).
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
  A64Brk,       // the word at the site start is BRK #0xc9 (lp::aarch64::trap_insn())
};

// How the engine's stores reach a text other threads execute.
enum class Protocol : uint8_t {
  Breakpoint, // "breakpoint": every store made while threads run
  Stopped,    // "stopped" (aarch64): stores A64Backend::store_needs_stop() names are made
              // in the phase's hold round, visible atomically at the epoch's end
};
const char *protocol_name(Protocol p);

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
// lb/sb); "aarch64" follows arch/arm64/lib/memcpy.S for n <= 32 (the small
// copies: 16..32 bytes L(copy32)'s two ldp/stp pairs, 8..15 L(copy16)'s two
// 64-bit str, 4..7 L(copy8) lines 88-94 `str A_lw, [dstin]; str B_lw, [dstend,
// -4]`: for an aligned 4-byte copy two 32-bit stores of the same word to the same
// address, 1..3 L(copy4)'s three strb at dst, dst + n/2, dstend - 1), a store
// that is not naturally aligned split into byte stores (single-copy atomic per
// byte only), and anything longer as byte stores (not modelled: the aarch64
// writer copies 4 bytes); "x86_64" is modelled as byte stores (rep movsb; exact
// for n = 1, the only size the x86 writer issues). Store addresses are
// destinations, bytes from `data`; aarch64's stores overlap where the kernel's do.
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
  std::string arch;          // "x86_64" | "riscv64" | "aarch64"
  std::string hart;          // "x86-64", "rv64gc hart (C)", "rv64g hart (no C)", "aarch64"
  std::string features;      // decoder features ("" / "+c" / "-c")
  std::string kind;          // "entry" | "instruction"
  bool shipped = true;       // a protocol x writer libpatch ships: must be torn-free at its granule
  Writer writer = Writer::Mprotect;
  Protocol protocol = Protocol::Breakpoint; // "stopped": aarch64 only
  uint32_t granule = 1;      // declared store granule of the protocol (EngineOps::granule)
  TrapRule trap = TrapRule::X86Int3;
  engine::Transition t;
  std::vector<uint8_t> after; // the bytes following the site (the rest of the function)
};

struct Example {
  uint32_t start = 0;        // walk start offset
  std::string bytes;         // hex of the site state
  std::string why;           // decoded text at the failing step ("unlisted: ..." for those)
  bool unlisted = false;     // an unlisted walk (aarch64), not a torn instruction
};

struct GranuleResult {
  uint32_t g = 0;            // hardware atomicity (bytes)
  Mode mode = Mode::Protocol;
  uint64_t states = 0;       // distinct observable states (over all epochs)
  uint64_t walks = 0;        // (state, start) pairs decoded
  uint64_t n_old = 0, n_new = 0, n_trap = 0, n_torn = 0; // walks by class
  uint64_t n_unlisted = 0;   // walks executing a word an unlisted store changes (aarch64)
  uint64_t torn_states = 0;  // states with at least one torn or unlisted walk
  uint64_t unlisted_states = 0; // of which: states with an unlisted walk
  uint64_t held_stores = 0;  // engine stores the stopped protocol made in a hold round
  uint64_t unlisted_stores = 0; // hardware stores made under running threads whose
                                // (old word, new word) is not in B2.2.5's list
  bool sampled = false;      // an epoch had too many pieces: random sample instead of all
  std::vector<Example> examples; // first few torn or unlisted walks
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

// The shipped transitions: entry sleds for x86-64, riscv64 (both hart kinds) and
// aarch64, both directions, plus instruction sites of the sample functions
// relocated by the relocators, plus the aarch64 expected negative ("[no hold
// round]", not shipped); each once per writer of opt.writers (transition-major
// order).
std::vector<Case> shipped_cases(const Options &opt);

CaseResult analyse(const Case &c, const Options &opt);

std::string to_table(const std::vector<CaseResult> &rs, const Options &opt);
std::string to_json(const std::vector<CaseResult> &rs, const Options &opt);

} // namespace lp::tornfetch
