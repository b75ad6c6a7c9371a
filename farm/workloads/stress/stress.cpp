#include "stress.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include "functions.hpp"
#include "libpatch/patch.h"
#include "libpatch/regs.h"

namespace lp_stress {
namespace {

constexpr uint64_t kArgLimit = uint64_t(1) << 40;

struct ProbeCtx {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> *bad_regs;
  unsigned index = 0; // the function: functions()[index]
};

std::atomic<uint64_t> g_unexpected{0};

void on_probe(lp_regs *r, void *user) {
  auto *c = static_cast<ProbeCtx *>(user);
  // Workers pass arguments below kArgLimit: anything else means the
  // trampoline or the trap handler handed the handler a wrong register file.
  if (lp_regs_arg(r, 0) >= kArgLimit) c->bad_regs->fetch_add(1, std::memory_order_relaxed);
  c->hits.fetch_add(1, std::memory_order_relaxed);
}

// ---- --exit-probes: call probes, each call seen at entry and at exit ----
//
// Counters per thread, written only by their thread (and by the trap signal
// handler interrupting it, which runs to completion first): relaxed loads and
// stores, no read-modify-write, no shared cache line; read by run() after the
// threads are joined.
struct alignas(64) ThreadSlot {
  std::atomic<uint64_t> entries{0};    // entry handlers that got call words
  std::atomic<uint64_t> exits{0};      // exit handlers
  std::atomic<uint64_t> mismatches{0}; // exits that saw a wrong return value
  std::atomic<uint64_t> bad_words{0};  // exits whose words were not this call's
  std::atomic<uint64_t> null_words{0}; // entries without call words (shadow stack full)
  unsigned index = 0;
};

// The calling thread's slot (a plain initial-exec TLS pointer: async-signal-safe).
constinit thread_local ThreadSlot *t_slot __attribute__((tls_model("initial-exec"))) = nullptr;
std::atomic<uint64_t> g_no_slot{0}; // a handler ran on a thread without a slot

void bump(std::atomic<uint64_t> &c) { c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }

// The stack pointer after the return, minus the one at the function's entry.
#if defined(__x86_64__)
constexpr uintptr_t kReturnSpDelta = 8; // `ret` pops the return address
#else
constexpr uintptr_t kReturnSpDelta = 0; // the return address is in a register
#endif

// The call's words: [0] = the argument (40 bits) | function << 40 | thread << 48,
// [1] = the stack pointer at entry. The exit handler checks all of them.
constexpr uint64_t tag(uint64_t x, unsigned fn, unsigned thread) {
  return (x & (kArgLimit - 1)) | uint64_t(fn & 0xff) << 40 | uint64_t(thread) << 48;
}

int on_call_entry(lp_regs *r, uint64_t *call, void *user) {
  auto *c = static_cast<ProbeCtx *>(user);
  const uint64_t x = lp_regs_arg(r, 0);
  if (x >= kArgLimit) c->bad_regs->fetch_add(1, std::memory_order_relaxed);
  c->hits.fetch_add(1, std::memory_order_relaxed);
  ThreadSlot *t = t_slot;
  if (!t) {
    g_no_slot.fetch_add(1, std::memory_order_relaxed);
    return LP_CALL_RUN;
  }
  if (!call) {
    bump(t->null_words); // no exit will follow
    return LP_CALL_RUN;
  }
  call[0] = tag(x, c->index, t->index);
  call[1] = lp_regs_sp(r);
  bump(t->entries);
  return LP_CALL_RUN;
}

void on_call_exit(lp_regs *r, uint64_t *call, void *user) {
  auto *c = static_cast<ProbeCtx *>(user);
  ThreadSlot *t = t_slot;
  if (!t) {
    g_no_slot.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  bump(t->exits);
  if (!call) {
    bump(t->bad_words);
    return;
  }
  const uint64_t x = call[0] & (kArgLimit - 1);
  if (call[0] != tag(x, c->index, t->index) || lp_regs_sp(r) != call[1] + kReturnSpDelta) {
    bump(t->bad_words); // another call's words, another thread's, or a wrong frame
    return;
  }
  if (lp_regs_ret(r) != expected(c->index, x)) bump(t->mismatches);
}

// A fault or a trap libpatch did not resolve ends the run: report and exit,
// since returning would re-execute the faulting instruction forever.
void on_unexpected(int sig) {
  g_unexpected.fetch_add(1);
  char msg[160];
  const int n = std::snprintf(msg, sizeof msg,
                              "{\"workload\":\"patch-stress\",\"unexpected_signals\":1,\"signal\":%d,\"verdict\":\"fail\"}\n", sig);
  if (n > 0) (void)!write(1, msg, size_t(n));
  _exit(1);
}

} // namespace

bool Result::pass() const {
  return error == 0 && unexpected_signals == 0 && wrong_results == 0 && bad_regs == 0 && final_check_failures == 0 &&
         exit_mismatches == 0 && exit_bad_words == 0 && null_call_words == 0 && unbalanced_threads == 0 &&
         pending_calls == 0 && overflows == 0 && unwound == 0 && skipped == 0 && calls > 0;
}

std::string Result::json(const Config &c) const {
  char buf[2048];
  int n = std::snprintf(buf, sizeof buf,
                        "{\"workload\":\"patch-stress\",\"arch\":\"%s\",\"threads\":%u,\"functions\":%u,\"seed\":%llu,"
                        "\"writer\":\"%s\",\"sync\":\"%s\",\"kind\":\"%s\",\"sites\":\"%s\",\"exit_probes\":%s,"
                        "\"jump_probes\":%llu,\"trap_probes\":%llu,"
                        "\"calls\":%llu,\"hits\":%llu,\"batches\":%llu,\"commits\":%llu,\"syncs\":%llu,\"traps\":%llu,"
                        "\"evacuated\":%llu,\"unexpected_signals\":%llu,\"wrong_results\":%llu,\"bad_regs\":%llu,"
                        "\"final_check_failures\":%llu,\"text_mprotects\":%llu,\"kernel_icache_flushes\":%llu,"
                        "\"stopped_rounds\":%llu,\"stale_traps\":%llu,",
                        lp_arch(), c.threads, c.functions, (unsigned long long)c.seed, c.writer_name.c_str(),
                        c.sync_name.c_str(), c.kind_name.c_str(), c.sites_name.c_str(), c.exit_probes ? "true" : "false",
                        (unsigned long long)jump_probes, (unsigned long long)trap_probes, (unsigned long long)calls,
                        (unsigned long long)hits, (unsigned long long)batches, (unsigned long long)commits,
                        (unsigned long long)syncs, (unsigned long long)traps, (unsigned long long)evacuated,
                        (unsigned long long)unexpected_signals, (unsigned long long)wrong_results,
                        (unsigned long long)bad_regs, (unsigned long long)final_check_failures,
                        (unsigned long long)text_mprotects, (unsigned long long)kernel_icache_flushes,
                        (unsigned long long)stopped_rounds, (unsigned long long)stale_traps);
  if (n > 0 && size_t(n) < sizeof buf)
    n += std::snprintf(buf + n, sizeof buf - size_t(n),
                       "\"entries\":%llu,\"exits\":%llu,\"exit_mismatches\":%llu,\"exit_bad_words\":%llu,"
                       "\"null_call_words\":%llu,\"unbalanced_threads\":%llu,\"pending_calls\":%llu,"
                       "\"lib_exits\":%llu,\"overflows\":%llu,\"unwound\":%llu,\"skipped\":%llu,",
                       (unsigned long long)entries, (unsigned long long)exits, (unsigned long long)exit_mismatches,
                       (unsigned long long)exit_bad_words, (unsigned long long)null_call_words,
                       (unsigned long long)unbalanced_threads, (unsigned long long)pending_calls,
                       (unsigned long long)lib_exits, (unsigned long long)overflows, (unsigned long long)unwound,
                       (unsigned long long)skipped);
  if (n > 0 && size_t(n) < sizeof buf)
    std::snprintf(buf + n, sizeof buf - size_t(n), "\"error\":\"%s\",\"seconds\":%.3f,\"verdict\":\"%s\"}",
                  error ? lp_strerror(error) : "", seconds, pass() ? "pass" : "fail");
  return buf;
}

// Where function i's probe goes: its entry sled, or (body sites) the first
// instruction after the sled -- an instruction site, whose instructions run
// relocated out of line while the probe is on. The sled is found by a probe
// that is removed before it was ever committed (no text touched).
int site_of(lp_patcher *p, unsigned i, bool body, ProbeCtx *ctx, void **out) {
  void *fn = reinterpret_cast<void *>(functions()[i]);
  if (!body) {
    *out = fn;
    return 0;
  }
  lp_probe *entry = nullptr;
  if (int rc = lp_probe_at(p, fn, on_probe, ctx, &entry); rc != 0) return rc;
  *out = static_cast<char *>(lp_probe_address(entry)) + lp_probe_site_len(entry);
  return lp_probe_remove(entry);
}

Result run(const Config &c) {
  Result res;
  const auto t0 = std::chrono::steady_clock::now();
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE}) std::signal(sig, on_unexpected);

