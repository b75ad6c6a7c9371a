#include "thread_stats.hpp"

#include <new>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace lptrace {
namespace {
// initial-exec: no __tls_get_addr (which may allocate) on the hit path.
__thread ThreadTable *t_table __attribute__((tls_model("initial-exec"))) = nullptr;
__thread bool t_failed __attribute__((tls_model("initial-exec"))) = false;
} // namespace

Stats *ThreadStats::mine(uint32_t fn) {
  ThreadTable *t = t_table;
  if (!t) {
    const uint32_t cap = cap_.load(std::memory_order_relaxed);
    if (cap == 0 || t_failed) return nullptr;
    const size_t bytes = sizeof(ThreadTable) + (cap - 1) * sizeof(Stats);
    void *m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      t_failed = true;
      return nullptr;
    }
    t = static_cast<ThreadTable *>(m); // zero-filled: every Stats starts at 0
    t->cap = cap;
    t->tid = int(syscall(SYS_gettid)); // once per thread
    ThreadTable *h = head_.load(std::memory_order_relaxed);
    do t->next = h;
    while (!head_.compare_exchange_weak(h, t, std::memory_order_release, std::memory_order_relaxed));
    t_table = t;
  }
  return fn < t->cap ? &t->slot[fn] : nullptr;
}

std::vector<const ThreadTable *> ThreadStats::all() const {
  std::vector<const ThreadTable *> v;
  for (const ThreadTable *t = head_.load(std::memory_order_acquire); t; t = t->next) v.push_back(t);
  return v;
}

void ThreadStats::forget_all() {
  head_.store(nullptr, std::memory_order_relaxed);
  t_table = nullptr;
}

} // namespace lptrace
