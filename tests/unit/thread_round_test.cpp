// The signal rounds of libpatch/platform/linux/thread_round.hpp on real
// threads: round_run visits every other thread, and round_hold keeps each of
// them in its handler until round_release (the stopped protocol's guarantee:
// no other thread runs a single instruction of its own code in between).
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <thread>
#include <time.h>
#include <vector>

#include "libpatch/patch.h"
#include "platform/linux/thread_round.hpp"

using namespace lp::linux_platform;

namespace {

std::atomic<int> g_visits{0};
void count_visit(void *, void *) { g_visits.fetch_add(1); }

struct Spinners {
  std::atomic<bool> stop{false};
  std::vector<std::atomic<uint64_t>> counts;
  std::vector<std::thread> threads;
  explicit Spinners(int n) : counts(size_t(n)) {
    for (int i = 0; i < n; ++i)
      threads.emplace_back([this, i] {
        while (!stop.load(std::memory_order_relaxed)) counts[size_t(i)].fetch_add(1, std::memory_order_relaxed);
      });
    // Every thread counting before the test starts.
    for (auto &c : counts)
      while (c.load() == 0) std::this_thread::yield();
  }
  ~Spinners() {
    stop.store(true);
    for (auto &t : threads) t.join();
  }
  std::vector<uint64_t> snapshot() const {
    std::vector<uint64_t> v;
    for (auto &c : counts) v.push_back(c.load());
    return v;
  }
};

void sleep_ms(int ms) {
  struct timespec ts{0, long(ms) * 1000000L};
  nanosleep(&ts, nullptr);
}

} // namespace

TEST(ThreadRound, RunVisitsEveryOtherThread) {
  ASSERT_EQ(round_init(SIGRTMIN + 5), 0);
  Spinners s(3);
  g_visits = 0;
  size_t n = 0;
  ASSERT_EQ(round_run(count_visit, nullptr, 10000, &n), 0);
  // Under qemu-user its own helper threads are skipped (thread_round.cpp).
  EXPECT_GE(n, 3u);
  EXPECT_EQ(g_visits.load(), int(n));
  round_fini();
}

TEST(ThreadRound, HoldKeepsEveryOtherThreadInItsHandlerUntilRelease) {
  ASSERT_EQ(round_init(SIGRTMIN + 5), 0);
  Spinners s(3);
  g_visits = 0;
  size_t n = 0;
  ASSERT_EQ(round_hold(count_visit, nullptr, 10000, &n), 0);
  EXPECT_EQ(g_visits.load(), int(n)) << "every thread ran the visitor before round_hold returned";
  const std::vector<uint64_t> held = s.snapshot();
  sleep_ms(100);
  EXPECT_EQ(s.snapshot(), held) << "a held thread advanced";
  round_release();
  sleep_ms(50);
  const std::vector<uint64_t> after = s.snapshot();
  for (size_t i = 0; i < after.size(); ++i) EXPECT_GT(after[i], held[i]) << "thread " << i << " was not released";
  // The round machinery is usable again after a hold.
  ASSERT_EQ(round_run(count_visit, nullptr, 10000, nullptr), 0);
  round_fini();
}

TEST(ThreadRound, HoldWithoutInitFailsAndHoldsNothing) {
  EXPECT_EQ(round_hold(count_visit, nullptr, 100, nullptr), LP_ESYNC);
  // Not held: a round after a failed hold works once the signal is installed.
  ASSERT_EQ(round_init(SIGRTMIN + 5), 0);
  Spinners s(1);
  EXPECT_EQ(round_run(count_visit, nullptr, 10000, nullptr), 0);
  round_fini();
}
