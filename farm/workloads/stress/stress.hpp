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
  // Every probe is a call probe (lp_probe_call: entry and exit handler) instead
  // of an entry probe; each exit checks the returned value and the call's words,
  // and every thread's entries must equal its exits. Needs entry sites.
  bool exit_probes = false;
  std::string writer_name = "default", sync_name = "default", kind_name = "jump", sites_name = "entry";
};

struct Result {
  uint64_t calls = 0, hits = 0, batches = 0, commits = 0, syncs = 0, traps = 0, evacuated = 0;
  uint64_t text_mprotects = 0, kernel_icache_flushes = 0; // lp_stats: the kernel work the writer caused
  uint64_t stopped_rounds = 0, stale_traps = 0;           // lp_stats: AArch64's stopped protocol, stale BRKs
  uint64_t unexpected_signals = 0, wrong_results = 0, bad_regs = 0, final_check_failures = 0;
  uint64_t jump_probes = 0, trap_probes = 0;
  // --exit-probes: entries (call words non-NULL) and exits seen by the handlers,
  // summed over the threads; exits whose return value was not the function's
  // result for the argument recorded at entry; exits whose call words, thread or
  // stack pointer were not the entry's; entries without call words; threads whose
  // entries != exits + pending; libpatch's own call counters at the end.
  uint64_t entries = 0, exits = 0, exit_mismatches = 0, exit_bad_words = 0, null_call_words = 0;
  uint64_t unbalanced_threads = 0, pending_calls = 0, lib_exits = 0, overflows = 0, unwound = 0, skipped = 0;
  int error = 0;              // first libpatch error, 0 if none
  double seconds = 0;
  bool pass() const;
  std::string json(const Config &c) const;
};

Result run(const Config &c);

} // namespace lp_stress
