#include "site_table.hpp"

#include <algorithm>
#include <sched.h>

namespace lp {

struct Snapshot {
  size_t n = 0;
  SiteEntry *entries = nullptr; // sorted by addr, non-overlapping
};

namespace {
const Snapshot kEmpty{};
}

SiteTable::SiteTable() { current_.store(&kEmpty); }

SiteTable::~SiteTable() {
  retired_.push_back(current_.exchange(&kEmpty));
  while (readers_.load() != 0) sched_yield();
  free_retired();
}

void SiteTable::free_retired() {
  for (const Snapshot *s : retired_) {
    if (s == &kEmpty) continue;
    delete[] s->entries;
    delete s;
  }
  retired_.clear();
}

void SiteTable::publish(std::vector<SiteEntry> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const SiteEntry &a, const SiteEntry &b) { return a.addr < b.addr; });
  auto *snap = new Snapshot;
  snap->n = entries.size();
  snap->entries = new SiteEntry[snap->n];
  for (size_t i = 0; i < snap->n; ++i) snap->entries[i] = entries[i];
  // seq_cst swap, then a seq_cst read of the reader count: a reader increments
  // the count before loading the pointer (both seq_cst), so a count seen at
  // zero after the swap means no reader holds any retired snapshot, and every
  // later reader loads the new one.
  retired_.push_back(current_.exchange(snap));
  if (readers_.load() == 0) free_retired();
}

SiteTable::Reader::Reader(const SiteTable &t) : t_(t) {
  t_.readers_.fetch_add(1);
  snap_ = t_.current_.load();
}

SiteTable::Reader::~Reader() { t_.readers_.fetch_sub(1); }

const SiteEntry *SiteTable::Reader::find(uintptr_t addr) const {
  size_t lo = 0, hi = snap_->n;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    const SiteEntry &e = snap_->entries[mid];
    if (e.addr == addr) return &e;
    if (e.addr < addr) lo = mid + 1; else hi = mid;
  }
  return nullptr;
}

const SiteEntry *SiteTable::Reader::find_inside(uintptr_t pc) const {
  // The last entry whose start is < pc.
  size_t lo = 0, hi = snap_->n;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (snap_->entries[mid].addr < pc) lo = mid + 1; else hi = mid;
  }
  if (lo == 0) return nullptr;
  const SiteEntry &e = snap_->entries[lo - 1];
  return pc < e.addr + e.len ? &e : nullptr;
}

} // namespace lp
