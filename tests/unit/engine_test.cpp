// The protocol engine over a simulated text: syncs per batch, the state check,
// rollback, and that every state a fetching core can observe between two
// stores is old-complete, a trap, or new-complete (never torn).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "engine/protocol.hpp"
#include "riscv64/encoding.hpp"
#include "x86_64/encoding.hpp"

using namespace lp::engine;

namespace {

struct SimText {
  std::vector<uint8_t> mem = std::vector<uint8_t>(4096, 0);
  uintptr_t base() const { return reinterpret_cast<uintptr_t>(mem.data()); }
  int syncs = 0, writes = 0;
  int fail_write_at = -1; // make the n-th write fail
  int fail_sync_at = -1;
  std::vector<std::vector<uint8_t>> states; // text after every store
  std::vector<SyncPoint> points;
};

int sim_write(void *ctx, uintptr_t addr, const uint8_t *src, uint32_t g) {
  auto *t = static_cast<SimText *>(ctx);
  if (t->writes++ == t->fail_write_at) return -1;
  EXPECT_EQ(addr % g, 0u) << "unaligned store";
  std::memcpy(reinterpret_cast<void *>(addr), src, g);
  t->states.push_back(t->mem);
  return 0;
}

int sim_sync(void *ctx, SyncPoint p, bool) {
  auto *t = static_cast<SimText *>(ctx);
  t->points.push_back(p);
  return t->syncs++ == t->fail_sync_at ? -1 : 0;
}

EngineOps ops_for(SimText &t, uint32_t granule) {
  EngineOps o;
  o.ctx = &t;
  o.granule = granule;
  o.write = sim_write;
  o.sync = sim_sync;
  return o;
}

// x86: nop5 -> call rel32 at `n` sites.
std::vector<Transition> x86_batch(SimText &t, size_t n, bool enable) {
  std::vector<Transition> v(n);
  for (size_t i = 0; i < n; ++i) {
    const uintptr_t site = t.base() + 16 * i;
    uint8_t call[5];
    EXPECT_TRUE(lp::x86_64::encode_call(site, site + 1000, call));
    const uint8_t *old_b = enable ? lp::x86_64::kNop5 : call;
    const uint8_t *new_b = enable ? call : lp::x86_64::kNop5;
    std::memcpy(reinterpret_cast<void *>(site), old_b, 5);
    lp::x86_64::make_transition(site, old_b, new_b, 5, false, &v[i]);
  }
  return v;
}

enum class Seen { Old, New, Trap, Torn };

// What a core fetching at the site start would execute.
Seen classify(const uint8_t *cur, const Transition &t) {
  if (std::memcmp(cur, t.old_bytes, t.len) == 0) return Seen::Old;
  if (std::memcmp(cur, t.new_bytes, t.len) == 0) return Seen::New;
  if (std::memcmp(cur, t.trap_bytes, t.trap_len) == 0) return Seen::Trap; // the rest is unreachable
  return Seen::Torn;
}

void expect_never_torn(const SimText &t, const std::vector<Transition> &sites) {
  for (const auto &state : t.states) {
    for (const auto &s : sites) {
      const uint8_t *cur = state.data() + (s.addr - t.base());
      EXPECT_NE(classify(cur, s), Seen::Torn);
    }
  }
}

} // namespace

TEST(Engine, ThreeSyncsPerBatchWhateverItsSize) {
  for (size_t n : {1u, 10u, 200u}) {
    SimText t;
    auto sites = x86_batch(t, n, true);
    EngineStats st;
    ASSERT_EQ(run_batch(ops_for(t, 1), sites.data(), sites.size(), &st), EngineError::Ok);
    EXPECT_EQ(t.syncs, 3);
    EXPECT_EQ(st.syncs, 3u);
    EXPECT_EQ(st.sites, n);
    ASSERT_EQ(t.points.size(), 3u);
    EXPECT_EQ(t.points[0], SyncPoint::AfterTraps);
    EXPECT_EQ(t.points[1], SyncPoint::AfterTails);
    EXPECT_EQ(t.points[2], SyncPoint::AfterHeads);
    for (auto &s : sites) EXPECT_EQ(std::memcmp(reinterpret_cast<void *>(s.addr), s.new_bytes, 5), 0);
    expect_never_torn(t, sites);
  }
}

TEST(Engine, EmptyOrUnchangedBatchIsANoOp) {
  SimText t;
  EXPECT_EQ(run_batch(ops_for(t, 1), nullptr, 0, nullptr), EngineError::Ok);
  auto sites = x86_batch(t, 3, true);
  for (auto &s : sites) std::memcpy(s.new_bytes, s.old_bytes, s.len);
  EXPECT_EQ(run_batch(ops_for(t, 1), sites.data(), sites.size(), nullptr), EngineError::Ok);
  EXPECT_EQ(t.syncs, 0);
  EXPECT_EQ(t.writes, 0);
}

