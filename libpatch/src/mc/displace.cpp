#include "mc/displace.hpp"

#include <cstdio>

namespace lp::mc {

std::string hex_addr(uint64_t a) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", (unsigned long long)a);
  return b;
}

namespace {
Displaced fail(Displaced d, RelocStatus s, std::string why) {
  d.status = s;
  d.reason = std::move(why);
  return d;
}
} // namespace

Displaced select_displaced(const Decoder &dec, const RelocInput &in) {
  Displaced d;
  if (!in.code || in.min_len == 0 || in.min_len > 32) return fail(d, RelocStatus::Invalid, "no code or bad min_len");
  size_t avail = in.avail;
  if (in.func_code) {
    if (in.site < in.func_start || in.site >= in.func_start + in.func_size)
      return fail(d, RelocStatus::NotBoundary, "site " + hex_addr(in.site) + " is outside its function");
    BoundaryStatus b = dec.boundary(in.func_code, in.func_size, in.func_start, in.site);
    if (b != BoundaryStatus::Boundary)
      return fail(d, b == BoundaryStatus::Undecodable ? RelocStatus::Undecodable : RelocStatus::NotBoundary,
                  "site " + hex_addr(in.site) + " is not an instruction boundary of the function at " +
                      hex_addr(in.func_start));
    const size_t to_end = in.func_start + in.func_size - in.site;
    if (to_end < avail) avail = to_end;
  }
  if (in.site % dec.min_insn_align() != 0)
    return fail(d, RelocStatus::NotBoundary, "site " + hex_addr(in.site) + " is misaligned");

  uint32_t off = 0;
  while (off < in.min_len) {
    if (off >= avail)
      return fail(d, RelocStatus::TooShort,
                  "the function ends " + std::to_string(off) + " bytes after the site; the jump needs " +
                      std::to_string(in.min_len));
    Insn insn;
    if (!dec.decode(in.code + off, avail - off, in.site + off, &insn)) {
      // Truncated by the end of the function, or garbage (a fixed-length ISA
      // knows which: fewer bytes than one instruction left, or not).
      const bool truncated = dec.fixed_insn_len() ? avail - off < dec.fixed_insn_len() : off + 15 >= avail;
      return fail(d, truncated ? RelocStatus::TooShort : RelocStatus::Undecodable,
                  "bytes at " + hex_addr(in.site + off) + " do not decode");
    }
    off += insn.length;
    const Flow f = insn.flow;
    const bool stops = f == Flow::Jump || f == Flow::IndirectJump || f == Flow::Return || f == Flow::Trap;
    d.insns.push_back(std::move(insn));
    if (stops) {
      d.ends_in_transfer = true;
      if (off < in.min_len)
        return fail(d, RelocStatus::TooShort,
                    "'" + d.insns.back().text + "' at " + hex_addr(d.insns.back().address) + " ends the block " +
                        std::to_string(off) + " bytes into the site; the jump needs " + std::to_string(in.min_len));
      if (f == Flow::Trap)
        return fail(d, RelocStatus::Unsupported, "'" + d.insns.back().text + "' traps: not relocated");
    }
  }
  d.len = off;
  for (size_t i = 0; i + 1 < d.insns.size(); ++i) {
    if (d.insns[i].is_call)
      return fail(d, RelocStatus::CallInside,
                  "'" + d.insns[i].text + "' at " + hex_addr(d.insns[i].address) +
                      " would return into the overwritten range");
  }
  if (in.func_code) {
    std::vector<Decoder::Edge> edges;
    dec.direct_edges(in.func_code, in.func_size, in.func_start, &edges);
    for (const auto &e : edges) {
      const bool from_inside = e.from >= in.site && e.from < in.site + off;
      if (!from_inside && e.to > in.site && e.to < in.site + off)
        return fail(d, RelocStatus::BranchTarget,
                    "the branch at " + hex_addr(e.from) + " targets " + hex_addr(e.to) +
                        ", inside the displaced range [" + hex_addr(in.site) + ", " + hex_addr(in.site + off) + ")");
    }
  }
  d.status = RelocStatus::Ok;
  return d;
}

Relocation base_relocation(const Displaced &d, const RelocInput &in) {
  Relocation r;
  r.site = in.site;
  r.displaced_len = d.len;
  r.ends_in_control_transfer = d.ends_in_transfer;
  uint32_t off = 0;
  for (const Insn &i : d.insns) {
    r.boundaries.push_back(off);
    off += i.length;
  }
  return r;
}

} // namespace lp::mc
