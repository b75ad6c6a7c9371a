// torn-fetch: the shipped protocols have no torn state at their declared granule,
// while naive direct writes and deliberately broken protocols DO (so this test can fail).
#include <gtest/gtest.h>

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
  ASSERT_GE(cases.size(), 14u + 20u); // 14 entry transitions + instruction sites
  int entry = 0, insn = 0;
  for (const Case &c : cases) {
    const CaseResult r = analyse(c, o);
    ASSERT_TRUE(r.error.empty()) << c.name << ": " << r.error;
    EXPECT_TRUE(r.ok_at_declared) << c.name << " [" << c.hart << "] torn at granule " << c.granule << ": "
                                  << (at(r.protocol, c.granule).examples.empty()
                                          ? std::string()
                                          : at(r.protocol, c.granule).examples[0].why);
    EXPECT_GT(at(r.protocol, c.granule).states, 1u);
    EXPECT_GT(at(r.protocol, c.granule).n_trap, 0u) << c.name; // the trap is really observed
    (c.kind == "entry" ? entry : insn)++;
  }
  EXPECT_EQ(entry, 14);
  EXPECT_GE(insn, 20);
}

TEST(TornFetch, X86EntryNaiveWriteIsTorn) {
  const auto cases = shipped_cases(quick());
  const Case &c = cases.at(0);
  ASSERT_EQ(c.name, "entry nop5 -> call rel32");
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
    if (c.kind != "entry" || c.hart != "rv64gc hart (C)") continue;
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
  rs.push_back(analyse(cases.at(0), o));
  rs.push_back(analyse(cases.at(2), o));
  const std::string t = to_table(rs, o);
  EXPECT_NE(t.find("entry nop5 -> call rel32"), std::string::npos);
  EXPECT_NE(t.find("minimum write atomicity"), std::string::npos);
  const std::string j = to_json(rs, o);
  EXPECT_NE(j.find("\"all_shipped_ok\":true"), std::string::npos);
  EXPECT_NE(j.find("\"min_g_protocol\":2"), std::string::npos);
}
