#include "call_functions.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <execinfo.h>
#include <pthread.h>
#include <sched.h>
#include <stdexcept>
#include <string>
#include <unistd.h>

// A value the compiler must keep after the call that produced it: no sibling
// call, no tail-recursion-to-loop, no folding of the chain.
#define LPC_OPAQUE(v) asm volatile("" : "+r"(v)::"memory")

extern "C" {

LPC_FN int lpc_add(int a, int b) {
  int r = a + b;
  LPC_OPAQUE(r);
  return r;
}

LPC_FN int lpc_twice(int x) {
  int r = 2 * x;
  LPC_OPAQUE(r);
  return r;
}

LPC_FN long lpc_six(long a, long b, long c, long d, long e, long f) {
  long r = a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
  LPC_OPAQUE(r);
  return r;
}

std::atomic<int> lpc_body_runs{0};
LPC_FN int lpc_counted(int x) {
  lpc_body_runs.fetch_add(1);
  int r = x + 1;
  LPC_OPAQUE(r);
  return r;
}

// ---- chains that leave by longjmp ----
std::jmp_buf lpc_jb;
sigjmp_buf lpc_sjb;
volatile int lpc_chain_mode = 0;

LPC_FN int lpc_chain_c(int x) {
  switch (lpc_chain_mode) {
  case 1: std::longjmp(lpc_jb, 1);
  case 2: siglongjmp(lpc_sjb, 2);
  case 3: raise(SIGUSR2); break; // the handler siglongjmps
  default: break;
  }
  int r = x + 1;
  LPC_OPAQUE(r);
  return r;
}
LPC_FN int lpc_chain_b(int x) {
  int r = lpc_chain_c(x);
  LPC_OPAQUE(r);
  return r + 1;
}
LPC_FN int lpc_chain_a(int x) {
  int r = lpc_chain_b(x);
  LPC_OPAQUE(r);
  return r + 1;
}

// ---- exceptions ----
LPC_FN int lpc_ex_c(int x) {
  if (x < 0) throw std::runtime_error("lpc_ex_c: " + std::to_string(x));
  int r = x;
  LPC_OPAQUE(r);
  return r;
}
LPC_FN int lpc_ex_b(int x) {
  int r = lpc_ex_c(x);
  LPC_OPAQUE(r);
  return r + 1;
}
LPC_FN int lpc_ex_a(int x) {
  int r = lpc_ex_b(x);
  LPC_OPAQUE(r);
  return r + 1;
}

char lpc_caught[128];
LPC_FN int lpc_ex_mid(int x) {
  try {
    int r = lpc_ex_b(x);
    LPC_OPAQUE(r);
    return r + 1;
  } catch (const std::runtime_error &e) {
    std::snprintf(lpc_caught, sizeof lpc_caught, "%s", e.what());
    return -100;
  }
}
LPC_FN int lpc_ex_top(int x) {
  int r = lpc_ex_mid(x);
  LPC_OPAQUE(r);
  return r + 1;
}

std::atomic<int> lpc_rethrows{0};
LPC_FN int lpc_ex_rethrow_mid(int x) {
  try {
    int r = lpc_ex_b(x);
    LPC_OPAQUE(r);
    return r + 1;
  } catch (...) {
    lpc_rethrows.fetch_add(1);
    throw;
  }
}
LPC_FN int lpc_ex_rethrow_top(int x) {
  int r = lpc_ex_rethrow_mid(x);
  LPC_OPAQUE(r);
  return r + 1;
}

std::exception_ptr lpc_stored;
LPC_FN int lpc_ex_ptr_b(int x) {
  if (lpc_stored) std::rethrow_exception(lpc_stored);
  int r = x;
  LPC_OPAQUE(r);
  return r;
}
LPC_FN int lpc_ex_ptr_a(int x) {
  int r = lpc_ex_ptr_b(x);
  LPC_OPAQUE(r);
  return r + 1;
}

std::atomic<int> lpc_cleanups{0};
volatile int lpc_cleanup_nested_throw = 0;
namespace {
struct Cleanup {
  ~Cleanup() {
    lpc_cleanups.fetch_add(lpc_add(1, 2)); // a probed call from a landing pad
    if (lpc_cleanup_nested_throw) {
      try {
        throw std::logic_error("inner");
      } catch (const std::logic_error &) {
        lpc_cleanups.fetch_add(10);
      }
    }
  }
};
} // namespace
LPC_FN int lpc_ex_guard_mid(int x) {
  Cleanup c;
  int r = lpc_ex_b(x);
  LPC_OPAQUE(r);
  return r + 1;
}
LPC_FN int lpc_ex_guard_top(int x) {
  int r = lpc_ex_guard_mid(x);
  LPC_OPAQUE(r);
  return r + 1;
}

// ---- recursion ----
LPC_FN int lpc_recurse(int n) {
  if (n <= 0) return 0;
  int r = lpc_recurse(n - 1);
  LPC_OPAQUE(r);
  return r + 1;
}

// ---- tail calls: the callee (the caller is call_tail.S) ----
LPC_FN int lpt_tail_callee(int x) {
  if (x < 0) throw std::runtime_error("lpt_tail_callee: " + std::to_string(x));
  int r = x * 3;
  LPC_OPAQUE(r);
  return r;
}

// ---- spinning ----
std::atomic<int> lpc_inside{0};
std::atomic<int> lpc_release{0};
LPC_FN int lpc_spin(int x) {
  lpc_inside.store(x);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!lpc_release.load()) {
    if (std::chrono::steady_clock::now() > give_up) return -999;
    sched_yield();
  }
  int r = x * 2;
  LPC_OPAQUE(r);
  return r;
}
LPC_FN int lpc_spin_outer(int x) {
  int r = lpc_spin(x);
  LPC_OPAQUE(r);
  return r + 1;
}

