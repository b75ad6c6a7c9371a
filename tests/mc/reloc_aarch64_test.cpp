// aarch64 relocator (backends/aarch64/relocator.hpp): every relocation form is
// checked three ways: each emitted word decodes (LLVM MC) to one of the
// instructions the form may use; a small interpreter of those instructions runs
// the copy from many register files, flags and memories and must reproduce the
// original instruction's effect (registers, vector registers, sp, memory, next
// pc), with the literal loads reading memory at run time; and the words around
// it (jump back, exit traps, plan bound) are as documented. Every refusal is
// checked for its status and a reason naming the instruction. Both decoder
// engines must give the same copies.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>

#include "aarch64/encoding.hpp"
#include "aarch64/relocator.hpp"
#include "mc/decoder.hpp"
#include "mc/relocate.hpp"
#include "mc/target.hpp"

using namespace lp;
using mc::RelocStatus;
namespace a64 = lp::aarch64;

namespace {

constexpr uint64_t kSite = 0x00007f1234567000ull;

int64_t sx(uint64_t v, unsigned n) { return int64_t(v << (64 - n)) >> (64 - n); }
uint32_t bits(uint32_t w, unsigned hi, unsigned lo) { return (w >> lo) & ((2u << (hi - lo)) - 1); }

struct V128 {
  uint64_t lo = 0, hi = 0;
  bool operator==(const V128 &o) const { return lo == o.lo && hi == o.hi; }
};

// The architectural state the interpreter models.
struct Cpu {
  uint64_t x[31] = {};
  uint64_t sp = 0, pc = 0;
  V128 v[32];
  uint32_t nzcv = 0;                 // N Z C V in bits 3..0
  std::map<uint64_t, uint8_t> wrote; // bytes stored
  std::map<uint64_t, uint8_t> init;  // bytes preset (the literals)

