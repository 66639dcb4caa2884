/*
 * sections.c: the atomic half of the section protocol (docs/sections.md).
 *
 * Control block of a section (192 bytes, little-endian, 64-byte aligned):
 *     0  u64 commit   version * 2 + slot of the committed payload; its low
 *                     32 bits are the futex word waiters sleep on
 *     8  u64 claim    pid << 32 | start-time ticks of the writer; 0 = none
 *                     (information: the claim itself is the claim lock)
 *    16  u32 retired  0 live; 1 replaced, 2 removed (by the manager)
 *    20  u32 flags    bit 0: the claimant wakes waiters after each publish
 *    64  slot 0 header, 128  slot 1 header, each:
 *         0 u32 seq (odd while being written)  8 u64 version  16 u64 length
 *        24 u64 published (us since the epoch)  32 u32 writer pid
 *
 * Publish writes the slot that the commit word does not name (a seqlock per
 * slot: seq odd, data, header, seq even), then stores the commit word with
 * release order and wakes sleepers. A reader loads the commit word (acquire),
 * copies the named slot and accepts the copy only if that slot's seq was even
 * and unchanged around it. A writer killed mid-publish leaves the committed
 * slot untouched.
 *
 * Operating-system calls: Linux futex(FUTEX_WAIT/FUTEX_WAKE, shared); other
 * systems poll. Each section's claim lock is a System V semaphore set laid
 * out as PHP's sysvsem lays out its own (semget, semop with SEM_UNDO |
 * IPC_NOWAIT, semctl). Process identity: getpid, /proc/<pid>/stat (start
 * time, Linux), kill(pid, 0) for the listing's "alive".
 *
 * Windows: waiters always poll (no futex across processes) and there is no
 * claim lock (PHP has no sysvsem there): a claim is the compare-exchange of
 * the claim word, taking over a claimant that is gone. Identity and liveness:
 * the process id and creation time (OpenProcess, GetExitCodeProcess,
 * GetProcessTimes).
 *
 * Divisions: atomics (GCC/Clang, MSVC); the protocol; the POSIX primitives;
 * the Windows primitives.
 */
#if !defined(_WIN32)
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE
#endif

#include "sections.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shmop.h"

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h> /* MemoryBarrier for the MSVC atomics; the Windows primitives */
#endif
#if defined(_MSC_VER)
#include <intrin.h>
#endif

/* Control block offsets. */
#define CTRL_COMMIT 0
#define CTRL_CLAIM 8
#define CTRL_RETIRED 16
#define CTRL_FLAGS 20
#define CTRL_SLOT(i) (64 + 64 * (i))
#define SLOT_SEQ 0
#define SLOT_VERSION 8
#define SLOT_LENGTH 16
#define SLOT_PUBLISHED 24
#define SLOT_PID 32

#define FLAG_WAKES 1u

/* A read gives up as corrupt after this many failed tries with no publish. */
#define READ_TRIES 10000

/* Platform primitives, at the end of the file. */
static uint64_t sect__now_ns(void);      /* monotonic */
static uint64_t sect__epoch_us(void);    /* wall clock */
static void sect__sleep_on(uint32_t *word, uint32_t expected, uint64_t ns);
static void sect__wake(uint32_t *word);
static void sect__yield(void);
static int sect__take(const shmsect_t *s, uint64_t self, int lock);
static void sect__give(int lock);
static int sect__running(uint32_t pid, uint32_t start);
static uint64_t sect__identity(void);

/* ==== Atomics ==== */

/*
 * Every control-block word another process may touch at the same time is
 * accessed through these, with C11's meanings (docs/sections.md, section 3):
 * acquire loads and release stores; relaxed loads and stores (one untorn
 * access, no ordering); the two fences of the seqlock; a compare-exchange.
 * The payload itself is copied plainly: the seqlock decides if a copy counts.
 */

static uint64_t *u64_at(const shmsect_t *s, uint64_t offset) {
  return (uint64_t *)(void *)(s->base + s->control + offset);
}
static uint32_t *u32_at(const shmsect_t *s, uint64_t offset) {
  return (uint32_t *)(void *)(s->base + s->control + offset);
}

