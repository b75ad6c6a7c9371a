// The table the trap handler consults. Readers run in signal handlers, so they
// take no lock and allocate nothing: a writer publishes an immutable sorted array
// by an atomic pointer swap and retires the previous one. Retired arrays are freed
// at a later publish that observes no reader in flight (a reader count is the
// grace period): the writer never waits for a reader, which matters when a
// thread that trapped is descheduled inside the handler on a loaded machine.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

struct lp_regs;

namespace lp {

struct Probe;

enum class SiteMode : uint8_t {
  Stable = 0,     // no trap expected; a trap seen here is a stale one (re-execute)
  Transition = 1, // a batch is rewriting the site
  TrapProbe = 2,  // the head is a permanent trap: call the handler, resume
};

// An instruction boundary inside a displaced range and its equivalent point in
// the out-of-line copy (where an evacuated thread continues).
struct PcMapPair {
  uint32_t orig_off;
  uint32_t ool_off;
};

struct SiteEntry {
  uintptr_t addr = 0;
  uint32_t len = 0;
  SiteMode mode = SiteMode::Stable;
  bool call_handler = false;   // a trap here counts as a hit of the probe
  bool evacuate = false;       // pcs strictly inside (addr, addr+len) move to `resume`
  uintptr_t resume = 0;        // where a trapped or evacuated thread continues
  void (*handler)(lp_regs *, void *) = nullptr;
  void *user = nullptr;
  std::atomic<uint64_t> *hits = nullptr; // the probe's counter
  // A call probe: `call(regs, user)` replaces the handler and returns where the
  // thread continues (call_runtime.hpp). A replacement: an enabled hit
  // continues at `redirect`.
  uintptr_t (*call)(lp_regs *, void *) = nullptr;
  uintptr_t redirect = 0;
  // Instruction sites: threads evacuated from (addr, addr+len) continue at
  // `evac_base + ool_off` of their boundary (map owned by the probe).
  uintptr_t evac_base = 0;
  const PcMapPair *evac_map = nullptr;
  uint32_t evac_n = 0;
};

class SiteTable {
public:
  SiteTable();
  ~SiteTable();
  SiteTable(const SiteTable &) = delete;
  SiteTable &operator=(const SiteTable &) = delete;

  // Writer side (serialised by the patcher's lock). Replaces the whole table.
  void publish(std::vector<SiteEntry> entries);

  // Reader side (async-signal-safe). Holds the current array while alive.
  class Reader {
  public:
    explicit Reader(const SiteTable &t);
    ~Reader();
    Reader(const Reader &) = delete;
    Reader &operator=(const Reader &) = delete;
    const SiteEntry *find(uintptr_t addr) const;          // exact site start
    const SiteEntry *find_inside(uintptr_t pc) const;     // addr < pc < addr + len
  private:
    const SiteTable &t_;
    const struct Snapshot *snap_;
  };

private:
  friend class Reader;
  void free_retired();
  std::atomic<const struct Snapshot *> current_{nullptr};
  std::vector<const struct Snapshot *> retired_;
  mutable std::atomic<long> readers_{0};
};

} // namespace lp
