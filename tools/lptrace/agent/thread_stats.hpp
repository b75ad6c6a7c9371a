// One table of Stats per thread, one Stats per probed function: mapped on a
// thread's first hit (mmap: async-signal-safe), linked in a push-only list,
// written only by its thread. A function whose index is beyond the table (one
// `lptrace ctl` probed after the thread's first hit) uses the shared Stats.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "latency.hpp"

namespace lptrace {

struct ThreadTable {
  ThreadTable *next;
  int tid;
  uint32_t cap;
  Stats slot[1]; // cap of them
};

class ThreadStats {
public:
  // Functions a table holds (the ones probed at the start, and room for more).
  void set_capacity(uint32_t n) { cap_.store(n, std::memory_order_relaxed); }
  Stats *mine(uint32_t fn); // nullptr: use the shared Stats
  std::vector<const ThreadTable *> all() const;
  void forget_all(); // a fork child: the other threads' tables are not its own

private:
  std::atomic<uint32_t> cap_{0};
  std::atomic<ThreadTable *> head_{nullptr};
};

} // namespace lptrace
