#include "tramp_depth.hpp"

extern "C" {
__thread uint64_t lp_tramp_depth __attribute__((tls_model("initial-exec"))) = 0;
}
