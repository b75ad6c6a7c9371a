/* farm/boards/jobs/board-hello.c: the boot tests' job (static, riscv64 and
 * aarch64). What it prints is what the tests check:
 *   board-hello                 hello, uname, online CPUs, membarrier QUERY,
 *                               the environment it got, a clock_gettime loop
 *                               (the riscv vDSO path that needs JUMP_LABEL);
 *                               exits 0
 *   board-hello exit N          prints a line, exits with status N
 *   board-hello kill N          raises signal N (SIGKILL for 9)
 *   board-hello hang            never returns (the timeout test)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc >= 3 && strcmp(argv[1], "exit") == 0) {
    printf("board-hello: exiting with %d\n", atoi(argv[2]));
    return atoi(argv[2]);
  }
  if (argc >= 3 && strcmp(argv[1], "kill") == 0) {
    printf("board-hello: raising signal %d\n", atoi(argv[2]));
    raise(atoi(argv[2]));
    return 100;
  }
  if (argc >= 2 && strcmp(argv[1], "hang") == 0) {
    printf("board-hello: hanging\n");
    for (;;) pause();
  }
  struct utsname u;
  uname(&u);
  printf("board-hello: hello from %s %s\n", u.machine, u.release);
  printf("board-hello: online_cpus=%ld\n", sysconf(_SC_NPROCESSORS_ONLN));
  long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  printf("board-hello: membarrier_query=0x%lx\n", q);
  long sc = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0);
  printf("board-hello: register_private_expedited_sync_core=%ld%s%s\n", sc, sc < 0 ? " " : "",
         sc < 0 ? strerror(errno) : "");
  for (int i = 1; i < argc; i++) printf("board-hello: argv[%d]=%s\n", i, argv[i]);
  for (char **e = environ; *e; e++) printf("board-hello: env %s\n", *e);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < 200000; i++) clock_gettime(CLOCK_MONOTONIC, &b);
  printf("board-hello: clock_gettime x200000 ok (%.3f s)\n",
         (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
  printf("board-hello: done\n");
  return 0;
}
