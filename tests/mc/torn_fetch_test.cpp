// torn-fetch: the shipped protocols have no torn state at their declared granule
// through every shipped writer, while naive direct writes, the pre-fix procmem
// writer on a C hart and deliberately broken protocols DO (so this test can fail).
#include <gtest/gtest.h>

#include <map>

#include "riscv64/encoding.hpp"
#include "torn_fetch.hpp"
#include "x86_64/encoding.hpp"

using namespace lp;
using namespace lp::tornfetch;

namespace {
Options quick() {
  Options o;
  o.max_examples = 2;
  return o;
}
const GranuleResult &at(const std::vector<GranuleResult> &v, uint32_t g) {
  for (const auto &r : v)
    if (r.g == g) return r;
  throw std::runtime_error("no such granule");
}
} // namespace

TEST(TornFetch, ShippedProtocolsHaveNoTornStateAtTheirGranule) {
  Options o = quick();
  o.all_sites = true;
  const auto cases = shipped_cases(o);
  ASSERT_GE(cases.size(), 3 * (14u + 20u)); // 14 entry transitions + instruction sites, per writer
  std::map<Writer, int> entry, insn;
  for (const Case &c : cases) {
    const CaseResult r = analyse(c, o);
    ASSERT_TRUE(r.error.empty()) << c.name << " [" << writer_name(c.writer) << "]: " << r.error;
    (c.kind == "entry" ? entry : insn)[c.writer]++;
    EXPECT_EQ(c.shipped, c.writer != Writer::ProcmemLinux61Naive) << c.name;
    if (!c.shipped) continue; // the expected-negative rows: ProcmemNaive* below
    EXPECT_TRUE(r.ok_at_declared) << c.name << " [" << c.hart << ", " << writer_name(c.writer) << "] torn at granule "
                                  << c.granule << ": "
                                  << (at(r.protocol, c.granule).examples.empty()
                                          ? std::string()
                                          : at(r.protocol, c.granule).examples[0].why);
    EXPECT_GT(at(r.protocol, c.granule).states, 1u);
    EXPECT_GT(at(r.protocol, c.granule).n_trap, 0u) << c.name; // the trap is really observed
  }
  // Both shipped writers on every arch; the naive procmem model on riscv64 only.
  EXPECT_EQ(entry[Writer::Mprotect], 14);
  EXPECT_EQ(entry[Writer::Procmem], 14);
  EXPECT_EQ(entry[Writer::ProcmemLinux61Naive], 12);
  EXPECT_GE(insn[Writer::Mprotect], 20);
  EXPECT_EQ(insn[Writer::Procmem], insn[Writer::Mprotect]);
  EXPECT_LT(insn[Writer::ProcmemLinux61Naive], insn[Writer::Mprotect]);
}

