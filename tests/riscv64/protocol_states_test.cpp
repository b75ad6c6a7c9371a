// Every intermediate byte state of a RISC-V site, for both ILENs of the code
// (c.nop / nop sleds) and both harts (with C: 2-byte c.unimp trap, granule 2;
// without C: 1-byte trap, granule 1), through the real protocol engine on a
// simulated text buffer.
//
// After every single store the engine issues we "execute" the site the way the
// hart would decode it, from the head (a thread arriving now) and from every
// boundary a thread may still be parked at (the old code's inner boundaries,
// until the evacuating phase-1 sync), and require:
//   head:   the outcome of the old bytes, a trap at the head, or the outcome of
//           the new bytes (old-complete / trap / new-complete);
//   parked: exactly the outcome of the old bytes from there.
// Outcomes are what leaves the site: "call trampoline T then continue at the
// sled's end", "continue at the end", "trap at the head". Anything else (an
// illegal or unknown instruction, a trap not at the head, running off into the
// middle of an instruction) fails. Failures injected at every write and sync
// check the rollback path the same way.
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "encoding.hpp"
#include "engine/protocol.hpp"

namespace rv = lp::riscv64;
using lp::engine::EngineError;
using lp::engine::EngineOps;
using lp::engine::SyncPoint;
using lp::engine::Transition;

