// torn-fetch: the shipped protocols have no torn state at their declared granule
// through every shipped writer, while naive direct writes, the pre-fix procmem
// writer on a C hart, the aarch64 breakpoint protocol over an instruction site
// (no hold round) and deliberately broken protocols DO (so this test can fail).
#include <gtest/gtest.h>

#include <map>

#include "aarch64/encoding.hpp"
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
// The aarch64 expected-negative rows: an instruction site without the hold round.
bool no_hold_round(const Case &c) { return c.name.find("[no hold round]") != std::string::npos; }
} // namespace

TEST(TornFetch, ShippedProtocolsHaveNoTornStateAtTheirGranule) {
  Options o = quick();
  o.all_sites = true;
  const auto cases = shipped_cases(o);
  ASSERT_GE(cases.size(), 3 * (22u + 20u)); // 22 entry transitions + instruction sites, per writer
  std::map<Writer, int> entry, insn;
  for (const Case &c : cases) {
    const CaseResult r = analyse(c, o);
    ASSERT_TRUE(r.error.empty()) << c.name << " [" << writer_name(c.writer) << "]: " << r.error;
    (c.kind == "entry" ? entry : insn)[c.writer]++;
    EXPECT_EQ(c.shipped, c.writer != Writer::ProcmemLinux61Naive && !no_hold_round(c)) << c.name;
    if (!c.shipped) continue; // the expected-negative rows: ProcmemNaive* and Aarch64* below
    EXPECT_TRUE(r.ok_at_declared) << c.name << " [" << c.hart << ", " << writer_name(c.writer) << "] torn at granule "
                                  << c.granule << ": "
                                  << (at(r.protocol, c.granule).examples.empty()
                                          ? std::string()
                                          : at(r.protocol, c.granule).examples[0].why);
    EXPECT_GT(at(r.protocol, c.granule).states, 1u);
    EXPECT_GT(at(r.protocol, c.granule).n_trap, 0u) << c.name; // the trap is really observed
  }
  // Both shipped writers on every arch (x86-64 2, riscv64 12, aarch64 8 entry
  // transitions); the naive procmem model on riscv64 only.
  EXPECT_EQ(entry[Writer::Mprotect], 22);
  EXPECT_EQ(entry[Writer::Procmem], 22);
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
    if (no_hold_round(m.c)) continue; // unlisted through either writer: Aarch64InstructionSiteWithoutHoldRound
    // The shipped procmem writer is torn exactly where mprotect is, at every g.
    EXPECT_TRUE(p.ok_at_declared) << k.first << " [" << k.second << "]";
    EXPECT_EQ(p.min_g_protocol, m.min_g_protocol) << k.first;
    for (size_t i = 0; i < m.protocol.size(); ++i)
      EXPECT_EQ(p.protocol[i].torn_states > 0, m.protocol[i].torn_states > 0) << k.first << " g=" << m.protocol[i].g;
    auto it = w.find(Writer::ProcmemLinux61Naive);
    if (it == w.end()) {
      EXPECT_TRUE(m.c.arch == "x86_64" || m.c.arch == "aarch64") << k.first;
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

// ---- aarch64 ----

// The shipped aarch64 rows: entry sleds (breakpoint protocol: every store a
// listed pair) and instruction sites (stopped protocol: the unlisted stores in
// hold rounds) have no torn and no unlisted state at g = 4, through both
// writers; narrower hardware atomicity does tear the B word.
TEST(TornFetch, Aarch64ShippedRowsAreTornFreeAtFourBytes) {
  Options o = quick();
  o.all_sites = true;
  std::map<std::pair<std::string, Writer>, int> n; // (kind, writer)
  int bti = 0;
  for (const Case &c : shipped_cases(o)) {
    if (c.arch != "aarch64" || !c.shipped) continue;
    ASSERT_NE(c.writer, Writer::ProcmemLinux61Naive) << c.name << ": the naive procmem row is riscv64 only";
    n[{c.kind, c.writer}]++;
    bti += c.name.find("bti c") != std::string::npos;
    EXPECT_EQ(c.hart, "aarch64");
    EXPECT_EQ(c.features, "");
    EXPECT_EQ(c.granule, 4u);
    EXPECT_EQ(c.trap, TrapRule::A64Brk);
    EXPECT_EQ(c.t.trap_len, 4u);
    EXPECT_EQ(aarch64::get32(c.t.trap_bytes), aarch64::trap_insn());
    EXPECT_FALSE(c.t.evacuate);
    EXPECT_EQ(c.protocol, c.kind == "entry" ? Protocol::Breakpoint : Protocol::Stopped) << c.name;
    // Only the first word ever changes.
    for (uint32_t off = 4; off < c.t.len; ++off) EXPECT_EQ(c.t.old_bytes[off], c.t.new_bytes[off]) << c.name;
    const CaseResult r = analyse(c, o);
    ASSERT_TRUE(r.error.empty()) << c.name << ": " << r.error;
    const GranuleResult &g4 = at(r.protocol, 4);
    EXPECT_TRUE(r.ok_at_declared) << c.name << " [" << writer_name(c.writer) << "]: "
                                  << (g4.examples.empty() ? std::string() : g4.examples[0].why);
    EXPECT_EQ(g4.unlisted_states, 0u) << c.name;
    EXPECT_EQ(g4.unlisted_stores, 0u) << c.name;
    EXPECT_EQ(at(r.protocol, 8).torn_states, 0u) << c.name;
    EXPECT_GT(g4.n_trap, 0u) << c.name; // the BRK is really observed
    // The hold round takes the stores leaving or entering an original word that
    // is not in the list (store_needs_stop); a site holding `b` or `bl` itself
    // is all listed pairs, the patcher holds nothing there (its protocol is
    // still reported "stopped": lp_probe_protocol, insn_sites_need_stop).
    const bool listed = aarch64::concurrent_modification_safe(aarch64::get32(c.t.old_bytes),
                                                              aarch64::get32(c.t.new_bytes));
    EXPECT_EQ(g4.held_stores > 0, c.kind == "instruction" && !listed) << c.name;
    // A word stored under running threads tears below 4 bytes; the trap rows of
    // an unlisted instruction store nothing under running threads.
    const bool stores_running = c.kind == "entry" || listed || c.name.find("brk") == std::string::npos;
    EXPECT_EQ(r.min_g_protocol, stores_running ? 4u : 1u) << c.name;
  }
  for (Writer w : {Writer::Mprotect, Writer::Procmem}) {
    EXPECT_EQ((n[{"entry", w}]), 8) << writer_name(w); // {2xnop, bti c+2xnop} x {b, brk} x both ways
    EXPECT_GE((n[{"instruction", w}]), 4 * 10) << writer_name(w);
  }
  EXPECT_EQ(bti, 2 * 4);
}

// Every store of the entry rows is a listed pair: the stopped protocol would
// hold none of them (the patcher's op_write asks store_needs_stop for every
// store), so "breakpoint" is exactly what the patcher does there.
TEST(TornFetch, Aarch64EntryStoresAreAllListed) {
  Options o = quick();
  int n = 0;
  for (const Case &c : shipped_cases(o)) {
    if (c.arch != "aarch64" || c.kind != "entry") continue;
    Case s = c;
    s.protocol = Protocol::Stopped;
    const CaseResult a = analyse(c, o), b = analyse(s, o);
    ASSERT_TRUE(b.error.empty()) << b.error;
    for (size_t i = 0; i < a.protocol.size(); ++i) {
      EXPECT_EQ(b.protocol[i].held_stores, 0u) << c.name;
      EXPECT_EQ(b.protocol[i].states, a.protocol[i].states) << c.name;
      EXPECT_EQ(b.protocol[i].torn_states, a.protocol[i].torn_states) << c.name;
    }
    // And the naive direct write of one listed word is fine at g = 4.
    EXPECT_EQ(a.min_g_naive, 4u) << c.name;
    ++n;
  }
  EXPECT_EQ(n, 16);
}

// The expected negative: an instruction site made with the plain breakpoint
// protocol (no hold round). Its original word <-> BRK store runs under other
// threads: no torn word at g = 4, but unlisted (B2.2.5). Not shipped.
TEST(TornFetch, Aarch64InstructionSiteWithoutHoldRound) {
  Options o = quick();
  int rows = 0;
  for (const Case &c : shipped_cases(o)) {
    if (!no_hold_round(c)) continue;
    ++rows;
    EXPECT_FALSE(c.shipped);
    EXPECT_EQ(c.protocol, Protocol::Breakpoint);
    EXPECT_EQ(c.kind, "instruction");
    const CaseResult r = analyse(c, o);
    ASSERT_TRUE(r.error.empty()) << r.error;
    EXPECT_FALSE(r.ok_at_declared) << c.name;
    EXPECT_EQ(r.min_g_protocol, 0u);
    const GranuleResult &g4 = at(r.protocol, 4);
    EXPECT_EQ(g4.n_torn, 0u) << "no torn word: every aligned 32-bit store is single-copy atomic";
    EXPECT_GT(g4.unlisted_states, 0u);
    EXPECT_EQ(g4.torn_states, g4.unlisted_states);
    EXPECT_EQ(g4.unlisted_stores, 1u); // the original word -> BRK
    EXPECT_EQ(g4.held_stores, 0u);
    ASSERT_FALSE(g4.examples.empty());
    EXPECT_TRUE(g4.examples[0].unlisted);
    EXPECT_NE(g4.examples[0].why.find("unlisted"), std::string::npos) << g4.examples[0].why;
    EXPECT_NE(g4.examples[0].why.find("brk #0xc9"), std::string::npos) << g4.examples[0].why;
  }
  EXPECT_EQ(rows, 2); // mprotect, procmem
  // Every shipped instruction-site row of an unlisted instruction (all but a
  // `b` / `bl` site), taken out of the hold round, is unlisted.
  o.all_sites = true;
  int flipped = 0;
  for (const Case &c : shipped_cases(o)) {
    if (c.arch != "aarch64" || c.kind != "instruction" || !c.shipped) continue;
    if (aarch64::concurrent_modification_safe(aarch64::get32(c.t.old_bytes), aarch64::get32(c.t.new_bytes))) continue;
    Case b = c;
    b.protocol = Protocol::Breakpoint;
    const CaseResult r = analyse(b, o);
    EXPECT_GT(at(r.protocol, 4).unlisted_states, 0u) << c.name;
    EXPECT_GT(at(r.naive, 4).unlisted_states, 0u) << c.name << ": the naive write is unlisted too";
    ++flipped;
  }
  EXPECT_GE(flipped, 2 * 4 * 10); // both writers, 4 transitions per site
}

// The site's trap is BRK #0xc9 only: a protocol trapping with another BRK
// (a debugger's #0) leaves an instruction neither old nor new nor ours.
TEST(TornFetch, Aarch64ForeignBrkIsTorn) {
  for (const Case &sc : shipped_cases(quick())) {
    if (sc.arch != "aarch64" || sc.kind != "entry" || sc.name != "entry a64 2xnop -> b") continue;
    Case c = sc;
    aarch64::put32(c.t.trap_bytes, aarch64::enc_brk(0));
    const CaseResult r = analyse(c, quick());
    ASSERT_TRUE(r.error.empty()) << r.error;
    EXPECT_FALSE(r.ok_at_declared);
    EXPECT_GT(at(r.protocol, 4).n_torn, 0u);
    EXPECT_TRUE(analyse(sc, quick()).ok_at_declared);
    return;
  }
  FAIL() << "no aarch64 entry row";
}

// Linux 6.1 arch/arm64/lib/memcpy.S, small copies.
TEST(TornFetch, Linux61Arm64MemcpyModel) {
  uint8_t d[64];
  for (int i = 0; i < 64; ++i) d[i] = uint8_t(0xa0 + i);
  const uintptr_t page = kProcMemBouncePage;
  auto stores = [&](uintptr_t dst, size_t n) {
    std::vector<std::pair<uintptr_t, size_t>> v;
    std::vector<int> cover(n, 0);
    for (const Store &st : linux61_memcpy_stores("aarch64", dst, page, d, n)) {
      EXPECT_EQ(st.addr % st.bytes.size(), 0u) << "naturally aligned";
      for (size_t i = 0; i < st.bytes.size(); ++i) {
        EXPECT_EQ(st.bytes[i], d[st.addr - dst + i]);
        cover[st.addr - dst + i]++;
      }
      v.push_back({st.addr - dst, st.bytes.size()});
    }
    for (size_t i = 0; i < n; ++i) EXPECT_GT(cover[i], 0) << "byte " << i << " of " << n;
    return v;
  };
  using V = std::vector<std::pair<uintptr_t, size_t>>;
  // L(copy8), lines 88-94: the aligned word the aarch64 writer copies, twice.
  EXPECT_EQ(stores(0x10000, 4), (V{{0, 4}, {0, 4}}));
  EXPECT_EQ(stores(0x10004, 6), (V{{0, 4}, {2, 1}, {3, 1}, {4, 1}, {5, 1}})); // [dstend, -4] unaligned: bytes
  EXPECT_EQ(stores(0x10002, 4), (V{{0, 1}, {1, 1}, {2, 1}, {3, 1}, {0, 1}, {1, 1}, {2, 1}, {3, 1}}));
  // L(copy16), L(copy4), the 16..32-byte pairs.
  EXPECT_EQ(stores(0x10000, 8), (V{{0, 8}, {0, 8}}));
  EXPECT_EQ(stores(0x10000, 1), (V{{0, 1}, {0, 1}, {0, 1}}));
  EXPECT_EQ(stores(0x10000, 3), (V{{0, 1}, {1, 1}, {2, 1}}));
  EXPECT_EQ(stores(0x10000, 16), (V{{0, 8}, {8, 8}, {0, 8}, {8, 8}}));
  EXPECT_EQ(stores(0x10000, 24), (V{{0, 8}, {8, 8}, {8, 8}, {16, 8}}));
  EXPECT_TRUE(stores(0x10000, 0).empty());
  EXPECT_EQ(stores(0x10000, 40).size(), 40u); // beyond the model: byte stores
}

TEST(TornFetch, Aarch64WriterStores) {
  const uint8_t cur[4] = {0x1f, 0x20, 0x03, 0xd5}; // nop
  uint8_t brk[4];
  aarch64::put32(brk, aarch64::trap_insn());
  // procmem: KernelCopy::AlignedWord passes the word through; the kernel's
  // memcpy stores it twice, each one 32-bit store.
  const auto p = writer_stores(Writer::Procmem, "aarch64", 0x400004, brk, 4, cur);
  ASSERT_EQ(p.size(), 2u);
  for (const Store &st : p) {
    EXPECT_EQ(st.addr, 0x400004u);
    EXPECT_EQ(st.bytes, std::vector<uint8_t>(brk, brk + 4));
  }
  const auto m = writer_stores(Writer::Mprotect, "aarch64", 0x400004, brk, 4, cur);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].bytes, std::vector<uint8_t>(brk, brk + 4));
  // Narrower or misaligned stores are refused by the plan (never issued).
  EXPECT_TRUE(writer_stores(Writer::Procmem, "aarch64", 0x400004, brk, 2, cur).empty());
  EXPECT_TRUE(writer_stores(Writer::Procmem, "aarch64", 0x400002, brk, 4, cur).empty());
}

