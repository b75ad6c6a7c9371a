/* tests/linux-guest/guest_runner.c: the job of the linux-guest suites (label
 * <arch>-linux). Runs inside a real Linux kernel under qemu-system, as the
 * board init's job (farm/boards/init/board-init.c), and runs every test of a
 * cross-built ctest suite in turn, one process per test, each as ctest would
 * run it (its argv, its environment, its own working directory, a timeout).
 * run_suites.py (the host side) writes the manifest, builds the initramfs,
 * boots the board and parses the console. Static, arch-free C: no C++ runtime,
 * nothing of libpatch.
 *
 * usage: lp-guest-runner MANIFEST
 * The manifest, one field per line (values run to the end of the line):
 *   test ID          starts a test (ID: decimal, as the host numbered it)
 *   timeout SECONDS  its timeout (whole seconds; 0: none)
 *   cwd DIR          its working directory (created if missing)
 *   xml PATH         GoogleTest's XML report to print afterwards (optional)
 *   arg ARG          argv, in order (the first: the program's guest path)
 *   env NAME=VALUE   its environment, in order
 *   end              ends the test
 *
 * On the console (every line is written with one write(2)):
 *   ===LPG-RUNNER-BEGIN tests=N===
 *   @info KEY=VALUE                  facts about the guest (kernel, cpus, membarrier)
 *   ===LPG-BEGIN ID===               the test starts
 *   @ID:o TEXT                       a line of its stdout/stderr (one pipe, ordered)
 *   @ID:k TEXT                       a kernel log line logged while it ran
 *   @ID:x TEXT                       a line of its GoogleTest XML report
 *   @ID:O TEXT, @ID:K, @ID:X         a piece of a line longer than 2000 bytes of
 *                                    that stream: the line goes on in the next
 *   ===LPG-END ID status=exit:N|signal:N|timeout|error:WHY seconds=S out=B xml=B===
 *   ===LPG-RUNNER-END===
 * out= and xml= count the bytes of the output and XML lines printed (each
 * line's text plus one for its newline) so the host can tell a line the
 * console lost or mangled. Kernel messages below KERN_WARNING are taken off
 * the console (console loglevel 5) and printed per test from the kernel's log
 * instead, so they cannot land in the middle of a test's line; warnings and
 * worse (an oops, a panic) still reach the console directly.
 * After each test every process left (its children, daemons) is killed, so
 * nothing of one test runs into the next.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 2000 /* longest piece of a line printed on one console line */

static void write_all(const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, buf, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    buf += w;
    n -= (size_t)w;
  }
}

static void say(const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  write_all(buf, (size_t)n);
}

/* One prefixed console line: "@ID:K " + text + "\n", in one write. */
static void emit(long id, char kind, const char *text, size_t len) {
  char buf[CHUNK + 64];
  int p = snprintf(buf, sizeof buf, "@%ld:%c ", id, kind);
  memcpy(buf + p, text, len);
  buf[p + (int)len] = '\n';
  write_all(buf, (size_t)p + len + 1);
}

/* Splits a stream into console lines: complete lines as `kind` ('o', 'k',
 * 'x'), pieces of lines longer than CHUNK as its capital ('O', 'K', 'X').
 * `bytes` counts what was printed (text, plus one per complete line). */
struct liner {
  long id;
  char kind;
  char buf[CHUNK];
  size_t len;
  unsigned long long bytes;
};

static void liner_put(struct liner *l, const char *data, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char ch = data[i];
    if (ch == '\n') {
      emit(l->id, l->kind, l->buf, l->len);
      l->bytes += l->len + 1;
      l->len = 0;
      continue;
    }
    if (ch == '\r') continue; /* the console adds its own */
    if (l->len == CHUNK) {
      emit(l->id, (char)(l->kind - 'a' + 'A'), l->buf, l->len);
      l->bytes += l->len;
      l->len = 0;
    }
    l->buf[l->len++] = ch;
  }
}

static void liner_flush(struct liner *l) {
  if (l->len == 0) return;
  emit(l->id, l->kind, l->buf, l->len);
  l->bytes += l->len + 1;
  l->len = 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void mkdirs(const char *path) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    mkdir(buf, 0755);
    *p = '/';
  }
  mkdir(buf, 0755);
}

/* How many user processes other than init and this one are alive (not
 * zombies): /proc/PID/stat of everything but kernel threads (kthreadd, PID 2,
 * and its children). */
