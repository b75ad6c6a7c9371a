// Types shared by the per-ISA relocators (backends/<arch>/relocator.hpp).
// LLVM-free. Hosted only (std::vector / std::string).
//
// A relocation moves the whole instructions covering [site, site + min_len) to an
// out-of-line (OOL) copy at `dest` that behaves identically and ends with a jump
// back to site + displaced_len. The core then writes a jump to its trampoline over
// the displaced range with the breakpoint protocol, and uses the boundaries and
// the pc map to evacuate threads parked inside the range.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <vector>

namespace lp::mc {

enum class RelocStatus : uint8_t {
  Ok = 0,
  TooShort,      // the function / a ret / an unconditional jump ends before min_len
  BranchTarget,  // a branch elsewhere in the function lands strictly inside the range
  CallInside,    // a call inside the range would return into the overwritten bytes
  Range,         // a target is out of reach from the OOL copy (or the jump back is)
  Unsupported,   // an instruction reads the pc (or the range) in a way we cannot move
  Undecodable,   // the bytes do not decode
  NotBoundary,   // site is not an instruction boundary of the function
  Invalid,       // bad arguments (null bytes, misaligned dest, ...)
};

const char *reloc_status_name(RelocStatus s);
// LP_E* code (libpatch/patch.h) for a status: TooShort/BranchTarget/CallInside ->
// LP_ETOOSHORT, Range -> LP_ERANGE, Unsupported/Undecodable -> LP_ERELOC,
// NotBoundary -> LP_EBOUNDARY, Invalid -> LP_EINVAL, Ok -> LP_OK.
int reloc_status_to_lp_error(RelocStatus s);

// The code around the site. `code` holds the bytes at `site`, and at least
// `avail` bytes are readable from it (up to the end of the function when known).
// The containing function, when known, lets the relocator check the site is a
// boundary and that no branch lands inside the displaced range.
struct RelocInput {
  uintptr_t site = 0;           // runtime address of the first displaced byte
  const uint8_t *code = nullptr;
  size_t avail = 0;             // bytes readable from `code`
  uint32_t min_len = 0;         // bytes the site jump needs (x86 5; RISC-V 4 jal / 8 auipc+jalr)
  uintptr_t func_start = 0;     // containing function (optional: func_code == nullptr)
  const uint8_t *func_code = nullptr;
  size_t func_size = 0;
  // RISC-V only: a register the OOL copy may clobber (ra or x5..x31), 0 = none. Without
  // one, far targets (beyond jal's +-1 MiB from the OOL copy) are LP_ERANGE...
  unsigned scratch_reg = 0;
  // ...unless exits may trap (RISC-V and A64, for trap probes: one more trap per
  // hit): each unreachable jump becomes an exit trap listed in Relocation::exits
  // (RISC-V: four zero bytes; A64: the backend's trap word, BRK #kBrkImm), and
  // the trap handler continues the thread at its target. (A64 has no scratch
  // register: beyond b's +-128 MiB only exit traps reach.)
  bool trap_exits = false;
};

// An exit trap in a copy: at `pc` (Relocation::exits: `pc` is the offset in
// `code`), continue at `target`.
struct ExitTrap {
  uint64_t pc;
  uint64_t target;
};

struct PcMapEntry {
  uint32_t orig_off;  // offset of an instruction boundary in the displaced range
  uint32_t ool_off;   // offset of the equivalent point in the OOL copy
};

struct Relocation {
  RelocStatus status = RelocStatus::Invalid;
  std::string reason;               // human-readable, names the instruction at fault
  uintptr_t site = 0;
  uintptr_t dest = 0;
  uint32_t displaced_len = 0;       // bytes of original code moved (whole instructions)
  std::vector<uint32_t> boundaries; // instruction starts in [0, displaced_len), first is 0
  std::vector<PcMapEntry> pc_map;   // one entry per boundary, same order
  std::vector<uint8_t> code;        // the OOL copy, jump back included
  uint32_t jump_back_off = 0;       // offset of the jump back in `code` (== code.size() if none)
  std::vector<uint32_t> literals;   // offsets of 8-byte data words inside `code` (x86 absolute
                                    // jump targets after `jmp [rip+0]`): not instructions
  bool ends_in_control_transfer = false; // last displaced insn never falls through (no jump back)
  std::vector<ExitTrap> exits;      // RelocInput::trap_exits: offsets in `code` and their targets
  uint32_t max_code_size = 0;       // upper bound of code.size() for any dest (from plan())

  bool ok() const { return status == RelocStatus::Ok; }
  int lp_error() const { return reloc_status_to_lp_error(status); }
  // Maps a pc at a boundary inside [site, site + displaced_len) to the OOL copy.
  // Returns 0 when pc is not one of the boundaries.
  uintptr_t map_pc(uintptr_t pc) const {
    for (const auto &e : pc_map)
      if (site + e.orig_off == pc) return dest + e.ool_off;
    return 0;
  }
  // Whether `pc` lies strictly inside the displaced range (a thread parked there
  // must be evacuated before the range is rewritten).
  bool inside(uintptr_t pc) const { return pc > site && pc < site + displaced_len; }
};

} // namespace lp::mc
