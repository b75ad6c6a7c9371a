#include "trampoline_pool.hpp"

#include "libpatch/patch.h"
#include "platform/linux/exec_memory.hpp"

namespace lp {
namespace {
constexpr size_t kChunkSize = 256 * 1024;

bool reaches(uintptr_t a, size_t size, uintptr_t site, uint32_t len, int64_t reach) {
  auto ok = [&](uintptr_t x) {
    const int64_t d1 = int64_t(x) - int64_t(site), d2 = int64_t(x) - int64_t(site + len);
    return d1 > -reach && d1 < reach && d2 > -reach && d2 < reach;
  };
  return ok(a) && ok(a + size);
}
} // namespace

TrampolinePool::TrampolinePool(const Backend &b) : b_(b) {}

TrampolinePool::~TrampolinePool() {
  for (const Chunk &c : chunks_) linux_platform::unmap({c.rx, c.rw, c.size});
}

int TrampolinePool::allocate(uintptr_t site, uint32_t len, Slot *out, size_t size, int64_t reach_limit) {
  const size_t ss = ((size ? size : b_.trampoline_slot_size()) + 63) & ~size_t(63);
  const int64_t reach = reach_limit > 0 && reach_limit < b_.reach() ? reach_limit : b_.reach();
  if (ss > kChunkSize) return LP_ENOMEM;
  for (size_t i = 0; i < free_.size(); ++i) {
    if (free_[i].size == ss && reaches(free_[i].rx, ss, site, len, reach)) {
      *out = free_[i];
      free_[i] = free_.back();
      free_.pop_back();
      return 0;
    }
  }
  for (Chunk &c : chunks_) {
    if (c.used + ss <= c.size && reaches(c.rx + c.used, ss, site, len, reach)) {
      *out = Slot{c.rx + c.used, c.rw + c.used, ss, 0};
      c.used += ss;
      return 0;
    }
  }
  linux_platform::DualMapping m;
  if (int rc = linux_platform::map_near(site, site + len, reach, kChunkSize, &m); rc != 0) return rc;
  chunks_.push_back({m.rx, m.rw, m.size, ss});
  *out = Slot{m.rx, m.rw, ss, 0};
  return 0;
}

void TrampolinePool::retire(const Slot &s, uint64_t generation) {
  Slot q = s;
  q.retired_at = generation;
  quarantine_.push_back(q);
}

size_t TrampolinePool::reclaim(uint64_t completed_generation) {
  size_t n = 0;
  for (size_t i = 0; i < quarantine_.size();) {
    if (quarantine_[i].retired_at < completed_generation) {
      free_.push_back(quarantine_[i]);
      quarantine_[i] = quarantine_.back();
      quarantine_.pop_back();
      ++n;
    } else {
      ++i;
    }
  }
  return n;
}

bool TrampolinePool::contains(uintptr_t pc) const {
  for (const Chunk &c : chunks_)
    if (pc >= c.rx && pc < c.rx + c.size) return true;
  return false;
}

} // namespace lp
