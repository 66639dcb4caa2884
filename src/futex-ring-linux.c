/*
 * futex-ring-linux.c: futex sleeps for an event loop through io_uring
 * (IORING_OP_FUTEX_WAIT, Linux 6.7+; see futex-ring.h). The ring is set up
 * by hand, as libuv does, rather than through liburing, which many systems
 * lack as a build dependency. Each sleep is a FUTEX_WAIT linked to a
 * timeout (a FUTEX_WAITV for a wait on several sections); the ring's fd
 * turns readable when one completes.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include <errno.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "futex-ring.h"

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51 /* Linux 6.7; newer than some system headers */
#endif
#ifndef IORING_OP_FUTEX_WAITV
#define IORING_OP_FUTEX_WAITV 53 /* Linux 6.7, too */
#endif
#define RING_WAITV_MAX 128        /* FUTEX_WAITV_MAX */
#define RING_FUTEX2_SIZE_U32 0x02 /* futex2 flags: a 32-bit word, shared */
#define RING_ENTRIES 256
#define RING_IGNORE UINT64_MAX /* the user_data of the linked timeouts */

struct shmsect_ring_s {
  int fd;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *sq_flags;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
  void *sq_map, *cq_map, *sqe_map;
  size_t sq_size, cq_size, sqe_size;
};

static int ring__enter(int fd, unsigned submit, unsigned flags) {
  int rc;
  do rc = (int)syscall(__NR_io_uring_enter, fd, submit, 0, flags, NULL, 0);
  while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : rc;
}

/* Whether the kernel knows IORING_OP_FUTEX_WAIT and FUTEX_WAITV (probe, as liburing does). */
static int ring__has_futex(int fd) {
  size_t size = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
  struct io_uring_probe *probe = (struct io_uring_probe *)calloc(1, size);
  int ok;
  if (!probe) return 0;
  ok = syscall(__NR_io_uring_register, fd, IORING_REGISTER_PROBE, probe, 256) == 0 &&
       probe->last_op >= IORING_OP_FUTEX_WAITV &&
       (probe->ops[IORING_OP_FUTEX_WAIT].flags & IO_URING_OP_SUPPORTED) &&
       (probe->ops[IORING_OP_FUTEX_WAITV].flags & IO_URING_OP_SUPPORTED);
  free(probe);
  return ok;
}

void shmsect_ring_close(shmsect_ring_t *r) {
  if (r->sqe_map) munmap(r->sqe_map, r->sqe_size);
  if (r->cq_map && r->cq_map != r->sq_map) munmap(r->cq_map, r->cq_size);
  if (r->sq_map) munmap(r->sq_map, r->sq_size);
  close(r->fd); /* the kernel ends the sleeps still pending */
  free(r);
}

static void *ring__map(int fd, size_t size, off_t what) {
  void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, what);
  return map == MAP_FAILED ? NULL : map;
}

int shmsect_ring_open(shmsect_ring_t **ring) {
  struct io_uring_params p;
  shmsect_ring_t *r;
  int fd;
  memset(&p, 0, sizeof p);
  fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
  if (fd < 0) return -errno; /* no io_uring, or disabled (kernel.io_uring_disabled, seccomp) */
  if (!ring__has_futex(fd)) {
    close(fd);
    return -ENOSYS;
  }
  r = (shmsect_ring_t *)calloc(1, sizeof *r);
  if (!r) {
    close(fd);
    return -ENOMEM;
  }
  r->fd = fd;
  r->sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  r->cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  if ((p.features & IORING_FEAT_SINGLE_MMAP) && r->cq_size > r->sq_size) r->sq_size = r->cq_size;
  r->sq_map = ring__map(fd, r->sq_size, IORING_OFF_SQ_RING);
  r->cq_map = (p.features & IORING_FEAT_SINGLE_MMAP)
                  ? r->sq_map
                  : ring__map(fd, r->cq_size, IORING_OFF_CQ_RING);
  r->sqe_size = p.sq_entries * sizeof(struct io_uring_sqe);
  r->sqe_map = ring__map(fd, r->sqe_size, IORING_OFF_SQES);
  if (!r->sq_map || !r->cq_map || !r->sqe_map) {
    int rc = -errno;
    shmsect_ring_close(r);
    return rc;
  }
  r->sq_head = (unsigned *)((char *)r->sq_map + p.sq_off.head);
  r->sq_tail = (unsigned *)((char *)r->sq_map + p.sq_off.tail);
  r->sq_mask = (unsigned *)((char *)r->sq_map + p.sq_off.ring_mask);
  r->sq_array = (unsigned *)((char *)r->sq_map + p.sq_off.array);
  r->sq_flags = (unsigned *)((char *)r->sq_map + p.sq_off.flags);
  r->cq_head = (unsigned *)((char *)r->cq_map + p.cq_off.head);
  r->cq_tail = (unsigned *)((char *)r->cq_map + p.cq_off.tail);
  r->cq_mask = (unsigned *)((char *)r->cq_map + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *)((char *)r->cq_map + p.cq_off.cqes);
  r->sqes = (struct io_uring_sqe *)r->sqe_map;
  *ring = r;
  return 0;
}

