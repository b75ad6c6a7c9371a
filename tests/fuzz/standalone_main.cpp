// Driver for the fuzz target when libFuzzer is not available (g++ builds), and
// seed writer for the libFuzzer build:
//   lp_fuzz_reloc [--seconds S] [--seed N] [--write-seeds DIR] [FILE|DIR ...]
// Runs every given corpus file, the built-in seeds (the sample functions of
// every ISA, and a word of every A64 relocation form), then
// random and mutated inputs until S seconds have passed (default 10).
#include <dirent.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "fuzz_reloc.hpp"
#include "samples.hpp"

namespace {

// One word of every A64 relocation form and refusal (backends/aarch64/relocator.hpp),
// each followed by a ret: the mutations start from each of them.
constexpr uint32_t kA64Forms[] = {
    0x10000085, 0xb0000005, 0x9000001f, // adr x5, .+16; adrp x5, (page)+4096; adrp xzr
    0x18000082, 0x58000082, 0x98000082, // ldr w2 / x2 / ldrsw x2, literal
    0x1c000083, 0x5c000083, 0x9c000083, // ldr s3 / d3 / q3, literal
    0xd8000080, 0x5800009f,             // prfm literal; ldr xzr, literal
    0x14000010, 0x94000010,             // b .+64; bl .+64
    0x54000080, 0x5400008e, 0x54000090, // b.eq; b.al; bc.eq
    0xb4000080, 0x35000080, 0x36280080, 0xb7f80080, // cbz x0; cbnz w0; tbz w0, #5; tbnz x0, #63
    0xd63f0200, 0xd73f0a11, 0xd63f03c0, // blr x16; blraa x16, x17; blr x30 (refused)
    0xd61f0200, 0xd65f03c0, 0xd4000001, // br x16; ret; svc #0
    0xc85f7c01, 0xc8027c01, 0xd503245f, // ldxr x1, [x0]; stxr w2, x1, [x0]; bti c (refused)
    0xd4201920, 0x00000000, 0x8b010000, // brk #0xc9; udf #0; add x0, x0, x1
};

std::vector<std::vector<uint8_t>> builtin_seeds() {
  std::vector<std::vector<uint8_t>> out;
  auto add = [&](uint8_t arch, const uint8_t *code, size_t size) {
    for (uint8_t mode : {0, 4, 5, 6}) {
      std::vector<uint8_t> s = {arch, mode, 0x00, 0x10, 0, 0, 0, 0, 0, 0};
      s.insert(s.end(), code, code + size);
      out.push_back(std::move(s));
    }
  };
  // Input byte 0 (fuzz_reloc.cpp): 0 x86_64, 1 rv64gc, 2 rv64g, 3 aarch64.
  for (const auto &b : lp::samples::kBlobs) {
    const uint8_t arch = std::strcmp(b.flavour, "x86_64") == 0      ? 0
                         : std::strcmp(b.flavour, "riscv64gc") == 0 ? 1
                         : std::strcmp(b.flavour, "riscv64g") == 0  ? 2
                                                                    : 3;
    for (size_t f = 0; f < b.nfns; ++f) add(arch, b.code + b.fns[f].offset, b.fns[f].size);
  }
  for (uint32_t w : kA64Forms) {
    const uint8_t code[8] = {uint8_t(w), uint8_t(w >> 8), uint8_t(w >> 16), uint8_t(w >> 24), 0xc0, 0x03, 0x5f, 0xd6};
    add(3, code, sizeof code);
  }
  return out;
}

bool read_file(const std::string &p, std::vector<uint8_t> &out) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return false;
  out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

void run_path(const std::string &p, size_t &n) {
  struct stat st;
  if (stat(p.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(p.c_str());
    if (!d) return;
    while (dirent *e = readdir(d))
      if (e->d_name[0] != '.') run_path(p + "/" + e->d_name, n);
    closedir(d);
    return;
  }
  std::vector<uint8_t> buf;
  if (read_file(p, buf)) {
    lp_fuzz_one(buf.data(), buf.size());
    ++n;
  }
}

} // namespace

int main(int argc, char **argv) {
  double seconds = 10;
  uint64_t seed = 1;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 0);
    else if (!std::strcmp(argv[i], "--write-seeds") && i + 1 < argc) {
      const std::string dir = argv[++i];
      mkdir(dir.c_str(), 0755);
      int k = 0;
      for (const auto &s : builtin_seeds()) {
        std::ofstream f(dir + "/seed-" + std::to_string(k++), std::ios::binary);
        f.write(reinterpret_cast<const char *>(s.data()), std::streamsize(s.size()));
      }
      std::printf("wrote %d seeds to %s\n", k, dir.c_str());
      return 0;
    } else paths.push_back(argv[i]);
  }
  size_t n = 0;
  for (const auto &p : paths) run_path(p, n);
  const auto seeds = builtin_seeds();
  for (const auto &s : seeds) lp_fuzz_one(s.data(), s.size()), ++n;
  std::mt19937_64 rng(seed);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::vector<uint8_t> buf;
  while (std::chrono::steady_clock::now() < end) {
    for (int burst = 0; burst < 64; ++burst, ++n) {
      if (rng() & 1) { // mutate a seed: flip bytes, truncate, splice
        buf = seeds[rng() % seeds.size()];
        const int flips = 1 + int(rng() % 4);
        for (int k = 0; k < flips; ++k) buf[10 + rng() % (buf.size() - 10)] ^= uint8_t(1u << (rng() % 8));
        if (rng() % 4 == 0) buf.resize(10 + rng() % (buf.size() - 9));
        buf[0] = uint8_t(rng() % 3 == 0 ? rng() : buf[0]);
        buf[1] = uint8_t(rng());
        for (int k = 2; k < 10; ++k) buf[k] = uint8_t(rng());
      } else { // random bytes
        buf.resize(11 + rng() % 48);
        for (auto &b : buf) b = uint8_t(rng());
      }
      lp_fuzz_one(buf.data(), buf.size());
    }
  }
  std::printf("lp_fuzz_reloc: %zu inputs, no invariant violated\n", n);
  return 0;
}