// The finding of issue 15: a 2-byte store handed to pwrite(/proc/self/mem) is two
// byte stores in Linux 6.1's riscv memcpy, so on a hart with C the protocol goes
// through 1-byte-atomicity states, some torn; the shipped writer's aligned word
// (one sw) does not. Harts without C (1-byte granule) are fine either way.
TEST(TornFetch, ProcmemNaiveTearsOnCHartsTheShippedPlanDoesNot) {
  Options o = quick();
  o.all_sites = true;
  std::map<std::pair<std::string, std::string>, std::map<Writer, CaseResult>> by;
  for (const Case &c : shipped_cases(o)) by[{c.name, c.hart}][c.writer] = analyse(c, o);
  int naive_c = 0, naive_c_torn = 0, naive_noc = 0;
  for (const auto &[k, w] : by) {
    const CaseResult &m = w.at(Writer::Mprotect), &p = w.at(Writer::Procmem);
    // The shipped procmem writer is torn exactly where mprotect is, at every g.
    EXPECT_TRUE(p.ok_at_declared) << k.first << " [" << k.second << "]";
    EXPECT_EQ(p.min_g_protocol, m.min_g_protocol) << k.first;
    for (size_t i = 0; i < m.protocol.size(); ++i)
      EXPECT_EQ(p.protocol[i].torn_states > 0, m.protocol[i].torn_states > 0) << k.first << " g=" << m.protocol[i].g;
    auto it = w.find(Writer::ProcmemLinux61Naive);
    if (it == w.end()) {
      EXPECT_EQ(m.c.arch, "x86_64") << k.first;
      continue;
    }
    const CaseResult &n = it->second;
    // Byte stores whatever the hardware's atomicity: every g sees what the
    // protocol shows at g = 1.
    for (const GranuleResult &g : n.protocol) {
      EXPECT_EQ(g.torn_states, at(m.protocol, 1).torn_states) << k.first << " g=" << g.g;
      EXPECT_EQ(g.states, at(m.protocol, 1).states) << k.first << " g=" << g.g;
    }
    if (n.c.granule == 2) {
      ++naive_c;
      naive_c_torn += !n.ok_at_declared;
      if (n.c.kind == "entry") {
        EXPECT_FALSE(n.ok_at_declared) << k.first << ": the naive procmem write must tear on a C hart";
        EXPECT_GT(at(n.protocol, 2).torn_states, 0u) << k.first;
        EXPECT_FALSE(at(n.protocol, 2).examples.empty()) << k.first;
        EXPECT_EQ(n.min_g_protocol, 0u) << k.first; // torn at every g
      }
    } else {
      ++naive_noc;
      EXPECT_TRUE(n.ok_at_declared) << k.first << ": a 1-byte pwrite is one sb";
    }
  }
  EXPECT_GE(naive_c, 12 + 20);
  EXPECT_GE(naive_c_torn, naive_c * 3 / 4) << "most C-hart transitions tear through the naive writer";
  EXPECT_GE(naive_noc, 6);
}

// The kernel's copy, modelled from arch/riscv/lib/memcpy.S (6.1).
TEST(TornFetch, Linux61RiscvMemcpyModel) {
  uint8_t d[256];
  for (int i = 0; i < 256; ++i) d[i] = uint8_t(i);
  const uintptr_t page = kProcMemBouncePage;
  auto widths = [&](uintptr_t dst, uintptr_t src, size_t n, const char *arch = "riscv64") {
    std::vector<size_t> w;
    uintptr_t next = dst;
    size_t i = 0;
    for (const Store &st : linux61_memcpy_stores(arch, dst, src, d, n)) {
      EXPECT_EQ(st.addr, next); // in order, contiguous
      EXPECT_EQ(st.addr % st.bytes.size(), 0u) << "naturally aligned";
      for (uint8_t b : st.bytes) EXPECT_EQ(b, d[i++]);
      next += st.bytes.size();
      w.push_back(st.bytes.size());
    }
    EXPECT_EQ(i, n);
    return w;
  };
  using V = std::vector<size_t>;
  EXPECT_EQ(widths(0x10000, page, 2), (V{1, 1}));     // 2 bytes at 0 mod 4: src end page+2
  EXPECT_EQ(widths(0x10002, page, 2), (V{1, 1}));     // 2 bytes at 2 mod 4
  EXPECT_EQ(widths(0x10000, page, 4), (V{4}));        // co-aligned word: one sw
  EXPECT_EQ(widths(0x10002, page, 4), (V{1, 1, 1, 1})); // unaligned destination
  EXPECT_EQ(widths(0x10000, page + 2, 4), (V{1, 1, 1, 1})); // unaligned source
  EXPECT_EQ(widths(0x10003, page, 1), (V{1}));
  EXPECT_EQ(widths(0x10000, page, 8), (V{4, 4}));
  EXPECT_EQ(widths(0x10000, page, 128), V(16, 8));    // one block of 16 x sd
  const V big = widths(0x10003, page + 3, 200);       // head to 8, a block, byte tail
  ASSERT_EQ(big.size(), 5u + 16u + 67u);
  EXPECT_EQ(V(big.begin(), big.begin() + 5), V(5, 1));
  EXPECT_EQ(V(big.begin() + 5, big.begin() + 21), V(16, 8));
  EXPECT_EQ(widths(0x10001, page, 200).size(), 200u); // not co-aligned mod 8: all bytes
  EXPECT_EQ(widths(0x10000, page, 3, "x86_64"), (V{1, 1, 1}));
}

