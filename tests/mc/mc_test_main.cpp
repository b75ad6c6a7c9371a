// main() of the lp::mc test binaries: registers every ISA of the build (the
// way an LLVM tool calls InitializeAllTargets) before the tests run.
#include <gtest/gtest.h>

#include "mc/target.hpp"

int main(int argc, char **argv) {
  lp::mc::initialize_all_targets();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
