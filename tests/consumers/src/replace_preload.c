/* LD_PRELOAD library for consumer.outsider.replace: replaces glibc's own
 * opendir and readdir (no sleds: instruction sites at their entries, the
 * prologues relocated out of line) in a Debian program nobody rebuilt, with
 * wrappers that count and call the originals through lp_probe_original. */
#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

#include <libpatch/patch.h>

static DIR *(*orig_opendir)(const char *);
static struct dirent *(*orig_readdir)(DIR *);
static long n_opendir, n_readdir;
static int out = -1; /* our own copy of stderr: coreutils close stderr before destructors run */

static DIR *counting_opendir(const char *name) {
  __atomic_add_fetch(&n_opendir, 1, __ATOMIC_RELAXED);
  return orig_opendir(name);
}
static struct dirent *counting_readdir(DIR *d) {
  struct dirent *e = orig_readdir(d);
  if (e) __atomic_add_fetch(&n_readdir, 1, __ATOMIC_RELAXED);
  return e;
}

__attribute__((constructor)) static void start(void) {
  lp_patcher *p;
  lp_probe *a = NULL, *b = NULL;
  out = dup(2);
  int rc = lp_patcher_open(NULL, &p);
  if (rc == 0) rc = lp_replace_symbol(p, "opendir", (void *)counting_opendir, &a);
  if (rc == 0) rc = lp_replace_symbol(p, "readdir", (void *)counting_readdir, &b);
  if (rc == 0) {
    orig_opendir = (DIR * (*)(const char *)) lp_probe_original(a);
    orig_readdir = (struct dirent * (*)(DIR *)) lp_probe_original(b);
    rc = orig_opendir && orig_readdir ? 0 : LP_EINVAL;
  }
  if (rc == 0) rc = lp_probe_enable(a);
  if (rc == 0) rc = lp_probe_enable(b);
  if (rc == 0) rc = lp_commit(p); /* both in one batch */
  if (rc != 0) dprintf(out, "replace-preload: FAIL %s\n", lp_strerror(rc));
}

__attribute__((destructor)) static void stop(void) {
  dprintf(out, "replace-preload: opendir=%ld readdir=%ld\n", n_opendir, n_readdir);
}
