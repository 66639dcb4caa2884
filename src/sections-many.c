/*
 * sections-many.c: one wait on several sections of a table at once, with one
 * sleeper (docs/sections.md, 7). Each section keeps its own wait step (its
 * sleeper count, its poll interval: shmsect_wait_step), and the sleeper
 * sleeps on all their futex words in one call: futex_waitv on Linux 5.16+,
 * IORING_OP_FUTEX_WAITV on an event loop's ring (futex-ring.h), for up to
 * SHMSECT_MANY_MAX sections. More sections than that, or a system without a
 * vectored futex sleep, poll (0.1 ms doubling to SHMSECT_POLL_MAX_MS), and
 * count themselves nowhere, so that no writer wakes for them in vain.
 */
#include "sections.h"

#include "atomics.h"
#include "sections-platform.h"

void shmsect_many_start(shmsect_many_t *m, const uint64_t *since, int64_t timeout_ms,
                        int vectored) {
  size_t i;
  m->vectored = vectored && m->n <= SHMSECT_MANY_MAX && sect__can_sleep_on_many();
  for (i = 0; i < m->n; i++) {
    if (!m->vectored) m->s[i].counts = NULL; /* polls: uncounted, no writer wakes it */
    shmsect_wait_start(&m->w[i], since[i], timeout_ms);
  }
}

void shmsect_many_end(shmsect_many_t *m) {
  size_t i;
  for (i = 0; i < m->n; i++) shmsect_wait_end(&m->s[i], &m->w[i]);
}

int shmsect_many_step(shmsect_many_t *m, int cancelled, uint64_t *slice_ns) {
  size_t i;
  int over = 0;
  uint64_t slice = UINT64_MAX, one = 0;
  /* Once one section is over, the others only read their versions (a
     cancelled step counts nothing) and the ones before are un-counted below. */
  for (i = 0; i < m->n; i++) {
    if (shmsect_wait_step(&m->s[i], &m->w[i], cancelled || over, &m->versions[i], &m->expected[i],
                          &one)) {
      over = 1;
    } else if (one < slice) {
      slice = one;
    }
  }
  if (over) {
    shmsect_many_end(m);
    return 1;
  }
  *slice_ns = slice;
  return 0;
}

size_t shmsect_many_words(const shmsect_many_t *m, uint32_t **words) {
  size_t i, n = m->vectored ? m->n : 1; /* polling: a timed sleep, on the first word */
  for (i = 0; i < n; i++) words[i] = shmsect_futex_word(&m->s[i]);
  return n;
}

/* One sleep between steps, for at most ns. */
static void many__sleep(const shmsect_many_t *m, uint64_t ns) {
  uint32_t *words[SHMSECT_MANY_MAX];
  size_t n = shmsect_many_words(m, words);
  if (n == 1) sect__sleep_on(words[0], m->expected[0], ns);
  else sect__sleep_on_many(words, m->expected, n, ns);
}

int shmsect_many_wait(shmsect_many_t *m, const volatile int *cancel) {
  uint64_t slice;
  while (!shmsect_many_step(m, cancel && relaxed_load_int(cancel), &slice)) many__sleep(m, slice);
  return 1;
}

int shmsect_many_wait_for(shmsect_many_t *m, uint64_t ns) {
  uint64_t until = sect__now_ns() + ns, slice, now;
  while (!shmsect_many_step(m, 0, &slice)) {
    now = sect__now_ns();
    if (now >= until) {
      shmsect_many_end(m); /* between calls: a caller that stops here leaves no count */
      return 0;
    }
    if (slice > until - now) slice = until - now;
    many__sleep(m, slice);
  }
  return 1;
}