int shmsect_ring_fd(const shmsect_ring_t *r) { return r->fd; }

/* Submits one futex sleep (FUTEX_WAIT or FUTEX_WAITV: opcode, addr, len,
   addr2, addr3, fd as the kernel reads them) linked to a timeout of ns. */
static int ring__sleep(shmsect_ring_t *r, const struct io_uring_sqe *sleep, uint64_t ns,
                       uint64_t tag) {
  struct __kernel_timespec ts;
  unsigned tail = *r->sq_tail, mask = *r->sq_mask, i;
  struct io_uring_sqe *wait = &r->sqes[tail & mask], *timeout = &r->sqes[(tail + 1) & mask];
  int rc;
  *wait = *sleep;
  wait->flags = IOSQE_IO_LINK; /* ended by the timeout below, if no wake comes first */
  wait->user_data = tag;
  memset(timeout, 0, sizeof *timeout);
  ts.tv_sec = (long long)(ns / 1000000000u);
  ts.tv_nsec = (long long)(ns % 1000000000u);
  timeout->opcode = IORING_OP_LINK_TIMEOUT;
  timeout->addr = (uint64_t)(uintptr_t)&ts; /* read while io_uring_enter submits it */
  timeout->len = 1;
  timeout->user_data = RING_IGNORE;
  for (i = 0; i < 2; i++) r->sq_array[(tail + i) & mask] = (tail + i) & mask;
  __atomic_store_n(r->sq_tail, tail + 2, __ATOMIC_RELEASE);
  rc = ring__enter(r->fd, 2, 0);
  return rc < 0 ? rc : 0;
}

int shmsect_ring_sleep(shmsect_ring_t *r, uint32_t *word, uint32_t expected, uint64_t ns,
                       uint64_t tag) {
  struct io_uring_sqe sleep;
  memset(&sleep, 0, sizeof sleep);
  sleep.opcode = IORING_OP_FUTEX_WAIT;
  sleep.fd = RING_FUTEX2_SIZE_U32;
  sleep.addr = (uint64_t)(uintptr_t)word;
  sleep.addr2 = expected;
  sleep.addr3 = FUTEX_BITSET_MATCH_ANY;
  return ring__sleep(r, &sleep, ns, tag);
}

/* The kernel's struct futex_waitv; copied by the kernel when it takes the sleep. */
struct ring__waitv {
  uint64_t val, uaddr;
  uint32_t flags, reserved;
};

int shmsect_ring_sleepv(shmsect_ring_t *r, uint32_t *const *words, const uint32_t *expected,
                        size_t n, uint64_t ns, uint64_t tag) {
  struct ring__waitv v[RING_WAITV_MAX];
  struct io_uring_sqe sleep;
  size_t i;
  if (n == 0 || n > RING_WAITV_MAX) return -EINVAL;
  memset(v, 0, n * sizeof *v);
  for (i = 0; i < n; i++) {
    v[i].val = expected[i];
    v[i].uaddr = (uint64_t)(uintptr_t)words[i];
    v[i].flags = RING_FUTEX2_SIZE_U32;
  }
  memset(&sleep, 0, sizeof sleep);
  sleep.opcode = IORING_OP_FUTEX_WAITV;
  sleep.addr = (uint64_t)(uintptr_t)v; /* read while io_uring_enter submits it */
  sleep.len = (uint32_t)n;
  return ring__sleep(r, &sleep, ns, tag);
}

int shmsect_ring_reap(shmsect_ring_t *r, uint64_t *tags, int room) {
  unsigned head = *r->cq_head, tail, mask = *r->cq_mask;
  int n = 0;
  /* Completions the ring had no room for wait in the kernel: fetch them. */
  if (__atomic_load_n(r->sq_flags, __ATOMIC_ACQUIRE) & IORING_SQ_CQ_OVERFLOW) {
    ring__enter(r->fd, 0, IORING_ENTER_GETEVENTS);
  }
  tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
  for (; head != tail && n < room; head++) {
    uint64_t tag = r->cqes[head & mask].user_data;
    if (tag != RING_IGNORE) tags[n++] = tag;
  }
  __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
  return n;
}