TEST(Engine, RefusesWhenTheTextIsNotWhatTheCallerBelieves) {
  SimText t;
  auto sites = x86_batch(t, 2, true);
  reinterpret_cast<uint8_t *>(sites[1].addr)[2] ^= 0xff;
  EXPECT_EQ(run_batch(ops_for(t, 1), sites.data(), sites.size(), nullptr), EngineError::State);
  EXPECT_EQ(t.writes, 0);
}

TEST(Engine, RejectsMalformedTransitions) {
  SimText t;
  auto sites = x86_batch(t, 1, true);
  Transition bad = sites[0];
  bad.len = 0;
  EXPECT_EQ(run_batch(ops_for(t, 1), &bad, 1, nullptr), EngineError::Invalid);
  bad = sites[0];
  bad.trap_len = 3; // not a multiple of the granule
  EXPECT_EQ(run_batch(ops_for(t, 2), &bad, 1, nullptr), EngineError::Invalid);
  bad = sites[0];
  bad.addr |= 1;
  EXPECT_EQ(run_batch(ops_for(t, 2), &bad, 1, nullptr), EngineError::Invalid);
  EngineOps no_write = ops_for(t, 1);
  no_write.write = nullptr;
  EXPECT_EQ(run_batch(no_write, sites.data(), 1, nullptr), EngineError::Invalid);
}

TEST(Engine, FailedWriteRollsBackWithoutTornState) {
  for (int fail_at = 0; fail_at < 12; ++fail_at) {
    SimText t;
    auto sites = x86_batch(t, 3, true);
    t.fail_write_at = fail_at;
    const EngineError e = run_batch(ops_for(t, 1), sites.data(), sites.size(), nullptr);
    EXPECT_EQ(e, EngineError::Write) << fail_at;
    for (auto &s : sites) EXPECT_EQ(std::memcmp(reinterpret_cast<void *>(s.addr), s.old_bytes, 5), 0) << fail_at;
    expect_never_torn(t, sites);
  }
}

TEST(Engine, FailedSyncBeforeHeadsRollsBack) {
  for (int fail_at = 0; fail_at < 2; ++fail_at) {
    SimText t;
    auto sites = x86_batch(t, 4, true);
    t.fail_sync_at = fail_at;
    EXPECT_EQ(run_batch(ops_for(t, 1), sites.data(), sites.size(), nullptr), EngineError::Sync);
    for (auto &s : sites) EXPECT_EQ(std::memcmp(reinterpret_cast<void *>(s.addr), s.old_bytes, 5), 0);
  }
}

// RISC-V sleds, both code flavours, harts with and without C: every
// intermediate state is old, trap or new at the site start.
TEST(Engine, RiscvSledsNeverTornForBothIlens) {
  using namespace lp::riscv64;
  for (Ilen code : {Ilen::C16, Ilen::G32}) {
    for (bool hart_c : {true, false}) {
      if (code == Ilen::C16 && !hart_c) continue; // rv64gc code cannot run on a non-C hart
      for (uintptr_t dist : {uintptr_t(0x800), uintptr_t(0x40000000)}) { // jal / auipc+jalr
        SimText t;
        const uintptr_t site = (t.base() + 64) & ~uintptr_t(7);
        uint8_t nops[8], call[8];
        fill_nops(nops, 8, code);
        ASSERT_EQ(encode_entry_call(site, site + dist, 8, code, call), CallError::Ok);
        std::memcpy(reinterpret_cast<void *>(site), nops, 8);
        Transition tr[2];
        make_transition(site, 8, code, hart_c, nops, call, &tr[0]);
        EXPECT_TRUE(tr[0].evacuate);
        ASSERT_EQ(run_batch(ops_for(t, granule(hart_c)), tr, 1, nullptr), EngineError::Ok);
        EXPECT_EQ(std::memcmp(reinterpret_cast<void *>(site), call, 8), 0);
        std::vector<Transition> v{tr[0]};
        expect_never_torn(t, v);
        // ...and back.
        t.states.clear();
        make_transition(site, 8, code, hart_c, call, nops, &tr[1]);
        ASSERT_EQ(run_batch(ops_for(t, granule(hart_c)), &tr[1], 1, nullptr), EngineError::Ok);
        EXPECT_EQ(std::memcmp(reinterpret_cast<void *>(site), nops, 8), 0);
        std::vector<Transition> back{tr[1]};
        expect_never_torn(t, back);
      }
    }
  }
}