// What the hardware sees per engine store, through each writer; the procmem
// rows come from the shipped procmem_store_plan.
TEST(TornFetch, WriterStores) {
  const uint8_t cur[4] = {0x11, 0x22, 0x33, 0x44};
  const uint8_t src[4] = {0xa0, 0xa1, 0xa2, 0xa3};
  for (uint32_t g : {1u, 2u, 4u})
    for (uint32_t off = 0; off < 4; off += g) {
      const uintptr_t addr = 0x10000 + off;
      const auto s = writer_stores(Writer::Procmem, "riscv64", addr, src, g, cur);
      ASSERT_EQ(s.size(), 1u) << "g=" << g << " off=" << off << ": one sw";
      EXPECT_EQ(s[0].addr, 0x10000u);
      std::vector<uint8_t> want(cur, cur + 4);
      for (uint32_t i = 0; i < g; ++i) want[off + i] = src[i];
      EXPECT_EQ(s[0].bytes, want);
      const auto n = writer_stores(Writer::ProcmemLinux61Naive, "riscv64", addr, src, g, cur);
      EXPECT_EQ(n.size(), g == 4 ? 1u : g) << "g=" << g << ": the naive pwrite";
      const auto m = writer_stores(Writer::Mprotect, "riscv64", addr, src, g, cur);
      ASSERT_EQ(m.size(), 1u);
      EXPECT_EQ(m[0].bytes.size(), g);
    }
  // x86-64: the 1-byte store passes through; anything wider is refused.
  const auto x = writer_stores(Writer::Procmem, "x86_64", 0x401003, src, 1, nullptr);
  ASSERT_EQ(x.size(), 1u);
  EXPECT_EQ(x[0].addr, 0x401003u);
  EXPECT_EQ(x[0].bytes, std::vector<uint8_t>{0xa0});
  EXPECT_TRUE(writer_stores(Writer::Procmem, "x86_64", 0x401002, src, 2, cur).empty());
  EXPECT_TRUE(writer_stores(Writer::Procmem, "riscv64", 0x10001, src, 2, cur).empty()); // misaligned
  Writer w;
  EXPECT_TRUE(parse_writer("procmem-linux-6.1-naive", &w));
  EXPECT_EQ(w, Writer::ProcmemLinux61Naive);
  EXPECT_FALSE(parse_writer("pwrite", &w));
}

TEST(TornFetch, X86EntryNaiveWriteIsTorn) {
  const auto cases = shipped_cases(quick());
  const Case &c = cases.at(0);
  ASSERT_EQ(c.name, "entry nop5 -> call rel32");
  ASSERT_EQ(c.writer, Writer::Mprotect);
  const CaseResult r = analyse(c, quick());
  EXPECT_TRUE(r.ok_at_declared);
  EXPECT_EQ(r.min_g_protocol, 1u);
  for (uint32_t g : {1u, 2u, 4u}) {
    EXPECT_GT(at(r.naive, g).torn_states, 0u) << "g=" << g;
    EXPECT_FALSE(at(r.naive, g).examples.empty());
  }
}

TEST(TornFetch, RiscvCHartNeedsTwoByteStores) {
  for (const Case &c : shipped_cases(quick())) {
    if (c.kind != "entry" || c.hart != "rv64gc hart (C)" || !c.shipped) continue;
    const CaseResult r = analyse(c, quick());
    EXPECT_TRUE(r.ok_at_declared) << c.name;
    EXPECT_GT(at(r.protocol, 1).torn_states, 0u) << c.name << ": a 1-byte store granule must tear on a C hart";
    EXPECT_EQ(r.min_g_protocol, 2u) << c.name;
    EXPECT_GT(at(r.naive, 2).torn_states, 0u) << c.name;
  }
}

