#include "libpatch/patch.h"

extern "C" const char *lp_strerror(int err) {
  switch (err) {
  case LP_OK: return "LP_OK: success";
  case LP_EINVAL: return "LP_EINVAL: invalid argument (NULL handler, pointer or out-of-range option)";
  case LP_ENOMEM: return "LP_ENOMEM: out of memory";
  case LP_ENOTEXEC: return "LP_ENOTEXEC: address is not in an executable mapping";
  case LP_EBOUNDARY: return "LP_EBOUNDARY: address is not a patchable site or not an instruction boundary";
  case LP_ETOOSHORT: return "LP_ETOOSHORT: the site is too short for a jump";
  case LP_ERANGE: return "LP_ERANGE: no trampoline can be placed within reach of the site";
  case LP_ERELOC: return "LP_ERELOC: a displaced instruction cannot be relocated";
  case LP_EEXIST: return "LP_EEXIST: a probe already exists at this address or its site overlaps this one";
  case LP_ESYNC: return "LP_ESYNC: synchronising the cores failed or timed out";
  case LP_EWRITE: return "LP_EWRITE: writing the text failed";
  case LP_ENOSYM: return "LP_ENOSYM: symbol not found";
  case LP_EREMOVED: return "LP_EREMOVED: the probe was removed";
  case LP_ESTATE: return "LP_ESTATE: the text does not hold the bytes libpatch expects";
  case LP_ESIGNAL: return "LP_ESIGNAL: installing the trap signal handler failed";
  case LP_EBUSY: return "LP_EBUSY: a patcher is already open, or the site is still being removed";
  case LP_ENOTSUP: return "LP_ENOTSUP: not supported on this kernel or architecture";
  case LP_ETIMEDOUT: return "LP_ETIMEDOUT: a grace period did not end in time";
  case LP_ENOPROC: return "LP_ENOPROC: /proc/self/maps cannot be read (is /proc mounted?)";
  default: return "LP_E?: unknown libpatch error";
  }
}
