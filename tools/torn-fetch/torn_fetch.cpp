// torn-fetch analysis. See torn_fetch.hpp.
#include "torn_fetch.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <tuple>
#include <unordered_map>

#include "aarch64/encoding.hpp"
#include "aarch64/relocator.hpp"
#include "insn_evacuate.hpp"
#include "mc/decoder.hpp"
#include "mc/target.hpp"
#include "platform/linux/text_writer.hpp"
#include "riscv64/encoding.hpp"
#include "riscv64/relocator.hpp"
#include "samples.hpp"
#include "x86_64/encoding.hpp"
#include "x86_64/relocator.hpp"

namespace lp::tornfetch {
namespace {

using engine::Transition;

std::string hex(const uint8_t *p, size_t n) {
  std::string s;
  char b[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", p[i]);
    if (i) s += ' ';
    s += b;
  }
  return s;
}

// ---------------------------------------------------------------------------
// Recording the shipped engine's stores and syncs, through a writer.

struct Piece {
  uint32_t off;              // from the site start
  std::vector<uint8_t> bytes;
};
// A word an aarch64 store changes, under running threads, between two
// instructions that are not both in B2.2.5's list.
struct Unlisted {
  uint32_t off;              // of the word, from the site start
  uint32_t from, to;
};
struct Epoch {
  std::vector<Piece> pieces; // stores between two syncs, split to the observed unit
  std::vector<Piece> held;   // stores made in the closing sync's hold round (stopped
                             // protocol): applied at the epoch's end, never observed
  std::vector<Unlisted> unlisted;
  bool evacuate = false;     // the sync closing the epoch evacuates parked threads
};

// Byte mask (site offsets < 32) of the words an epoch's unlisted stores change.
uint32_t unlisted_mask(const std::vector<Unlisted> &u) {
  uint32_t m = 0;
  for (const Unlisted &x : u)
    if (x.off + 4 <= 32) m |= 0xfu << x.off;
  return m;
}

struct HeldStore {
  uintptr_t addr;
  std::vector<uint8_t> bytes;
};

struct Recorder {
  uintptr_t base = 0;        // address of mem[0]
  std::vector<uint8_t> mem;  // [16 zeros][site][after][16 zeros], like site_state()
  std::vector<Epoch> epochs{1};
  uintptr_t site = 0;
  uint32_t state_len = 0;    // bytes of the analysed state from the site start
  uint32_t g = 1;            // hardware store/fetch atomicity
  Writer writer = Writer::Mprotect;
  Protocol protocol = Protocol::Breakpoint;
  std::string arch;
  bool a64 = false;          // B2.2.5's rule applies (arch aarch64)
  std::vector<HeldStore> held; // the stopped protocol's stores, until the sync
  uint64_t held_stores = 0, unlisted_stores = 0;
  std::string error;
};

// A64Backend::store_needs_stop (backends/aarch64/backend.cpp), on the simulated
// text: the word the text holds at `addr` now and the one the engine stores.
// (The backend class is host-only code; its rule is these two lines over the
// shipped concurrent_modification_safe().)
bool a64_store_needs_stop(const Recorder &r, uintptr_t addr, const uint8_t *next, uint32_t g) {
  if (g != 4) return true;
  return !aarch64::concurrent_modification_safe(aarch64::get32(&r.mem[addr - r.base]), aarch64::get32(next));
}

// Stores `g` bytes `src` at `addr` through the writer into the text, the pieces a
// fetching hart can observe appended to `into`. `running`: made while other
// threads run (B2.2.5's rule applies on aarch64), else in a hold round.
int apply_store(Recorder *r, uintptr_t addr, const uint8_t *src, uint32_t g, std::vector<Piece> &into,
                bool running) {
  const uintptr_t word = addr & ~uintptr_t(3);
  if (word < r->base || word + 4 > r->base + r->mem.size() || addr + g > r->base + r->mem.size()) return -1;
  // What the text must hold afterwards: the engine's store and nothing else.
  std::vector<uint8_t> expect = r->mem;
  for (uint32_t i = 0; i < g; ++i) expect[addr - r->base + i] = src[i];
  const std::vector<Store> stores = writer_stores(r->writer, r->arch, addr, src, g, &r->mem[word - r->base]);
  if (stores.empty()) {
    r->error = std::string("writer ") + writer_name(r->writer) + " refused a " + std::to_string(g) + "-byte store";
    return -1;
  }
  for (const Store &st : stores) {
    if (st.addr < r->base || st.addr + st.bytes.size() > r->base + r->mem.size()) {
      r->error = std::string("writer ") + writer_name(r->writer) + " stores outside the text";
      return -1;
    }
    // B2.2.5: every word this hardware store changes, from the word the text
    // holds to the word it holds after the store (an aligned 32-bit store is
    // single-copy atomic: no mixed word), must be a listed pair while threads run.
    if (r->a64 && running) {
      bool counted = false;
      for (uintptr_t w = st.addr & ~uintptr_t(3); w < st.addr + st.bytes.size(); w += 4) {
        if (w < r->site || w + 4 > r->site + r->state_len) continue;
        uint8_t after[4];
        for (uint32_t i = 0; i < 4; ++i) {
          const uintptr_t a = w + i;
          after[i] = a >= st.addr && a < st.addr + st.bytes.size() ? st.bytes[a - st.addr] : r->mem[a - r->base];
        }
        const uint32_t from = aarch64::get32(&r->mem[w - r->base]), to = aarch64::get32(after);
        if (from == to || aarch64::concurrent_modification_safe(from, to)) continue;
        r->epochs.back().unlisted.push_back({uint32_t(w - r->site), from, to});
        if (!counted) ++r->unlisted_stores;
        counted = true;
      }
    }
    // Each store is seen in pieces of the hardware atomicity. A piece that
    // stores the value the text already holds is invisible and dropped; exact,
    // since every store of a run is cut on the same aligned grid, so a later
    // piece over the same unit can stand in for it in any subset. This is what
    // lets a writer re-write neighbouring bytes (even outside the site).
    const uint32_t unit = std::min<uint32_t>(r->g, uint32_t(st.bytes.size()));
    for (uint32_t o = 0; o < st.bytes.size(); o += unit) {
      const uintptr_t a = st.addr + o;
      bool changes = false;
      for (uint32_t i = 0; i < unit; ++i) changes |= r->mem[a - r->base + i] != st.bytes[o + i];
      for (uint32_t i = 0; i < unit; ++i) r->mem[a - r->base + i] = st.bytes[o + i];
      if (!changes) continue;
      // Clip to the analysed state (the bytes cut off are unchanged: checked below).
      const uintptr_t lo = std::max<uintptr_t>(a, r->site), hi = std::min<uintptr_t>(a + unit, r->site + r->state_len);
      if (lo >= hi) continue;
      Piece p;
      p.off = uint32_t(lo - r->site);
      p.bytes.assign(st.bytes.begin() + (lo - st.addr), st.bytes.begin() + (hi - st.addr));
      into.push_back(std::move(p));
    }
  }
  if (r->mem != expect) {
    r->error = std::string("writer ") + writer_name(r->writer) + " left the text different from the engine's store";
    return -1;
  }
  return 0;
}

int rec_write(void *ctx, uintptr_t addr, const uint8_t *src, uint32_t g) {
  auto *r = static_cast<Recorder *>(ctx);
  // The stopped protocol (patcher.cpp op_write): a store the architecture does
  // not allow under running threads is kept back for the phase's sync.
  if (r->protocol == Protocol::Stopped && g <= 4 && addr >= r->base && addr + 4 <= r->base + r->mem.size() &&
      a64_store_needs_stop(*r, addr, src, g)) {
    r->held.push_back({addr, std::vector<uint8_t>(src, src + g)});
    ++r->held_stores;
    return 0;
  }
  return apply_store(r, addr, src, g, r->epochs.back().pieces, true);
}
int rec_sync(void *ctx, engine::SyncPoint, bool evacuate) {
  auto *r = static_cast<Recorder *>(ctx);
  // The hold round (lp_patcher::sync): every other thread is held in its
  // handler while the kept-back stores are made, then released; to them the
  // stores appear at once, after every store of the epoch, at its end.
  for (const HeldStore &h : r->held)
    if (apply_store(r, h.addr, h.bytes.data(), uint32_t(h.bytes.size()), r->epochs.back().held, false) != 0)
      return -1;
  r->held.clear();
  r->epochs.back().evacuate = evacuate;
  r->epochs.emplace_back();
  return 0;
}
void rec_read(void *ctx, uintptr_t addr, uint8_t *dst, uint32_t len) {
  auto *r = static_cast<Recorder *>(ctx);
  for (uint32_t i = 0; i < len; ++i) dst[i] = r->mem[addr - r->base + i];
}

// ---------------------------------------------------------------------------
// Walking a state.

enum class Cls : uint8_t { Old, New, Trap, Torn };

struct Walk {
  Cls cls = Cls::Torn;
  uint32_t executed = 0; // byte mask of the site bytes (offsets < 32) whose instructions the
                         // walk executes (the trap: its first byte)
  uint32_t reached = 0; // bitmask of offsets a thread can be parked at after a step
  uint32_t returns = 0; // offsets a call inside the site returns to (a thread in the
                        // callee comes back there later: no sync can evacuate it)
  std::string why;
};

struct Code {
  std::map<uint32_t, uint32_t> insns; // reachable boundary -> length
};

class Analyser {
 public:
  Analyser(const Case &c, const mc::Decoder &dec) : c_(c), dec_(dec) {
    len_ = c.t.len;
    old_ = walk_code(c.t.old_bytes);
    new_ = walk_code(c.t.new_bytes);
  }

