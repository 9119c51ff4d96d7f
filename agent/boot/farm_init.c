/* farm-init: the /init of the farm's initramfs (agent/boot/initramfs.cc packs it; CMake builds it
 * static, and it is embedded in the agent). As the kernel's init (pid 1) it mounts /proc, /sys and
 * /dev, brings the loopback interface up, loads the listed kernel modules, mounts the shared
 * directory over 9p, runs the test once under a timeout, prints its exit status on the console
 * (agent/boot/console.h: FARM-INIT-STARTED, FARM-TEST-TIMEOUT, FARM-RESULT: N), writes the result
 * file, syncs and powers off. A C program instead of a shell script: no busybox to pack for a
 * compiled test, and no fork/exec of a shell per step, which costs under TCG.
 *
 * Its configuration is /farm/init.conf (or argv[1]), one "key value" per line:
 *   timeout SECONDS        the test's time limit
 *   module PATH            a .ko loaded before the test, in the order given (repeatable)
 *   share TAG              mount the 9p share TAG on /farm/shared and run the test there
 *   result_file NAME       write the exit status to /farm/shared/NAME (needs share)
 *   arg WORD               the test's argv, one word per line, in order
 *
 * Run as any other process (the unit tests do) it only runs the test under the timeout and prints
 * the markers: the mounts, modules and power-off need the kernel's init. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 64
#define MAX_MODULES 64
#define MAX_CONFIG (64 * 1024)

static const char kInitStarted[] = "FARM-INIT-STARTED";
static const char kResult[] = "FARM-RESULT: ";
static const char kTimeout[] = "FARM-TEST-TIMEOUT";

static volatile sig_atomic_t alarm_fired;

static void OnAlarm(int sig) {
  (void)sig;
  alarm_fired = 1;
}

/* One write per line: the console interleaves whole writes with kernel messages. */
static void Say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void Say(const char* fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
  line[n++] = '\n';
  for (int off = 0; off < n;) {
    ssize_t w = write(STDOUT_FILENO, line + off, (size_t)(n - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += (int)w;
  }
}

struct Config {
  unsigned timeout;
  const char* modules[MAX_MODULES];
  int n_modules;
  const char* share;
  const char* result_file;
  char* argv[MAX_ARGS + 1];
  int argc;
};

/* Parses `text` in place. Returns 0, or -1 after saying what is wrong. */
static int ParseConfig(char* text, struct Config* c) {
  memset(c, 0, sizeof *c);
  c->timeout = 300;
  for (char* line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
    char* value = strchr(line, ' ');
    if (value == NULL) continue;
    *value++ = '\0';
    if (strcmp(line, "timeout") == 0) {
      c->timeout = (unsigned)strtoul(value, NULL, 10);
    } else if (strcmp(line, "module") == 0 && c->n_modules < MAX_MODULES) {
      c->modules[c->n_modules++] = value;
    } else if (strcmp(line, "share") == 0) {
      c->share = value;
    } else if (strcmp(line, "result_file") == 0) {
      c->result_file = value;
    } else if (strcmp(line, "arg") == 0 && c->argc < MAX_ARGS) {
      c->argv[c->argc++] = value;
    }
  }
  if (c->argc == 0) {
    Say("farm-init: the configuration names no test (no \"arg\" line)");
    return -1;
  }
  return 0;
}

static int ReadConfig(const char* path, struct Config* c) {
  static char text[MAX_CONFIG + 1];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Say("farm-init: cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, text + len, MAX_CONFIG - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
  }
  close(fd);
  text[len] = '\0';
  return ParseConfig(text, c);
}

/* The kernel opens /dev/console as init's stdio; without a console node there is none. */
static void EnsureConsole(void) {
  if (fcntl(STDOUT_FILENO, F_GETFD) != -1) return;
  int fd = open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0) return;
  for (int i = 0; i < 3; ++i) {
    if (fd != i) dup2(fd, i);
  }
  if (fd > 2) close(fd);
}

static void MountSystem(void) {
  mount("proc", "/proc", "proc", 0, NULL);
  mount("sysfs", "/sys", "sysfs", 0, NULL);
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL); /* fails without CONFIG_DEVTMPFS: keep ours */
  EnsureConsole();
  mkdir("/dev/pts", 0755);
  mkdir("/dev/shm", 01777);
  mount("devpts", "/dev/pts", "devpts", 0, NULL);
}

