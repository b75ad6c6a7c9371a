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
};

std::atomic<uint64_t> g_unexpected{0};

void on_probe(lp_regs *r, void *user) {
  auto *c = static_cast<ProbeCtx *>(user);
  // Workers pass arguments below kArgLimit: anything else means the
  // trampoline or the trap handler handed the handler a wrong register file.
  if (lp_regs_arg(r, 0) >= kArgLimit) c->bad_regs->fetch_add(1, std::memory_order_relaxed);
  c->hits.fetch_add(1, std::memory_order_relaxed);
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
         calls > 0;
}

std::string Result::json(const Config &c) const {
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "{\"workload\":\"patch-stress\",\"arch\":\"%s\",\"threads\":%u,\"functions\":%u,\"seed\":%llu,"
                "\"writer\":\"%s\",\"sync\":\"%s\",\"kind\":\"%s\",\"sites\":\"%s\",\"jump_probes\":%llu,\"trap_probes\":%llu,"
                "\"calls\":%llu,\"hits\":%llu,\"batches\":%llu,\"commits\":%llu,\"syncs\":%llu,\"traps\":%llu,"
                "\"evacuated\":%llu,\"unexpected_signals\":%llu,\"wrong_results\":%llu,\"bad_regs\":%llu,"
                "\"final_check_failures\":%llu,\"error\":\"%s\",\"seconds\":%.3f,\"verdict\":\"%s\"}",
                lp_arch(), c.threads, c.functions, (unsigned long long)c.seed, c.writer_name.c_str(),
                c.sync_name.c_str(), c.kind_name.c_str(), c.sites_name.c_str(), (unsigned long long)jump_probes,
                (unsigned long long)trap_probes, (unsigned long long)calls, (unsigned long long)hits,
                (unsigned long long)batches, (unsigned long long)commits, (unsigned long long)syncs,
                (unsigned long long)traps, (unsigned long long)evacuated, (unsigned long long)unexpected_signals,
                (unsigned long long)wrong_results, (unsigned long long)bad_regs,
                (unsigned long long)final_check_failures, error ? lp_strerror(error) : "", seconds,
                pass() ? "pass" : "fail");
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
  lp_patcher *p = nullptr;
  if (int rc = lp_patcher_open(&opt, &p); rc != 0) {
    res.error = rc;
    return res;
  }
  const unsigned k = c.functions;
  std::atomic<uint64_t> bad_regs{0};
  std::vector<std::unique_ptr<ProbeCtx>> ctx(k);
  std::vector<lp_probe *> probes(k);
  for (unsigned i = 0; i < k; ++i) {
    ctx[i] = std::make_unique<ProbeCtx>();
    ctx[i]->bad_regs = &bad_regs;
    void *site = nullptr;
    int rc = site_of(p, i, c.body_sites, ctx[i].get(), &site);
    if (rc == 0) rc = lp_probe_at(p, site, on_probe, ctx[i].get(), &probes[i]);
    if (rc != 0) {
      res.error = rc;
      lp_patcher_close(p);
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
  // an enabled one exactly once per call.
  if (res.error == 0) {
    for (unsigned i = 0; i < k; ++i) lp_probe_disable(probes[i]);
    res.error = lp_commit(p);
    for (unsigned i = 0; i < k && res.error == 0; ++i) {
      const uint64_t h = ctx[i]->hits.load();
      if (functions()[i](5) != expected(i, 5) || ctx[i]->hits.load() != h) ++res.final_check_failures;
    }
    for (unsigned i = 0; i < k; ++i) lp_probe_enable(probes[i]);
    if (res.error == 0) res.error = lp_commit(p);
    for (unsigned i = 0; i < k && res.error == 0; ++i) {
      const uint64_t h = ctx[i]->hits.load();
      if (functions()[i](7) != expected(i, 7) || ctx[i]->hits.load() != h + 1) ++res.final_check_failures;
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
  res.unexpected_signals = g_unexpected.load() + st.chained;
  lp_patcher_close(p);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

} // namespace lp_stress