  const Code &old_code() const { return old_; }

  // Reachable instruction boundaries of `bytes` from the site start.
  Code walk_code(const uint8_t *bytes) {
    Code code;
    std::vector<uint8_t> buf(bytes, bytes + len_);
    buf.insert(buf.end(), c_.after.begin(), c_.after.end());
    uint32_t pos = 0;
    mc::Insn in;
    while (pos < len_) {
      if (!dec_.decode(buf.data() + pos, buf.size() - pos, c_.t.addr + pos, &in, false)) break;
      code.insns[pos] = in.length;
      pos += in.length;
      if (in.flow == mc::Flow::Jump || in.flow == mc::Flow::IndirectJump || in.flow == mc::Flow::Return ||
          in.flow == mc::Flow::Trap)
        break;
    }
    return code;
  }

  bool matches(const Code &code, const uint8_t *ref, const uint8_t *state, uint32_t pos, uint32_t l) const {
    auto it = code.insns.find(pos);
    if (it == code.insns.end() || it->second != l) return false;
    for (uint32_t i = 0; i < l; ++i)
      if (state[pos + i] != ref[pos + i]) return false;
    return true;
  }

  bool is_trap(const uint8_t *s) const {
    switch (c_.trap) {
    case TrapRule::X86Int3: return s[0] == 0xcc;
    case TrapRule::RiscvCHart: return s[0] == 0 && s[1] == 0;
    case TrapRule::RiscvNoCHart: return (s[0] & 3) != 3;
    case TrapRule::A64Brk: return aarch64::get32(s) == aarch64::trap_insn();
    }
    return false;
  }

  // An instruction word as text (for the unlisted examples).
  std::string word_text(uint32_t w, uint32_t off) const {
    uint8_t b[4];
    aarch64::put32(b, w);
    mc::Insn in;
    if (!dec_.decode(b, 4, c_.t.addr + off, &in, true)) return "(undecodable)";
    return in.text;
  }

  Walk walk(const std::vector<uint8_t> &state, uint32_t start) {
    // Memoised on (start, state[start..len)): most states share suffixes.
    std::string key(1, char(start));
    key.append(reinterpret_cast<const char *>(state.data() + start), len_ - start);
    auto hit = memo_.find(key);
    if (hit != memo_.end()) return hit->second;
    Walk w = walk_uncached(state, start);
    memo_.emplace(std::move(key), w);
    return w;
  }

  Walk walk_uncached(const std::vector<uint8_t> &state, uint32_t start) {
    Walk w;
    if (start == 0 && is_trap(state.data())) {
      w.cls = Cls::Trap;
      w.executed = 1;
      return w;
    }
    bool all_old = true, all_new = true;
    uint32_t pos = start;
    mc::Insn in;
    while (pos < len_) {
      const size_t avail = state.size() - pos;
      if (!dec_.decode(state.data() + pos, avail, c_.t.addr + pos, &in, true)) {
        w.cls = Cls::Torn;
        w.why = "+" + std::to_string(pos) + ": illegal/undecodable (not the site's trap)";
        return w;
      }
      for (uint32_t i = pos; i < pos + in.length && i < 32; ++i) w.executed |= 1u << i;
      const bool o = matches(old_, c_.t.old_bytes, state.data(), pos, in.length);
      const bool n = matches(new_, c_.t.new_bytes, state.data(), pos, in.length);
      all_old = all_old && o;
      all_new = all_new && n;
      if (!all_old && !all_new) {
        w.cls = Cls::Torn;
        w.why = "+" + std::to_string(pos) + ": '" + in.text + "'" +
                (o || n ? " (mixes old and new instructions)" : "");
        return w;
      }
      pos += in.length;
      if (in.flow == mc::Flow::Jump || in.flow == mc::Flow::IndirectJump || in.flow == mc::Flow::Return ||
          in.flow == mc::Flow::Trap)
        break; // never falls through: nobody is parked after it
      if (pos < len_) {
        w.reached |= 1u << pos;
        if (in.flow == mc::Flow::Call || in.flow == mc::Flow::IndirectCall) w.returns |= 1u << pos;
      }
    }
    w.cls = all_old ? Cls::Old : Cls::New;
    return w;
  }

