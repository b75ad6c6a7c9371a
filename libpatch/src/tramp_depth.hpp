// Per-thread count of trampolines the thread is inside (incremented by the
// trampoline before it calls the handler, decremented after). Initial-exec TLS
// so a trampoline can reach it at a fixed offset from the thread pointer.
#pragma once
#include <cstdint>

extern "C" {
extern __thread uint64_t lp_tramp_depth __attribute__((tls_model("initial-exec")));
}