static void LoopbackUp(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return; /* a kernel without networking */
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
      Say("farm-init: cannot bring lo up: %s", strerror(errno));
  }
  close(s);
}

static void LoadModule(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Say("farm: insmod %s failed: %s", path, strerror(errno));
    return;
  }
  if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST) {
    Say("farm: insmod %s failed: %s", path, strerror(errno));
  }
  close(fd);
}

static void MountShare(const struct Config* c) {
  if (mount(c->share, "/farm/shared", "9p", 0, "trans=virtio,version=9p2000.L,msize=262144") != 0) {
    Say("farm: cannot mount the shared directory over 9p (the kernel needs CONFIG_NET_9P_VIRTIO "
        "and CONFIG_9P_FS): %s",
        strerror(errno));
    return;
  }
  if (chdir("/farm/shared") == 0) setenv("FARM_SHARED", "/farm/shared", 1);
}

/* Runs the test; returns its status as a shell reports it (128 + signal when killed). */
static int RunTest(const struct Config* c) {
  /* posix_spawn (a vfork, no copy of init's page tables: it costs under TCG) of the test in its
   * own process group (the timeout kills whatever it started), stdin from /dev/null. */
  posix_spawn_file_actions_t files;
  posix_spawnattr_t attr;
  sigset_t none;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int err = posix_spawn(&pid, c->argv[0], &files, &attr, c->argv, environ);
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    Say("farm-init: cannot run %s: %s", c->argv[0], strerror(err));
    return err == ENOENT ? 127 : 126;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnAlarm; /* no SA_RESTART: waitpid returns EINTR when the alarm fires */
  sigaction(SIGALRM, &sa, NULL);
  if (c->timeout > 0) alarm(c->timeout);
  int killed = 0;
  for (;;) {
    int status;
    pid_t got = waitpid(-1, &status, 0); /* pid 1 also reaps orphans */
    if (got == pid) {
      alarm(0);
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return 126;
    }
    if (got < 0 && errno == EINTR && alarm_fired && !killed) {
      Say("%s: the test ran longer than %us", kTimeout, c->timeout);
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      killed = 1;
    } else if (got < 0 && errno == ECHILD) {
      return 126; /* cannot happen: the test is our child */
    }
  }
}

static void WriteResultFile(const char* name, int rc) {
  char path[4096], text[16];
  snprintf(path, sizeof path, "/farm/shared/%s", name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    Say("farm: cannot write the result file %s: %s", path, strerror(errno));
    return;
  }
  int n = snprintf(text, sizeof text, "%d\n", rc);
  if (write(fd, text, (size_t)n) != n) Say("farm: cannot write %s: %s", path, strerror(errno));
  fsync(fd);
  close(fd);
}

int main(int argc, char** argv) {
  const int as_init = getpid() == 1;
  if (as_init) {
    MountSystem();
    setenv("PATH", "/bin:/sbin:/usr/bin:/usr/sbin", 1);
    setenv("HOME", "/root", 1);
  }
  struct Config c;
  if (ReadConfig(argc > 1 ? argv[1] : "/farm/init.conf", &c) != 0) {
    if (!as_init) return 2;
    sync();
    reboot(RB_POWER_OFF);
    for (;;) pause();
  }
  int shared = 0;
  if (as_init) {
    LoopbackUp();
    for (int i = 0; i < c.n_modules; ++i) LoadModule(c.modules[i]);
    if (chdir("/") != 0) Say("farm-init: chdir /: %s", strerror(errno));
    if (c.share != NULL) {
      MountShare(&c);
      shared = getenv("FARM_SHARED") != NULL;
    }
  }
  Say("%s", kInitStarted);
  int rc = RunTest(&c);
  if (shared && c.result_file != NULL) WriteResultFile(c.result_file, rc);
  /* Twice: the kernel's console output may cut one (agent/boot/console.h). */
  Say("%s%d", kResult, rc);
  Say("%s%d", kResult, rc);
  if (!as_init) return 0;
  sync();
  /* A kernel without power-off support halts instead; the host stops qemu at the marker anyway. */
  reboot(RB_POWER_OFF);
  reboot(RB_HALT_SYSTEM);
  for (;;) pause();
}