  // Explores all epochs; fills `r`.
  void explore(const std::vector<uint8_t> &initial, const std::vector<Epoch> &epochs, const Options &opt,
               GranuleResult &r) {
    uint32_t parked = 0, returns = 0;
    for (const auto &e : old_.insns)
      if (e.first > 0) parked |= 1u << e.first;
    // Threads inside a callee of an old call in the site return into it later.
    {
      std::vector<uint8_t> s0 = initial;
      Walk w0 = walk(s0, 0);
      returns |= w0.returns;
    }
    std::vector<uint8_t> cur = initial;
    std::mt19937_64 rng(0x5eed + r.g);
    for (const Epoch &ep : epochs) {
      const size_t k = ep.pieces.size();
      std::vector<std::vector<uint8_t>> states;
      auto make = [&](uint64_t mask, const std::vector<bool> *bits) {
        std::vector<uint8_t> s = cur;
        for (size_t i = 0; i < k; ++i) {
          const bool on = bits ? (*bits)[i] : ((mask >> i) & 1);
          if (on)
            for (size_t j = 0; j < ep.pieces[i].bytes.size(); ++j) s[ep.pieces[i].off + j] = ep.pieces[i].bytes[j];
        }
        return s;
      };
      if (k <= opt.max_exhaustive_pieces) {
        for (uint64_t m = 0; m < (uint64_t(1) << k); ++m) states.push_back(make(m, nullptr));
      } else {
        r.sampled = true;
        std::vector<bool> bits(k);
        for (int edge = 0; edge < 2; ++edge) { // none and all
          std::fill(bits.begin(), bits.end(), edge == 1);
          states.push_back(make(0, &bits));
        }
        for (uint32_t n = 0; n < opt.samples; ++n) {
          for (size_t i = 0; i < k; ++i) bits[i] = (rng() & 1) != 0;
          states.push_back(make(0, &bits));
        }
      }
      std::vector<uint32_t> done(states.size(), 0);
      std::vector<bool> torn(states.size(), false), unlisted(states.size(), false);
      const uint32_t umask = unlisted_mask(ep.unlisted);
      bool changed = true;
      while (changed) {
        changed = false;
        for (size_t si = 0; si < states.size(); ++si) {
          const uint32_t starts = (parked | 1u) & ~done[si];
          if (!starts) continue;
          for (uint32_t p = 0; p < len_; ++p) {
            if (!((starts >> p) & 1)) continue;
            done[si] |= 1u << p;
            const Walk w = walk(states[si], p);
            ++r.walks;
            // B2.2.5 (aarch64): executing a word while a store changes it
            // between two instructions not both in the list is CONSTRAINED
            // UNPREDICTABLE, whatever the word holds in this state.
            const bool unl = w.cls != Cls::Torn && (w.executed & umask) != 0;
            if (unl) {
              ++r.n_unlisted;
              torn[si] = unlisted[si] = true;
              if (r.examples.size() < opt.max_examples) {
                const Unlisted *u = &ep.unlisted.front();
                for (const Unlisted &x : ep.unlisted)
                  if (x.off + 4 <= 32 && (w.executed & (0xfu << x.off))) {
                    u = &x;
                    break;
                  }
                r.examples.push_back({p, hex(states[si].data(), len_),
                                      "unlisted: +" + std::to_string(u->off) + " executed while a store changes '" +
                                          word_text(u->from, u->off) + "' to '" + word_text(u->to, u->off) +
                                          "' under running threads (not both in B2.2.5's list: CONSTRAINED "
                                          "UNPREDICTABLE)",
                                      true});
              }
            } else {
              switch (w.cls) {
              case Cls::Old: ++r.n_old; break;
              case Cls::New: ++r.n_new; break;
              case Cls::Trap: ++r.n_trap; break;
              case Cls::Torn:
                ++r.n_torn;
                torn[si] = true;
                if (r.examples.size() < opt.max_examples)
                  r.examples.push_back({p, hex(states[si].data(), len_), w.why, false});
                break;
              }
            }
            if (w.cls != Cls::Torn && !unl && (w.reached & ~parked)) {
              parked |= w.reached;
              changed = true;
            }
            returns |= w.cls != Cls::Torn && !unl ? w.returns : 0;
          }
        }
      }
      r.states += states.size();
      for (bool t : torn) r.torn_states += t;
      for (bool u : unlisted) r.unlisted_states += u;
      // The epoch's end: every store visible, then the hold round's.
      cur = make(~uint64_t(0), nullptr);
      if (k > 64) {
        std::vector<bool> all(k, true);
        cur = make(0, &all);
      }
      for (const Piece &h : ep.held)
        for (size_t j = 0; j < h.bytes.size(); ++j) cur[h.off + j] = h.bytes[j];
      // The evacuating sync moves threads whose pc is inside the site; threads
      // that will return into it from a callee stay.
      if (ep.evacuate) parked = returns;
    }
  }

