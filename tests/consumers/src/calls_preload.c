/* LD_PRELOAD library for consumer.outsider.calls: call probes (entry + exit)
 * on glibc's own opendir and readdir -- no sleds: instruction sites at their
 * first instructions -- in a Debian program nobody rebuilt. The exits count
 * what the functions returned: a DIR for each opendir, then one entry per
 * readdir and a NULL at each directory's end. */
#include <stdio.h>
#include <unistd.h>

#include <libpatch/patch.h>

static long opendir_in, opendir_out, opendir_ok, readdir_in, readdir_out, readdir_entries, readdir_end;
static int out = -1; /* our own copy of stderr: coreutils close stderr before destructors run */

static int count_in(lp_regs *r, uint64_t *call, void *user) {
  (void)r;
  __atomic_add_fetch((long *)user, 1, __ATOMIC_RELAXED);
  if (call) call[0] = 1; /* seen again at the exit of this very call */
  return LP_CALL_RUN;
}
static void opendir_exit(lp_regs *r, uint64_t *call, void *user) {
  (void)user;
  if (call[0] == 1) __atomic_add_fetch(&opendir_out, 1, __ATOMIC_RELAXED);
  if (lp_regs_ret(r) != 0) __atomic_add_fetch(&opendir_ok, 1, __ATOMIC_RELAXED);
}
static void readdir_exit(lp_regs *r, uint64_t *call, void *user) {
  (void)user;
  if (call[0] == 1) __atomic_add_fetch(&readdir_out, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(lp_regs_ret(r) != 0 ? &readdir_entries : &readdir_end, 1, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void start(void) {
  lp_patcher *p;
  lp_probe *a = NULL, *b = NULL;
  out = dup(2);
  int rc = lp_patcher_open(NULL, &p);
  if (rc == 0) rc = lp_probe_call_symbol(p, "opendir", count_in, opendir_exit, &opendir_in, &a);
  if (rc == 0) rc = lp_probe_call_symbol(p, "readdir", count_in, readdir_exit, &readdir_in, &b);
  if (rc == 0) rc = lp_probe_enable(a);
  if (rc == 0) rc = lp_probe_enable(b);
  if (rc == 0) rc = lp_commit(p);
  if (rc != 0) dprintf(out, "calls-preload: FAIL %s\n", lp_strerror(rc));
}

__attribute__((destructor)) static void stop(void) {
  dprintf(out, "calls-preload: opendir %ld/%ld ok %ld, readdir %ld/%ld entries %ld end %ld\n", opendir_in,
          opendir_out, opendir_ok, readdir_in, readdir_out, readdir_entries, readdir_end);
}