  uint64_t r(unsigned n, bool sp_form) const { return n == 31 ? (sp_form ? sp : 0) : x[n]; }
  void w(unsigned n, uint64_t val, bool sp_form) {
    if (n != 31) x[n] = val;
    else if (sp_form) sp = val;
  }
  uint8_t byte(uint64_t a) const {
    if (auto it = wrote.find(a); it != wrote.end()) return it->second;
    if (auto it = init.find(a); it != init.end()) return it->second;
    return uint8_t((a * 0x9e3779b97f4a7c15ull) >> 56); // any other memory: a fixed pattern
  }
  uint64_t load(uint64_t a, unsigned n) const {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v |= uint64_t(byte(a + i)) << (8 * i);
    return v;
  }
  void store(uint64_t a, unsigned n, uint64_t val) {
    for (unsigned i = 0; i < n; ++i) wrote[a + i] = uint8_t(val >> (8 * i));
  }
  void preset(uint64_t a, unsigned n, uint64_t val) {
    for (unsigned i = 0; i < n; ++i) init[a + i] = uint8_t(val >> (8 * i));
  }
};

bool cond_holds(unsigned cond, uint32_t nzcv) {
  const bool n = nzcv & 8, z = nzcv & 4, c = nzcv & 2, v = nzcv & 1;
  bool r = false;
  switch (cond >> 1) {
  case 0: r = z; break;
  case 1: r = c; break;
  case 2: r = n; break;
  case 3: r = v; break;
  case 4: r = c && !z; break;
  case 5: r = n == v; break;
  case 6: r = n == v && !z; break;
  case 7: return true; // al, nv
  }
  return (cond & 1) ? !r : r;
}

// Executes one word the relocator may emit (or copy). false: not modelled.
bool step(Cpu &c, uint32_t w, std::string &err) {
  const unsigned rd = w & 31, rn = (w >> 5) & 31;
  const uint64_t pc = c.pc;
  c.pc += 4;
  if ((w & 0x1f000000u) == 0x10000000u) { // adr / adrp
    const int64_t imm = sx(bits(w, 23, 5) << 2 | bits(w, 30, 29), 21);
    c.w(rd, (w >> 31) ? (pc & ~uint64_t(0xfff)) + uint64_t(imm * 4096) : pc + uint64_t(imm), false);
  } else if ((w & 0xffc00000u) == 0x91000000u) { // add xd|sp, xn|sp, #imm12
    c.w(rd, c.r(rn, true) + bits(w, 21, 10), true);
  } else if ((w & 0xff800000u) == 0xd2800000u) { // movz
    c.w(rd, uint64_t(bits(w, 20, 5)) << (16 * bits(w, 22, 21)), false);
  } else if ((w & 0xff800000u) == 0xf2800000u) { // movk
    const unsigned sh = 16 * bits(w, 22, 21);
    c.w(rd, (c.r(rd, false) & ~(uint64_t(0xffff) << sh)) | uint64_t(bits(w, 20, 5)) << sh, false);
  } else if ((w & 0xffc00000u) == 0xf9400000u) { // ldr x, [xn|sp, #imm]
    c.w(rd, c.load(c.r(rn, true) + 8 * bits(w, 21, 10), 8), false);
  } else if ((w & 0xffc00000u) == 0xb9400000u) { // ldr w
    c.w(rd, c.load(c.r(rn, true) + 4 * bits(w, 21, 10), 4), false);
  } else if ((w & 0xffc00000u) == 0xb9800000u) { // ldrsw
    c.w(rd, uint64_t(sx(c.load(c.r(rn, true) + 4 * bits(w, 21, 10), 4), 32)), false);
  } else if ((w & 0xffc00000u) == 0x3dc00000u) { // ldr q
    const uint64_t a = c.r(rn, true) + 16 * bits(w, 21, 10);
    c.v[rd] = {c.load(a, 8), c.load(a + 8, 8)};
  } else if ((w & 0xffe00c00u) == 0xf8000c00u) { // str x, [xn|sp, #imm9]!
    const uint64_t a = c.r(rn, true) + uint64_t(sx(bits(w, 20, 12), 9));
    c.store(a, 8, c.r(rd, false));
    c.w(rn, a, true);
  } else if ((w & 0xffe00c00u) == 0xf8400400u) { // ldr x, [xn|sp], #imm9
    const uint64_t a = c.r(rn, true);
    c.w(rd, c.load(a, 8), false);
    c.w(rn, a + uint64_t(sx(bits(w, 20, 12), 9)), true);
  } else if ((w & 0xfffffc00u) == 0x9e670000u) { // fmov d, x
    c.v[rd] = {c.r(rn, false), 0};
  } else if ((w & 0xfffffc00u) == 0x9e660000u) { // fmov x, d
    c.w(rd, c.v[rn].lo, false);
  } else if ((w & 0xfffffc00u) == 0x4e181c00u) { // mov v.d[1], x
    c.v[rd].hi = c.r(rn, false);
  } else if ((w & 0xfffffc00u) == 0x5e180400u) { // mov d, v.d[1]
    c.v[rd] = {c.v[rn].hi, 0};
  } else if ((w & 0xfffffc00u) == 0x5e140400u) { // mov s, v.s[2]
    c.v[rd] = {c.v[rn].hi & 0xffffffffu, 0};
  } else if ((w & 0x7c000000u) == 0x14000000u) { // b / bl
    if (w >> 31) c.x[30] = pc + 4;
    c.pc = pc + uint64_t(sx(bits(w, 25, 0), 26) * 4);
  } else if ((w & 0xff000000u) == 0x54000000u) { // b.cond / bc.cond
    if (cond_holds(w & 15, c.nzcv)) c.pc = pc + uint64_t(sx(bits(w, 23, 5), 19) * 4);
  } else if ((w & 0x7e000000u) == 0x34000000u) { // cbz / cbnz
    const uint64_t v = (w >> 31) ? c.r(rd, false) : uint32_t(c.r(rd, false));
    if ((v == 0) != bool(w & 0x01000000u)) c.pc = pc + uint64_t(sx(bits(w, 23, 5), 19) * 4);
  } else if ((w & 0x7e000000u) == 0x36000000u) { // tbz / tbnz
    const unsigned b = (w >> 31) << 5 | bits(w, 23, 19);
    if ((((c.r(rd, false) >> b) & 1) != 0) == bool(w & 0x01000000u)) c.pc = pc + uint64_t(sx(bits(w, 18, 5), 14) * 4);
  } else if ((w & 0xfffffc1fu) == 0xd61f0000u || (w & 0xfffffc1fu) == 0xd65f0000u) { // br / ret
    c.pc = c.r(rn, false);
  } else if ((w & 0xfffff800u) == 0xd61f0800u && rd == 31) { // braaz / brabz (authentication not modelled)
    c.pc = c.r(rn, false);
  } else if ((w & 0xfffff800u) == 0xd71f0800u) { // braa / brab xn, xm
    c.pc = c.r(rn, false);
  } else if (w == a64::kNop) {
  } else {
    err = "unmodelled word";
    return false;
  }
  return true;
}

// Runs the copy from r.dest until the pc leaves it; an exit trap continues at
// its listed target. Returns false on an unmodelled word or a runaway.
bool run_copy(const mc::Relocation &r, Cpu &c, std::string &err, bool *trapped = nullptr) {
  c.pc = r.dest;
  if (trapped) *trapped = false;
  for (int steps = 0; c.pc >= r.dest && c.pc < r.dest + r.code.size(); ++steps) {
    if (steps > 32) {
      err = "runaway";
      return false;
    }
    uint32_t w;
    std::memcpy(&w, r.code.data() + (c.pc - r.dest), 4);
    if (w == a64::trap_insn()) {
      bool found = false;
      for (const mc::ExitTrap &e : r.exits)
        if (r.dest + e.pc == c.pc) {
          c.pc = e.target;
          found = true;
        }
      if (!found) {
        err = "a trap that is not a listed exit";
        return false;
      }
      if (trapped) *trapped = true;
      break;
    }
    if (!step(c, w, err)) return false;
  }
  return true;
}

// The original instruction's effect on `c` (its next pc in c.pc).
void original(const mc::Insn &i, Cpu &c) {
  const std::string &n = i.name;
  const uint64_t next = i.address + 4;
  c.pc = next;
  if (n == "ADR" || n == "ADRP") c.w(unsigned(i.rd), i.mem_target, false);
  else if (n == "LDRXl") c.w(unsigned(i.rd), c.load(i.mem_target, 8), false);
  else if (n == "LDRWl") c.w(unsigned(i.rd), c.load(i.mem_target, 4), false);
  else if (n == "LDRSWl") c.w(unsigned(i.rd), uint64_t(sx(c.load(i.mem_target, 4), 32)), false);
  else if (n == "LDRSl") c.v[i.rd] = {c.load(i.mem_target, 4), 0};
  else if (n == "LDRDl") c.v[i.rd] = {c.load(i.mem_target, 8), 0};
  else if (n == "LDRQl") c.v[i.rd] = {c.load(i.mem_target, 8), c.load(i.mem_target + 8, 8)};
  else if (n == "PRFMl") {
  } else if (n == "B") c.pc = i.target;
  else if (n == "BL") {
    c.x[30] = next;
    c.pc = i.target;
  } else if (n == "Bcc" || n == "BCcc") {
    if (cond_holds(i.cond, c.nzcv)) c.pc = i.target;
  } else if (n.compare(0, 2, "CB") == 0) {
    const uint64_t v = n.back() == 'X' ? c.r(unsigned(i.rs1), false) : uint32_t(c.r(unsigned(i.rs1), false));
    if ((v == 0) != (n[2] == 'N')) c.pc = i.target;
  } else if (n.compare(0, 2, "TB") == 0) {
    if ((((c.r(unsigned(i.rs1), false) >> i.test_bit) & 1) != 0) == (n[2] == 'N')) c.pc = i.target;
  } else if (n.compare(0, 3, "BLR") == 0) {
    const uint64_t t = c.r(unsigned(i.rs1), false);
    c.x[30] = next;
    c.pc = t;
  }
}

Cpu random_cpu(std::mt19937_64 &rng) {
  Cpu c;
  for (auto &r : c.x) r = rng();
  c.sp = (0x00007ffff0000000ull + (rng() & 0xffff0)) & ~uint64_t(15);
  for (auto &v : c.v) v = {rng(), rng()};
  c.nzcv = uint32_t(rng() & 15);
  return c;
}

void expect_same(const Cpu &got, const Cpu &want, const std::string &what) {
  for (int i = 0; i < 31; ++i) EXPECT_EQ(got.x[i], want.x[i]) << what << ": x" << i;
  EXPECT_EQ(got.sp, want.sp) << what << ": sp";
  EXPECT_EQ(got.pc, want.pc) << what << ": next pc";
  for (int i = 0; i < 32; ++i) EXPECT_TRUE(got.v[i] == want.v[i]) << what << ": v" << i;
  EXPECT_EQ(got.nzcv, want.nzcv) << what << ": nzcv";
}

std::unique_ptr<mc::Decoder> llvm_dec() {
  std::string err;
  auto d = mc::Decoder::create("aarch64", "", &err);
  EXPECT_NE(d, nullptr) << err;
  EXPECT_TRUE(mc::Decoder::uses_llvm("aarch64"));
  return d;
}
std::unique_ptr<mc::Decoder> builtin_dec() {
  std::string err;
  auto d = mc::Decoder::create_builtin("aarch64", "", &err);
  EXPECT_NE(d, nullptr) << err;
  return d;
}

mc::RelocInput raw(const uint8_t *code, size_t avail, uint64_t site = kSite) {
  mc::RelocInput in;
  in.site = site;
  in.code = code;
  in.avail = avail;
  in.min_len = a64::kSiteJumpLen;
  return in;
}

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

// The LLVM names each form's words may have (la = adr / adrp+add / movz+movk).
const std::set<std::string> kLa = {"ADR", "ADRP", "ADDXri", "MOVZXi", "MOVKXi"};
std::set<std::string> with_la(std::initializer_list<const char *> more) {
  std::set<std::string> s = kLa;
  for (const char *m : more) s.insert(m);
  return s;
}

struct Stats {
  std::map<std::string, unsigned> names; // emitted LLVM names over a sweep
  unsigned trapped = 0;
};

// Relocates `word` at kSite into `dest` and checks it (see the file comment).
// `allowed`: the LLVM names the copy's words may have, jump back excluded.
void check_form(const mc::Decoder &llvm, const mc::Decoder &builtin, uint32_t word, uint64_t dest,
                const std::set<std::string> &allowed, Stats &st, std::mt19937_64 &rng, bool trap_exits = false) {
  uint8_t code[4];
  a64::put32(code, word);
  mc::RelocInput in = raw(code, 4);
  in.trap_exits = trap_exits;
  const mc::Relocation r = a64::relocate(llvm, in, dest);
  const mc::Insn insn = llvm.decode(code, 4, kSite);
  const std::string what = "'" + insn.text + "' (0x" + hex(word).substr(2) + ") -> " + hex(dest);
  ASSERT_TRUE(r.ok()) << what << ": " << r.reason;
  const mc::Relocation plan = a64::plan_relocation(llvm, in);
  ASSERT_TRUE(plan.ok()) << what;
  EXPECT_LE(r.code.size(), plan.max_code_size) << what;
  EXPECT_EQ(r.displaced_len, 4u);
  EXPECT_EQ(plan.displaced_len, 4u);
  ASSERT_EQ(r.boundaries, std::vector<uint32_t>{0});
  ASSERT_EQ(r.pc_map.size(), 1u);
  EXPECT_EQ(r.pc_map[0].orig_off, 0u);
  EXPECT_EQ(r.pc_map[0].ool_off, 0u);
  EXPECT_EQ(r.map_pc(kSite), dest);
  ASSERT_EQ(r.code.size() % 4, 0u);
  // The built-in engine gives the same copy.
  const mc::Relocation rb = a64::relocate(builtin, in, dest);
  ASSERT_TRUE(rb.ok()) << what << ": " << rb.reason;
  EXPECT_EQ(rb.code, r.code) << what;
  EXPECT_EQ(rb.jump_back_off, r.jump_back_off) << what;
  EXPECT_EQ(rb.exits.size(), r.exits.size()) << what;
  // Every word decodes; the form's words are the allowed ones.
  for (uint32_t off = 0; off < r.code.size(); off += 4) {
    const mc::Insn e = llvm.decode(r.code.data() + off, 4, dest + off);
    ASSERT_TRUE(e.valid) << what << " +" << off;
    if (off >= r.jump_back_off) continue;
    ++st.names[e.name];
    bool exit = false;
    for (const mc::ExitTrap &x : r.exits) exit |= x.pc == off;
    EXPECT_TRUE(allowed.count(e.name) || (exit && e.name == "BRK")) << what << " +" << off << ": " << e.name
                                                                     << " '" << e.text << "'";
  }
  // The jump back, when the copy falls through.
  if (!r.ends_in_control_transfer) {
    ASSERT_EQ(r.jump_back_off + 4, r.code.size()) << what;
    const mc::Insn jb = llvm.decode(r.code.data() + r.jump_back_off, 4, dest + r.jump_back_off);
    if (jb.name == "BRK") {
      ASSERT_FALSE(r.exits.empty());
      EXPECT_EQ(r.exits.back().pc, r.jump_back_off);
      EXPECT_EQ(r.exits.back().target, kSite + 4);
    } else {
      EXPECT_EQ(jb.name, "B") << what;
      EXPECT_EQ(jb.target, kSite + 4) << what;
    }
  } else {
    EXPECT_EQ(r.jump_back_off, r.code.size()) << what;
  }
  const bool pcrel = insn.reads_pc || insn.has_target;
  if (!pcrel && !(insn.name == "PRFMl")) {
    uint32_t w0;
    std::memcpy(&w0, r.code.data(), 4);
    EXPECT_EQ(w0, word) << what << ": not a copy";
  }
  // Execute from several states; literals preset to random values at their address.
  for (int k = 0; k < 12; ++k) {
    Cpu c = random_cpu(rng);
    if (k < 4 && insn.rs1 >= 0 && insn.rs1 < 31) c.x[insn.rs1] = k & 1 ? 0 : uint64_t(1) << (k * 13 % 64); // zero / one bit
    if (insn.mem_target) {
      c.preset(insn.mem_target, 8, rng());
      c.preset(insn.mem_target + 8, 8, rng());
    }
    Cpu want = c;
    original(insn, want);
    std::string err;
    bool trapped = false;
    ASSERT_TRUE(run_copy(r, c, err, &trapped)) << what << ": " << err << " at +" << (c.pc - 4 - dest);
    st.trapped += trapped;
    expect_same(c, want, what + " state " + std::to_string(k));
    // Memory: only the Q literal's spill slot below sp may be written.
    for (const auto &m : c.wrote)
      EXPECT_TRUE(insn.name == "LDRQl" && m.first >= want.sp - 16 && m.first < want.sp)
          << what << ": wrote " << hex(m.first);
  }
}

// Destinations: near, beyond +-1 MiB (and +-32 KiB), far but within b's reach.
const uint64_t kDests[] = {kSite + 0x4000, kSite - 0x6000, kSite + 0x300000, kSite - 0x200000,
                           kSite + 0x1000000, kSite - 0x6000000, kSite + 0x6000000};

} // namespace

