// patch-stress: threads call probed functions and check every result while a
// patcher thread toggles random subsets of the probes in batches.
#pragma once

#include <cstdint>
#include <string>

namespace lp_stress {

struct Config {
  unsigned threads = 4;
  unsigned functions = 64;
  uint64_t batches = 1000;   // 0: run for `duration_s`
  double duration_s = 0;
  uint64_t seed = 1;
  int writer = 0;            // lp_writer_kind
  int sync = 0;              // lp_sync_kind
  int policy = 0;            // lp_probe_policy (jump / trap / jump-or-trap)
  bool body_sites = false;   // probe the first instruction after each entry sled (instruction sites)
  std::string writer_name = "default", sync_name = "default", kind_name = "jump", sites_name = "entry";
};

struct Result {
  uint64_t calls = 0, hits = 0, batches = 0, commits = 0, syncs = 0, traps = 0, evacuated = 0;
  uint64_t unexpected_signals = 0, wrong_results = 0, bad_regs = 0, final_check_failures = 0;
  uint64_t jump_probes = 0, trap_probes = 0;
  int error = 0;              // first libpatch error, 0 if none
  double seconds = 0;
  bool pass() const;
  std::string json(const Config &c) const;
};

Result run(const Config &c);

} // namespace lp_stress
