// Choosing the instructions a site jump displaces (shared by the relocators).
#pragma once

#include <string>
#include <vector>

#include "mc/decoder.hpp"
#include "mc/reloc.hpp"

namespace lp::mc {

struct Displaced {
  RelocStatus status = RelocStatus::Invalid;
  std::string reason;
  std::vector<Insn> insns;   // whole instructions covering [site, site + min_len)
  uint32_t len = 0;          // their total length
  bool ends_in_transfer = false; // the last one never falls through
};

// Decodes from in.site until at least in.min_len bytes are covered, and checks:
// site is a boundary of the function (when given), no ret / unconditional jump /
// trap / function end before min_len, no call before the last instruction (it
// would return into the overwritten bytes), and no direct branch from outside
// the range lands strictly inside it.
Displaced select_displaced(const Decoder &dec, const RelocInput &in);

// The arch-independent part of a Relocation for a displaced range: site,
// length, instruction boundaries, whether it ends in a control transfer.
Relocation base_relocation(const Displaced &d, const RelocInput &in);

std::string hex_addr(uint64_t a);

} // namespace lp::mc