// ---- thread ends ----
std::atomic<int> lpc_guards_destroyed{0};
namespace {
struct Guard {
  ~Guard() { lpc_guards_destroyed.fetch_add(1); }
};
// Its destructor throws and catches an exception of its own.
struct NestedCatchGuard {
  ~NestedCatchGuard() {
    try {
      throw std::logic_error("inner");
    } catch (const std::logic_error &) {
      lpc_guards_destroyed.fetch_add(100);
    }
  }
};
} // namespace
LPC_FN int lpc_end_inner(int mode) {
  Guard g;
  if (mode == 0) pthread_exit(nullptr);
  if (mode == 2) {
    NestedCatchGuard n;
    pthread_exit(nullptr);
  }
  lpc_inside.store(1);
  for (;;) pause(); // a cancellation point
}
LPC_FN int lpc_end_outer(int mode) {
  Guard g;
  int r = lpc_end_inner(mode);
  LPC_OPAQUE(r);
  return r + 1;
}

// ---- fork ----
LPC_FN int lpc_fork(int x, pid_t *pid) {
  *pid = fork();
  int r = x + (*pid == 0 ? 100 : 200);
  LPC_OPAQUE(r);
  return r;
}

// ---- backtrace ----
LPC_FN int lpc_bt_c(void **buf, int max) {
  int n = backtrace(buf, max);
  LPC_OPAQUE(n);
  return n;
}
LPC_FN int lpc_bt_b(void **buf, int max) {
  int n = lpc_bt_c(buf, max);
  LPC_OPAQUE(n);
  return n;
}
LPC_FN int lpc_bt_a(void **buf, int max) {
  int n = lpc_bt_b(buf, max);
  LPC_OPAQUE(n);
  return n;
}

// ---- replacement ----
LPC_FN int lpc_repl(int x) {
  int r = x * 2;
  LPC_OPAQUE(r);
  return r;
}
__attribute__((noipa)) int lpc_plain(int x) {
  int r = (x * 3 + 7) ^ 0x55;
  LPC_OPAQUE(r);
  return r;
}

} // extern "C"
