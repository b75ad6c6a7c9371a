/* farm/boards/init/board-init.c: /init of the farm's virtual boards (PID 1 in
 * a real Linux kernel under qemu-system). Built static for riscv64 and aarch64.
 *
 * The board-init protocol (docs/boards.md):
 *   /job/argv     NUL-separated argv (required); argv[0] is the path of the
 *                 program inside the initramfs (a name without '/' is looked
 *                 up in /job/bin, then /bin)
 *   /job/env      NUL-separated NAME=VALUE (optional): the job's environment,
 *                 with PATH=/job/bin:/bin added unless it sets PATH itself
 *   /job/timeout  whole seconds, decimal (optional; 0 or absent: no timeout)
 * On the console:
 *   ===FARM-BOARD-BEGIN===            just before the job starts
 *   ... the job's stdout and stderr (stdin is /dev/null, cwd is /) ...
 *   ===FARM-BOARD-END rc=N===         it exited with status N
 *   ===FARM-BOARD-END signal=N===     it was killed by signal N
 *   ===FARM-BOARD-END timeout===      it ran past /job/timeout and was killed
 *   ===FARM-BOARD-ERROR <reason>===   init itself failed (no job, bad file,
 *                                     mount or exec failure); nothing follows
 * and then the machine powers off (sync, reboot(RB_POWER_OFF)). If powering
 * off fails, init exits, the kernel panics and panic=1 with qemu's -no-reboot
 * ends qemu. Before powering off, every process left (the job's children) is
 * killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MARK "===FARM-BOARD-"

/* Everything init prints goes straight to fd 1 (the console), unbuffered, so
 * it is ordered with the job's own writes to the same console. */