 private:
  const Case &c_;
  const mc::Decoder &dec_;
  uint32_t len_ = 0;
  Code old_, new_;
  std::unordered_map<std::string, Walk> memo_;
};

std::vector<uint8_t> site_state(const Case &c, const uint8_t *bytes) {
  std::vector<uint8_t> s(bytes, bytes + c.t.len);
  s.insert(s.end(), c.after.begin(), c.after.end());
  // Padding so a decoder reading past a torn instruction has bytes to look at.
  s.insert(s.end(), 16, 0);
  return s;
}

GranuleResult run_protocol(const Case &c, Analyser &a, uint32_t g, const Options &opt, std::string &err) {
  GranuleResult r;
  r.g = g;
  r.mode = Mode::Protocol;
  Recorder rec;
  rec.site = c.t.addr;
  rec.base = c.t.addr - 16;
  rec.mem.assign(16, 0);
  const std::vector<uint8_t> state = site_state(c, c.t.old_bytes);
  rec.mem.insert(rec.mem.end(), state.begin(), state.end());
  rec.state_len = uint32_t(state.size());
  rec.g = g;
  rec.writer = c.writer;
  rec.arch = c.arch;
  rec.a64 = c.arch == "aarch64";
  rec.protocol = c.protocol;
  if (c.protocol == Protocol::Stopped && !rec.a64) {
    err = "the stopped protocol is modelled for aarch64 only (A64Backend::store_needs_stop)";
    return r;
  }
  engine::EngineOps ops;
  ops.ctx = &rec;
  ops.granule = c.granule;
  ops.write = rec_write;
  ops.sync = rec_sync;
  ops.read = rec_read;
  engine::EngineStats st;
  const engine::EngineError e = engine::run_batch(ops, &c.t, 1, &st);
  if (e != engine::EngineError::Ok) {
    err = "engine::run_batch refused the transition (error " + std::to_string(int(e)) + ")" +
          (rec.error.empty() ? "" : ": " + rec.error);
    return r;
  }
  rec.epochs.pop_back(); // opened by the final sync: empty
  r.held_stores = rec.held_stores;
  r.unlisted_stores = rec.unlisted_stores;
  a.explore(site_state(c, c.t.old_bytes), rec.epochs, opt, r);
  return r;
}

GranuleResult run_naive(const Case &c, Analyser &a, uint32_t g, const Options &opt) {
  GranuleResult r;
  r.g = g;
  r.mode = Mode::Naive;
  Epoch ep;
  const uintptr_t s = c.t.addr, e = c.t.addr + c.t.len;
  for (uintptr_t chunk = s & ~uintptr_t(g - 1); chunk < e; chunk += g) {
    const uintptr_t lo = std::max(chunk, s), hi = std::min(chunk + g, e);
    bool diff = false;
    for (uintptr_t x = lo; x < hi; ++x) diff |= c.t.old_bytes[x - s] != c.t.new_bytes[x - s];
    if (!diff) continue;
    Piece p;
    p.off = uint32_t(lo - s);
    p.bytes.assign(c.t.new_bytes + (lo - s), c.t.new_bytes + (hi - s));
    ep.pieces.push_back(std::move(p));
  }
  // aarch64: the direct write runs under other threads, word by word (A64 sites
  // are whole aligned words): B2.2.5's rule for each word it changes.
  if (c.arch == "aarch64")
    for (uint32_t off = 0; off + 4 <= c.t.len; off += 4) {
      const uint32_t from = aarch64::get32(c.t.old_bytes + off), to = aarch64::get32(c.t.new_bytes + off);
      if (from != to && !aarch64::concurrent_modification_safe(from, to)) {
        ep.unlisted.push_back({off, from, to});
        ++r.unlisted_stores;
      }
    }
  a.explore(site_state(c, c.t.old_bytes), {ep}, opt, r);
  return r;
}

// ---------------------------------------------------------------------------
// The shipped cases.

Case base_case(const char *arch, const char *hart, const char *features, uint32_t granule, TrapRule trap) {
  Case c;
  c.arch = arch;
  c.hart = hart;
  c.features = features;
  c.granule = granule;
  c.trap = trap;
  return c;
}

Case reversed(const Case &c, const std::string &name) {
  Case r = c;
  r.name = name;
  for (uint32_t i = 0; i < c.t.len; ++i) {
    r.t.old_bytes[i] = c.t.new_bytes[i];
    r.t.new_bytes[i] = c.t.old_bytes[i];
  }
  return r;
}

void add_pair(std::vector<Case> &out, Case c, const std::string &fwd, const std::string &back) {
  c.name = fwd;
  out.push_back(c);
  out.push_back(reversed(c, back));
}

void x86_entry(std::vector<Case> &out) {
  Case c = base_case("x86_64", "x86-64", "", x86_64::kGranule, TrapRule::X86Int3);
  c.kind = "entry";
  const uintptr_t site = 0x401000;
  uint8_t call[5];
  x86_64::encode_call(site, site - 0x7654321, call); // rel32 with no zero byte
  x86_64::make_transition(site, x86_64::kNop5, call, x86_64::kSiteLen, false, &c.t);
  c.after = {0x55, 0x48, 0x89, 0xe5}; // push rbp; mov rbp, rsp
  add_pair(out, c, "entry nop5 -> call rel32", "entry call rel32 -> nop5");
}

void riscv_entry(std::vector<Case> &out) {
  struct Flavour {
    const char *code;
    riscv64::Ilen ilen;
    uint32_t len;
    bool hart_c;
  };
  const Flavour fl[] = {
      {"rv64gc", riscv64::Ilen::C16, 10, true},  // -fpatchable-function-entry=5: 5 x c.nop
      {"rv64g", riscv64::Ilen::G32, 8, true},    // 2 x nop, on a hart with C
      {"rv64g", riscv64::Ilen::G32, 8, false},   // 2 x nop, on a hart without C
  };
  for (const Flavour &f : fl) {
    for (int far = 0; far < 2; ++far) {
      Case c = base_case("riscv64", f.hart_c ? "rv64gc hart (C)" : "rv64g hart (no C)", f.hart_c ? "+c" : "-c",
                         riscv64::granule(f.hart_c), f.hart_c ? TrapRule::RiscvCHart : TrapRule::RiscvNoCHart);
      c.kind = "entry";
      const uintptr_t site = 0x10000;
      uint8_t oldb[32], newb[32];
      riscv64::fill_nops(oldb, f.len, f.ilen);
      const uintptr_t target = far ? site + 0x12345678 : site + 0x8ace;
      if (riscv64::encode_entry_call(site, target, f.len, f.ilen, newb) != riscv64::CallError::Ok) continue;
      riscv64::make_transition(site, f.len, f.ilen, f.hart_c, oldb, newb, &c.t);
      if (f.ilen == riscv64::Ilen::C16)
        c.after = {0x41, 0x11, 0x06, 0xe4}; // c.addi sp,-16; c.sdsp ra,8(sp)
      else
        c.after = {0x13, 0x01, 0x01, 0xff}; // addi sp,sp,-16
      const std::string sled = std::string(f.code) + " " + std::to_string(f.len / uint32_t(f.ilen)) + "x" +
                               (f.ilen == riscv64::Ilen::C16 ? "c.nop" : "nop");
      const std::string call = far ? "auipc t0+jalr t0" : "jal t0";
      add_pair(out, c, "entry " + sled + " -> " + call, "entry " + call + " -> " + sled);
    }
  }
}

// The Transition exactly as A64Backend::make_transition (backends/aarch64/
// backend.cpp) builds it: the backend class is compiled only into an aarch64
// host's lp_isa_aarch64 (the host build has the ISA's encoding.cpp), so its five
// assignments are repeated here over the shipped encoders' bytes, the way the
// other rows call x86_64:: / riscv64::make_transition. Only the first word ever
// changes (NOP / original word <-> BRK #0xc9 <-> B), trap_len = 4 and nothing
// is evacuated (no boundary inside a sled changes; an instruction site is one
// word). Instruction sites use the same call (the patcher's commit() does), with
// insn_transition_evacuates() giving false for one word.
void a64_transition(uintptr_t site, uint32_t len, const uint8_t *cur, const uint8_t *next, Transition *t) {
  t->addr = site;
  t->len = len;
  t->trap_len = 4;
  std::memcpy(t->old_bytes, cur, len);
  std::memcpy(t->new_bytes, next, len);
  aarch64::put32(t->trap_bytes, aarch64::trap_insn());
  t->evacuate = false;
}

// A64 entry sleds (`-fpatchable-function-entry=2`: two NOPs at the symbol, or
// after the `bti c` a -mbranch-protection=bti build puts first), probed the way
// A64Backend does: jump_bytes = NOPs with `B trampoline` (encode_entry_jump)
// over the first word, trap_bytes = the disabled bytes with BRK #0xc9
// (trap_insn()) over it. The toggles: disabled <-> jump, disabled <-> trap (a
// jump probe is never turned into a trap probe in place: the policy and the
// fallback are decided when the probe is made; B -> BRK -> NOP and NOP -> BRK ->
// B are the phases of the jump rows).
void aarch64_entry(std::vector<Case> &out) {
  for (int bti = 0; bti < 2; ++bti) {
    // The function's first words: [bti c] nop nop stp x29, x30, [sp, #-16]!
    const uintptr_t fn = 0x400000;
    uint8_t code[16];
    uint32_t n = 0;
    if (bti) aarch64::put32(code + 4 * n++, aarch64::kBtiC);
    aarch64::put32(code + 4 * n++, aarch64::kNop);
    aarch64::put32(code + 4 * n++, aarch64::kNop);
    aarch64::put32(code + 4 * n++, 0xa9bf7bfd); // stp x29, x30, [sp, #-16]!
    // A64Backend::site_start / probe_site: the site starts after a landing pad
    // (never rewritten) and covers the sled's NOPs.
    const uint32_t prefix = aarch64::get32(code) == aarch64::kBtiC ? 4 : 0;
    const uintptr_t site = fn + prefix;
    const uint32_t len = 4 * aarch64::sled_nops(code + prefix, 4 * n - prefix);
    Case c = base_case("aarch64", "aarch64", "", 4, TrapRule::A64Brk);
    c.kind = "entry";
    c.protocol = Protocol::Breakpoint; // every store a listed pair: the patcher holds none
    uint8_t disabled[32], jump[32], trap[32];
    std::memcpy(disabled, code + prefix, len); // disabled_bytes: the NOPs
    for (uint32_t off = 0; off < len; off += 4) aarch64::put32(jump + off, aarch64::kNop);
    if (!aarch64::encode_entry_jump(site, site + 0x7654320, jump)) continue; // B, 118 MiB ahead
    std::memcpy(trap, disabled, len);
    aarch64::put32(trap, aarch64::trap_insn());
    c.after.assign(code + prefix + len, code + 4 * n);
    const std::string sled = std::string(bti ? "bti c+" : "") + std::to_string(len / 4) + "xnop";
    a64_transition(site, len, disabled, jump, &c.t);
    add_pair(out, c, "entry a64 " + sled + " -> b", "entry a64 b -> " + sled);
    a64_transition(site, len, disabled, trap, &c.t);
    add_pair(out, c, "entry a64 " + sled + " -> brk #0xc9", "entry a64 brk #0xc9 -> " + sled);
  }
}

// A64 instruction sites of samples/aarch64.s, relocated by the aarch64
// relocator: one word, `B copy` (encode_site_jump) for a jump probe, BRK #0xc9
// (the backend's trap_bytes over the original word) for a trap probe. The
// patcher's protocol for them is the stopped one (insn_sites_need_stop).
void aarch64_sites(std::vector<Case> &out, const Options &opt) {
  const samples::Blob *b = samples::blob("aarch64");
  mc::initialize_all_targets();
  auto dec = mc::Decoder::create("aarch64", "");
  if (!b || !dec) return;
  const uintptr_t base = 0x30000;
  for (size_t fi = 0; fi < b->nfns; ++fi) {
    const samples::SampleFn &fn = b->fns[fi];
    if (samples::is_data(fn)) continue;
    int taken = 0;
    for (uint32_t off = fn.offset; off + 4 <= fn.offset + fn.size; off += 4) {
      const uintptr_t site = base + off;
      mc::RelocInput in;
      in.site = site;
      in.code = b->code + off;
      in.avail = fn.offset + fn.size - off;
      in.min_len = aarch64::kSiteJumpLen;
      in.func_start = base + fn.offset;
      in.func_code = b->code + fn.offset;
      in.func_size = fn.size;
      const uintptr_t dest = site + 0x80000;
      mc::Relocation r = aarch64::relocate(*dec, in, dest);
      if (!r.ok() || r.displaced_len != 4) continue;
      const mc::Insn i = dec->decode(in.code, 4, site);
      const bool pcrel = i.reads_pc || i.has_target;
      if (!opt.all_sites && !(off == fn.offset || (pcrel && taken < 2))) continue;
      ++taken;
      uint8_t jump[4], trap[4];
      if (!aarch64::encode_site_jump(site, dest, 4, jump)) continue;
      std::memcpy(trap, in.code, 4);
      aarch64::put32(trap, aarch64::trap_insn());
      Case c = base_case("aarch64", "aarch64", "", 4, TrapRule::A64Brk);
      c.kind = "instruction";
      c.protocol = Protocol::Stopped;
      c.after.assign(in.code + 4, in.code + std::min<size_t>(in.avail, 4 + 16));
      char nm[160];
      std::snprintf(nm, sizeof nm, "aarch64 %s+%u (4 bytes) ", fn.name, off - fn.offset);
      const bool multi = r.boundaries.size() > 1;
      for (int t = 0; t < 2; ++t) {
        const uint8_t *next = t ? trap : jump;
        const std::string what = t ? "brk #0xc9" : "b";
        a64_transition(site, 4, in.code, next, &c.t);
        c.t.evacuate = insn_transition_evacuates(multi, false, in.code, jump, in.code, next, 4, c.t.trap_len);
        c.name = std::string(nm) + "-> " + what;
        out.push_back(c);
        Case back = reversed(c, std::string(nm) + "<- " + what);
        back.t.evacuate = insn_transition_evacuates(multi, false, in.code, jump, next, in.code, 4, c.t.trap_len);
        out.push_back(back);
      }
    }
  }
}

// The aarch64 expected negative: the first instruction site's jump made with
// the plain breakpoint protocol (no hold round). Its phase-1 store (original
// word -> BRK) and its own word run concurrently: B2.2.5 gives no guarantee.
void aarch64_negative(std::vector<Case> &out) {
  for (size_t i = 0; i < out.size(); ++i) {
    const std::string &n = out[i].name;
    if (out[i].arch != "aarch64" || out[i].kind != "instruction" || n.size() < 4 ||
        n.compare(n.size() - 4, 4, "-> b") != 0)
      continue;
    Case c = out[i];
    c.protocol = Protocol::Breakpoint;
    c.shipped = false;
    c.name += " [no hold round]";
    out.push_back(std::move(c));
    return;
  }
}

// Instruction sites of the sample functions, relocated by the relocators.
void instruction_sites(std::vector<Case> &out, const Options &opt) {
  struct Flavour {
    const char *blob;
    const char *arch;
    bool hart_c;
  };
  const Flavour fl[] = {{"x86_64", "x86_64", false}, {"riscv64gc", "riscv64", true}, {"riscv64g", "riscv64", true},
                        {"riscv64g", "riscv64", false}};
  for (const Flavour &f : fl) {
    const samples::Blob *b = samples::blob(f.blob);
    const bool x86 = std::string(f.arch) == "x86_64";
    const char *features = x86 ? "" : (f.hart_c ? "+c" : "-c");
    mc::initialize_all_targets();
    auto dec = mc::Decoder::create(f.arch, features);
    if (!dec) continue;
    const uintptr_t base = x86 ? 0x400000 : 0x20000;
    for (size_t fi = 0; fi < b->nfns; ++fi) {
      const samples::SampleFn &fn = b->fns[fi];
      if (samples::is_data(fn)) continue;
      std::vector<uint64_t> bounds;
      dec->boundaries(b->code + fn.offset, fn.size, base + fn.offset, &bounds);
      int taken = 0;
      for (uint64_t site : bounds) {
       // riscv64: the 4-byte `jal x0` site jump, and the 8-byte `auipc t6; jalr x0`
       // one for a copy 16 MiB away (t6 is dead in the samples).
       for (int far = 0; far < (x86 ? 1 : 2); ++far) {
        const uint32_t off = uint32_t(site - base);
        mc::RelocInput in;
        in.site = site;
        in.code = b->code + off;
        in.avail = fn.offset + fn.size - off;
        in.min_len = x86 ? x86_64::kSiteJumpLen : (far ? riscv64::kSiteFarLen : riscv64::kSiteJalLen);
        in.scratch_reg = far ? 31 : 0;
        in.func_start = base + fn.offset;
        in.func_code = b->code + fn.offset;
        in.func_size = fn.size;
        const uintptr_t dest = site + (x86 ? 0x100000 : far ? 0x1000000 : 0x80000);
        mc::Relocation r = x86 ? x86_64::relocate(*dec, in, dest) : riscv64::relocate(*dec, in, dest);
        if (!r.ok()) continue;
        bool pcrel = false;
        {
          uint32_t o = 0;
          while (o < r.displaced_len) {
            mc::Insn i = dec->decode(in.code + o, in.avail - o, site + o);
            pcrel |= i.reads_pc || i.has_target;
            o += i.length ? i.length : 1;
          }
        }
        if (!opt.all_sites && !(site == base + fn.offset || (pcrel && taken < 2 + far))) continue;
        ++taken;
        uint8_t newb[32];
        const bool enc = x86 ? x86_64::encode_site_jump(site, dest, r.displaced_len, newb)
                             : riscv64::encode_site_jump(site, dest, r.displaced_len, in.scratch_reg, newb);
        if (!enc) continue;
        Case c = base_case(f.arch, x86 ? "x86-64" : (f.hart_c ? "rv64gc hart (C)" : "rv64g hart (no C)"), features,
                           x86 ? x86_64::kGranule : riscv64::granule(f.hart_c),
                           x86 ? TrapRule::X86Int3 : (f.hart_c ? TrapRule::RiscvCHart : TrapRule::RiscvNoCHart));
        c.kind = "instruction";
        if (x86)
          x86_64::make_transition(site, in.code, newb, r.displaced_len, false, &c.t);
        else
          riscv64::make_transition(site, r.displaced_len,
                                   std::string(f.blob) == "riscv64gc" ? riscv64::Ilen::C16 : riscv64::Ilen::G32,
                                   f.hart_c, in.code, newb, &c.t);
        c.after.assign(in.code + r.displaced_len, in.code + std::min<size_t>(in.avail, r.displaced_len + 16));
        char nm[160];
        std::snprintf(nm, sizeof nm, "%s %s+%u (%u bytes) ", f.blob, fn.name, off - fn.offset, r.displaced_len);
        const std::string jump = x86 ? "jmp rel32" : far ? "auipc t6+jalr x0" : "jal x0";
        // Evacuation by the core's rule for instruction sites, each direction.
        const bool multi = r.boundaries.size() > 1;
        c.t.evacuate = insn_transition_evacuates(multi, far, in.code, newb, in.code, newb, r.displaced_len, c.t.trap_len);
        c.name = std::string(nm) + "-> " + jump;
        out.push_back(c);
        Case back = reversed(c, std::string(nm) + "<- " + jump);
        back.t.evacuate =
            insn_transition_evacuates(multi, far, in.code, newb, newb, in.code, r.displaced_len, c.t.trap_len);
        out.push_back(back);
       }
      }
    }
  }
}

} // namespace

// ---------------------------------------------------------------------------
// Writers: what the hardware sees for one engine store.

const char *writer_name(Writer w) {
  switch (w) {
  case Writer::Mprotect: return "mprotect";
  case Writer::Procmem: return "procmem";
  case Writer::ProcmemLinux61Naive: return "procmem-linux-6.1-naive";
  }
  return "?";
}

const char *protocol_name(Protocol p) {
  switch (p) {
  case Protocol::Breakpoint: return "breakpoint";
  case Protocol::Stopped: return "stopped";
  }
  return "?";
}

bool parse_writer(const std::string &s, Writer *out) {
  for (Writer w : {Writer::Mprotect, Writer::Procmem, Writer::ProcmemLinux61Naive})
    if (s == writer_name(w)) {
      *out = w;
      return true;
    }
  return false;
}

std::vector<Store> linux61_memcpy_stores(const std::string &arch, uintptr_t dst, uintptr_t src, const uint8_t *data,
                                         size_t n) {
  std::vector<Store> out;
  size_t i = 0; // bytes copied so far
  auto store = [&](size_t len) {
    out.push_back({dst + i, std::vector<uint8_t>(data + i, data + i + len)});
    i += len;
  };
  if (arch == "aarch64") {
    // arch/arm64/lib/memcpy.S (6.1; Arm's optimized-routines memcpy), the copies
    // of at most 32 bytes, which load everything first and then store from both
    // ends (overlapping in the middle): srcend = src + n, dstend = dst + n.
    // put(o, w): one w-byte str of data[o, o + w) at dst + o; single-copy atomic
    // only when naturally aligned, else (no FEAT_LSE2 assumed) per byte.
    auto put = [&](size_t o, size_t w) {
      if ((dst + o) % w == 0) {
        out.push_back({dst + o, std::vector<uint8_t>(data + o, data + o + w)});
        return;
      }
      for (size_t b = 0; b < w; ++b) out.push_back({dst + o + b, std::vector<uint8_t>{data[o + b]}});
    };
    if (n > 32) { // not modelled (the writer copies 4 bytes): byte stores, the weakest case
      while (i < n) store(1);
      return out;
    }
    if (n >= 16) {        // 16..32: ldp A, ldp D; stp A_l, A_h, [dstin]; stp D_l, D_h, [dstend, -16]
      put(0, 8), put(8, 8), put(n - 16, 8), put(n - 8, 8);
    } else if (n & 8) {   // L(copy16), 8..15: str A_l, [dstin]; str A_h, [dstend, -8]
      put(0, 8), put(n - 8, 8);
    } else if (n & 4) {   // L(copy8), 4..7 (lines 88-94): str A_lw, [dstin]; str B_lw, [dstend, -4]
      put(0, 4), put(n - 4, 4); // n = 4: the same word twice, to the same address
    } else if (n) {       // L(copy4), 1..3: strb A_lw, [dstin]; strb B_lw, [dstin, n/2]; strb C_lw, [dstend, -1]
      put(0, 1), put(n / 2, 1), put(n - 1, 1);
    }
    return out;
  }
  if (arch != "riscv64") {
    while (i < n) store(1); // rep movsb (x86-64; n = 1 is one movb in every variant)
    return out;
  }
  // arch/riscv/lib/memcpy.S (6.1), SZREG = 8; a1 = src + i, t6 = dst + i.
  if (n >= 128 && (dst & 7) == (src & 7)) {       // 15-20
    if (dst & 7) {                                // 22: misaligned head, byte copy
      const uintptr_t a3 = (src & ~uintptr_t(7)) + 8; // 27-28
      while (src + i < a3) store(1);              // 31-36
    }
    const size_t blocks = (n - i) & ~size_t(16 * 8 - 1); // 40
    for (size_t b = 0; b < blocks; b += 16 * 8)   // 43-78: 16 x REG_S (sd) per block
      for (int k = 0; k < 16; ++k) store(8);
  }
  if (i == n) return out;                         // 83
  const uintptr_t a1 = src + i, t6 = dst + i, a3 = src + n;
  if (((a1 | t6 | a3) & 3) == 0) {                // 87-90: co-aligned to a word
    while (i < n) store(4);                       // 91-96: lw/sw
  } else {
    while (i < n) store(1);                       // 100-105: lb/sb
  }
  return out;
}

std::vector<Store> writer_stores(Writer w, const std::string &arch, uintptr_t addr, const uint8_t *src,
                                 uint32_t granule, const uint8_t *current) {
  namespace lpl = lp::linux_platform;
  switch (w) {
  case Writer::Mprotect: // store_granule: one sb/sh/sw (mov) of the granule
    return {{addr, std::vector<uint8_t>(src, src + granule)}};
  case Writer::Procmem: {
    // The shipped plan, then the kernel's copy of it from the bounce page.
    const lpl::ProcmemStore st =
        lpl::procmem_store_plan(lpl::procmem_kernel_copy(arch == "riscv64"   ? lpl::ProcmemIsa::Riscv64
                                                         : arch == "aarch64" ? lpl::ProcmemIsa::Aarch64
                                                                             : lpl::ProcmemIsa::X86_64),
                                addr, src, granule, current);
    if (st.len == 0) return {};
    return linux61_memcpy_stores(arch, st.addr, kProcMemBouncePage, st.bytes, st.len);
  }
  case Writer::ProcmemLinux61Naive: // pwrite(src, granule, addr) as it was
    return linux61_memcpy_stores(arch, addr, kProcMemBouncePage, src, granule);
  }
  return {};
}

std::vector<Case> shipped_cases(const Options &opt) {
  std::vector<Case> base;
  x86_entry(base);
  riscv_entry(base);
  aarch64_entry(base);
  instruction_sites(base, opt);
  aarch64_sites(base, opt);
  aarch64_negative(base);
  std::vector<Case> out;
  for (const Case &b : base)
    for (Writer w : opt.writers) {
      // The naive procmem row exists where the writer changed: on x86-64 the
      // shipped procmem writer issues that same 1-byte pwrite.
      if (w == Writer::ProcmemLinux61Naive && b.arch != "riscv64") continue;
      Case c = b;
      c.writer = w;
      c.shipped = b.shipped && w != Writer::ProcmemLinux61Naive;
      out.push_back(std::move(c));
    }
  return out;
}

CaseResult analyse(const Case &c, const Options &opt) {
  CaseResult res;
  res.c = c;
  std::string err;
  mc::initialize_all_targets();
  auto dec = mc::Decoder::create(c.arch, c.features, &err);
  if (!dec) {
    res.error = err;
    return res;
  }
  Analyser a(c, *dec);
  for (uint32_t g : opt.granules) {
    GranuleResult r = run_protocol(c, a, g, opt, err);
    if (!err.empty()) {
      res.error = err;
      return res;
    }
    if (r.torn_states == 0 && res.min_g_protocol == 0) res.min_g_protocol = g;
    if (r.torn_states != 0) res.min_g_protocol = 0; // must hold for every larger g too
    if (g == c.granule) res.ok_at_declared = r.torn_states == 0;
    res.protocol.push_back(std::move(r));
    if (opt.naive) {
      GranuleResult n = run_naive(c, a, g, opt);
      if (n.torn_states == 0 && res.min_g_naive == 0) res.min_g_naive = g;
      if (n.torn_states != 0) res.min_g_naive = 0;
      res.naive.push_back(std::move(n));
    }
  }
  return res;
}

// ---------------------------------------------------------------------------
// Output.

namespace {
std::string g_label(uint32_t g) { return g ? std::to_string(g) : std::string("none"); }

bool only_unlisted(const GranuleResult &r) { return r.torn_states != 0 && r.n_torn == 0; }

const GranuleResult *declared(const CaseResult &r) {
  for (const GranuleResult &g : r.protocol)
    if (g.g == r.c.granule) return &g;
  return nullptr;
}

std::string cell(const GranuleResult &r) {
  char b[64];
  if (r.torn_states == 0)
    std::snprintf(b, sizeof b, "ok/%llu%s", (unsigned long long)r.states, r.sampled ? "~" : "");
  else // UNLISTED: every torn state is one only by B2.2.5's rule (no torn instruction)
    std::snprintf(b, sizeof b, "%s %llu/%llu%s", only_unlisted(r) ? "UNLISTED" : "TORN",
                  (unsigned long long)r.torn_states, (unsigned long long)r.states, r.sampled ? "~" : "");
  return b;
}

std::string json_str(const std::string &s) {
  std::string o = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      o += '\\';
      o += ch;
    } else if (uint8_t(ch) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", ch);
      o += b;
    } else {
      o += ch;
    }
  }
  return o + "\"";
}
} // namespace