TEST(RelocA64, AdrAndAdrpGetTheOriginalValue) {
  auto llvm = llvm_dec();
  auto bi = builtin_dec();
  std::mt19937_64 rng(1);
  Stats st;
  const auto allowed = kLa;
  for (uint64_t dest : kDests)
    for (int i = 0; i < 40; ++i) {
      const uint32_t imm = i < 4 ? (i & 1 ? 0x1fffffu : 0x100000u) : uint32_t(rng()) & 0x1fffff;
      const uint32_t rd = uint32_t(rng() % 31);
      for (uint32_t op : {0x10000000u, 0x90000000u})
        check_form(*llvm, *bi, op | (imm & 3) << 29 | (imm >> 2) << 5 | rd, dest, allowed, st, rng);
    }
  // Every materialisation occurred: adr, adrp (+ add), movz + movk.
  for (const char *n : {"ADR", "ADRP", "ADDXri", "MOVZXi", "MOVKXi"}) EXPECT_GT(st.names[n], 0u) << n;
  // adr xzr writes nothing: copied.
  uint8_t z[4];
  a64::put32(z, 0x1000005f);
  const mc::Relocation r = a64::relocate(*llvm, raw(z, 4), kSite + 0x4000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(a64::get32(r.code.data()), 0x1000005fu);
}

TEST(RelocA64, LiteralLoadsLoadByAddress) {
  auto llvm = llvm_dec();
  auto bi = builtin_dec();
  std::mt19937_64 rng(2);
  Stats gpr, fp, q;
  const auto g = with_la({"LDRWui", "LDRXui", "LDRSWui"});
  const auto f = with_la({"FMOVXDr", "FMOVDXr", "INSvi64gpr", "DUPi64", "DUPi32", "LDRWui", "LDRXui"});
  const auto qq = with_la({"STRXpre", "LDRQui", "LDRXpost"});
  for (uint64_t dest : kDests)
    for (int i = 0; i < 12; ++i) {
      const uint32_t imm = i < 2 ? (i ? 0x7ffffu : 0x40000u) : uint32_t(rng()) & 0x7ffff;
      const uint32_t rt = i == 3 ? 16 : i == 4 ? 30 : uint32_t(rng() % 31); // x16 / v16 too
      const uint32_t lit = imm << 5 | rt;
      check_form(*llvm, *bi, 0x18000000u | lit, dest, g, gpr, rng);  // ldr w
      check_form(*llvm, *bi, 0x58000000u | lit, dest, g, gpr, rng);  // ldr x
      check_form(*llvm, *bi, 0x98000000u | lit, dest, g, gpr, rng);  // ldrsw
      check_form(*llvm, *bi, 0x1c000000u | lit, dest, f, fp, rng);   // ldr s
      check_form(*llvm, *bi, 0x5c000000u | lit, dest, f, fp, rng);   // ldr d
      check_form(*llvm, *bi, 0x9c000000u | lit, dest, qq, q, rng);   // ldr q
    }
  // (A literal is within +-1 MiB of the site and the copy within +-128 MiB of
  // it: adr or adrp always reach, movz/movk is never needed.)
  for (const char *n : {"LDRWui", "LDRXui", "LDRSWui", "ADR", "ADRP", "ADDXri"}) EXPECT_GT(gpr.names[n], 0u) << n;
  EXPECT_EQ(gpr.names["MOVZXi"], 0u);
  for (const char *n : {"FMOVXDr", "FMOVDXr", "INSvi64gpr", "DUPi64", "DUPi32"}) EXPECT_GT(fp.names[n], 0u) << n;
  for (const char *n : {"STRXpre", "LDRQui", "LDRXpost"}) EXPECT_GT(q.names[n], 0u) << n;
  // The exact S/D sequence, for one case: no register but the destination and
  // x16 (restored) is touched.
  uint8_t c[4];
  a64::put32(c, 0x5c000043); // ldr d3, .+8
  const mc::Relocation r = a64::relocate(*llvm, raw(c, 4), kSite + 0x4000);
  ASSERT_TRUE(r.ok());
  const uint64_t lit = kSite + 8;
  std::vector<uint32_t> want = {a64::enc_fmov_d_x(3, 16), a64::enc_adr(16, int64_t(lit) - int64_t(kSite + 0x4004)),
                                a64::enc_ldr(16, 16, 0), a64::enc_ins_d1_x(3, 16), a64::enc_fmov_x_d(16, 3),
                                a64::enc_dup_d_d1(3, 3), a64::enc_b(int64_t(kSite + 4) - int64_t(kSite + 0x4018))};
  ASSERT_EQ(r.code.size(), 4 * want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(a64::get32(r.code.data() + 4 * i), want[i]) << i;
  // ldr q: the spill keeps sp 16-aligned and restores it.
  a64::put32(c, 0x9c000047); // ldr q7, .+8
  const mc::Relocation rq = a64::relocate(*llvm, raw(c, 4), kSite + 0x4000);
  ASSERT_TRUE(rq.ok());
  EXPECT_EQ(a64::get32(rq.code.data()), a64::enc_str_pre(16, a64::kSp, -16));
  EXPECT_EQ(a64::get32(rq.code.data() + rq.code.size() - 8), a64::enc_ldr_post(16, a64::kSp, 16));
}

TEST(RelocA64, PrefetchAndZeroRegisterLiteralsBecomeNops) {
  auto llvm = llvm_dec();
  auto bi = builtin_dec();
  std::mt19937_64 rng(3);
  Stats st;
  for (uint32_t w : {0xd8000040u, 0xd8ffffe5u, 0x5800005fu, 0x1800005fu, 0x9800005fu})
    for (uint64_t dest : kDests) check_form(*llvm, *bi, w, dest, {"HINT"}, st, rng);
  uint8_t c[4];
  a64::put32(c, 0xd8000040); // prfm pldl1keep, .+8
  const mc::Relocation r = a64::relocate(*llvm, raw(c, 4), kSite + 0x4000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(a64::get32(r.code.data()), a64::kNop);
}

TEST(RelocA64, BranchesAndCalls) {
  auto llvm = llvm_dec();
  auto bi = builtin_dec();
  std::mt19937_64 rng(4);
  Stats b, bl, cond;
  const std::set<std::string> kB = {"B"};
  const auto kBl = with_la({"B"});
  const std::set<std::string> kCond = {"Bcc", "BCcc", "CBZW", "CBZX", "CBNZW", "CBNZX",
                                       "TBZW", "TBZX", "TBNZW", "TBNZX", "B"};
  for (uint64_t dest : kDests)
    for (int i = 0; i < 16; ++i) {
      // b / bl within +-1 MiB of the site (every dest stays within b's reach of it).
      const uint32_t imm26 = uint32_t(rng() & 0x3ffff) ^ (i & 1 ? 0x3ffffffu : 0);
      check_form(*llvm, *bi, 0x14000000u | (imm26 & 0x3ffffff), dest, kB, b, rng);
      check_form(*llvm, *bi, 0x94000000u | (imm26 & 0x3ffffff), dest, kBl, bl, rng);
      const uint32_t imm19 = i == 0 ? 0x3ffffu : i == 1 ? 0x40000u : uint32_t(rng()) & 0x7ffff;
      const uint32_t imm14 = i == 0 ? 0x1fffu : i == 1 ? 0x2000u : uint32_t(rng()) & 0x3fff;
      const uint32_t rt = uint32_t(rng() % 32);
      for (uint32_t c = 0; c < 16; ++c) check_form(*llvm, *bi, 0x54000000u | imm19 << 5 | c, dest, kCond, cond, rng);
      check_form(*llvm, *bi, 0x54000010u | imm19 << 5 | (i & 15), dest, kCond, cond, rng); // bc.cond
      for (uint32_t op : {0x34000000u, 0x35000000u, 0xb4000000u, 0xb5000000u})
        check_form(*llvm, *bi, op | imm19 << 5 | rt, dest, kCond, cond, rng);
      for (uint32_t op : {0x36000000u, 0x37000000u, 0xb6000000u, 0xb7000000u})
        check_form(*llvm, *bi, op | uint32_t(rng() & 31) << 19 | imm14 << 5 | rt, dest, kCond, cond, rng);
    }
  // Both the retargeted and the inverted-over-b forms occurred, for each kind.
  for (const char *n : {"Bcc", "BCcc", "CBZW", "CBZX", "CBNZW", "CBNZX", "TBZW", "TBZX", "TBNZW", "TBNZX"})
    EXPECT_GT(cond.names[n], 0u) << n;
  EXPECT_GT(cond.names["B"], 0u);
  // bl: x30 = site + 4, then b; no jump back.
  uint8_t c[4];
  a64::put32(c, 0x94000100); // bl .+0x400
  const mc::Relocation r = a64::relocate(*llvm, raw(c, 4), kSite + 0x4000);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.ends_in_control_transfer);
  ASSERT_EQ(r.code.size(), 8u);
  EXPECT_EQ(a64::get32(r.code.data()), a64::enc_adr(a64::kLr, int64_t(kSite + 4) - int64_t(kSite + 0x4000)));
  EXPECT_EQ(a64::get32(r.code.data() + 4), a64::enc_b(int64_t(kSite + 0x400) - int64_t(kSite + 0x4004)));
  // b.ne far: the inverted b.eq over a b, then the jump back.
  a64::put32(c, 0x54000041); // b.ne .+8
  const mc::Relocation f = a64::relocate(*llvm, raw(c, 4), kSite + 0x300000);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f.code.size(), 12u);
  EXPECT_EQ(a64::get32(f.code.data()), a64::enc_b_cond(0, 8));
  EXPECT_EQ(a64::get32(f.code.data() + 4), a64::enc_b(int64_t(kSite + 8) - int64_t(kSite + 0x300004)));
  EXPECT_EQ(a64::get32(f.code.data() + 8), a64::enc_b(int64_t(kSite + 4) - int64_t(kSite + 0x300008)));
  // b.al far: always taken, a plain b.
  a64::put32(c, 0x5400004e); // b.al .+8
  const mc::Relocation al = a64::relocate(*llvm, raw(c, 4), kSite + 0x300000);
  ASSERT_TRUE(al.ok());
  EXPECT_EQ(a64::get32(al.code.data()), a64::enc_b(int64_t(kSite + 8) - int64_t(kSite + 0x300000)));
}

TEST(RelocA64, IndirectCallsGetTheOriginalLinkAndReturnsAreCopied) {
  auto llvm = llvm_dec();
  auto bi = builtin_dec();
  std::mt19937_64 rng(5);
  Stats st;
  const auto kBlr = with_la({"BR", "BRAA", "BRAB", "BRAAZ", "BRABZ"});
  for (uint64_t dest : kDests)
    for (uint32_t rn : {0u, 1u, 15u, 16u, 17u, 29u}) {
      check_form(*llvm, *bi, 0xd63f0000u | rn << 5, dest, kBlr, st, rng);          // blr
      check_form(*llvm, *bi, 0xd63f081fu | rn << 5, dest, kBlr, st, rng);          // blraaz
      check_form(*llvm, *bi, 0xd63f0c1fu | rn << 5, dest, kBlr, st, rng);          // blrabz
      check_form(*llvm, *bi, 0xd73f0800u | rn << 5 | 2, dest, kBlr, st, rng);      // blraa xn, x2
      check_form(*llvm, *bi, 0xd73f0c00u | rn << 5 | 31, dest, kBlr, st, rng);     // blrab xn, sp
    }
  for (const char *n : {"BR", "BRAA", "BRAB", "BRAAZ", "BRABZ"}) EXPECT_GT(st.names[n], 0u) << n;
  uint8_t c[4];
  a64::put32(c, 0xd73f0c22); // blrab x1, x2 -> x30 = site + 4; brab x1, x2
  const mc::Relocation r = a64::relocate(*llvm, raw(c, 4), kSite - 0x6000);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.ends_in_control_transfer);
  ASSERT_EQ(r.code.size(), 8u);
  EXPECT_EQ(a64::get32(r.code.data() + 4), a64::enc_bra(1, 2, true));
  // br, ret, braa, retaa, eretaa-free returns: copied, no jump back.
  for (uint32_t w : {0xd61f0180u, 0xd65f03c0u, 0xd65f01c0u, 0xd71f09f0u, 0xd61f0bffu, 0xd65f0bffu, 0xd65f0fffu}) {
    a64::put32(c, w);
    const mc::Relocation x = a64::relocate(*llvm, raw(c, 4), kSite + 0x4000);
    ASSERT_TRUE(x.ok()) << std::hex << w << ": " << x.reason;
    EXPECT_TRUE(x.ends_in_control_transfer);
    ASSERT_EQ(x.code.size(), 4u);
    EXPECT_EQ(a64::get32(x.code.data()), w);
    EXPECT_EQ(x.jump_back_off, 4u);
  }
}