#if defined(_MSC_VER)
/*
 * MSVC. Relaxed: the compiler makes exactly one access for each volatile one,
 * and an aligned 4- or 8-byte access is one untorn instruction on x64 and
 * ARM64. On x86 only the 4-byte one is (MSVC may split a volatile 8-byte
 * access into two 4-byte ones), so there 8-byte loads and stores are lock
 * cmpxchg8b (below).
 *
 * Order. x86 and x64 are TSO: the processor keeps loads in order with later
 * loads and stores, and stores in order with earlier loads and stores. That
 * is all that acquire, release and the two fences ask (only seq_cst would
 * need more, store-to-load order, and nothing here asks for it), so there
 * order() only stops the compiler (_ReadWriteBarrier, which holds whether
 * volatile means /volatile:ms or /volatile:iso). ARM64 reorders all of them:
 * order() is a barrier instruction there (MemoryBarrier: dmb). ARM64EC
 * defines _M_X64 but runs on ARM64. _InterlockedCompareExchange64 is a full
 * barrier on every target, more than acq_rel.
 */
#if (defined(_M_IX86) || defined(_M_X64)) && !defined(_M_ARM64EC)
static void order(void) { _ReadWriteBarrier(); }
#else
static void order(void) { MemoryBarrier(); }
#endif

#if defined(_M_IX86)
/* Exchanging 0 for 0 never changes the word and returns it whole. lock
   cmpxchg8b writes even so: fine, Windows segments are always mapped
   read-write (shmop.c). */
static uint64_t relaxed_load64(const uint64_t *p) {
  return (uint64_t)_InterlockedCompareExchange64((volatile long long *)p, 0, 0);
}
static void relaxed_store64(uint64_t *p, uint64_t v) {
  long long seen = (long long)relaxed_load64(p), was;
  for (;;) {
    was = _InterlockedCompareExchange64((volatile long long *)p, (long long)v, seen);
    if (was == seen) return;
    seen = was;
  }
}
#else
static uint64_t relaxed_load64(const uint64_t *p) { return *(const volatile uint64_t *)p; }
static void relaxed_store64(uint64_t *p, uint64_t v) { *(volatile uint64_t *)p = v; }
#endif

static uint32_t relaxed_load32(const uint32_t *p) { return *(const volatile uint32_t *)p; }
static void relaxed_store32(uint32_t *p, uint32_t v) { *(volatile uint32_t *)p = v; }

/* Acquire: nothing after the load moves before it. Release: nothing before
   the store moves after it. */
static uint64_t load64(const uint64_t *p) {
  uint64_t v = relaxed_load64(p);
  order();
  return v;
}
static uint32_t load32(const uint32_t *p) {
  uint32_t v = relaxed_load32(p);
  order();
  return v;
}
static void store64(uint64_t *p, uint64_t v) {
  order();
  relaxed_store64(p, v);
}
static void store32(uint32_t *p, uint32_t v) {
  order();
  relaxed_store32(p, v);
}
/* The reader's fence keeps its copy's loads before the seq it loads next;
   the writer's keeps the odd seq before the payload's stores. */
static void fence_acquire(void) { order(); }
static void fence_release(void) { order(); }
/* Store-to-load order too (the retirement's handshake): a full barrier everywhere. */
static void fence_full(void) { MemoryBarrier(); }

/* Replaces *p by desired if it holds expected; returns whether it did. */
static int cas64(uint64_t *p, uint64_t expected, uint64_t desired) {
  return (uint64_t)_InterlockedCompareExchange64((volatile long long *)p, (long long)desired,
                                                 (long long)expected) == expected;
}

