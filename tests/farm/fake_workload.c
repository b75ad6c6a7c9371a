/* A tiny cross-built workload for the qemu-user executor test: prints a
 * patch-stress-like JSON line (arch from the compiler) and exits 0. */
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  const char *seed = "0";
  for (int i = 1; i + 1 < argc; ++i)
    if (!strcmp(argv[i], "--seed")) seed = argv[i + 1];
#if defined(__riscv)
  const char *arch = "riscv64";
#elif defined(__aarch64__)
  const char *arch = "aarch64";
#else
  const char *arch = "x86_64";
#endif
  printf("{\"workload\":\"patch-stress\",\"arch\":\"%s\",\"seed\":%s,\"calls\":42,\"hits\":21,\"batches\":3,"
         "\"verdict\":\"pass\"}\n", arch, seed);
  return 0;
}