std::string to_table(const std::vector<CaseResult> &rs, const Options &opt) {
  std::string o;
  char line[512];
  std::snprintf(line, sizeof line, "%-58s %-18s %-10s %-23s %2s |", "transition", "hart", "protocol", "writer", "G");
  o += line;
  for (uint32_t g : opt.granules) {
    std::snprintf(line, sizeof line, " %-14s", ("g=" + std::to_string(g)).c_str());
    o += line;
  }
  o += "| needs  naive-needs\n";
  for (const CaseResult &r : rs) {
    if (!r.error.empty()) {
      std::snprintf(line, sizeof line, "%-58s %-18s %-10s %-23s ERROR %s\n", r.c.name.c_str(), r.c.hart.c_str(),
                    protocol_name(r.c.protocol), writer_name(r.c.writer), r.error.c_str());
      o += line;
      continue;
    }
    std::snprintf(line, sizeof line, "%-58.58s %-18s %-10s %-23s %2u |", r.c.name.c_str(), r.c.hart.c_str(),
                  protocol_name(r.c.protocol), writer_name(r.c.writer), r.c.granule);
    o += line;
    for (const GranuleResult &g : r.protocol) {
      std::snprintf(line, sizeof line, " %-14s", cell(g).c_str());
      o += line;
    }
    const GranuleResult *d = declared(r);
    const bool unl = d && only_unlisted(*d);
    const char *mark = r.ok_at_declared ? (r.c.shipped ? "" : "   (not shipped)")
                       : r.c.shipped    ? (unl ? "   <-- UNLISTED AT DECLARED GRANULE" : "   <-- TORN AT DECLARED GRANULE")
                                        : (unl ? "   (not shipped: unlisted at G, as expected)"
                                               : "   (not shipped: torn at G, as expected)");
    std::snprintf(line, sizeof line, "| %-6s %s%s\n", g_label(r.min_g_protocol).c_str(),
                  g_label(r.min_g_naive).c_str(), mark);
    o += line;
  }
  // Per arch/hart summary.
  o += "\nminimum write atomicity needed (bytes; over all transitions of the hart, per protocol and writer):\n";
  using Key = std::tuple<std::string, std::string, std::string, bool>; // (hart, protocol, writer, shipped)
  std::map<Key, std::pair<uint32_t, uint32_t>> need; // -> (protocol, naive); 0 = none
  std::map<Key, uint32_t> declared_g;
  std::map<Key, bool> pnone, nnone;
  for (const CaseResult &r : rs) {
    if (!r.error.empty()) continue;
    const Key k{r.c.hart, protocol_name(r.c.protocol), writer_name(r.c.writer), !r.c.shipped};
    auto &n = need[k];
    declared_g[k] = r.c.granule;
    if (r.min_g_protocol == 0) pnone[k] = true;
    if (r.min_g_naive == 0) nnone[k] = true;
    n.first = std::max(n.first, r.min_g_protocol);
    n.second = std::max(n.second, r.min_g_naive);
  }
  for (const auto &[k, n] : need) {
    std::snprintf(line, sizeof line,
                  "  %-18s %-10s %-23s protocol: %-5s (declared granule %u)   naive direct write: %s%s\n",
                  std::get<0>(k).c_str(), std::get<1>(k).c_str(), std::get<2>(k).c_str(),
                  pnone[k] ? ">8" : g_label(n.first).c_str(), declared_g[k],
                  nnone[k] ? ">8 (torn at every g)" : g_label(n.second).c_str(), std::get<3>(k) ? "  (not shipped)" : "");
    o += line;
  }
  o += "\ncells: ok/<states> or TORN <torn states>/<states> (~ = sampled); G = declared store granule\n"
       "  UNLISTED <states>/<states> (aarch64): no torn instruction, but a walk executes a word a store changes\n"
       "  under running threads between two instructions not both in B2.2.5's list (CONSTRAINED UNPREDICTABLE)\n"
       "protocols: breakpoint = every store made while threads run; stopped (aarch64) = the stores\n"
       "  store_needs_stop() names are made in the phase's hold round (every other thread held): atomic at the\n"
       "  epoch's end\n"
       "writers: mprotect = one store of G bytes; procmem = the shipped /proc/self/mem store plan (riscv64: the\n"
       "  aligned 4-byte word; aarch64: the 4-byte pwrite, two 32-bit stores of the word in Linux 6.1's arm64\n"
       "  memcpy) through the kernel's memcpy; procmem-linux-6.1-naive = a G-byte pwrite through\n"
       "  Linux 6.1's riscv memcpy (byte stores; the writer before the plan, not shipped)\n";
  if (opt.show_examples) {
    o += "\nexamples of torn states (site bytes as a fetching hart sees them, walk start, what it decodes):\n";
    for (const CaseResult &r : rs) {
      for (int m = 0; m < 2; ++m)
        for (const GranuleResult &g : m ? r.naive : r.protocol)
          if (!g.examples.empty())
            o += "  " + r.c.name + " [" + r.c.hart + ", " + protocol_name(r.c.protocol) + ", " +
                 writer_name(r.c.writer) + "] " +
                 (m ? "naive" : "protocol") + " g=" + std::to_string(g.g) +
                 ": [" + g.examples[0].bytes + "] from +" + std::to_string(g.examples[0].start) + ": " +
                 g.examples[0].why + "\n";
    }
  }
  // Torn examples at the declared granule (should be none).
  bool any = false;
  for (const CaseResult &r : rs)
    for (const GranuleResult &g : r.protocol)
      if (r.c.shipped && g.g == r.c.granule && !g.examples.empty()) {
        if (!any) o += "\nTORN STATES OF SHIPPED PROTOCOLS AT THEIR GRANULE:\n";
        any = true;
        for (const Example &e : g.examples)
          o += "  " + r.c.name + " [" + writer_name(r.c.writer) + "]: [" + e.bytes + "] from +" +
               std::to_string(e.start) + ": " + e.why + "\n";
      }
  return o;
}

