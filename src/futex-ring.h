/*
 * futex-ring.h: futex sleeps for an event loop, on the word that
 * shmsect_futex_word() names (futex-ring-linux.c; futex-ring-none.c on every
 * other system).
 *
 * Linux io_uring (IORING_OP_FUTEX_WAIT, 6.7+): the ring's fd turns readable
 * when a sleep ends, so the loop's own poll wakes the JavaScript thread
 * directly when a writer wakes the futex (one wake-up, as for a socket,
 * instead of a thread's and then the loop's). open returns -ENOSYS (or
 * another -errno) where this is not available; callers then wait on threads
 * with shmsect_wait. sleep starts one sleep, reported by reap with its tag;
 * it ends at a wake, when the word no longer holds expected, or after ns
 * nanoseconds. sleepv sleeps on n words at once (1 to 128: IORING_OP_FUTEX_WAITV)
 * and ends when any of them is woken or differs from its expected value.
 */
#ifndef SHMSECT_FUTEX_RING_H
#define SHMSECT_FUTEX_RING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmsect_ring_s shmsect_ring_t;
int shmsect_ring_open(shmsect_ring_t **ring);
int shmsect_ring_fd(const shmsect_ring_t *ring);
int shmsect_ring_sleep(shmsect_ring_t *ring, uint32_t *word, uint32_t expected, uint64_t ns,
                       uint64_t tag);
int shmsect_ring_sleepv(shmsect_ring_t *ring, uint32_t *const *words, const uint32_t *expected,
                        size_t n, uint64_t ns, uint64_t tag);
int shmsect_ring_reap(shmsect_ring_t *ring, uint64_t *tags, int room);
void shmsect_ring_close(shmsect_ring_t *ring);

#ifdef __cplusplus
}
#endif

#endif /* SHMSECT_FUTEX_RING_H */