TEST(TornFetch, OneByteTrapOnACHartIsDetected) {
  // jal t0 -> c.nop sled, but with the no-C protocol (1-byte trap, granule 1)
  // running on a hart WITH C: 0x00 over the jal's low byte leaves a 16-bit
  // instruction (encoding.hpp's warning). torn-fetch must find it.
  Case c;
  c.name = "broken: 1-byte trap on a C hart";
  c.arch = "riscv64";
  c.hart = "rv64gc hart (C)";
  c.features = "+c";
  c.kind = "entry";
  c.granule = 1;
  c.trap = TrapRule::RiscvCHart;
  const uintptr_t site = 0x10000;
  uint8_t sled[10], call[10];
  riscv64::fill_nops(sled, 10, riscv64::Ilen::C16);
  ASSERT_EQ(riscv64::encode_entry_call(site, site + 0x8ace, 10, riscv64::Ilen::C16, call), riscv64::CallError::Ok);
  riscv64::make_transition(site, 10, riscv64::Ilen::C16, /*hart_has_c=*/false, call, sled, &c.t);
  const CaseResult r = analyse(c, quick());
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_FALSE(r.ok_at_declared);
  EXPECT_GT(at(r.protocol, 1).torn_states, 0u);
}

TEST(TornFetch, MissingEvacuationIsDetected) {
  // An instruction site with boundaries inside, transitioned WITHOUT evacuation:
  // a thread parked inside sees the new tail.
  Options o = quick();
  for (const Case &sc : shipped_cases(o)) {
    if (sc.kind != "instruction" || sc.arch != "x86_64" || !sc.t.evacuate) continue;
    Case c = sc;
    c.t.evacuate = false;
    const CaseResult r = analyse(c, o);
    EXPECT_FALSE(r.ok_at_declared) << c.name;
    EXPECT_TRUE(analyse(sc, o).ok_at_declared) << sc.name;
    return;
  }
  FAIL() << "no x86 instruction site with inner boundaries";
}

TEST(TornFetch, ReportFormats) {
  Options o = quick();
  o.granules = {1, 2};
  std::vector<CaseResult> rs;
  auto cases = shipped_cases(o);
  rs.push_back(analyse(cases.at(0), o)); // x86-64 entry, mprotect
  for (const Case &c : cases)          // the first rv64gc entry, each writer
    if (c.name == "entry rv64gc 5xc.nop -> jal t0") rs.push_back(analyse(c, o));
  ASSERT_EQ(rs.size(), 4u);
  const std::string t = to_table(rs, o);
  EXPECT_NE(t.find("entry nop5 -> call rel32"), std::string::npos);
  EXPECT_NE(t.find("minimum write atomicity"), std::string::npos);
  EXPECT_NE(t.find(" mprotect "), std::string::npos);
  EXPECT_NE(t.find(" procmem "), std::string::npos);
  EXPECT_NE(t.find("procmem-linux-6.1-naive  2 | TORN"), std::string::npos) << t;
  EXPECT_NE(t.find("(not shipped: torn at G, as expected)"), std::string::npos);
  EXPECT_EQ(t.find("<-- TORN AT DECLARED GRANULE"), std::string::npos);
  const std::string j = to_json(rs, o);
  EXPECT_NE(j.find("\"all_shipped_ok\":true"), std::string::npos); // the naive row is not shipped
  EXPECT_NE(j.find("\"min_g_protocol\":2"), std::string::npos);
  EXPECT_NE(j.find("\"writer\":\"procmem\",\"shipped\":true"), std::string::npos);
  EXPECT_NE(j.find("\"writer\":\"procmem-linux-6.1-naive\",\"shipped\":false"), std::string::npos);
}