#else
/* GCC and Clang, mingw-w64 included: the C11 orders as builtins. */
static uint64_t relaxed_load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static uint32_t relaxed_load32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static void relaxed_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static void relaxed_store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static uint64_t load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static uint32_t load32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static void store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static void fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static void fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
static void fence_full(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* Replaces *p by desired if it holds expected; returns whether it did. */
static int cas64(uint64_t *p, uint64_t expected, uint64_t desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
#endif

/* ==== The protocol ==== */

int shmsect_check(const shmsect_t *s) {
  uint64_t parts[3][2];
  int i, j;
  parts[0][0] = s->control, parts[0][1] = SHMSECT_CONTROL_SIZE;
  parts[1][0] = s->data[0], parts[1][1] = s->capacity;
  parts[2][0] = s->data[1], parts[2][1] = s->capacity;
  if (s->control % 64 != 0) return SHMSECT_EBOUNDS;
  for (i = 0; i < 3; i++) {
    if (parts[i][0] > s->size || parts[i][1] > s->size - parts[i][0]) return SHMSECT_EBOUNDS;
    for (j = 0; j < i; j++) {
      int apart = parts[i][0] >= parts[j][0] + parts[j][1] || parts[j][0] >= parts[i][0] + parts[i][1];
      if (!apart) return SHMSECT_EBOUNDS;
    }
  }
  return 0;
}

uint64_t shmsect_version(const shmsect_t *s) { return load64(u64_at(s, CTRL_COMMIT)) >> 1; }

uint64_t shmsect_claimant(const shmsect_t *s) { return load64(u64_at(s, CTRL_CLAIM)); }

uint32_t shmsect_retired(const shmsect_t *s) { return load32(u32_at(s, CTRL_RETIRED)); }

/* shmsect_read; the manager's carry-over reads a retired section (retired_too). */
static int sect__read(const shmsect_t *s, void *dst, uint64_t room, shmsect_snapshot_t *out,
                      int retired_too) {
  uint64_t last_commit = 0;
  int tries = 0;
  for (;;) {
    uint64_t commit = load64(u64_at(s, CTRL_COMMIT));
    uint64_t slot = CTRL_SLOT(commit & 1);
    uint32_t seq, seq_after;
    /* After the commit's acquire load: a commit changed by the retirement is never read. */
    if (!retired_too && shmsect_retired(s) != SHMSECT_LIVE) return SHMSECT_ERETIRED;
    if (commit != last_commit) last_commit = commit, tries = 0;
    else if (++tries > READ_TRIES) return SHMSECT_ECORRUPT;
    else if (tries > 16) sect__yield();
    memset(out, 0, sizeof *out);
    if (commit >> 1 == 0) return 0; /* nothing published yet */
    seq = load32(u32_at(s, slot + SLOT_SEQ));
    if (seq & 1) continue; /* the writer has lapped us: read the new commit */
    out->version = relaxed_load64(u64_at(s, slot + SLOT_VERSION));
    out->length = relaxed_load64(u64_at(s, slot + SLOT_LENGTH));
    out->published_us = relaxed_load64(u64_at(s, slot + SLOT_PUBLISHED));
    out->writer_pid = relaxed_load32(u32_at(s, slot + SLOT_PID));
    if (out->version != commit >> 1 || out->length > s->capacity) continue;
    if (out->length <= room) shmop_copy(dst, s->base + s->data[commit & 1], (size_t)out->length);
    fence_acquire();
    seq_after = relaxed_load32(u32_at(s, slot + SLOT_SEQ));
    if (seq_after != seq) continue;
    return out->length <= room ? 0 : SHMSECT_ETOOSMALL;
  }
}

int shmsect_read(const shmsect_t *s, void *dst, uint64_t room, shmsect_snapshot_t *out) {
  return sect__read(s, dst, room, out, 0);
}

int shmsect_retire(const shmsect_t *s, uint32_t how, void *dst, uint64_t room,
                   shmsect_snapshot_t *out) {
  uint64_t *commit = u64_at(s, CTRL_COMMIT), seen;
  int rc;
  store32(u32_at(s, CTRL_RETIRED), how);
  fence_full(); /* the flag before the commit we read; publish does the mirror image */
  rc = sect__read(s, dst, room, out, 1);
  /* Change the futex word, so that a waiter between its check of the flag and
     its sleep does not sleep: the kernel finds the word changed. */
  do seen = load64(commit);
  while (!cas64(commit, seen, seen + 2));
  shmsect_wake(s);
  return rc;
}

int shmsect_publish(const shmsect_t *s, uint64_t self, const void *src, uint64_t length,
                    uint64_t *version) {
  uint64_t commit, slot;
  uint32_t seq;
  int which;
  if (shmsect_retired(s) != SHMSECT_LIVE) return SHMSECT_ERETIRED;
  if (shmsect_claimant(s) != self) return SHMSECT_ENOTWRITER;
  if (length > s->capacity) return SHMSECT_ETOOSMALL;
  commit = load64(u64_at(s, CTRL_COMMIT));
  which = (int)((commit & 1) ^ 1); /* the slot readers are not reading */
  slot = CTRL_SLOT(which);
  /* An odd seq is a writer that died mid-publish: carry on from it. */
  seq = relaxed_load32(u32_at(s, slot + SLOT_SEQ)) | 1;
  relaxed_store32(u32_at(s, slot + SLOT_SEQ), seq);
  fence_release();
  shmop_copy(s->base + s->data[which], src, (size_t)length);
  *version = (commit >> 1) + 1;
  relaxed_store64(u64_at(s, slot + SLOT_VERSION), *version);
  relaxed_store64(u64_at(s, slot + SLOT_LENGTH), length);
  relaxed_store64(u64_at(s, slot + SLOT_PUBLISHED), sect__epoch_us());
  relaxed_store32(u32_at(s, slot + SLOT_PID), (uint32_t)(self >> 32));
  store32(u32_at(s, slot + SLOT_SEQ), seq + 1);
  store64(u64_at(s, CTRL_COMMIT), *version * 2 + (uint64_t)which);
  /* Always wake: sleepers may have attached read-only, so they cannot count
     themselves anywhere a writer could check. */
  shmsect_wake(s);
  /* Retired meanwhile: the manager's carry-over may have missed this version. */
  fence_full();
  return shmsect_retired(s) != SHMSECT_LIVE ? SHMSECT_ERETIRED : 0;
}

void shmsect_wake(const shmsect_t *s) { sect__wake(u32_at(s, CTRL_COMMIT)); }

void shmsect_wait_start(shmsect_wait_t *w, uint64_t since, int64_t timeout_ms) {
  w->since = since;
  w->started_ns = sect__now_ns();
  /* A timeout too long to count in nanoseconds is no limit (and no overflow). */
  w->timeout_ms = timeout_ms > INT64_MAX / 1000000 ? -1 : timeout_ms;
  w->poll_ns = 100000; /* 0.1 ms, doubling up to SHMSECT_POLL_MAX_MS */
}

int shmsect_wait_step(const shmsect_t *s, shmsect_wait_t *w, int cancelled, uint64_t *version,
                      uint32_t *expected, uint64_t *slice_ns) {
  uint64_t commit = load64(u64_at(s, CTRL_COMMIT)), waited, limit;
  int wakes;
  *version = commit >> 1;
  if (*version != w->since || cancelled || shmsect_retired(s) != SHMSECT_LIVE) return 1;
  waited = sect__now_ns() - w->started_ns;
  limit = w->timeout_ms < 0 ? UINT64_MAX : (uint64_t)w->timeout_ms * 1000000u;
  if (waited >= limit) return 1;
  /* A claimant that wakes us lets us sleep; else poll. Either way look up
     at least once a second, in case the claim changes hands. */
  wakes = (load32(u32_at(s, CTRL_FLAGS)) & FLAG_WAKES) && shmsect_claimant(s) != 0;
  *slice_ns = wakes ? 1000000000u : w->poll_ns;
  if (w->poll_ns < (uint64_t)SHMSECT_POLL_MAX_MS * 1000000u) w->poll_ns *= 2;
  if (*slice_ns > limit - waited) *slice_ns = limit - waited;
  /* The sleeper must sleep only while the word still holds what we saw. */
  *expected = (uint32_t)commit;
  return 0;
}

int shmsect_wait(const shmsect_t *s, uint64_t since, int64_t timeout_ms,
                 const volatile int *cancel, uint64_t *version) {
  shmsect_wait_t w;
  uint32_t expected;
  uint64_t slice;
  shmsect_wait_start(&w, since, timeout_ms);
  while (!shmsect_wait_step(s, &w, cancel && *cancel, version, &expected, &slice)) {
    sect__sleep_on(u32_at(s, CTRL_COMMIT), expected, slice);
  }
  return shmsect_retired(s) != SHMSECT_LIVE ? SHMSECT_ERETIRED : 0;
}

uint32_t *shmsect_futex_word(const shmsect_t *s) { return u32_at(s, CTRL_COMMIT); }

uint64_t shmsect_self(void) { return sect__identity(); }

int shmsect_alive(uint64_t claim) {
  return claim != 0 && sect__running((uint32_t)(claim >> 32), (uint32_t)claim);
}

int shmsect_claim(const shmsect_t *s, uint64_t self, int wakes, int lock, uint64_t *holder) {
  int rc;
  if (shmsect_retired(s) != SHMSECT_LIVE) return SHMSECT_ERETIRED;
  rc = sect__take(s, self, lock);
  if (rc == SHMSECT_EBUSY) *holder = shmsect_claimant(s);
  if (rc == 0) store32(u32_at(s, CTRL_FLAGS), wakes ? FLAG_WAKES : 0);
  shmsect_wake(s); /* waiters re-read who wakes them */
  return rc;
}

int shmsect_release(const shmsect_t *s, uint64_t self, int lock) {
  int rc = SHMSECT_ENOTWRITER;
  /* Only the holder's release may touch the flags, which are the holder's. */
  if (load64(u64_at(s, CTRL_CLAIM)) == self) {
    store32(u32_at(s, CTRL_FLAGS), 0);
    if (cas64(u64_at(s, CTRL_CLAIM), self, 0)) rc = 0;
  }
  sect__give(lock);
  shmsect_wake(s);
  return rc;
}

/* ==== POSIX primitives ==== */
#if !defined(_WIN32)

#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

static uint64_t sect__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t sect__epoch_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sect__yield(void) { sched_yield(); }

#if defined(__linux__)
/* Shared (not FUTEX_PRIVATE) futexes: the sleepers are in other processes. */
static void sect__sleep_on(uint32_t *word, uint32_t expected, uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0);
}

static void sect__wake(uint32_t *word) { syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0); }