TEST(TornFetch, Aarch64ReportFormats) {
  Options o = quick();
  o.granules = {2, 4};
  std::vector<CaseResult> rs;
  for (const Case &c : shipped_cases(o))
    if (c.writer == Writer::Mprotect &&
        (c.name == "entry a64 2xnop -> b" || c.name == "aarch64 a_pcrel+0 (4 bytes) -> b" || no_hold_round(c)))
      rs.push_back(analyse(c, o));
  ASSERT_EQ(rs.size(), 3u);
  const std::string t = to_table(rs, o);
  EXPECT_NE(t.find("breakpoint mprotect"), std::string::npos) << t;
  EXPECT_NE(t.find("stopped    mprotect"), std::string::npos) << t;
  EXPECT_NE(t.find("UNLISTED 2/5"), std::string::npos) << t;
  EXPECT_NE(t.find("(not shipped: unlisted at G, as expected)"), std::string::npos) << t;
  EXPECT_EQ(t.find("AT DECLARED GRANULE"), std::string::npos) << t;
  const std::string j = to_json(rs, o);
  EXPECT_NE(j.find("\"arch\":\"aarch64\""), std::string::npos);
  EXPECT_NE(j.find("\"shipped\":true,\"protocol\":\"breakpoint\",\"kind\":\"entry\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"shipped\":true,\"protocol\":\"stopped\",\"kind\":\"instruction\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"shipped\":false,\"protocol\":\"breakpoint\",\"kind\":\"instruction\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"held_stores\":1"), std::string::npos);
  EXPECT_NE(j.find("\"unlisted_states\":2"), std::string::npos);
  EXPECT_NE(j.find("\"unlisted_stores\":1"), std::string::npos);
  EXPECT_NE(j.find("\"class\":\"unlisted\""), std::string::npos);
  EXPECT_NE(j.find("\"all_shipped_ok\":true"), std::string::npos); // the negative row is not shipped
}