TEST(RelocA64, OrdinaryInstructionsAreCopiedWithTheJumpBack) {
  auto llvm = llvm_dec();
  auto bi = builtin_dec();
  std::mt19937_64 rng(6);
  // add, ldr [x1], stp pre-index, svc, nop, mrs, ldadd, cas, ldar, fadd, an SVE
  // and an SME word; then words LLVM rejects that the built-in calls block
  // words (decoder.hpp, promise 3): copied by the built-in, undecodable by LLVM.
  const uint32_t both[] = {0x8b020020u, 0xf9400020u, 0xa9bf7bfdu, 0xd4000001u, 0xd503201fu, 0xd53b4200u,
                           0xf8200041u, 0xc8a07c41u, 0xc8dffc20u, 0x1e622820u, 0x04200000u, 0xc0800000u};
  const uint32_t builtin_only[] = {0x1e000000u, 0x7e000000u};
  for (uint32_t w : builtin_only) {
    uint8_t c[4];
    a64::put32(c, w);
    EXPECT_EQ(a64::relocate(*llvm, raw(c, 4), kSite + 0x4000).status, RelocStatus::Undecodable);
  }
  for (uint32_t w : both) {
    uint8_t c[4];
    a64::put32(c, w);
    for (const mc::Decoder *d : {llvm.get(), bi.get()}) {
      const mc::Relocation r = a64::relocate(*d, raw(c, 4), kSite + 0x4000);
      ASSERT_TRUE(r.ok()) << std::hex << w << ": " << r.reason;
      ASSERT_EQ(r.code.size(), 8u);
      EXPECT_EQ(a64::get32(r.code.data()), w);
      EXPECT_EQ(a64::get32(r.code.data() + 4), a64::enc_b(int64_t(kSite + 4) - int64_t(kSite + 0x4004)));
      EXPECT_EQ(r.jump_back_off, 4u);
      EXPECT_FALSE(r.ends_in_control_transfer);
      EXPECT_EQ(r.max_code_size, 8u);
    }
  }
  for (uint32_t w : builtin_only) {
    uint8_t c[4];
    a64::put32(c, w);
    const mc::Relocation r = a64::relocate(*bi, raw(c, 4), kSite + 0x4000);
    ASSERT_TRUE(r.ok()) << r.reason;
    EXPECT_EQ(a64::get32(r.code.data()), w);
  }
  (void)rng;
}

