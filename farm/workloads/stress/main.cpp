// patch-stress: see stress.hpp. Prints one JSON object; exit 0 on pass, 1 on
// fail, 2 on bad usage.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <getopt.h>
#include <string>

#include "functions.hpp"
#include "libpatch/patch.h"
#include "stress.hpp"

namespace {

void usage(FILE *f) {
  std::fprintf(f,
               "usage: patch-stress [--threads T] [--functions K] [--batches B | --duration SECONDS]\n"
               "                    [--seed N] [--writer mprotect|procmem] [--sync default|membarrier|flush_icache|signal]\n"
               "                    [--kind jump|trap|auto] [--sites entry|body] [--exit-probes]\n"
               "Threads call K probed functions and check every result while a patcher toggles\n"
               "random subsets of the probes in batches. Prints one JSON object.\n"
               "--sites body probes the first instruction after each entry sled (an instruction site).\n"
               "--exit-probes makes every probe a call probe (entry + exit handler, lp_probe_call): each\n"
               "exit checks the returned value against the argument recorded at entry, and every\n"
               "thread's entries must equal its exits. Needs entry sites (not with --sites body).\n");
}

[[noreturn]] void bad(const char *what, const char *value) {
  std::fprintf(stderr, "patch-stress: invalid %s '%s'\n", what, value);
  usage(stderr);
  std::exit(2);
}

uint64_t number(const char *what, const char *s, uint64_t min, uint64_t max) {
  char *end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (!*s || *end || errno || v < min || v > max || s[0] == '-') bad(what, s);
  return v;
}

} // namespace

int main(int argc, char **argv) {
  lp_stress::Config c;
  static const option opts[] = {{"threads", required_argument, nullptr, 't'},
                                {"functions", required_argument, nullptr, 'k'},
                                {"batches", required_argument, nullptr, 'b'},
                                {"duration", required_argument, nullptr, 'd'},
                                {"seed", required_argument, nullptr, 's'},
                                {"writer", required_argument, nullptr, 'w'},
                                {"sync", required_argument, nullptr, 'y'},
                                {"kind", required_argument, nullptr, 'p'},
                                {"sites", required_argument, nullptr, 'i'},
                                {"exit-probes", no_argument, nullptr, 'x'},
                                {"help", no_argument, nullptr, 'h'},
                                {nullptr, 0, nullptr, 0}};
  int o;
  bool have_batches = false, have_duration = false;
  while ((o = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
    switch (o) {
    case 't': c.threads = unsigned(number("--threads", optarg, 1, 1024)); break;
    case 'k': c.functions = unsigned(number("--functions", optarg, 1, lp_stress::kMaxFunctions)); break;
    case 'b': c.batches = number("--batches", optarg, 1, UINT64_MAX); have_batches = true; break;
    case 'd': {
      char *end = nullptr;
      c.duration_s = std::strtod(optarg, &end);
      if (*end || !(c.duration_s > 0) || c.duration_s > 86400) bad("--duration", optarg);
      have_duration = true;
      break;
    }
    case 's': c.seed = number("--seed", optarg, 0, UINT64_MAX); break;
    case 'w':
      c.writer_name = optarg;
      if (!std::strcmp(optarg, "mprotect")) c.writer = LP_WRITER_MPROTECT;
      else if (!std::strcmp(optarg, "procmem")) c.writer = LP_WRITER_PROCMEM;
      else if (!std::strcmp(optarg, "default")) c.writer = LP_WRITER_DEFAULT;
      else bad("--writer", optarg);
      break;
    case 'y':
      c.sync_name = optarg;
      if (!std::strcmp(optarg, "membarrier")) c.sync = LP_SYNC_MEMBARRIER;
      else if (!std::strcmp(optarg, "flush_icache")) c.sync = LP_SYNC_FLUSH_ICACHE;
      else if (!std::strcmp(optarg, "signal")) c.sync = LP_SYNC_SIGNAL;
      else if (!std::strcmp(optarg, "default")) c.sync = LP_SYNC_DEFAULT;
      else bad("--sync", optarg);
      break;
    case 'p':
      c.kind_name = optarg;
      if (!std::strcmp(optarg, "jump")) c.policy = LP_PROBE_JUMP;
      else if (!std::strcmp(optarg, "trap")) c.policy = LP_PROBE_TRAP;
      else if (!std::strcmp(optarg, "auto")) c.policy = LP_PROBE_JUMP_OR_TRAP;
      else bad("--kind", optarg);
      break;
    case 'i':
      c.sites_name = optarg;
      if (!std::strcmp(optarg, "entry")) c.body_sites = false;
      else if (!std::strcmp(optarg, "body")) c.body_sites = true;
      else bad("--sites", optarg);
      break;
    case 'x': c.exit_probes = true; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) bad("argument", argv[optind]);
  if (have_batches && have_duration) {
    std::fprintf(stderr, "patch-stress: --batches and --duration are exclusive\n");
    return 2;
  }
  if (c.exit_probes && c.body_sites) {
    std::fprintf(stderr,
                 "patch-stress: --exit-probes needs entry sites: call probes sit at a function's entry, and "
                 "--sites body probes the instruction after the sled, inside the function; use --sites entry\n");
    return 2;
  }
  if (have_duration) c.batches = 0;
  if (c.kind_name == "jump") c.policy = LP_PROBE_JUMP;
  const lp_stress::Result r = lp_stress::run(c);
  std::printf("%s\n", r.json(c).c_str());
  return r.pass() ? 0 : 1;
}
