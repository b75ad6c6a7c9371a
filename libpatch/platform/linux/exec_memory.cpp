#include "exec_memory.hpp"

#include <algorithm>
#include <cerrno>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

#include "libpatch/patch.h"
#include "maps.hpp"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace lp::linux_platform {
namespace {

int make_memfd(size_t size) {
  const int fd = int(syscall(SYS_memfd_create, "libpatch-trampolines", 1u /*MFD_CLOEXEC*/));
  if (fd < 0) return -1;
  if (ftruncate(fd, off_t(size)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool in_reach(uintptr_t a, uintptr_t lo, uintptr_t hi, int64_t reach) {
  // Every byte of [a, a+size) is checked by the caller via both ends.
  const int64_t d1 = int64_t(a) - int64_t(lo);
  const int64_t d2 = int64_t(a) - int64_t(hi);
  return d1 > -reach && d1 < reach && d2 > -reach && d2 < reach;
}

} // namespace

int map_near(uintptr_t near_lo, uintptr_t near_hi, int64_t reach, size_t size, DualMapping *out) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  size = (size + page - 1) & ~(page - 1);
  const int fd = make_memfd(size);
  if (fd < 0) return LP_ENOMEM;

  // Candidate addresses: the gaps between mappings, nearest to the code first.
  std::vector<Mapping> maps = read_maps();
  std::vector<uintptr_t> cands;
  const uintptr_t min_addr = 0x10000;
  uintptr_t prev_end = min_addr;
  for (const Mapping &m : maps) {
    if (m.lo > prev_end && m.lo - prev_end >= size + 2 * page) {
      cands.push_back(m.lo - size - page);   // just below the next mapping
      cands.push_back(prev_end + page);      // just above the previous one
    }
    prev_end = std::max(prev_end, m.hi);
  }
  cands.push_back(prev_end + page);
  auto dist = [&](uintptr_t a) {
    const uint64_t c = near_lo / 2 + near_hi / 2;
    return a > c ? a - c : c - a;
  };
  std::sort(cands.begin(), cands.end(), [&](uintptr_t a, uintptr_t b) { return dist(a) < dist(b); });

  for (uintptr_t a : cands) {
    if (!in_reach(a, near_lo, near_hi, reach) || !in_reach(a + size, near_lo, near_hi, reach)) continue;
    void *rx = mmap(reinterpret_cast<void *>(a), size, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    if (rx == MAP_FAILED) continue;
    if (uintptr_t(rx) != a) { // old kernels ignore MAP_FIXED_NOREPLACE and treat it as a hint
      munmap(rx, size);
      continue;
    }
    void *rw = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (rw == MAP_FAILED) {
      munmap(rx, size);
      return LP_ENOMEM;
    }
    out->rx = a;
    out->rw = static_cast<uint8_t *>(rw);
    out->size = size;
    return 0;
  }
  close(fd);
  return LP_ERANGE;
}

void unmap(const DualMapping &m) {
  if (m.rx) munmap(reinterpret_cast<void *>(m.rx), m.size);
  if (m.rw) munmap(m.rw, m.size);
}

} // namespace lp::linux_platform