TEST(RelocA64, FarTargetsAreRangeOrExitTraps) {
  auto llvm = llvm_dec();
  auto bi = builtin_dec();
  std::mt19937_64 rng(7);
  uint8_t c[4];
  // b .+0x7fffffc from a copy 16 MiB below the site: 144 MiB away.
  a64::put32(c, 0x15ffffff);
  const uint64_t low = kSite - 0x1000000;
  mc::Relocation r = a64::relocate(*llvm, raw(c, 4), low);
  EXPECT_EQ(r.status, RelocStatus::Range);
  EXPECT_NE(r.reason.find("beyond b's +-128 MiB"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("'b "), std::string::npos) << r.reason;
  EXPECT_EQ(r.lp_error(), mc::reloc_status_to_lp_error(RelocStatus::Range));
  // With exit traps: the b becomes the trap word, listed with its target.
  mc::RelocInput in = raw(c, 4);
  in.trap_exits = true;
  r = a64::relocate(*llvm, in, low);
  ASSERT_TRUE(r.ok()) << r.reason;
  ASSERT_EQ(r.exits.size(), 1u);
  EXPECT_EQ(r.exits[0].pc, 0u);
  EXPECT_EQ(r.exits[0].target, kSite + 0x7fffffc);
  EXPECT_EQ(a64::get32(r.code.data()), a64::trap_insn());
  // A conditional branch beyond both forms: Range; with exit traps the b of the
  // inverted form traps.
  a64::put32(c, 0xb4000001 | 0x3ffff << 5); // cbz x1, .+0xffffc
  const uint64_t far = kSite - 0x7fff000;
  r = a64::relocate(*llvm, raw(c, 4), far);
  EXPECT_EQ(r.status, RelocStatus::Range);
  EXPECT_NE(r.reason.find("cbz"), std::string::npos) << r.reason;
  in = raw(c, 4);
  in.trap_exits = true;
  Stats st;
  check_form(*llvm, *bi, 0xb4000001 | 0x3ffff << 5, far, {"CBNZX", "B"}, st, rng, true);
  EXPECT_GT(st.trapped, 0u);
  // The jump back out of reach: Range, or an exit trap.
  a64::put32(c, 0x8b020020); // add x0, x1, x2
  r = a64::relocate(*llvm, raw(c, 4), kSite + 0x8000008); // the jump back at +4 is 128 MiB + 8 away
  EXPECT_EQ(r.status, RelocStatus::Range);
  EXPECT_NE(r.reason.find("the jump back"), std::string::npos) << r.reason;
  EXPECT_TRUE(a64::relocate(*llvm, raw(c, 4), kSite + 0x8000000).ok()) << "exactly -128 MiB reaches";
  in = raw(c, 4);
  in.trap_exits = true;
  r = a64::relocate(*llvm, in, kSite + 0x8000008);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.exits.size(), 1u);
  EXPECT_EQ(r.exits[0].pc, 4u);
  EXPECT_EQ(r.exits[0].target, kSite + 4);
  EXPECT_EQ(r.jump_back_off, 4u);
}