namespace {

struct Outcome {
  enum Kind { End, CallEnd, Trap, Bad } kind = Bad;
  uint64_t target = 0; // CallEnd
  std::string why;     // Bad
  bool operator==(const Outcome &o) const { return kind == o.kind && (kind != CallEnd || target == o.target); }
};

std::string str(const Outcome &o) {
  switch (o.kind) {
  case Outcome::End: return "end";
  case Outcome::CallEnd: return "call " + std::to_string(o.target);
  case Outcome::Trap: return "trap";
  case Outcome::Bad: return "BAD(" + o.why + ")";
  }
  return "?";
}

// Runs the site bytes `b` (len bytes at address `site`) from offset `o` as a hart
// with / without C decodes them, with t0 as given (for a thread parked after an
// auipc). The trampoline a call reaches returns to site + len.
Outcome run(const uint8_t *b, uint32_t len, uintptr_t site, bool hart_c, uint32_t o, uint64_t t0 = 0,
            bool t0_valid = false) {
  Outcome r;
  for (int steps = 0; steps < 64; ++steps) {
    if (o == len) return {Outcome::End, 0, {}};
    if (o > len) return {Outcome::Bad, 0, "ran past the site into the middle of an instruction"};
    const uint16_t h = uint16_t(b[o] | (o + 1 < len ? b[o + 1] << 8 : 0));
    uint32_t ilen;
    if (hart_c) {
      if (o + 2 > len) return {Outcome::Bad, 0, "half instruction"};
      if (h == 0) return o == 0 ? Outcome{Outcome::Trap, 0, {}} : Outcome{Outcome::Bad, 0, "trap inside"};
      ilen = rv::insn_length(h);
    } else {
      if ((b[o] & 3) != 3) return o == 0 ? Outcome{Outcome::Trap, 0, {}} : Outcome{Outcome::Bad, 0, "trap inside"};
      if ((site + o) % 4 != 0) return {Outcome::Bad, 0, "misaligned pc on a hart without C"};
      ilen = 4;
    }
    if (ilen == 2) {
      if (h == rv::kCNop) { o += 2; continue; }
      return {Outcome::Bad, 0, "unknown 16-bit instruction " + std::to_string(h)};
    }
    if (ilen != 4 || o + 4 > len) return {Outcome::Bad, 0, "32-bit instruction crosses the site end"};
    const uint32_t w = rv::get32(b + o);
    unsigned rd;
    int32_t off;
    if (w == rv::kNop) { o += 4; continue; }
    if (rv::decode_jal(w, &rd, &off)) {
      const int64_t to = int64_t(o) + off;
      if (rd == rv::kZero) {
        if (to == int64_t(len)) return {Outcome::End, 0, {}};
        if (to > int64_t(o) && to < int64_t(len)) { o = uint32_t(to); continue; }
        return {Outcome::Bad, 0, "j elsewhere"};
      }
      if (rd == rv::kT0) return {Outcome::CallEnd, uint64_t(int64_t(site) + to), {}};
      return {Outcome::Bad, 0, "jal with another link"};
    }
    if (rv::is_auipc(w, rv::kT0)) {
      t0 = site + o + (uint64_t(int64_t(int32_t(w & 0xfffff000u))));
      t0_valid = true;
      o += 4;
      continue;
    }
    if ((w & 0x7fff) == ((rv::kT0 << 15) | (rv::kT0 << 7) | 0x67)) { // jalr t0, lo(t0)
      if (!t0_valid) return {Outcome::Bad, 0, "jalr without its auipc"};
      return {Outcome::CallEnd, t0 + uint64_t(int64_t(int32_t(w) >> 20)), {}};
    }
    return {Outcome::Bad, 0, "unknown instruction " + std::to_string(w)};
  }
  return {Outcome::Bad, 0, "loops"};
}

// Boundaries strictly inside the site where a thread running `b` from the head
// can be (with its t0 at that point).
struct Parked {
  uint32_t off;
  uint64_t t0;
  bool t0_valid;
};
std::vector<Parked> inner_boundaries(const uint8_t *b, uint32_t len, uintptr_t site, bool hart_c) {
  std::vector<Parked> out;
  uint32_t o = 0;
  uint64_t t0 = 0;
  bool t0v = false;
  for (int steps = 0; steps < 64 && o < len; ++steps) {
    if (o) out.push_back({o, t0, t0v});
    const uint16_t h = rv::get16(b + o);
    if (hart_c && rv::insn_length(h) == 2) {
      if (h != rv::kCNop) break;
      o += 2;
      continue;
    }
    if (o + 4 > len) break;
    const uint32_t w = rv::get32(b + o);
    if (w == rv::kNop) { o += 4; continue; }
    if (rv::is_auipc(w, rv::kT0)) {
      t0 = site + o + uint64_t(int64_t(int32_t(w & 0xfffff000u)));
      t0v = true;
      o += 4;
      continue;
    }
    unsigned rd;
    int32_t off;
    if (rv::decode_jal(w, &rd, &off) && rd == rv::kZero && off > 0 && o + uint32_t(off) < len) {
      o += uint32_t(off);
      continue;
    }
    break; // leaves the site (j to the end, a call, a trap)
  }
  return out;
}

struct Form {
  std::string name;
  uint8_t b[32];
};

struct SimSite {
  uintptr_t site = 0;
  uint32_t len = 0;
  const Transition *t = nullptr;
  std::vector<Parked> parked;     // threads that may be inside the old code
  std::vector<Parked> parked_new; // threads that entered the new code (phase 3 began)
};

struct Sim {
  bool hart_c = false;
  std::vector<SimSite> sites;
  int phase = 1; // what the engine is doing: 1 traps, 2 tails, 3 heads, 4 rollback
  int writes = 0, syncs = 0;
  int fail_write_at = -1, fail_sync_at = -1;
  std::vector<std::string> errors;
  int states = 0;

