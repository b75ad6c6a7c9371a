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

struct Case {
  std::string name;          // e.g. "x86-64 entry: nop5 -> call rel32"
  std::string arch;          // "x86_64" | "riscv64"
  std::string hart;          // "x86-64", "rv64gc hart (C)", "rv64g hart (no C)"
  std::string features;      // decoder features ("" / "+c" / "-c")
  std::string kind;          // "entry" | "instruction"
  bool shipped = true;       // a protocol libpatch ships: must be torn-free at its granule
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
};

// The shipped transitions: entry sleds for x86-64 and riscv64 (both hart kinds),
// both directions, plus instruction sites of the sample functions relocated by
// the relocators.
std::vector<Case> shipped_cases(const Options &opt);

CaseResult analyse(const Case &c, const Options &opt);

std::string to_table(const std::vector<CaseResult> &rs, const Options &opt);
std::string to_json(const std::vector<CaseResult> &rs, const Options &opt);

} // namespace lp::tornfetch