static int others_alive(void) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  int n = 0;
  pid_t self = getpid();
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 2 || pid == self) continue;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (r <= 0) continue;
    buf[r] = '\0';
    char *rp = strrchr(buf, ')'); /* "PID (COMM) S PPID ..." */
    char state;
    long ppid;
    if (!rp || sscanf(rp + 1, " %c %ld", &state, &ppid) != 2) continue;
    if (ppid == 2 || state == 'Z' || state == 'X') continue;
    n++;
  }
  closedir(d);
  return n;
}

/* Kills every process but init and this one (what a test left running), and
 * waits (up to 2 s) until none is left: they are init's orphans, init reaps
 * them. kill(-1) spares PID 1 and the caller; kernel threads ignore it. */
static void kill_leftovers(void) {
  kill(-1, SIGKILL);
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  for (int i = 0; i < 200 && others_alive() > 0; i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

/* Prints (as 'k' lines of test `id`) what the kernel logged since the last
 * call, and clears the log. */
static void kernel_log(long id) {
  static char buf[1 << 17];
  int n = klogctl(4 /* SYSLOG_ACTION_READ_CLEAR */, buf, sizeof buf);
  if (n <= 0) return;
  struct liner l = {.id = id, .kind = 'k'};
  liner_put(&l, buf, (size_t)n);
  liner_flush(&l);
}

struct test {
  long id;
  long timeout;
  char *cwd, *xml;
  char **argv, **envp;
  int argc, envc;
};

static void push(char ***v, int *n, char *s) {
  *v = realloc(*v, (size_t)(*n + 2) * sizeof **v);
  if (!*v) {
    say("lp-guest-runner: out of memory");
    exit(2);
  }
  (*v)[(*n)++] = s;
  (*v)[*n] = NULL;
}

static void run_test(const struct test *t) {
  say("===LPG-BEGIN %ld===", t->id);
  if (t->argc == 0) {
    say("===LPG-END %ld status=error:no-argv seconds=0 out=0 xml=0===", t->id);
    return;
  }
  if (t->cwd) mkdirs(t->cwd);
  if (t->xml) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", t->xml);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
      *slash = '\0';
      mkdirs(dir);
    }
    unlink(t->xml);
  }
  kernel_log(-1); /* what came between tests (as "@-1:k"): not this test's */

  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) {
    say("===LPG-END %ld status=error:pipe seconds=0 out=0 xml=0===", t->id);
    return;
  }
  double start = now();
  pid_t pid = fork();
  if (pid < 0) {
    close(pfd[0]);
    close(pfd[1]);
    say("===LPG-END %ld status=error:fork seconds=0 out=0 xml=0===", t->id);
    return;
  }
  if (pid == 0) {
    setpgid(0, 0);
    signal(SIGPIPE, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(pfd[1], 1);
    dup2(pfd[1], 2);
    if (t->cwd && chdir(t->cwd) < 0) {
      dprintf(2, "lp-guest-runner: chdir %s: %s\n", t->cwd, strerror(errno));
      _exit(127);
    }
    execve(t->argv[0], t->argv, t->envp);
    dprintf(2, "lp-guest-runner: execve %s: %s\n", t->argv[0], strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);
  close(pfd[1]);

  struct liner out = {.id = t->id, .kind = 'o'};
  char status[64] = "";
  int reaped = 0, pipe_open = 1;
  double reaped_at = 0;
  for (;;) {
    if (!reaped) {
      int st;
      pid_t w = waitpid(pid, &st, WNOHANG);
      if (w == pid) {
        reaped = 1;
        reaped_at = now();
        if (WIFEXITED(st))
          snprintf(status, sizeof status, "exit:%d", WEXITSTATUS(st));
        else
          snprintf(status, sizeof status, "signal:%d", WTERMSIG(st));
      }
    }
    /* The test is over when it exited and its output was read to the end
     * (what its children still hold open gets a second, then they die). */
    if (reaped && (!pipe_open || now() - reaped_at > 1.0)) break;
    if (!reaped && t->timeout > 0 && now() - start > (double)t->timeout) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      snprintf(status, sizeof status, "timeout");
      reaped = 1;
      reaped_at = now();
      pipe_open = 0; /* what is buffered is read below */
      break;
    }
    if (!pipe_open) {
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
      continue;
    }
    struct pollfd p = {.fd = pfd[0], .events = POLLIN};
    int r = poll(&p, 1, 50);
    if (r < 0 && errno != EINTR) break;
    if (r > 0) {
      char buf[8192];
      ssize_t n = read(pfd[0], buf, sizeof buf);
      if (n > 0)
        liner_put(&out, buf, (size_t)n);
      else if (n == 0 || (errno != EINTR && errno != EAGAIN))
        pipe_open = 0;
    }
  }
  double seconds = now() - start;
  kill_leftovers();
  /* What is still in the pipe (the writers are gone now). */
  fcntl(pfd[0], F_SETFL, O_NONBLOCK);
  for (;;) {
    char buf[8192];
    ssize_t n = read(pfd[0], buf, sizeof buf);
    if (n <= 0) break;
    liner_put(&out, buf, (size_t)n);
  }
  close(pfd[0]);
  liner_flush(&out);
  kernel_log(t->id);

  struct liner xml = {.id = t->id, .kind = 'x'};
  if (t->xml) {
    int fd = open(t->xml, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char buf[8192];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) liner_put(&xml, buf, (size_t)n);
      close(fd);
      liner_flush(&xml);
      unlink(t->xml);
    }
  }
  say("===LPG-END %ld status=%s seconds=%.3f out=%llu xml=%llu===", t->id, status, seconds, out.bytes,
      xml.bytes);
}

