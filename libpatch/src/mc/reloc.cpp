#include "mc/reloc.hpp"

#include "libpatch/patch.h"

namespace lp::mc {

const char *reloc_status_name(RelocStatus s) {
  switch (s) {
  case RelocStatus::Ok: return "ok";
  case RelocStatus::TooShort: return "too-short";
  case RelocStatus::BranchTarget: return "branch-target-inside";
  case RelocStatus::CallInside: return "call-inside";
  case RelocStatus::Range: return "out-of-range";
  case RelocStatus::Unsupported: return "unsupported";
  case RelocStatus::Undecodable: return "undecodable";
  case RelocStatus::NotBoundary: return "not-a-boundary";
  case RelocStatus::Invalid: return "invalid";
  }
  return "?";
}

int reloc_status_to_lp_error(RelocStatus s) {
  switch (s) {
  case RelocStatus::Ok: return LP_OK;
  case RelocStatus::TooShort:
  case RelocStatus::BranchTarget:
  case RelocStatus::CallInside: return LP_ETOOSHORT;
  case RelocStatus::Range: return LP_ERANGE;
  case RelocStatus::Unsupported:
  case RelocStatus::Undecodable: return LP_ERELOC;
  case RelocStatus::NotBoundary: return LP_EBOUNDARY;
  case RelocStatus::Invalid: return LP_EINVAL;
  }
  return LP_EINVAL;
}

} // namespace lp::mc