TEST(RelocA64, RefusesExclusivesAndSitesInsideExclusiveSequences) {
  auto llvm = llvm_dec();
  auto bi = builtin_dec();
  // The site itself: every exclusive kind.
  for (uint32_t w : {0xc85f7c20u, 0x885ffc41u, 0x085f7c41u, 0x485ffc41u, 0xc87f0c41u, 0xc87f8c41u, 0xc8007c41u,
                     0x8800fc41u, 0xc8200841u, 0xc8208861u}) {
    uint8_t c[4];
    a64::put32(c, w);
    for (const mc::Decoder *d : {llvm.get(), bi.get()}) {
      const mc::Relocation r = a64::relocate(*d, raw(c, 4), kSite + 0x4000);
      const mc::Insn i = d->decode(c, 4, kSite);
      EXPECT_EQ(r.status, RelocStatus::Unsupported) << std::hex << w;
      EXPECT_NE(r.reason.find("exclusive sequence"), std::string::npos) << r.reason;
      EXPECT_NE(r.reason.find(i.mnemonic), std::string::npos) << r.reason;
      EXPECT_EQ(a64::plan_relocation(*d, raw(c, 4)).status, RelocStatus::Unsupported);
    }
  }
  // A retry loop: between ldaxr and stlxr nothing may be patched; before the
  // load and from the cbnz on everything may.
  const uint32_t fn[] = {
      0xaa0003e2, // 0  mov x2, x0
      0xc85ffc41, // 4  1: ldaxr x1, [x2]
      0x91000421, // 8  add x1, x1, #1
      0xc803fc41, // 12 stlxr w3, x1, [x2]
      0x35ffffa3, // 16 cbnz w3, 1b
      0xaa0103e0, // 20 mov x0, x1
      0xd65f03c0, // 24 ret
  };
  uint8_t code[sizeof fn];
  for (size_t i = 0; i < 7; ++i) a64::put32(code + 4 * i, fn[i]);
  const char *want[7] = {nullptr, "is a load/store exclusive", "follows the load-exclusive", "is a load/store exclusive",
                         nullptr, nullptr, nullptr};
  for (const mc::Decoder *d : {llvm.get(), bi.get()})
    for (size_t i = 0; i < 7; ++i) {
      mc::RelocInput in = raw(code + 4 * i, sizeof fn - 4 * i, kSite + 4 * i);
      in.func_start = kSite;
      in.func_code = code;
      in.func_size = sizeof fn;
      const mc::Relocation r = a64::relocate(*d, in, kSite + 0x4000);
      if (!want[i]) {
        EXPECT_TRUE(r.ok()) << i << ": " << r.reason;
        continue;
      }
      EXPECT_EQ(r.status, RelocStatus::Unsupported) << i;
      EXPECT_NE(r.reason.find("exclusive sequence"), std::string::npos) << r.reason;
      EXPECT_NE(r.reason.find(want[i]), std::string::npos) << r.reason;
      if (i == 2) {
        EXPECT_NE(r.reason.find("ldaxr"), std::string::npos) << r.reason;
        EXPECT_NE(r.reason.find("stlxr"), std::string::npos) << r.reason;
      }
    }
  // A store-exclusive after the site with no load before it (a loop laid out
  // with its store first) also refuses.
  const uint32_t fn2[] = {0x91000421 /* add */, 0xc803fc41 /* stlxr */, 0xd65f03c0 /* ret */};
  uint8_t code2[sizeof fn2];
  for (size_t i = 0; i < 3; ++i) a64::put32(code2 + 4 * i, fn2[i]);
  mc::RelocInput in = raw(code2, sizeof fn2);
  in.func_start = kSite;
  in.func_code = code2;
  in.func_size = sizeof fn2;
  const mc::Relocation r = a64::relocate(*llvm, in, kSite + 0x4000);
  EXPECT_EQ(r.status, RelocStatus::Unsupported);
  EXPECT_NE(r.reason.find("precedes the store-exclusive"), std::string::npos) << r.reason;
}

