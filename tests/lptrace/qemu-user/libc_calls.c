/* lptrace's qemu-user tests (tests/lptrace/riscv64, tests/lptrace/aarch64):
 * calls into Debian's cross glibc of the target (code nobody here wrote) a
 * known number of times, and exec from inside qemu-user.
 *   libc_calls dirs DIR...        opendir + readdir to the end + closedir each
 *                                 DIR: len(DIR...) opendir calls, entries +
 *                                 len(DIR...) readdir calls (the last returns NULL)
 *   libc_calls exec PROG ARGS...  one opendir("."), then a fork child that
 *                                 execv()s PROG; says how that went */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "dirs") == 0) {
    long entries = 0;
    for (int i = 2; i < argc; ++i) {
      DIR *d = opendir(argv[i]);
      if (!d) {
        fprintf(stderr, "opendir %s: %s\n", argv[i], strerror(errno));
        return 1;
      }
      while (readdir(d)) ++entries;
      closedir(d);
    }
    printf("dirs: %d directories, %ld entries\n", argc - 2, entries);
    return 0;
  }
  if (argc > 2 && strcmp(argv[1], "exec") == 0) {
    DIR *d = opendir(".");
    if (d) closedir(d);
    fflush(stdout);
    const pid_t c = fork();
    if (c == 0) {
      execv(argv[2], argv + 2);
      printf("exec %s: %s\n", argv[2], strerror(errno));
      exit(3); /* exit: the child's report (0 opendir calls of its own) */
    }
    int st = 0;
    waitpid(c, &st, 0);
    printf("child: exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return 0;
  }
  fprintf(stderr, "usage: libc_calls dirs DIR... | exec PROG ARGS...\n");
  return 2;
}