std::string to_json(const std::vector<CaseResult> &rs, const Options &opt) {
  (void)opt;
  std::string o = "{\"cases\":[";
  bool first = true;
  auto gr = [&](const GranuleResult &g) {
    std::string s = "{\"g\":" + std::to_string(g.g) + ",\"states\":" + std::to_string(g.states) +
                    ",\"torn_states\":" + std::to_string(g.torn_states) + ",\"walks\":" + std::to_string(g.walks) +
                    ",\"old\":" + std::to_string(g.n_old) + ",\"new\":" + std::to_string(g.n_new) +
                    ",\"trap\":" + std::to_string(g.n_trap) + ",\"torn\":" + std::to_string(g.n_torn) +
                    ",\"unlisted\":" + std::to_string(g.n_unlisted) +
                    ",\"unlisted_states\":" + std::to_string(g.unlisted_states) +
                    ",\"held_stores\":" + std::to_string(g.held_stores) +
                    ",\"unlisted_stores\":" + std::to_string(g.unlisted_stores) +
                    ",\"sampled\":" + (g.sampled ? "true" : "false") + ",\"examples\":[";
    for (size_t i = 0; i < g.examples.size(); ++i)
      s += std::string(i ? "," : "") + "{\"start\":" + std::to_string(g.examples[i].start) +
           ",\"class\":" + (g.examples[i].unlisted ? "\"unlisted\"" : "\"torn\"") +
           ",\"bytes\":" + json_str(g.examples[i].bytes) + ",\"why\":" + json_str(g.examples[i].why) + "}";
    return s + "]}";
  };
  bool all_ok = true;
  for (const CaseResult &r : rs) {
    if (!first) o += ",";
    first = false;
    o += "{\"name\":" + json_str(r.c.name) + ",\"arch\":" + json_str(r.c.arch) + ",\"hart\":" + json_str(r.c.hart) +
         ",\"writer\":" + json_str(writer_name(r.c.writer)) + ",\"shipped\":" + (r.c.shipped ? "true" : "false") +
         ",\"protocol\":" + json_str(protocol_name(r.c.protocol)) +
         ",\"kind\":" + json_str(r.c.kind) + ",\"site\":" + std::to_string(r.c.t.addr) +
         ",\"len\":" + std::to_string(r.c.t.len) + ",\"trap_len\":" + std::to_string(r.c.t.trap_len) +
         ",\"evacuate\":" + (r.c.t.evacuate ? "true" : "false") + ",\"granule\":" + std::to_string(r.c.granule) +
         ",\"old\":" + json_str(hex(r.c.t.old_bytes, r.c.t.len)) + ",\"new\":" + json_str(hex(r.c.t.new_bytes, r.c.t.len)) +
         ",\"error\":" + json_str(r.error) + ",\"ok_at_declared\":" + (r.ok_at_declared ? "true" : "false") +
         ",\"min_g_protocol\":" + std::to_string(r.min_g_protocol) + ",\"min_g_naive\":" + std::to_string(r.min_g_naive) +
         ",\"protocol\":[";
    for (size_t i = 0; i < r.protocol.size(); ++i) o += (i ? "," : "") + gr(r.protocol[i]);
    o += "],\"naive\":[";
    for (size_t i = 0; i < r.naive.size(); ++i) o += (i ? "," : "") + gr(r.naive[i]);
    o += "]}";
    all_ok = all_ok && r.error.empty() && (!r.c.shipped || r.ok_at_declared);
  }
  o += std::string("],\"all_shipped_ok\":") + (all_ok ? "true" : "false") + "}\n";
  return o;
}

} // namespace lp::tornfetch