TEST(RelocA64, RefusesCallsThroughX30LandingPadsAndTraps) {
  auto llvm = llvm_dec();
  auto bi = builtin_dec();
  struct Case {
    uint32_t w;
    RelocStatus s;
    const char *reason;
  };
  const Case cases[] = {
      {0xd63f03c0, RelocStatus::Unsupported, "is also its target"},   // blr x30
      {0xd63f0bdf, RelocStatus::Unsupported, "is also its target"},   // blraaz x30
      {0xd63f0fdf, RelocStatus::Unsupported, "is also its target"},   // blrabz x30
      {0xd73f0bc1, RelocStatus::Unsupported, "is also its target"},   // blraa x30, x1
      {0xd73f083e, RelocStatus::Unsupported, "is also its modifier"}, // blraa x1, x30
      {0xd503245f, RelocStatus::Unsupported, "BTI landing pad"},      // bti c
      {0xd503249f, RelocStatus::Unsupported, "BTI landing pad"},      // bti j
      {0xd50324df, RelocStatus::Unsupported, "BTI landing pad"},      // bti jc
      {0xd503241f, RelocStatus::Unsupported, "BTI landing pad"},      // bti
      {0xd503233f, RelocStatus::Unsupported, "BTI landing pad"},      // paciasp
      {0xd503237f, RelocStatus::Unsupported, "BTI landing pad"},      // pacibsp
      {0xd4200020, RelocStatus::Unsupported, "traps"},                // brk #1
      {0xd4400020, RelocStatus::Unsupported, "traps"},                // hlt #1
      {0x00000001, RelocStatus::Unsupported, "traps"},                // udf #1
      {0xd4000002, RelocStatus::Unsupported, "traps"},                // hvc #0
      {0xd4000003, RelocStatus::Unsupported, "traps"},                // smc #0
      {0xd4a00001, RelocStatus::Unsupported, "traps"},                // dcps1
      {0xd69f03e0, RelocStatus::Unsupported, "traps"},                // eret
      {0xd6bf03e0, RelocStatus::Unsupported, "traps"},                // drps
      {0x01800000, RelocStatus::Undecodable, "do not decode"},        // reserved
      {0x55000000, RelocStatus::Undecodable, "do not decode"},        // b.cond with o1 = 1
      {0xd5800000, RelocStatus::Undecodable, "do not decode"},
  };
  for (const Case &k : cases)
    for (const mc::Decoder *d : {llvm.get(), bi.get()}) {
      uint8_t c[4];
      a64::put32(c, k.w);
      const mc::Relocation r = a64::relocate(*d, raw(c, 4), kSite + 0x4000);
      EXPECT_EQ(r.status, k.s) << std::hex << k.w << ": " << r.reason;
      EXPECT_NE(r.reason.find(k.reason), std::string::npos) << std::hex << k.w << ": " << r.reason;
      const mc::Insn i = d->decode(c, 4, kSite);
      if (i.valid) EXPECT_NE(r.reason.find(i.text), std::string::npos) << r.reason;
      else EXPECT_NE(r.reason.find(hex(kSite)), std::string::npos) << r.reason;
      EXPECT_EQ(a64::plan_relocation(*d, raw(c, 4)).status, k.s);
    }
}

