/*
 * sections-linux.c: the Linux hooks of the section protocol
 * (sections-platform.h): sleeps and wakes on the commit word's futex,
 * shared (not FUTEX_PRIVATE) because the sleepers are in other processes,
 * and process start times from /proc/<pid>/stat.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "sections-platform.h"
#include "sections.h"

void sect__sleep_on(uint32_t *word, uint32_t expected, uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0);
}

void sect__wake(uint32_t *word) { syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0); }

/* futex_waitv (Linux 5.16): newer than some system headers. */
#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#define SECT_FUTEX2_SIZE_U32 \
  0x02 /* a 32-bit word; shared (no FUTEX2_PRIVATE): other processes wake it */
struct sect__waitv {
  uint64_t val, uaddr;
  uint32_t flags, reserved;
};

/* 0 unknown, 1 yes, 2 no: learnt once (racing threads learn the same). */
static uint32_t many_known;

int sect__can_sleep_on_many(void) {
  uint32_t known = relaxed_load32(&many_known);
  if (!known) {
    /* No words at all: EINVAL where the call exists, ENOSYS (or seccomp's EPERM) where not. */
    long rc = syscall(SYS_futex_waitv, NULL, 0, 0, NULL, CLOCK_MONOTONIC);
    known = rc < 0 && errno == EINVAL ? 1 : 2;
    relaxed_store32(&many_known, known);
  }
  return known == 1;
}

void sect__sleep_on_many(uint32_t *const *words, const uint32_t *expected, size_t n, uint64_t ns) {
  struct sect__waitv v[SHMSECT_MANY_MAX];
  struct timespec at;
  size_t i;
  memset(v, 0, n * sizeof *v);
  for (i = 0; i < n; i++) {
    v[i].val = expected[i];
    v[i].uaddr = (uint64_t)(uintptr_t)words[i];
    v[i].flags = SECT_FUTEX2_SIZE_U32;
  }
  clock_gettime(CLOCK_MONOTONIC, &at); /* futex_waitv's timeout is absolute */
  at.tv_sec += (time_t)(ns / 1000000000u);
  at.tv_nsec += (long)(ns % 1000000000u);
  if (at.tv_nsec >= 1000000000L) at.tv_sec++, at.tv_nsec -= 1000000000L;
  syscall(SYS_futex_waitv, v, (unsigned)n, 0, &at, CLOCK_MONOTONIC);
}

/*
 * Start time in clock ticks since boot: field 22 of /proc/<pid>/stat. Read as
 * /proc/./<pid>/stat, the same file: qemu-user (arm64 containers on x86 hosts)
 * answers /proc/self/stat and /proc/<its own pid>/stat itself, with a start time
 * that differs from the kernel's, so other processes would take a live writer
 * for a dead one; it passes this path through to the kernel.
 */
uint32_t sect__start_ticks(uint32_t pid) {
  char path[40], text[1024], *p;
  unsigned long long ticks = 0;
  size_t n;
  int field;
  FILE *f;
  snprintf(path, sizeof path, "/proc/./%u/stat", pid);
  f = fopen(path, "r");
  if (!f) return 0;
  n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  p = strrchr(text, ')'); /* the command name may hold spaces and parentheses */
  if (!p) return 0;
  for (field = 2; field < 22 && p; field++) p = strchr(p + 1, ' ');
  if (p) ticks = strtoull(p + 1, NULL, 10);
  return (uint32_t)ticks;
}