  lp_options opt;
  lp_options_init(&opt);
  opt.writer = c.writer;
  opt.sync = c.sync;
  opt.policy = c.policy;
  if (c.exit_probes && c.body_sites) {
    res.error = LP_EINVAL; // call probes sit on entry sleds (main() refuses this as bad usage)
    return res;
  }
  lp_patcher *p = nullptr;
  if (int rc = lp_patcher_open(&opt, &p); rc != 0) {
    res.error = rc;
    return res;
  }
  // --exit-probes: one slot per worker, and the last one for this thread (the final check).
  std::vector<ThreadSlot> slots(c.exit_probes ? c.threads + 1 : 0);
  for (unsigned t = 0; t < slots.size(); ++t) slots[t].index = t;
  if (c.exit_probes) t_slot = &slots[c.threads];
  lp_call_stats cs0{};
  lp_patcher_call_stats(p, &cs0); // exits are counted per process: the baseline
  const unsigned k = c.functions;
  std::atomic<uint64_t> bad_regs{0};
  std::vector<std::unique_ptr<ProbeCtx>> ctx(k);
  std::vector<lp_probe *> probes(k);
  for (unsigned i = 0; i < k; ++i) {
    ctx[i] = std::make_unique<ProbeCtx>();
    ctx[i]->bad_regs = &bad_regs;
    ctx[i]->index = i;
    void *site = nullptr;
    int rc = site_of(p, i, c.body_sites, ctx[i].get(), &site);
    if (rc == 0)
      rc = c.exit_probes ? lp_probe_call(p, site, on_call_entry, on_call_exit, ctx[i].get(), &probes[i])
                         : lp_probe_at(p, site, on_probe, ctx[i].get(), &probes[i]);
    if (rc != 0) {
      res.error = rc;
      lp_patcher_close(p);
      t_slot = nullptr;
      return res;
    }
    (lp_probe_is_jump(probes[i]) == 1 ? res.jump_probes : res.trap_probes)++;
  }

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> calls{0}, wrong{0};
  std::atomic<unsigned> running{0}; // workers that made their first calls
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < c.threads; ++t) {
    workers.emplace_back([&, t] {
      if (c.exit_probes) t_slot = &slots[t];
      std::mt19937_64 rng(c.seed * 7919 + t);
      uint64_t n = 0, bad = 0;
      bool counted = false;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int j = 0; j < 64; ++j) {
          const unsigned i = unsigned(rng() % k);
          const uint64_t x = rng() % kArgLimit;
          if (functions()[i](x) != expected(i, x)) ++bad;
          ++n;
        }
        if (!counted) {
          counted = true;
          running.fetch_add(1);
        }
      }
      calls.fetch_add(n);
      wrong.fetch_add(bad);
    });
  }

  // Batches start once every worker is calling, so they race with real calls.
  while (running.load() < c.threads) std::this_thread::yield();

  // The patcher: each batch flips a random subset of the probes.
  std::mt19937_64 rng(c.seed);
  std::vector<bool> on(k, false);
  const auto deadline = t0 + std::chrono::duration<double>(c.duration_s);
  for (uint64_t b = 0;; ++b) {
    if (c.batches ? b >= c.batches : std::chrono::steady_clock::now() >= deadline) break;
    bool any = false;
    for (unsigned i = 0; i < k; ++i) {
      if (rng() & 1) continue;
      on[i] = !on[i];
      (on[i] ? lp_probe_enable : lp_probe_disable)(probes[i]);
      any = true;
    }
    if (!any) {
      on[0] = !on[0];
      (on[0] ? lp_probe_enable : lp_probe_disable)(probes[0]);
    }
    if (int rc = lp_commit(p); rc != 0) {
      res.error = rc;
      break;
    }
    ++res.batches;
  }
  stop = true;
  for (auto &w : workers) w.join();

  // Final semantic check on a quiet process: a disabled probe is never hit,
  // an enabled one exactly once per call (with --exit-probes: one entry and
  // one exit on this thread).
  ThreadSlot *self = c.exit_probes ? &slots[c.threads] : nullptr;
  using Counts = std::pair<uint64_t, uint64_t>;
  auto entries_exits = [&] { return self ? Counts{self->entries.load(), self->exits.load()} : Counts{0, 0}; };
  if (res.error == 0) {
    for (unsigned i = 0; i < k; ++i) lp_probe_disable(probes[i]);
    res.error = lp_commit(p);
    for (unsigned i = 0; i < k && res.error == 0; ++i) {
      const uint64_t h = ctx[i]->hits.load();
      const auto ee = entries_exits();
      if (functions()[i](5) != expected(i, 5) || ctx[i]->hits.load() != h || entries_exits() != ee)
        ++res.final_check_failures;
    }
    for (unsigned i = 0; i < k; ++i) lp_probe_enable(probes[i]);
    if (res.error == 0) res.error = lp_commit(p);
    for (unsigned i = 0; i < k && res.error == 0; ++i) {
      const uint64_t h = ctx[i]->hits.load();
      const auto ee = entries_exits();
      const Counts want = self ? Counts{ee.first + 1, ee.second + 1} : ee;
      if (functions()[i](7) != expected(i, 7) || ctx[i]->hits.load() != h + 1 || entries_exits() != want)
        ++res.final_check_failures;
    }
  }

  lp_stats st{};
  lp_patcher_stats(p, &st);
  res.calls = calls.load();
  res.wrong_results = wrong.load();
  res.bad_regs = bad_regs.load();
  for (auto &x : ctx) res.hits += x->hits.load();
  res.commits = st.commits;
  res.syncs = st.syncs;
  res.traps = st.traps;
  res.evacuated = st.evacuated;
  res.text_mprotects = st.text_mprotects;
  res.kernel_icache_flushes = st.kernel_icache_flushes;
  res.stopped_rounds = st.stopped_rounds;
  res.stale_traps = st.stale_traps;
  res.unexpected_signals = g_unexpected.load() + st.chained;
  if (c.exit_probes) {
    // Every thread is joined and this one is outside every probed call: no
    // call is pending anywhere, so each thread's entries equal its exits.
    lp_call_stats cs{};
    lp_patcher_call_stats(p, &cs);
    res.pending_calls = cs.pending;
    res.lib_exits = cs.exits - cs0.exits;
    res.overflows = cs.overflows;
    res.unwound = cs.unwound;
    res.skipped = cs.skipped;
    for (const ThreadSlot &t : slots) {
      const uint64_t e = t.entries.load(), x = t.exits.load();
      res.entries += e;
      res.exits += x;
      res.exit_mismatches += t.mismatches.load();
      res.exit_bad_words += t.bad_words.load();
      res.null_call_words += t.null_words.load();
      if (e != x) ++res.unbalanced_threads; // pending is 0 for every thread here
    }
    // Handlers on a thread without a slot, and exits libpatch ran that no
    // handler saw (or the reverse), are bad words too.
    res.exit_bad_words += g_no_slot.exchange(0);
    if (res.lib_exits != res.exits) ++res.exit_bad_words;
    t_slot = nullptr;
  }
  lp_patcher_close(p);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

} // namespace lp_stress
