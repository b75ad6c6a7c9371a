// A call-probe subject whose sled follows an endbr64 (x86-64: this file is
// compiled with -fcf-protection=branch): the probe's site is then not at the
// function's address.
#include "call_functions.hpp"

#if defined(__x86_64__)
extern "C" LPC_FN int lpc_cet(int x) {
  int r = x + 1;
  asm volatile("" : "+r"(r)::"memory");
  return r;
}
#endif
