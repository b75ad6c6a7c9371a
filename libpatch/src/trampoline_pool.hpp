// Trampolines: fixed-size slots in chunks of executable memory mapped near the
// code (within the backend's jump reach). A slot whose probe is removed is
// quarantined and handed out again only after a grace period in which no thread
// can still be inside it (see Patcher::quiesce): until then a thread preempted
// in the trampoline, or inside the handler it called, would return into code
// rewritten for another probe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend.hpp"

namespace lp {

struct Slot {
  uintptr_t rx = 0;      // where the code executes
  uint8_t *rw = nullptr; // writable view of the same bytes
  size_t size = 0;
  uint64_t retired_at = 0; // grace-period generation when it was retired
};

class TrampolinePool {
public:
  explicit TrampolinePool(const Backend &b);
  ~TrampolinePool();
  TrampolinePool(const TrampolinePool &) = delete;
  TrampolinePool &operator=(const TrampolinePool &) = delete;

  // A free slot of `size` bytes (0: the backend's entry-trampoline size) within
  // `reach` (0: the backend's reach()) of [site, site+len). 0, LP_ERANGE or LP_ENOMEM.
  int allocate(uintptr_t site, uint32_t len, Slot *out, size_t size = 0, int64_t reach = 0);
  // Quarantines a slot no site jumps to any more (after the commit that
  // unlinked it). `generation` is the current grace-period generation.
  void retire(const Slot &s, uint64_t generation);
  // Frees every quarantined slot retired before `completed_generation` began.
  size_t reclaim(uint64_t completed_generation);
  size_t quarantined() const { return quarantine_.size(); }
  // Whether `pc` lies in any trampoline chunk.
  bool contains(uintptr_t pc) const;

private:
  struct Chunk {
    uintptr_t rx;
    uint8_t *rw;
    size_t size;
    size_t used;
  };
  const Backend &b_;
  std::vector<Chunk> chunks_;
  std::vector<Slot> free_;
  std::vector<Slot> quarantine_;
};

} // namespace lp