  void check(const char *when) {
    ++states;
    for (SimSite &ss : sites) {
      const uint8_t *cur = reinterpret_cast<const uint8_t *>(ss.site);
      const Transition &t = *ss.t;
      const Outcome o_old = run(t.old_bytes, ss.len, ss.site, hart_c, 0);
      const Outcome o_new = run(t.new_bytes, ss.len, ss.site, hart_c, 0);
      const Outcome h = run(cur, ss.len, ss.site, hart_c, 0);
      if (!(h == o_old || h == o_new || h.kind == Outcome::Trap))
        errors.push_back(std::string(when) + ": head runs " + str(h) + ", old " + str(o_old) + ", new " + str(o_new));
      for (int which = 0; which < 2; ++which) {
        const uint8_t *ref = which ? t.new_bytes : t.old_bytes;
        for (const Parked &p : which ? ss.parked_new : ss.parked) {
          const Outcome want = run(ref, ss.len, ss.site, hart_c, p.off, p.t0, p.t0_valid);
          const Outcome got = run(cur, ss.len, ss.site, hart_c, p.off, p.t0, p.t0_valid);
          if (!(got == want))
            errors.push_back(std::string(when) + ": thread parked at +" + std::to_string(p.off) + " of the " +
                             (which ? "new" : "old") + " code runs " + str(got) + ", should run " + str(want));
        }
      }
    }
  }
};

int sim_write(void *ctx, uintptr_t addr, const uint8_t *src, uint32_t g) {
  auto *s = static_cast<Sim *>(ctx);
  if (s->writes++ == s->fail_write_at) return -1;
  SimSite *ss = nullptr;
  for (SimSite &x : s->sites)
    if (addr >= x.site && addr + g <= x.site + x.len) ss = &x;
  if (addr % g != 0) s->errors.push_back("unaligned store");
  if (!ss) {
    s->errors.push_back("store outside every site");
    return -1;
  }
  std::memcpy(reinterpret_cast<void *>(addr), src, g); // one granule: one store
  // Once a site's head holds the new code, threads can run into it and park.
  if (s->phase == 3 && std::memcmp(reinterpret_cast<void *>(ss->site), ss->t->new_bytes, ss->len) == 0)
    ss->parked_new = inner_boundaries(ss->t->new_bytes, ss->len, ss->site, s->hart_c);
  s->check(s->phase == 1 ? "phase 1 store" : s->phase == 2 ? "phase 2 store" : s->phase == 3 ? "phase 3 store" : "rollback store");
  return 0;
}

int sim_sync(void *ctx, SyncPoint point, bool evacuate) {
  auto *s = static_cast<Sim *>(ctx);
  if (s->syncs++ == s->fail_sync_at) return -1;
  if (point == SyncPoint::AfterTraps) {
    if (evacuate) // the signal round moves them to the sled's end
      for (SimSite &ss : s->sites) ss.parked.clear();
    s->phase = 2;
  } else if (point == SyncPoint::AfterTails) {
    s->phase = 3;
  } else if (point == SyncPoint::Rollback) {
    s->phase = 4;
    if (evacuate)
      for (SimSite &ss : s->sites) ss.parked.clear(), ss.parked_new.clear();
  }
  s->check("after sync");
  return 0;
}

struct Case {
  bool hart_c;
  rv::Ilen ilen;
  uint32_t len;
  uint32_t misalign; // site address % 4
};

std::vector<Form> forms(const Case &c, uintptr_t site) {
  std::vector<Form> f;
  auto add = [&](const char *n, auto fill) {
    Form x;
    x.name = n;
    std::memset(x.b, 0xee, sizeof x.b);
    if (fill(x.b)) f.push_back(x);
  };
  add("raw-sled", [&](uint8_t *b) { rv::fill_nops(b, c.len, c.ilen); return true; });
  if (c.len >= 4 && c.len > uint32_t(c.ilen))
    add("skip", [&](uint8_t *b) { rv::encode_skip(c.len, c.ilen, b); return true; });
  add("jal-A", [&](uint8_t *b) { return rv::encode_entry_call(site, site + 0x1000, c.len, c.ilen, b) == rv::CallError::Ok; });
  add("jal-B", [&](uint8_t *b) { return rv::encode_entry_call(site, site - 0x8000, c.len, c.ilen, b) == rv::CallError::Ok; });
  add("auipc-A", [&](uint8_t *b) { return rv::encode_entry_call(site, site + 0x40000000, c.len, c.ilen, b) == rv::CallError::Ok; });
  add("auipc-B", [&](uint8_t *b) { return rv::encode_entry_call(site, site - 0x30000800, c.len, c.ilen, b) == rv::CallError::Ok; });
  // The trap probe form: the trap over the disabled form's head.
  add("trap", [&](uint8_t *b) {
    if (c.len >= 4 && c.len > uint32_t(c.ilen)) {
      rv::encode_skip(c.len, c.ilen, b);
    } else {
      rv::fill_nops(b, c.len, c.ilen);
    }
    rv::trap_bytes(c.hart_c, b);
    return true;
  });
  return f;
}

struct Totals {
  int transitions = 0, states = 0, evacuating = 0, rollbacks = 0;
};

// One site, or (two_sites) a batch of two sites making the same change, so a
// failure at the second site's head store rolls back a first site whose new head
// is already in place (threads may be inside its new code).
void run_case(const Case &c, Totals &tot, bool inject, bool two_sites = false) {
  alignas(8) static uint8_t text[160];
  const uintptr_t site = reinterpret_cast<uintptr_t>(text) + 16 + c.misalign;
  const uintptr_t site_b = site + 64;
  const std::vector<Form> fa = forms(c, site), fb = forms(c, site_b);
  for (size_t fi = 0; fi < fa.size(); ++fi) {
    for (size_t ti = 0; ti < fa.size(); ++ti) {
      const Form &from = fa[fi], &to = fa[ti];
      if (from.name == to.name) continue;
      // The number of writes / syncs of an uninjected run bounds the injections.
      int max_w = 0, max_s = 0;
      for (int inj = -1; inj < (inject ? max_w + max_s : 0); ++inj) {
        Transition t;
        rv::make_site_transition(site, c.len, c.ilen, c.hart_c, from.b, to.b, &t);
        std::memcpy(reinterpret_cast<void *>(site), from.b, c.len);
        Sim s;
        s.hart_c = c.hart_c;
        SimSite ss;
        ss.site = site;
        ss.len = c.len;
        ss.t = &t;
        ss.parked = inner_boundaries(from.b, c.len, site, c.hart_c);
        s.sites.push_back(ss);
        Transition tb[2];
        tb[0] = t;
        if (two_sites) {
          rv::make_site_transition(site_b, c.len, c.ilen, c.hart_c, fb[fi].b, fb[ti].b, &tb[1]);
          std::memcpy(reinterpret_cast<void *>(site_b), fb[fi].b, c.len);
          SimSite sb;
          sb.site = site_b;
          sb.len = c.len;
          sb.t = &tb[1];
          sb.parked = inner_boundaries(fb[fi].b, c.len, site_b, c.hart_c);
          s.sites.push_back(sb);
        }
        if (inj >= 0 && inj < max_w) s.fail_write_at = inj;
        if (inj >= max_w) s.fail_sync_at = inj - max_w;
        EngineOps ops;
        ops.ctx = &s;
        ops.granule = rv::granule(c.hart_c);
        ops.write = sim_write;
        ops.sync = sim_sync;
        s.check("before");
        const EngineError e = lp::engine::run_batch(ops, tb, two_sites ? 2 : 1, nullptr);
        s.check("after");
        const std::string what = std::string(c.hart_c ? "hart C" : "hart no-C") + " code " +
                                 (c.ilen == rv::Ilen::C16 ? "c.nop" : "nop") + " len " + std::to_string(c.len) +
                                 " @" + std::to_string(c.misalign) + " " + from.name + " -> " + to.name +
                                 (inj >= 0 ? " (fail #" + std::to_string(inj) + ")" : "");
        for (const std::string &err : s.errors) ADD_FAILURE() << what << ": " << err;
        if (inj < 0) {
          ASSERT_EQ(e, EngineError::Ok) << what;
          EXPECT_EQ(std::memcmp(reinterpret_cast<void *>(site), to.b, c.len), 0) << what;
          EXPECT_EQ(s.syncs, 3) << what;
          if (two_sites) {
            EXPECT_EQ(std::memcmp(reinterpret_cast<void *>(site_b), fb[ti].b, c.len), 0) << what;
          }
          max_w = s.writes;
          max_s = s.syncs;
          ++tot.transitions;
          tot.evacuating += t.evacuate;
          // The evacuate flag is set exactly when a thread can be parked inside.
          const bool inner = !inner_boundaries(from.b, c.len, site, c.hart_c).empty() ||
                             !inner_boundaries(to.b, c.len, site, c.hart_c).empty();
          EXPECT_EQ(t.evacuate, inner) << what;
        } else {
          ++tot.rollbacks;
          // A failed batch ends old-complete or (sync failed after phase 3) new-complete.
          const bool is_old = std::memcmp(reinterpret_cast<void *>(site), from.b, c.len) == 0;
          const bool is_new = std::memcmp(reinterpret_cast<void *>(site), to.b, c.len) == 0;
          EXPECT_TRUE(is_old || is_new) << what;
        }
        tot.states += s.states;
      }
    }
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> cs;
  for (bool hart_c : {true, false})
    for (rv::Ilen ilen : {rv::Ilen::C16, rv::Ilen::G32}) {
      if (ilen == rv::Ilen::C16 && !hart_c) continue; // a hart without C cannot run c.nop code
      for (uint32_t len : {2u, 4u, 6u, 8u, 12u, 16u, 32u}) {
        if (len % uint32_t(ilen) != 0) continue;
        for (uint32_t mis : {0u, 2u}) {
          if (mis && ilen == rv::Ilen::G32) continue; // rv64g code is 4-byte aligned
          cs.push_back({hart_c, ilen, len, mis});
        }
      }
    }
  return cs;
}

TEST(Rv64ProtocolStates, EveryStoreEveryCase) {
  Totals tot;
  for (const Case &c : all_cases()) run_case(c, tot, false);
  std::printf("transitions %d (evacuating %d), states checked %d\n", tot.transitions, tot.evacuating, tot.states);
  EXPECT_GT(tot.transitions, 200);
}

TEST(Rv64ProtocolStates, TwoSiteBatchFailureAtEveryStep) {
  Totals tot;
  for (const Case &c : all_cases()) run_case(c, tot, true, true);
  std::printf("rollbacks %d, states checked %d\n", tot.rollbacks, tot.states);
}

TEST(Rv64ProtocolStates, FailureAtEveryStepRollsBackCleanly) {
  Totals tot;
  for (const Case &c : all_cases()) run_case(c, tot, true);
  std::printf("rollbacks %d, states checked %d\n", tot.rollbacks, tot.states);
  EXPECT_GT(tot.rollbacks, 1000);
}

// Granule and trap per hart, and why a 1-byte trap is not enough on a C hart.
TEST(Rv64ProtocolStates, TrapPerHart) {
  EXPECT_EQ(rv::granule(true), 2u);
  EXPECT_EQ(rv::trap_len(true), 2u);
  EXPECT_EQ(rv::granule(false), 1u);
  EXPECT_EQ(rv::trap_len(false), 1u);
  uint8_t b[4] = {0xaa, 0xbb, 0xcc, 0xdd};
  rv::trap_bytes(true, b);
  EXPECT_EQ(rv::get32(b), 0xddcc0000u);
  uint8_t c[4] = {0xaa, 0xbb, 0xcc, 0xdd};
  rv::trap_bytes(false, c);
  EXPECT_EQ(rv::get32(c), 0xddccbb00u);
  // jal t0, +0x400: zeroing only its low byte leaves the halfword 0x0200 | ...:
  // quadrant 0, funct3 000 with a non-zero immediate = c.addi4spn, a LEGAL
  // instruction for a hart with C. On a hart without C the same bytes trap.
  uint8_t j[4];
  rv::put32(j, rv::enc_jal(rv::kT0, 0x400));
  j[0] = 0;
  const uint16_t h = rv::get16(j);
  EXPECT_EQ(rv::insn_length(h), 2u);
  EXPECT_NE(h, 0u);            // not c.unimp: a C hart would execute it
  EXPECT_EQ(h >> 13, 0u);      // funct3 000, quadrant 0: c.addi4spn
  EXPECT_NE((h >> 5) & 0xff, 0u); // nzuimm != 0: legal
  EXPECT_EQ(run(j, 4, 0x1000, false, 0).kind, Outcome::Trap);
  EXPECT_EQ(run(j, 4, 0x1000, true, 0).kind, Outcome::Bad);
}

} // namespace
