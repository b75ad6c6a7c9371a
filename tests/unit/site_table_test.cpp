#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "site_table.hpp"

using lp::SiteEntry;
using lp::SiteTable;

namespace {
SiteEntry entry(uintptr_t a, uint32_t len) {
  SiteEntry e;
  e.addr = a;
  e.len = len;
  e.resume = a + len;
  return e;
}
} // namespace

TEST(SiteTable, FindsExactAndInside) {
  SiteTable t;
  t.publish({entry(300, 8), entry(100, 5), entry(200, 5)});
  SiteTable::Reader r(t);
  ASSERT_NE(r.find(100), nullptr);
  EXPECT_EQ(r.find(200)->len, 5u);
  EXPECT_EQ(r.find(101), nullptr);
  EXPECT_EQ(r.find_inside(100), nullptr); // the start is not "inside"
  ASSERT_NE(r.find_inside(303), nullptr);
  EXPECT_EQ(r.find_inside(303)->addr, 300u);
  EXPECT_EQ(r.find_inside(308), nullptr);
  EXPECT_EQ(r.find_inside(50), nullptr);
}

TEST(SiteTable, EmptyTable) {
  SiteTable t;
  SiteTable::Reader r(t);
  EXPECT_EQ(r.find(1), nullptr);
  EXPECT_EQ(r.find_inside(1), nullptr);
}

// Readers never see a freed or half-built snapshot while a writer republishes.
TEST(SiteTable, ConcurrentReadersDuringPublish) {
  SiteTable t;
  std::atomic<bool> stop{false};
  std::atomic<long> bad{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        SiteTable::Reader r(t);
        const SiteEntry *e = r.find(1000);
        if (e && (e->len != 5 || e->resume != 1005)) bad++;
      }
    });
  }
  for (int i = 0; i < 2000; ++i) {
    std::vector<SiteEntry> v;
    for (int k = 0; k < 1 + i % 20; ++k) v.push_back(entry(1000 + 16 * k, 5));
    t.publish(std::move(v));
  }
  stop = true;
  for (auto &th : readers) th.join();
  EXPECT_EQ(bad.load(), 0);
}
