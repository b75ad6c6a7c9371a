// Generates the aarch64 differential cases run under qemu-aarch64 by
// runner_aarch64.c: for every word of the sample functions (samples_aarch64.S,
// assembled to a blob linked at kBase) the site jump (`b copy`) and the OOL
// copy, near (8 KiB+ away: every short form reaches) and far (64 MiB away: the
// conditional branches take the inverted form, adrp beyond +-4 GiB of the copy
// takes movz/movk). Both decoder engines (LLVM MC and the built-in A64
// decoder) must give the same copy. The sites that must be refused (the
// exclusive loop, blr x30, udf) must be refused with their status and nothing
// else may be. Usage: lp_reloc_aarch64_qemu_gen <samples.bin> <cases.bin>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "aarch64/relocator.hpp"
#include "mc/decoder.hpp"
#include "mc/target.hpp"

using namespace lp;

static const uint64_t kBase = 0x10000000; // where the blob is linked and runner_aarch64.c maps it
static const uint64_t kNear = 0x2000;     // OOL area offsets from kBase
static const uint64_t kFar = 0x4000000;
static const uint64_t kSlot = 64;         // bytes per copy (the longest is 40)

static uint32_t get(const std::vector<uint8_t> &b, size_t off) {
  uint32_t v = 0;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}
static void put(std::vector<uint8_t> &o, uint32_t v) {
  for (int i = 0; i < 4; ++i) o.push_back(uint8_t(v >> (8 * i)));
}

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <samples.bin> <cases.bin>\n", argv[0]);
    return 2;
  }
  std::vector<uint8_t> blob;
  {
    FILE *f = std::fopen(argv[1], "rb");
    if (!f) {
      std::perror(argv[1]);
      return 2;
    }
    uint8_t buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) blob.insert(blob.end(), buf, buf + n);
    std::fclose(f);
  }
  if (blob.size() < 8 || get(blob, 0) != 0x4c504136) {
    std::fprintf(stderr, "%s: not a samples blob (magic)\n", argv[1]);
    return 2;
  }
  const uint32_t count = get(blob, 4);
  if (8 + 12 * size_t(count) > blob.size()) {
    std::fprintf(stderr, "%s: truncated table\n", argv[1]);
    return 2;
  }
  mc::initialize_all_targets();
  std::string err;
  auto llvm = mc::Decoder::create("aarch64", "", &err);
  auto builtin = mc::Decoder::create_builtin("aarch64", "", &err);
  if (!llvm || !builtin || !mc::Decoder::uses_llvm("aarch64")) {
    std::fprintf(stderr, "no aarch64 decoders: %s\n", err.c_str());
    return 2;
  }
  std::vector<uint8_t> cases;
  uint32_t n = 0, bad = 0;
  std::map<std::string, unsigned> refused; // by the reason's key phrase
  for (uint32_t e = 0; e < count; ++e) {
    const uint32_t fo = get(blob, 8 + 12 * e), fs = get(blob, 12 + 12 * e), kind = get(blob, 16 + 12 * e);
    if (kind == 2) continue;
    if (fo % 4 || fs % 4 || size_t(fo) + fs > blob.size()) {
      std::fprintf(stderr, "entry %u: bad bounds\n", e);
      return 2;
    }
    for (uint32_t off = fo; off < fo + fs; off += 4) {
      for (int far = 0; far < 2; ++far) {
        mc::RelocInput in;
        in.site = kBase + off;
        in.code = blob.data() + off;
        in.avail = fo + fs - off;
        in.min_len = aarch64::kSiteJumpLen;
        in.func_start = kBase + fo;
        in.func_code = blob.data() + fo;
        in.func_size = fs;
        const uint64_t dest = kBase + (far ? kFar : kNear) + kSlot * (off / 4);
        const mc::Relocation r = aarch64::relocate(*llvm, in, dest);
        const mc::Relocation rb = aarch64::relocate(*builtin, in, dest);
        if (r.status != rb.status || r.code != rb.code) {
          std::fprintf(stderr, "+0x%x: the engines disagree: %s (%s) vs %s (%s)\n", off,
                       mc::reloc_status_name(r.status), r.reason.c_str(), mc::reloc_status_name(rb.status),
                       rb.reason.c_str());
          ++bad;
          continue;
        }
        if (!r.ok()) {
          const char *key = r.reason.find("exclusive sequence") != std::string::npos ? "exclusive sequence"
                            : r.reason.find("x30") != std::string::npos              ? "call through x30"
                            : r.reason.find("traps") != std::string::npos            ? "traps"
                                                                                     : "other";
          ++refused[std::string(mc::reloc_status_name(r.status)) + ": " + key];
          if (std::string(key) == "other") {
            std::fprintf(stderr, "+0x%x: unexpected refusal: %s\n", off, r.reason.c_str());
            ++bad;
          }
          continue;
        }
        if (r.code.size() > kSlot) {
          std::fprintf(stderr, "+0x%x: copy of %zu bytes\n", off, r.code.size());
          ++bad;
          continue;
        }
        uint8_t jump[4];
        if (!aarch64::encode_site_jump(in.site, dest, r.displaced_len, jump)) {
          std::fprintf(stderr, "+0x%x: no site jump to 0x%llx\n", off, static_cast<unsigned long long>(dest));
          ++bad;
          continue;
        }
        put(cases, off);
        cases.insert(cases.end(), jump, jump + 4);
        put(cases, uint32_t(dest - kBase));
        put(cases, uint32_t(r.code.size()));
        cases.insert(cases.end(), r.code.begin(), r.code.end());
        ++n;
      }
    }
  }
  // The refusals the samples were written to have (x2: near and far): the
  // exclusive loop's ldaxr, add and stlxr; blr x30; two udf.
  const std::map<std::string, unsigned> want = {{"unsupported: exclusive sequence", 6},
                                                {"unsupported: call through x30", 2},
                                                {"unsupported: traps", 4}};
  if (refused != want) {
    std::fprintf(stderr, "refusals differ from the expected ones:\n");
    for (auto &p : refused) std::fprintf(stderr, "  %s: %u\n", p.first.c_str(), p.second);
    ++bad;
  }
  std::vector<uint8_t> out;
  put(out, 0x4c505141); // "AQPL"
  put(out, uint32_t(blob.size()));
  out.insert(out.end(), blob.begin(), blob.end());
  put(out, n);
  out.insert(out.end(), cases.begin(), cases.end());
  FILE *fp = std::fopen(argv[2], "wb");
  if (!fp) {
    std::perror(argv[2]);
    return 1;
  }
  std::fwrite(out.data(), 1, out.size(), fp);
  std::fclose(fp);
  std::printf("aarch64: %u cases; refused:", n);
  for (auto &p : refused) std::printf(" %s x%u;", p.first.c_str(), p.second);
  std::printf(" %u problems\n", bad);
  return bad == 0 && n > 100 ? 0 : 1;
}
