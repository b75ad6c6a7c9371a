// --record: a bounded ring of call events per thread. A thread maps its ring
// on its first event (mmap: async-signal-safe) and links it in a push-only
// list; the owner writes its events with plain stores, overwriting the oldest
// when full; the exit report reads every ring once the process is ending.
// An event is a complete call (exit probes: start and duration) or an entry.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

namespace lptrace {

struct Event {
  uint64_t ts_ns;  // at entry, in clock ticks (clock.hpp; converted in the report)
  uint64_t dur_ns; // ticks; UINT64_MAX: an entry without an exit probe
  uint32_t fn;     // index of the function in the agent's table
};

struct Ring {
  Ring *next;
  int tid;
  uint64_t cap;
  std::atomic<uint64_t> n; // events ever written (the last cap are kept)
  Event ev[1];             // cap of them
};

class Rings {
public:
  // 0: recording off.
  // Set once: at the start (lptrace run) or by `record N` before the first
  // probe of an attach. A ring already mapped keeps its size.
  void set_capacity(uint64_t events_per_thread) { cap_.store(events_per_thread, std::memory_order_relaxed); }
  bool on() const { return cap_.load(std::memory_order_relaxed) != 0; }
  void add(uint32_t fn, uint64_t ts, uint64_t dur);
  std::vector<const Ring *> all() const;
  void forget_all(); // a fork child: the parent's rings are the parent's

private:
  Ring *mine();
  std::atomic<uint64_t> cap_{0};
  std::atomic<Ring *> head_{nullptr};
};

} // namespace lptrace