TEST(RelocA64, RefusesBadInputs) {
  auto llvm = llvm_dec();
  uint8_t c[8];
  a64::put32(c, 0x8b020020);
  a64::put32(c + 4, 0xd65f03c0);
  // Misaligned site; misaligned destination; too few bytes.
  mc::Relocation r = a64::relocate(*llvm, raw(c, 8, kSite + 2), kSite + 0x4000);
  EXPECT_EQ(r.status, RelocStatus::NotBoundary);
  EXPECT_NE(r.reason.find("misaligned"), std::string::npos) << r.reason;
  r = a64::relocate(*llvm, raw(c, 8), kSite + 0x4002);
  EXPECT_EQ(r.status, RelocStatus::Invalid);
  EXPECT_NE(r.reason.find("dest"), std::string::npos) << r.reason;
  r = a64::relocate(*llvm, raw(c, 3), kSite + 0x4000);
  EXPECT_EQ(r.status, RelocStatus::TooShort);
  r = a64::relocate(*llvm, raw(nullptr, 0), kSite + 0x4000);
  EXPECT_EQ(r.status, RelocStatus::Invalid);
  // In a function: not a boundary (inside a word), outside the function.
  mc::RelocInput in = raw(c + 2, 6, kSite + 2);
  in.func_start = kSite;
  in.func_code = c;
  in.func_size = 8;
  r = a64::relocate(*llvm, in, kSite + 0x4000);
  EXPECT_EQ(r.status, RelocStatus::NotBoundary);
  EXPECT_NE(r.reason.find("not an instruction boundary"), std::string::npos) << r.reason;
  in = raw(c, 8, kSite + 8);
  in.func_start = kSite;
  in.func_code = c;
  in.func_size = 8;
  r = a64::relocate(*llvm, in, kSite + 0x4000);
  EXPECT_EQ(r.status, RelocStatus::NotBoundary);
  EXPECT_NE(r.reason.find("outside its function"), std::string::npos) << r.reason;
  // Two words asked for: an A64 site jump is one word.
  in = raw(c, 8);
  in.min_len = 8;
  r = a64::relocate(*llvm, in, kSite + 0x4000);
  EXPECT_EQ(r.status, RelocStatus::Invalid);
  EXPECT_NE(r.reason.find("exactly one instruction"), std::string::npos) << r.reason;
  // Another ISA's decoder.
  auto rv = mc::Decoder::create("riscv64");
  ASSERT_NE(rv, nullptr);
  r = a64::relocate(*rv, raw(c, 8), kSite + 0x4000);
  EXPECT_EQ(r.status, RelocStatus::Invalid);
  EXPECT_EQ(r.reason, "decoder is not aarch64");
}

TEST(RelocA64, SiteJumpAndTheTargetEntryPoints) {
  uint8_t out[4];
  ASSERT_TRUE(a64::encode_site_jump(kSite, kSite + 0x1000, 4, out));
  EXPECT_EQ(a64::get32(out), a64::enc_b(0x1000));
  ASSERT_TRUE(a64::encode_site_jump(kSite, kSite - 0x8000000, 4, out)); // exactly -128 MiB
  EXPECT_FALSE(a64::encode_site_jump(kSite, kSite + 0x8000000, 4, out)) << "+128 MiB is out of reach";
  EXPECT_FALSE(a64::encode_site_jump(kSite + 2, kSite + 0x1000, 4, out)) << "misaligned site";
  EXPECT_FALSE(a64::encode_site_jump(kSite, kSite + 0x1002, 4, out)) << "misaligned target";
  EXPECT_FALSE(a64::encode_site_jump(kSite, kSite + 0x1000, 8, out)) << "one word only";
  // Through lp::mc.
  EXPECT_EQ(mc::site_jump_len(mc::Arch::AARCH64), 4u);
  EXPECT_EQ(mc::site_jump_len(mc::Arch::AARCH64, true), 4u) << "no far form";
  ASSERT_TRUE(mc::encode_site_jump(mc::Arch::AARCH64, kSite, kSite + 0x2000, 4, 0, out));
  EXPECT_EQ(a64::get32(out), a64::enc_b(0x2000));
  const mc::Target *t = mc::find_target("arm64");
  ASSERT_NE(t, nullptr);
  EXPECT_STREQ(t->name, "aarch64");
  EXPECT_EQ(t, mc::find_target(mc::Arch::AARCH64));
  EXPECT_TRUE(mc::Decoder::available("aarch64"));
  auto d = mc::Decoder::create("aarch64");
  ASSERT_NE(d, nullptr);
  uint8_t c[4];
  a64::put32(c, 0x58000042); // ldr x2, .+8
  const mc::RelocInput in = raw(c, 4);
  EXPECT_EQ(mc::plan_relocation(*d, in).max_code_size, a64::plan_relocation(*d, in).max_code_size);
  EXPECT_EQ(mc::relocate(*d, in, kSite + 0x4000).code, a64::relocate(*d, in, kSite + 0x4000).code);
  EXPECT_EQ(mc::find_scratch(*d, in, 4), 0u);
}
