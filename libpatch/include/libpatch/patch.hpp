// C++ wrapper of <libpatch/patch.h>: RAII ownership and expected-like results.
#pragma once

#include <string>
#include <utility>

#include "libpatch/patch.h"

namespace libpatch {

// Result<T>: a value or a named LP_E* error (std::expected is C++23).
template <typename T> class Result {
public:
  Result(T v) : v_(std::move(v)), err_(0) {}
  static Result error(int e) { return Result(e, 0); }
  explicit operator bool() const { return err_ == 0; }
  bool has_value() const { return err_ == 0; }
  T &value() { return v_; }
  T &operator*() { return v_; }
  T *operator->() { return &v_; }
  int error() const { return err_; }
  std::string message() const { return lp_strerror(err_); }

private:
  Result(int e, int) : v_(), err_(e) {}
  T v_;
  int err_;
};

class Probe {
public:
  Probe() = default;
  explicit Probe(lp_probe *p) : p_(p) {}
  int enable() { return lp_probe_enable(p_); }
  int disable() { return lp_probe_disable(p_); }
  int remove() { return lp_probe_remove(p_); }
  bool is_jump() const { return lp_probe_is_jump(p_) == 1; }
  void *address() const { return lp_probe_address(p_); }
  size_t site_len() const { return lp_probe_site_len(p_); }
  uint64_t hits() const { return lp_probe_hits(p_); }
  // A replacement's callable original, cast to the function's type.
  template <typename F> F *original() const { return reinterpret_cast<F *>(lp_probe_original(p_)); }
  lp_probe *get() const { return p_; }

private:
  lp_probe *p_ = nullptr; // owned by the patcher
};

class Patcher {
public:
  static Result<Patcher> open(const lp_options *opt = nullptr) {
    lp_patcher *p = nullptr;
    if (int rc = lp_patcher_open(opt, &p); rc != 0) return Result<Patcher>::error(rc);
    return Patcher(p);
  }
  Patcher() = default;
  Patcher(Patcher &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Patcher &operator=(Patcher &&o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  Patcher(const Patcher &) = delete;
  Patcher &operator=(const Patcher &) = delete;
  ~Patcher() { reset(); }

  Result<Probe> probe_at(void *addr, lp_handler h, void *user = nullptr) {
    lp_probe *pr = nullptr;
    if (int rc = lp_probe_at(p_, addr, h, user, &pr); rc != 0) return Result<Probe>::error(rc);
    return Probe(pr);
  }
  Result<Probe> probe_call(void *fn, lp_entry_handler on_entry, lp_exit_handler on_exit, void *user = nullptr) {
    lp_probe *pr = nullptr;
    if (int rc = lp_probe_call(p_, fn, on_entry, on_exit, user, &pr); rc != 0) return Result<Probe>::error(rc);
    return Probe(pr);
  }
  Result<Probe> probe_call_symbol(const char *sym, lp_entry_handler on_entry, lp_exit_handler on_exit,
                                  void *user = nullptr) {
    lp_probe *pr = nullptr;
    if (int rc = lp_probe_call_symbol(p_, sym, on_entry, on_exit, user, &pr); rc != 0)
      return Result<Probe>::error(rc);
    return Probe(pr);
  }
  Result<Probe> replace(void *fn, void *replacement) {
    lp_probe *pr = nullptr;
    if (int rc = lp_replace(p_, fn, replacement, &pr); rc != 0) return Result<Probe>::error(rc);
    return Probe(pr);
  }
  Result<Probe> replace_symbol(const char *sym, void *replacement) {
    lp_probe *pr = nullptr;
    if (int rc = lp_replace_symbol(p_, sym, replacement, &pr); rc != 0) return Result<Probe>::error(rc);
    return Probe(pr);
  }
  Result<Probe> probe_symbol(const char *sym, lp_handler h, void *user = nullptr) {
    lp_probe *pr = nullptr;
    if (int rc = lp_probe_symbol(p_, sym, h, user, &pr); rc != 0) return Result<Probe>::error(rc);
    return Probe(pr);
  }
  int commit() { return lp_commit(p_); }
  int quiesce(unsigned timeout_ms) { return lp_quiesce(p_, timeout_ms); }
  lp_stats stats() const {
    lp_stats s{};
    lp_patcher_stats(p_, &s);
    return s;
  }
  lp_patcher *get() const { return p_; }
  void reset() {
    if (p_) lp_patcher_close(p_);
    p_ = nullptr;
  }

private:
  explicit Patcher(lp_patcher *p) : p_(p) {}
  lp_patcher *p_ = nullptr;
};

} // namespace libpatch
