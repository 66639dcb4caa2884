/*
 * futex-ring-none.c: no io_uring (every system but Linux; see futex-ring.h).
 * shmsect_ring_open says -ENOSYS, so event loops wait on threads with
 * shmsect_wait; the other functions are never reached.
 */
#include <errno.h>

#include "futex-ring.h"

int shmsect_ring_open(shmsect_ring_t **ring) {
  (void)ring;
  return -ENOSYS;
}
int shmsect_ring_fd(const shmsect_ring_t *ring) { return (void)ring, -1; }
int shmsect_ring_sleep(shmsect_ring_t *ring, uint32_t *word, uint32_t expected, uint64_t ns,
                       uint64_t tag) {
  (void)ring, (void)word, (void)expected, (void)ns, (void)tag;
  return -ENOSYS;
}
int shmsect_ring_sleepv(shmsect_ring_t *ring, uint32_t *const *words, const uint32_t *expected,
                        size_t n, uint64_t ns, uint64_t tag) {
  (void)ring, (void)words, (void)expected, (void)n, (void)ns, (void)tag;
  return -ENOSYS;
}
int shmsect_ring_reap(shmsect_ring_t *ring, uint64_t *tags, int room) {
  (void)ring, (void)tags, (void)room;
  return 0;
}
void shmsect_ring_close(shmsect_ring_t *ring) { (void)ring; }