static void say(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  for (int off = 0; off < n;) {
    ssize_t w = write(1, buf + off, (size_t)(n - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += (int)w;
  }
}

static _Noreturn void power_off(void) {
  kill(-1, SIGKILL); /* everything but init: what the job left running */
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  sync();
  reboot(RB_POWER_OFF);
  say(MARK "ERROR reboot(RB_POWER_OFF): %s===", strerror(errno));
  _exit(1); /* PID 1 exits: the kernel panics, panic=1 + -no-reboot end qemu */
}

static _Noreturn void fail(const char *fmt, ...) {
  char reason[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  say(MARK "ERROR %s===", reason);
  power_off();
}

static void mount_fs(const char *source, const char *target, const char *type, const char *data) {
  if (mkdir(target, 0755) < 0 && errno != EEXIST) fail("mkdir %s: %s", target, strerror(errno));
  if (mount(source, target, type, MS_NOSUID | MS_NOEXEC, data) < 0 && errno != EBUSY)
    fail("mount %s on %s: %s", type, target, strerror(errno));
}

/* Reads a whole file; returns its length, -1 if it does not exist. */
static long read_file(const char *path, char **out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return -1;
    fail("open %s: %s", path, strerror(errno));
  }
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap + 1);
  if (!buf) fail("out of memory reading %s", path);
  for (;;) {
    if (len == cap) {
      cap *= 2;
      buf = realloc(buf, cap + 1);
      if (!buf) fail("out of memory reading %s", path);
    }
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("read %s: %s", path, strerror(errno));
    if (r == 0) break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = '\0';
  *out = buf;
  return (long)len;
}

/* Splits NUL-separated strings (a last one without a NUL counts too) into a
 * NULL-terminated vector with `extra` free slots before the NULL. */
static char **split_nul(char *buf, long len, int extra, int *count) {
  int n = 0;
  for (long i = 0; i < len; i++)
    if (buf[i] == '\0') n++;
  if (len > 0 && buf[len - 1] != '\0') n++;
  char **v = calloc((size_t)(n + extra + 1), sizeof *v);
  if (!v) fail("out of memory");
  int k = 0;
  for (long i = 0; i < len;) {
    v[k++] = buf + i;
    i += (long)strlen(buf + i) + 1;
  }
  *count = k;
  return v;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void) {
  /* The kernel opened /dev/console as fds 0-2 if the initramfs has that
   * node (farm-initramfs adds it); reopen it from devtmpfs in any case. */
  mount_fs("devtmpfs", "/dev", "devtmpfs", NULL);
  int con = open("/dev/console", O_RDWR | O_NOCTTY);
  if (con >= 0) {
    for (int fd = 0; fd < 3; fd++)
      if (con != fd) dup2(con, fd);
    if (con > 2) close(con);
  }
  mount_fs("proc", "/proc", "proc", NULL);
  mount_fs("sysfs", "/sys", "sysfs", NULL);
  if (mkdir("/tmp", 01777) < 0 && errno != EEXIST) fail("mkdir /tmp: %s", strerror(errno));
  if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
    fail("mount tmpfs on /tmp: %s", strerror(errno));

  char *argv_buf = NULL, *env_buf = NULL, *timeout_buf = NULL;
  long argv_len = read_file("/job/argv", &argv_buf);
  if (argv_len < 0) fail("missing /job/argv");
  int argc = 0;
  char **argv = split_nul(argv_buf, argv_len, 0, &argc);
  if (argc == 0 || argv[0][0] == '\0') fail("empty /job/argv");

  int envc = 0;
  char **envp;
  long env_len = read_file("/job/env", &env_buf);
  if (env_len >= 0) {
    envp = split_nul(env_buf, env_len, 1, &envc);
  } else {
    envp = calloc(2, sizeof *envp);
    if (!envp) fail("out of memory");
  }
  int has_path = 0;
  for (int i = 0; i < envc; i++) {
    if (!strchr(envp[i], '=') || envp[i][0] == '=') fail("/job/env: entry %d is not NAME=VALUE: \"%s\"", i, envp[i]);
    if (strncmp(envp[i], "PATH=", 5) == 0) has_path = 1;
  }
  if (!has_path) envp[envc++] = "PATH=/job/bin:/bin";

  long timeout_s = 0;
  if (read_file("/job/timeout", &timeout_buf) >= 0) {
    char *end = NULL;
    errno = 0;
    timeout_s = strtol(timeout_buf, &end, 10);
    while (end && (*end == '\n' || *end == ' ')) end++;
    if (errno || end == timeout_buf || *end != '\0' || timeout_s < 0)
      fail("/job/timeout is not a number of seconds: \"%s\"", timeout_buf);
  }

  char path_buf[512];
  const char *path = argv[0];
  if (!strchr(path, '/')) {
    snprintf(path_buf, sizeof path_buf, "/job/bin/%s", argv[0]);
    if (access(path_buf, X_OK) != 0) snprintf(path_buf, sizeof path_buf, "/bin/%s", argv[0]);
    path = path_buf;
  }
  if (access(path, X_OK) != 0) fail("exec %s: %s", path, strerror(errno));

  /* SIGCHLD stays blocked in init and is waited for with sigtimedwait, so a
   * timeout needs no signal handler; the child unblocks it before exec. */
  sigset_t chld, old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old);

  /* A CLOEXEC pipe tells init whether execve worked: the child writes its
   * errno into it only if execve fails. */
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) fail("pipe2: %s", strerror(errno));
  say(MARK "BEGIN===");
  double start = now();
  pid_t pid = fork();
  if (pid < 0) fail("fork: %s", strerror(errno));
  if (pid == 0) {
    close(pfd[0]);
    sigprocmask(SIG_SETMASK, &old, NULL);
    setsid(); /* its own process group: a timeout kills all of it */
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0 && devnull != 0) {
      dup2(devnull, 0);
      close(devnull);
    }
    if (chdir("/") < 0) {
    }
    execve(path, argv, envp);
    int e = errno;
    if (write(pfd[1], &e, sizeof e) < 0) {
    }
    _exit(127);
  }
  close(pfd[1]);
  int exec_errno = 0;
  ssize_t got;
  do got = read(pfd[0], &exec_errno, sizeof exec_errno);
  while (got < 0 && errno == EINTR);
  close(pfd[0]);
  if (got == (ssize_t)sizeof exec_errno) {
    waitpid(pid, NULL, 0);
    fail("exec %s: %s", path, strerror(exec_errno));
  }

  for (;;) {
    int status;
    pid_t w;
    while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
      if (w != pid) continue; /* an orphan reparented to init */
      if (WIFEXITED(status))
        say(MARK "END rc=%d===", WEXITSTATUS(status));
      else
        say(MARK "END signal=%d===", WTERMSIG(status));
      power_off();
    }
    siginfo_t info;
    if (timeout_s > 0) {
      double left = start + (double)timeout_s - now();
      if (left <= 0) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        say(MARK "END timeout===");
        power_off();
      }
      struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
      sigtimedwait(&chld, &info, &ts);
    } else {
      sigwaitinfo(&chld, &info);
    }
  }
}
