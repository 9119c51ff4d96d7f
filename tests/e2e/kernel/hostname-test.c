// The kernel bisect fixture's test (see make-linux-repo.sh): a hostname of the full
// __NEW_UTS_LEN (64) bytes must be accepted by sethostname() and read back by uname().
// Exit status 0 when the kernel behaves, 1 when it does not (git bisect run's contract).
//
// Run as the farm's payload it only exits with its verdict. Run as init (pid 1, the seed's
// hand-written loop) it also prints "FARM-TEST: PASS" or "FARM-TEST: FAIL" on the console and
// exits, which panics the kernel; with `panic=-1` and qemu's `-no-reboot` qemu then stops.
// Build: gcc -static -O2 -o hostname-test hostname-test.c
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

static int Check(void) {
  char name[64];
  memset(name, 'h', sizeof name);
  if (sethostname(name, sizeof name) != 0) {
    printf("hostname-test: sethostname(<64 bytes>) failed: %s\n", strerror(errno));
    return 1;
  }
  struct utsname u;
  if (uname(&u) != 0) {
    printf("hostname-test: uname failed: %s\n", strerror(errno));
    return 1;
  }
  if (strlen(u.nodename) != sizeof name || memcmp(u.nodename, name, sizeof name) != 0) {
    printf("hostname-test: uname() returned nodename \"%s\" (%zu bytes), want 64 bytes\n",
           u.nodename, strlen(u.nodename));
    return 1;
  }
  printf("hostname-test: a 64-byte hostname is accepted (kernel %s)\n", u.release);
  return 0;
}

int main(void) {
  int status = Check();
  if (getpid() == 1) {
    printf("FARM-TEST: %s\n", status == 0 ? "PASS" : "FAIL");
    fflush(stdout);
  }
  return status;
}
