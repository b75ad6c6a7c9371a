/* Shared helpers of the consumer test programs (tests/consumers/run.sh builds
 * them against an installed libpatch at test time). Header-only, C and C++. */
#ifndef LPC_H
#define LPC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpatch/patch.h>
#include <libpatch/patchable.h>
#include <libpatch/regs.h>

/* A probe target the optimiser must call as written: LP_PATCHABLE (noinline +
 * entry sled) and, with GCC, noipa (no constprop/isra clones under another
 * name, no pure-call elimination). */
#if defined(__GNUC__) && !defined(__clang__)
#define LPC_NOIPA __attribute__((noipa))
#else
#define LPC_NOIPA
#endif
#define LPC_TARGET LP_PATCHABLE LPC_NOIPA

static int lpc_failures;

#define LPC_CHECK(cond, ...)                                                                  \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      fprintf(stderr, "FAIL %s:%d: (%s): ", __FILE__, __LINE__, #cond);                       \
      fprintf(stderr, __VA_ARGS__);                                                           \
      fputc('\n', stderr);                                                                    \
      ++lpc_failures;                                                                         \
    }                                                                                         \
  } while (0)

/* A libpatch call that must succeed: on error, names it and exits. */
#define LPC_OK(call)                                                                          \
  do {                                                                                        \
    int lpc_rc_ = (call);                                                                     \
    if (lpc_rc_ != 0) {                                                                       \
      fprintf(stderr, "FAIL %s:%d: %s returned %d (%s)\n", __FILE__, __LINE__, #call,         \
              lpc_rc_, lp_strerror(lpc_rc_));                                                 \
      exit(1);                                                                                \
    }                                                                                         \
  } while (0)

/* Diagnostics on stderr and results on stdout stay in order in the test log. */
#define LPC_LINE_BUFFERED() setvbuf(stdout, NULL, _IOLBF, 0)

/* Handler: counts hits into the long pointed to by user (async-signal-safe). */
static void lpc_count(lp_regs *regs, void *user) {
  (void)regs;
  __atomic_fetch_add((long *)user, 1, __ATOMIC_RELAXED);
}

/* Checks /proc/self/maps:
 *  - none of libLLVM*, libedit, libz3, libicu*, libxml2 is mapped;
 *  - linked_shared: libpatch.so is mapped, from the directory $LPC_LIBDIR when
 *    set (the installed prefix, not the build tree);
 *  - !linked_shared: no libpatch.so is mapped.
 * Returns the number of failures (also added to lpc_failures). */
static int lpc_check_maps(int linked_shared) {
  static const char *const forbidden[] = {"libLLVM", "libedit", "libz3", "libicu", "libxml2"};
  const char *libdir = getenv("LPC_LIBDIR");
  char line[4096], libpatch_path[4096] = "", last_bad[4096] = "";
  int bad = 0;
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) {
    fprintf(stderr, "FAIL: cannot open /proc/self/maps\n");
    ++lpc_failures;
    return 1;
  }
  while (fgets(line, sizeof line, f)) {
    char *path = strchr(line, '/');
    const char *base;
    size_t i;
    if (!path) continue;
    path[strcspn(path, "\n")] = 0;
    base = strrchr(path, '/') + 1;
    for (i = 0; i < sizeof forbidden / sizeof forbidden[0]; ++i) {
      if (strncmp(base, forbidden[i], strlen(forbidden[i])) == 0) {
        if (strcmp(path, last_bad) != 0) { /* one report per library, not per mapping */
          fprintf(stderr, "FAIL: forbidden library mapped into the process: %s\n", path);
          strncpy(last_bad, path, sizeof last_bad - 1);
          ++bad;
        }
        break;
      }
    }
    if (strncmp(base, "libpatch.so", 11) == 0 && !libpatch_path[0]) {
      strncpy(libpatch_path, path, sizeof libpatch_path - 1);
    }
  }
  fclose(f);
  if (linked_shared) {
    if (!libpatch_path[0]) {
      fprintf(stderr, "FAIL: no libpatch.so mapped in a program linked against it\n");
      ++bad;
    } else if (libdir && (strncmp(libpatch_path, libdir, strlen(libdir)) != 0 ||
                          libpatch_path[strlen(libdir)] != '/')) {
      fprintf(stderr, "FAIL: libpatch mapped from %s, not from the installed %s\n", libpatch_path, libdir);
      ++bad;
    } else {
      fprintf(stderr, "libpatch mapped from %s\n", libpatch_path);
    }
  } else if (libpatch_path[0]) {
    fprintf(stderr, "FAIL: %s mapped into a program linked statically against libpatch\n", libpatch_path);
    ++bad;
  }
  lpc_failures += bad;
  return bad;
}

#endif
