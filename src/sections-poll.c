/*
 * sections-poll.c: the section protocol's sleep hooks for POSIX systems
 * without a futex that works across processes (macOS, the BSDs): sleepers
 * poll, at least every SHMSECT_POLL_MAX_MS, and shmsect_wait never relies
 * on a wake. Start times are unknown there, so liveness rests on the pid.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include <time.h>

#include "sections-platform.h"
#include "sections.h"

void sect__sleep_on(uint32_t *word, uint32_t expected, uint64_t ns) {
  struct timespec ts;
  (void)word, (void)expected;
  if (ns > 1000000u * SHMSECT_POLL_MAX_MS) ns = 1000000u * SHMSECT_POLL_MAX_MS;
  ts.tv_sec = 0;
  ts.tv_nsec = (long)ns;
  nanosleep(&ts, NULL);
}

void sect__wake(uint32_t *word) { (void)word; }

/* No vectored sleep: a wait on several sections polls (sections-many.c). */
int sect__can_sleep_on_many(void) { return 0; }
void sect__sleep_on_many(uint32_t *const *words, const uint32_t *expected, size_t n, uint64_t ns) {
  (void)n;
  sect__sleep_on(words[0], expected[0], ns);
}

uint32_t sect__start_ticks(uint32_t pid) {
  (void)pid;
  return 0; /* unknown: liveness falls back to the pid alone */
}
