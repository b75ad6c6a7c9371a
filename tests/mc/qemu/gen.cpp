// Generates the riscv64 differential cases run under qemu by runner.c: for every
// boundary of the rv64gc / rv64g sample functions that relocates, the site jump
// and the OOL copy (near: jal x0, no scratch; far: 64 MiB away, t6 as scratch and
// an auipc+jalr site jump). Usage: lp_reloc_riscv64_qemu_gen <riscv64gc|riscv64g> <out>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "mc/decoder.hpp"
#include "mc/target.hpp"
#include "riscv64/relocator.hpp"
#include "samples.hpp"

using namespace lp;

static const uint64_t kBase = 0x10000000;     // where runner.c maps the blob
static const uint64_t kNear = 0x40000;        // OOL area offsets
static const uint64_t kFar = 0x4000000;

static void put(std::vector<uint8_t> &o, uint32_t v) {
  for (int i = 0; i < 4; ++i) o.push_back(uint8_t(v >> (8 * i)));
}

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  const samples::Blob *b = samples::blob(argv[1]);
  if (!b) return 2;
  const bool gc = std::string(argv[1]) == "riscv64gc";
  mc::initialize_all_targets();
  auto dec = mc::Decoder::create("riscv64", gc ? "+c" : "-c");
  std::vector<uint8_t> out;
  put(out, 0x4c50514d); // "MQPL"
  put(out, uint32_t(b->size));
  out.insert(out.end(), b->code, b->code + b->size);
  // function offsets the runner calls: r_pcrel, r_loop, r_calls
  for (const char *fn : {"r_pcrel", "r_loop", "r_calls"}) {
    uint32_t off = 0xffffffff;
    for (size_t i = 0; i < b->nfns; ++i)
      if (!std::strcmp(b->fns[i].name, fn)) off = b->fns[i].offset;
    put(out, off);
  }
  std::vector<uint8_t> cases;
  uint32_t n = 0, refused = 0;
  for (size_t f = 0; f < b->nfns; ++f) {
    const samples::SampleFn &s = b->fns[f];
    if (samples::is_data(s)) continue;
    std::vector<uint64_t> bounds;
    dec->boundaries(b->code + s.offset, s.size, kBase + s.offset, &bounds);
    for (uint64_t site : bounds) {
      for (int far = 0; far < 2; ++far) {
        const uint32_t off = uint32_t(site - kBase);
        mc::RelocInput in;
        in.site = site;
        in.code = b->code + off;
        in.avail = s.offset + s.size - off;
        in.min_len = far ? riscv64::kSiteFarLen : riscv64::kSiteJalLen;
        in.func_start = kBase + s.offset;
        in.func_code = b->code + s.offset;
        in.func_size = s.size;
        in.scratch_reg = far ? 31 : 0; // t6: unused by the samples
        const uint64_t dest = kBase + (far ? kFar : kNear) + 256 * off;
        mc::Relocation r = riscv64::relocate(*dec, in, dest);
        if (!r.ok()) {
          ++refused;
          continue;
        }
        uint8_t jump[32];
        if (!riscv64::encode_site_jump(site, dest, r.displaced_len, in.scratch_reg, jump)) {
          ++refused;
          continue;
        }
        put(cases, off);
        put(cases, r.displaced_len);
        cases.insert(cases.end(), jump, jump + r.displaced_len);
        put(cases, uint32_t(dest - kBase));
        put(cases, uint32_t(r.code.size()));
        cases.insert(cases.end(), r.code.begin(), r.code.end());
        ++n;
      }
    }
  }
  put(out, n);
  out.insert(out.end(), cases.begin(), cases.end());
  FILE *fp = std::fopen(argv[2], "wb");
  if (!fp) return 1;
  std::fwrite(out.data(), 1, out.size(), fp);
  std::fclose(fp);
  std::printf("%s: %u cases (%u boundaries x near/far refused)\n", argv[1], n, refused);
  return n > 10 ? 0 : 1;
}
