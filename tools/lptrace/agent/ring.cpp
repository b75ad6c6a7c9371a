#include "ring.hpp"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace lptrace {
namespace {
// initial-exec: no __tls_get_addr (which may allocate) on the hit path.
__thread Ring *t_ring __attribute__((tls_model("initial-exec"))) = nullptr;
} // namespace

Ring *Rings::mine() {
  if (Ring *r = t_ring) return r;
  const uint64_t cap = cap_.load(std::memory_order_relaxed);
  if (cap == 0) return nullptr;
  const size_t bytes = sizeof(Ring) + (cap - 1) * sizeof(Event);
  void *m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  auto *r = static_cast<Ring *>(m);
  r->tid = int(syscall(SYS_gettid));
  r->cap = cap;
  r->n.store(0, std::memory_order_relaxed);
  Ring *h = head_.load(std::memory_order_relaxed);
  do r->next = h;
  while (!head_.compare_exchange_weak(h, r, std::memory_order_release, std::memory_order_relaxed));
  t_ring = r;
  return r;
}

void Rings::add(uint32_t fn, uint64_t ts, uint64_t dur) {
  Ring *r = mine();
  if (!r) return;
  const uint64_t i = r->n.load(std::memory_order_relaxed);
  r->ev[i % r->cap] = Event{ts, dur, fn};
  r->n.store(i + 1, std::memory_order_release);
}

std::vector<const Ring *> Rings::all() const {
  std::vector<const Ring *> v;
  for (const Ring *r = head_.load(std::memory_order_acquire); r; r = r->next) v.push_back(r);
  return v;
}

void Rings::forget_all() {
  head_.store(nullptr, std::memory_order_relaxed);
  t_ring = nullptr; // the forking thread's ring belongs to the parent's thread
}

} // namespace lptrace