/* Start time in clock ticks since boot: field 22 of /proc/<pid>/stat. */
static uint32_t sect__start_ticks(uint32_t pid) {
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

/* ---- Futex sleeps through io_uring, for an event loop (Linux 6.7+) ---- */

#include <linux/io_uring.h>
#include <sys/mman.h>

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51 /* Linux 6.7; newer than some system headers */
#endif
#define SECT_FUTEX2_SIZE_U32 0x02 /* futex2 flags: a 32-bit word, shared */
#define SECT_RING_ENTRIES 256
#define SECT_RING_IGNORE UINT64_MAX /* the user_data of the linked timeouts */

struct shmsect_ring_s {
  int fd;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *sq_flags;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
  void *sq_map, *cq_map, *sqe_map;
  size_t sq_size, cq_size, sqe_size;
};

static int sect__ring_enter(int fd, unsigned submit, unsigned flags) {
  int rc;
  do rc = (int)syscall(__NR_io_uring_enter, fd, submit, 0, flags, NULL, 0);
  while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : rc;
}

/* Whether the kernel knows IORING_OP_FUTEX_WAIT (probe, as liburing does). */
static int sect__ring_has_futex(int fd) {
  size_t size = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
  struct io_uring_probe *probe = (struct io_uring_probe *)calloc(1, size);
  int ok;
  if (!probe) return 0;
  ok = syscall(__NR_io_uring_register, fd, IORING_REGISTER_PROBE, probe, 256) == 0 &&
       probe->last_op >= IORING_OP_FUTEX_WAIT &&
       (probe->ops[IORING_OP_FUTEX_WAIT].flags & IO_URING_OP_SUPPORTED);
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

static void *sect__ring_map(int fd, size_t size, off_t what) {
  void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, what);
  return map == MAP_FAILED ? NULL : map;
}

int shmsect_ring_open(shmsect_ring_t **ring) {
  struct io_uring_params p;
  shmsect_ring_t *r;
  int fd;
  memset(&p, 0, sizeof p);
  fd = (int)syscall(__NR_io_uring_setup, SECT_RING_ENTRIES, &p);
  if (fd < 0) return -errno; /* no io_uring, or disabled (kernel.io_uring_disabled, seccomp) */
  if (!sect__ring_has_futex(fd)) {
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
  r->sq_map = sect__ring_map(fd, r->sq_size, IORING_OFF_SQ_RING);
  r->cq_map = (p.features & IORING_FEAT_SINGLE_MMAP) ? r->sq_map
                                                      : sect__ring_map(fd, r->cq_size, IORING_OFF_CQ_RING);
  r->sqe_size = p.sq_entries * sizeof(struct io_uring_sqe);
  r->sqe_map = sect__ring_map(fd, r->sqe_size, IORING_OFF_SQES);
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

int shmsect_ring_sleep(shmsect_ring_t *r, uint32_t *word, uint32_t expected, uint64_t ns,
                       uint64_t tag) {
  struct __kernel_timespec ts;
  unsigned tail = *r->sq_tail, mask = *r->sq_mask, i;
  struct io_uring_sqe *wait = &r->sqes[tail & mask], *timeout = &r->sqes[(tail + 1) & mask];
  int rc;
  memset(wait, 0, sizeof *wait);
  wait->opcode = IORING_OP_FUTEX_WAIT;
  wait->flags = IOSQE_IO_LINK; /* ended by the timeout below, if no wake comes first */
  wait->fd = SECT_FUTEX2_SIZE_U32;
  wait->addr = (uint64_t)(uintptr_t)word;
  wait->addr2 = expected;
  wait->addr3 = FUTEX_BITSET_MATCH_ANY;
  wait->user_data = tag;
  memset(timeout, 0, sizeof *timeout);
  ts.tv_sec = (long long)(ns / 1000000000u);
  ts.tv_nsec = (long long)(ns % 1000000000u);
  timeout->opcode = IORING_OP_LINK_TIMEOUT;
  timeout->addr = (uint64_t)(uintptr_t)&ts; /* read while io_uring_enter submits it */
  timeout->len = 1;
  timeout->user_data = SECT_RING_IGNORE;
  for (i = 0; i < 2; i++) r->sq_array[(tail + i) & mask] = (tail + i) & mask;
  __atomic_store_n(r->sq_tail, tail + 2, __ATOMIC_RELEASE);
  rc = sect__ring_enter(r->fd, 2, 0);
  return rc < 0 ? rc : 0;
}

int shmsect_ring_reap(shmsect_ring_t *r, uint64_t *tags, int room) {
  unsigned head = *r->cq_head, tail, mask = *r->cq_mask;
  int n = 0;
  /* Completions the ring had no room for wait in the kernel: fetch them. */
  if (__atomic_load_n(r->sq_flags, __ATOMIC_ACQUIRE) & IORING_SQ_CQ_OVERFLOW) {
    sect__ring_enter(r->fd, 0, IORING_ENTER_GETEVENTS);
  }
  tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
  for (; head != tail && n < room; head++) {
    uint64_t tag = r->cqes[head & mask].user_data;
    if (tag != SECT_RING_IGNORE) tags[n++] = tag;
  }
  __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
  return n;
}
#else
/* No futex: sleepers poll (shmsect_wait never relies on a wake here). */
static void sect__sleep_on(uint32_t *word, uint32_t expected, uint64_t ns) {
  struct timespec ts;
  (void)word, (void)expected;
  if (ns > 1000000u * SHMSECT_POLL_MAX_MS) ns = 1000000u * SHMSECT_POLL_MAX_MS;
  ts.tv_sec = 0;
  ts.tv_nsec = (long)ns;
  nanosleep(&ts, NULL);
}

static void sect__wake(uint32_t *word) { (void)word; }

static uint32_t sect__start_ticks(uint32_t pid) {
  (void)pid;
  return 0; /* unknown: liveness falls back to the pid alone */
}
#endif



static int sect__running(uint32_t pid, uint32_t start) {
  uint32_t now;
  /* kill() reads 0 and negative pids as process groups: no process has them. */
  if (pid == 0 || pid > INT_MAX) return 0;
  if (kill((pid_t)pid, 0) != 0 && errno != EPERM) return 0;
  now = sect__start_ticks(pid);
  /* A different start time is another process that reuses the pid. */
  return start == 0 || now == 0 || now == start;
}

static uint64_t sect__identity(void) {
  static uint64_t identity;
  static pid_t owner;
  pid_t pid = getpid();
  if (owner != pid) { /* first call, or a fork */
    identity = (uint64_t)(uint32_t)pid << 32 | sect__start_ticks((uint32_t)pid);
    owner = pid;
  }
  return identity;
}

/* PHP's sysvsem layout: semaphore 0 is the lock, 1 counts PHP's users, 2 guards PHP's setup. */
union sect__semun {
  int val;
  struct semid_ds *buf;
  unsigned short *array;
};

int shmsect_lock_create(int32_t key, int perms, int *id) {
  unsigned short start[3] = {1, 1, 0}; /* free; a usage count PHP never sees as 1; setup done */
  union sect__semun arg;
  int made = semget((key_t)key, 3, (perms & 0777) | IPC_CREAT | IPC_EXCL), err;
  if (made < 0) return -errno;
  arg.array = start;
  if (semctl(made, 0, SETALL, arg) != 0) {
    err = errno;
    semctl(made, 0, IPC_RMID);
    return -err;
  }
  *id = made;
  return 0;
}

int shmsect_lock_check(int id, int32_t key, uint32_t uid, uint32_t cuid) {
  struct semid_ds ds;
  union sect__semun arg;
  if (id < 0) return SHMSECT_EFOREIGN;
  arg.buf = &ds;
  if (semctl(id, 0, IPC_STAT, arg) != 0) return -errno;
  if ((int32_t)ds.sem_perm.__key != key || ds.sem_nsems != 3 || ds.sem_perm.uid != uid ||
      ds.sem_perm.cuid != cuid) {
    return SHMSECT_EFOREIGN;
  }
  return 0;
}

int shmsect_lock_remove(int id) { return semctl(id, 0, IPC_RMID) == 0 ? 0 : -errno; }

/* The claim: semaphore 0, never waiting (IPC_NOWAIT); SEM_UNDO gives it back
   when this process dies. The claim word then names the new holder. */
static int sect__take(const shmsect_t *s, uint64_t self, int lock) {
  struct sembuf take = {0, -1, SEM_UNDO | IPC_NOWAIT};
  while (semop(lock, &take, 1) != 0) {
    if (errno == EAGAIN) return SHMSECT_EBUSY;
    if (errno != EINTR) return -errno;
  }
  store64(u64_at(s, CTRL_CLAIM), self);
  return 0;
}

/* Gives semaphore 0 back, cancelling the undo entry the take made. A set that
   is gone (EIDRM, EINVAL: the table was removed) holds no claim to give. */
static void sect__give(int lock) {
  struct sembuf give = {0, 1, SEM_UNDO | IPC_NOWAIT};
  while (semop(lock, &give, 1) != 0 && errno == EINTR) {
  }
}

#endif /* POSIX primitives */

/* ==== Windows primitives ==== */
#if defined(_WIN32)

/*
 * No futex across processes: WaitOnAddress wakes only the threads of its own
 * process. So waiters poll, every sleep capped at SHMSECT_POLL_MAX_MS whatever
 * the claimant's flags say, and a wake does nothing; a cancelled wait (shm.cc)
 * is noticed at its next poll.
 *
 * Sleep() rounds up to the system timer tick (15.6 ms unless some code in the
 * process raised the resolution), which would make the first 0.1 ms poll, and
 * the 10 ms bound, 16 ms. A high-resolution waitable timer (Windows 10 1803
 * and later) sleeps for the time asked; where it cannot be made, Sleep().
 */
#ifndef CREATE_WAITABLE_TIMER_HIGH_RESOLUTION
#define CREATE_WAITABLE_TIMER_HIGH_RESOLUTION 0x00000002
#endif

static uint64_t sect__now_ns(void) {
  LARGE_INTEGER count, hz;
  QueryPerformanceCounter(&count);
  QueryPerformanceFrequency(&hz);
  /* In two parts: count * 1e9 overflows after 15 minutes of a 10 MHz counter. */
  return (uint64_t)(count.QuadPart / hz.QuadPart) * 1000000000u +
         (uint64_t)(count.QuadPart % hz.QuadPart) * 1000000000u / (uint64_t)hz.QuadPart;
}

static uint64_t sect__epoch_us(void) {
  FILETIME now;
  ULARGE_INTEGER ticks;
  GetSystemTimePreciseAsFileTime(&now);
  ticks.LowPart = now.dwLowDateTime;
  ticks.HighPart = now.dwHighDateTime;
  /* 100 ns ticks since 1601-01-01; 11644473600 s from there to 1970-01-01. */
  return (ticks.QuadPart - 116444736000000000u) / 10u;
}

static void sect__yield(void) { SwitchToThread(); }

static void sect__sleep_on(uint32_t *word, uint32_t expected, uint64_t ns) {
  HANDLE timer;
  LARGE_INTEGER due;
  (void)word, (void)expected;
  if (ns > 1000000u * SHMSECT_POLL_MAX_MS) ns = 1000000u * SHMSECT_POLL_MAX_MS;
  timer = CreateWaitableTimerExW(NULL, NULL, CREATE_WAITABLE_TIMER_HIGH_RESOLUTION,
                                 TIMER_MODIFY_STATE | SYNCHRONIZE);
  due.QuadPart = -(LONGLONG)(ns / 100u); /* negative: relative, in 100 ns units */
  if (timer && SetWaitableTimer(timer, &due, 0, NULL, NULL, FALSE)) {
    WaitForSingleObject(timer, INFINITE);
  } else {
    Sleep((DWORD)((ns + 999999u) / 1000000u));
  }
  if (timer) CloseHandle(timer);
}

static void sect__wake(uint32_t *word) { (void)word; }

/* The low 32 bits of a process's creation time (100 ns units), 0 if unknown. */
static uint32_t sect__created(HANDLE process) {
  FILETIME created, exited, kernel, user;
  if (!GetProcessTimes(process, &created, &exited, &kernel, &user)) return 0;
  return created.dwLowDateTime;
}

static int sect__running(uint32_t pid, uint32_t start) {
  HANDLE process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
  DWORD code;
  uint32_t now;
  /* Denied: it exists (as kill's EPERM says on POSIX). Anything else: no such pid. */
  if (!process) return GetLastError() == ERROR_ACCESS_DENIED;
  /* A process object outlives its process while handles to it are open, so
     ask whether it has exited. (One that exits with code 259, STILL_ACTIVE,
     looks alive until its object goes.) */
  if (!GetExitCodeProcess(process, &code)) code = STILL_ACTIVE; /* cannot tell */
  now = sect__created(process);
  CloseHandle(process);
  if (code != STILL_ACTIVE) return 0;
  /* A different creation time is another process that reuses the pid. */
  return start == 0 || now == 0 || now == start;
}

static uint64_t sect__identity(void) {
  static uint64_t identity; /* no fork on Windows: it never changes */
  uint64_t id = relaxed_load64(&identity);
  if (id == 0) { /* threads that race here all store the same value */
    id = ((uint64_t)GetCurrentProcessId() << 32) | sect__created(GetCurrentProcess());
    relaxed_store64(&identity, id);
  }
  return id;
}

/*
 * No claim lock: PHP has no sysvsem on Windows, so there is nothing both
 * could share (PHP's helper refuses to claim there). The lock is -1, and a
 * claim or release is the compare-exchange of the claim word alone; a
 * claimant that is gone is taken over.
 */
int shmsect_lock_create(int32_t key, int perms, int *id) {
  (void)key, (void)perms;
  *id = -1;
  return 0;
}

int shmsect_lock_check(int id, int32_t key, uint32_t uid, uint32_t cuid) {
  (void)key, (void)uid, (void)cuid;
  return id == -1 ? 0 : SHMSECT_EFOREIGN;
}

int shmsect_lock_remove(int id) {
  (void)id;
  return 0;
}

static int sect__take(const shmsect_t *s, uint64_t self, int lock) {
  uint64_t *word = u64_at(s, CTRL_CLAIM);
  (void)lock;
  for (;;) {
    uint64_t current = load64(word);
    if (current == self || shmsect_alive(current)) return SHMSECT_EBUSY;
    /* Free, or held by a process that is gone: take it. */
    if (cas64(word, current, self)) return 0;
  }
}

static void sect__give(int lock) { (void)lock; }

#endif /* Windows primitives */

/* ==== Elsewhere ==== */
#if !defined(__linux__)
/* No io_uring: event loops wait on threads (shmsect_wait). Only open is ever called. */
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
int shmsect_ring_reap(shmsect_ring_t *ring, uint64_t *tags, int room) {
  (void)ring, (void)tags, (void)room;
  return 0;
}
void shmsect_ring_close(shmsect_ring_t *ring) { (void)ring; }
#endif /* no io_uring */
