// torn-fetch: enumerates what a fetching hart can observe while libpatch's shipped
// protocols (and a naive direct write) rewrite a site. See torn_fetch.hpp and
// docs/instruction-sites.md. Exit status: 0 when every shipped protocol is free of
// torn states at its declared granule, 1 otherwise, 2 on usage errors.
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <string>

#include "torn_fetch.hpp"

using namespace lp::tornfetch;

static void usage() {
  std::fprintf(stderr,
               "usage: torn-fetch [--json] [--examples] [--all-sites] [--no-naive] [--filter SUBSTR]\n"
               "                  [--granules 1,2,4,8] [--writers LIST] [--max-pieces N] [--list]\n"
               "  --json        machine-readable result (all cases, all granules, examples)\n"
               "  --examples    print one torn state per torn cell (protocol and naive write)\n"
               "  --all-sites   every relocatable boundary of the sample functions, not a few\n"
               "  --no-naive    skip the naive direct-write analysis\n"
               "  --filter S    only transitions whose name or hart contains S\n"
               "  --granules L  hardware store/fetch atomicities to try (default 1,2,4,8)\n"
               "  --writers L   text writers to model (default mprotect,procmem,procmem-linux-6.1-naive):\n"
               "                mprotect = one store of the granule; procmem = the shipped /proc/self/mem store\n"
               "                plan through the kernel's memcpy; procmem-linux-6.1-naive = a granule-byte\n"
               "                pwrite through Linux 6.1's riscv memcpy (riscv64 rows only; not shipped)\n"
               "                (aarch64 rows: protocol breakpoint or stopped; UNLISTED cells are B2.2.5\n"
               "                violations: see torn_fetch.hpp)\n"
               "  --max-pieces N  enumerate all 2^N states per epoch up to N pieces, else sample\n"
               "exit status: 0 no torn state in a shipped protocol x writer at its declared granule, 1 otherwise\n");
}

int main(int argc, char **argv) {
  Options opt;
  bool json = false, list = false;
  std::string filter;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (!std::strcmp(a, "--json")) json = true;
    else if (!std::strcmp(a, "--all-sites")) opt.all_sites = true;
    else if (!std::strcmp(a, "--no-naive")) opt.naive = false;
    else if (!std::strcmp(a, "--list")) list = true;
    else if (!std::strcmp(a, "--examples")) opt.show_examples = true;
    else if (!std::strcmp(a, "--filter") && i + 1 < argc) filter = argv[++i];
    else if (!std::strcmp(a, "--max-pieces") && i + 1 < argc) opt.max_exhaustive_pieces = uint32_t(std::atoi(argv[++i]));
    else if (!std::strcmp(a, "--granules") && i + 1 < argc) {
      opt.granules.clear();
      for (const char *p = argv[++i]; *p;) {
        const unsigned g = unsigned(std::strtoul(p, const_cast<char **>(&p), 10));
        if (g != 1 && g != 2 && g != 4 && g != 8) {
          usage();
          return 2;
        }
        opt.granules.push_back(g);
        if (*p == ',') ++p;
      }
    } else if (!std::strcmp(a, "--writers") && i + 1 < argc) {
      opt.writers.clear();
      const std::string list = argv[++i];
      for (size_t p = 0; p <= list.size();) {
        const size_t q = std::min(list.find(',', p), list.size());
        Writer w;
        if (!parse_writer(list.substr(p, q - p), &w)) {
          usage();
          return 2;
        }
        opt.writers.push_back(w);
        p = q + 1;
      }
    } else if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  std::vector<CaseResult> rs;
  bool ok = true;
  for (const Case &c : shipped_cases(opt)) {
    if (!filter.empty() && c.name.find(filter) == std::string::npos && c.hart.find(filter) == std::string::npos)
      continue;
    if (list) {
      std::printf("%s  [%s] %s%s\n", c.name.c_str(), c.hart.c_str(), writer_name(c.writer),
                  c.shipped ? "" : " (not shipped)");
      continue;
    }
    CaseResult r = analyse(c, opt);
    ok = ok && r.error.empty() && (!c.shipped || r.ok_at_declared);
    rs.push_back(std::move(r));
  }
  if (list) return 0;
  std::fputs(json ? to_json(rs, opt).c_str() : to_table(rs, opt).c_str(), stdout);
  if (!json) std::printf("\nverdict: %s\n", ok ? "no torn state in any shipped protocol x writer at its declared granule"
                                                : "TORN states in a shipped protocol x writer at its declared granule");
  return ok ? 0 : 1;
}