static void info(void) {
  struct utsname u;
  if (uname(&u) == 0) say("@info kernel=%s %s %s", u.sysname, u.release, u.machine);
  say("@info online_cpus=%ld", sysconf(_SC_NPROCESSORS_ONLN));
  /* MEMBARRIER_CMD_QUERY: the commands this kernel has (SYNC_CORE is 1<<5). */
  long q = syscall(SYS_membarrier, 0, 0, 0);
  say("@info membarrier_query=%s0x%lx", q < 0 ? "-" : "", q < 0 ? (unsigned long)errno : (unsigned long)q);
  char buf[256];
  int fd = open("/proc/meminfo", O_RDONLY);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0) {
      buf[n] = '\0';
      char *nl = strchr(buf, '\n');
      if (nl) *nl = '\0';
      say("@info meminfo %s", buf);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    say("usage: lp-guest-runner MANIFEST");
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    say("lp-guest-runner: %s: %s", argv[1], strerror(errno));
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  /* Only warnings and worse on the console; the rest per test (kernel_log). */
  klogctl(8 /* SYSLOG_ACTION_CONSOLE_LEVEL */, NULL, 5);
  klogctl(5 /* SYSLOG_ACTION_CLEAR: the boot log is on the console already */, NULL, 0);

  struct test *tests = NULL;
  long ntests = 0;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  struct test *cur = NULL;
  long lineno = 0;
  while ((len = getline(&line, &cap, f)) >= 0) {
    lineno++;
    if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
    char *sp = strchr(line, ' ');
    char *val = sp ? sp + 1 : line + len;
    if (sp) *sp = '\0';
    if (strcmp(line, "test") == 0) {
      tests = realloc(tests, (size_t)(ntests + 1) * sizeof *tests);
      if (!tests) return 2;
      cur = &tests[ntests++];
      memset(cur, 0, sizeof *cur);
      cur->id = strtol(val, NULL, 10);
    } else if (!cur) {
      say("lp-guest-runner: %s:%ld: '%s' outside a test", argv[1], lineno, line);
      return 2;
    } else if (strcmp(line, "timeout") == 0) {
      cur->timeout = strtol(val, NULL, 10);
    } else if (strcmp(line, "cwd") == 0) {
      cur->cwd = strdup(val);
    } else if (strcmp(line, "xml") == 0) {
      cur->xml = strdup(val);
    } else if (strcmp(line, "arg") == 0) {
      push(&cur->argv, &cur->argc, strdup(val));
    } else if (strcmp(line, "env") == 0) {
      push(&cur->envp, &cur->envc, strdup(val));
    } else if (strcmp(line, "end") == 0) {
      if (!cur->envp) push(&cur->envp, &cur->envc, "PATH=/job/bin:/bin");
      cur = NULL;
    } else {
      say("lp-guest-runner: %s:%ld: unknown field '%s'", argv[1], lineno, line);
      return 2;
    }
  }
  fclose(f);

  say("===LPG-RUNNER-BEGIN tests=%ld===", ntests);
  info();
  for (long i = 0; i < ntests; i++) run_test(&tests[i]);
  say("===LPG-RUNNER-END===");
  return 0;
}
