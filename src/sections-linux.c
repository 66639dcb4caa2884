/*
 * sections-linux.c: the Linux hooks of the section protocol
 * (sections-platform.h): sleeps and wakes on the commit word's futex,
 * shared (not FUTEX_PRIVATE) because the sleepers are in other processes,
 * and process start times from /proc/<pid>/stat.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sections-platform.h"

void sect__sleep_on(uint32_t *word, uint32_t expected, uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0);
}

void sect__wake(uint32_t *word) { syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0); }

/* Start time in clock ticks since boot: field 22 of /proc/<pid>/stat. */
uint32_t sect__start_ticks(uint32_t pid) {
  char path[32], text[1024], *p;
  unsigned long long ticks = 0;
  size_t n;
  int field;
  FILE *f;
  snprintf(path, sizeof path, "/proc/%u/stat", pid);
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
