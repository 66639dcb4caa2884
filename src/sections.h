/*
 * sections.h: the section protocol of nodejs-shm in plain C99 (docs/sections.md).
 *
 * One segment holds a header, a table of named sections, and per section a
 * control block and two data areas. One process at a time (the claimant)
 * publishes into a section; any number of processes read it. A publish fills
 * the data area readers are not reading, then flips the section's commit word:
 * readers never see a torn payload, and a writer killed mid-publish loses only
 * the publish it had not finished.
 *
 * The header and table are written and checked by the language bindings
 * (lib/section-layout.js, php/src/); this file owns what must be atomic:
 * publish, read, wait, claim and release on one section's control block.
 *
 * Return values: 0 or a positive count on success, a negative errno value for
 * an operating-system failure, or one of the SHMSECT_E* codes below.
 */
#ifndef SECTIONS_H
#define SECTIONS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  SHMSECT_EBOUNDS = -20001,    /* the section does not fit its segment, or is misaligned */
  SHMSECT_ECORRUPT = -20002,   /* a control word holds what no writer writes */
  SHMSECT_ETOOSMALL = -20003,  /* the payload does not fit the buffer given (or the capacity) */
  SHMSECT_ENOTWRITER = -20004, /* publish without holding the claim */
  SHMSECT_EBUSY = -20005,      /* claimed by another live process */
  SHMSECT_ERETIRED = -20006,   /* the table was replaced or removed (docs/sections.md, section 8) */
  SHMSECT_EFOREIGN = -20007,   /* a claim lock that is not the one the table's manager made */
  SHMSECT_ESTARVED = -20008    /* no stable copy for SHMSECT_READ_MAX_MS */
};

/* The retired word of a control block (docs/sections.md, section 1.3). */
enum { SHMSECT_LIVE = 0, SHMSECT_REPLACED = 1, SHMSECT_REMOVED = 2 };

/* Sizes of the layout (docs/sections.md). */
#define SHMSECT_CONTROL_SIZE 192
#define SHMSECT_DATA_ALIGN 64
#define SHMSECT_DATA_SHIFT 24 /* data areas start 24 bytes past a 64-byte boundary */

/* Where one section lives in an attached segment. */
typedef struct shmsect_s {
  unsigned char *base;   /* the attached segment */
  uint64_t size;         /* its size, as the kernel reports it */
  uint64_t control;      /* offset of the control block */
  uint64_t data[2];      /* offsets of the two data areas */
  uint64_t capacity;     /* bytes in each data area */
  unsigned char *counts; /* the segment mapped read-write, where waiters count themselves
                            (shmop_writable); NULL: they cannot, and poll */
} shmsect_t;

/* What a reader saw. */
typedef struct shmsect_snapshot_s {
  uint64_t version;      /* 0: nothing published yet */
  uint64_t length;       /* bytes of payload */
  uint64_t published_us; /* when it was published, microseconds since the Unix epoch */
  uint32_t writer_pid;   /* who published it */
} shmsect_snapshot_t;

/* Checks that every part of the section lies inside the segment, aligned,
   and that the parts do not overlap. Returns 0 or SHMSECT_EBOUNDS. */
int shmsect_check(const shmsect_t *s);

/* ==== Reading ==== */

/* The committed version (0 before the first publish). */
uint64_t shmsect_version(const shmsect_t *s);

/*
 * Copies the committed payload into dst (room bytes) and describes it in *out.
 * Returns 0; SHMSECT_ETOOSMALL when it does not fit (out->length says how much
 * room it needs, nothing is copied); SHMSECT_ECORRUPT when the control block
 * holds impossible values; SHMSECT_ERETIRED once the table is retired.
 * Retries while a writer overtakes the copy, for at most SHMSECT_READ_MAX_MS
 * in all: then SHMSECT_ECORRUPT if the commit word stood still all that time,
 * else SHMSECT_ESTARVED (a writer that keeps the slots odd or changing, as a
 * hostile or broken one can).
 */
#define SHMSECT_READ_MAX_MS 100
int shmsect_read(const shmsect_t *s, void *dst, uint64_t room, shmsect_snapshot_t *out);

/* The retired word: SHMSECT_LIVE, SHMSECT_REPLACED or SHMSECT_REMOVED. */
uint32_t shmsect_retired(const shmsect_t *s);

/*
 * The manager's half of retiring a table, section by section: marks the
 * section retired (`how`), then copies its last complete payload into dst as
 * shmsect_read does (the carry-over), then changes the futex word and wakes
 * every waiter. A publish either reaches that copy or fails with
 * SHMSECT_ERETIRED, never neither. Returns as shmsect_read.
 */
int shmsect_retire(const shmsect_t *s, uint32_t how, void *dst, uint64_t room,
                   shmsect_snapshot_t *out);

/* ==== Writing ==== */

/*
 * This process's identity in a claim word: pid << 32 | low 32 bits of its
 * start time (clock ticks since boot on Linux; on Windows its creation time,
 * in 100 ns units; 0 where unknown), so that a process that reuses a dead
 * claimant's pid is not mistaken for it.
 */
uint64_t shmsect_self(void);

/* Whether the process named by a claim word is still running. */
int shmsect_alive(uint64_t claim);

/*
 * Whether the claimant a claim word names still holds its claim. With a claim
 * lock: whether the lock is taken, which the kernel undoes when its holder
 * dies, so the answer holds where the word's pid means nothing to this
 * process (another PID namespace of the same IPC namespace: another
 * container) and needs no /proc. Without one (-1: Windows), or a lock that is
 * gone or that this process may not read: shmsect_alive(claim).
 */
int shmsect_claim_alive(uint64_t claim, int lock);

/*
 * Claims the section for this process (identity `self`), never waiting for
 * another process. POSIX: `lock` is the section's claim lock (the semaphore
 * set the manager made, shmsect_lock_create); taking semaphore 0 with
 * SEM_UNDO | IPC_NOWAIT is the claim, and the kernel gives it back when the
 * holder dies. The claim word then records `self`, as information. Windows
 * (lock -1): the compare-exchange of the claim word, taking over a claimant
 * that is gone. `wakes` records that this writer wakes waiters after each
 * publish. Returns 0, SHMSECT_EBUSY (*holder: the claim word), SHMSECT_ERETIRED
 * or -errno (-EIDRM, -EINVAL: the lock is gone).
 */
int shmsect_claim(const shmsect_t *s, uint64_t self, int wakes, int lock, uint64_t *holder);

/*
 * Gives up a claim this process took (the caller keeps count: on POSIX the
 * semaphore is given back whatever the claim word says). Clears the claim word
 * if it holds `self`. Returns 0, or SHMSECT_ENOTWRITER when the word did not
 * hold `self`. A lock that is gone (table removed) counts as given back.
 */
int shmsect_release(const shmsect_t *s, uint64_t self, int lock);

/* The claim word (0: unclaimed). */
uint64_t shmsect_claimant(const shmsect_t *s);

/*
 * Publishes length bytes as the next version, if `self` holds the claim.
 * Returns 0 and the new version in *version; SHMSECT_ENOTWRITER;
 * SHMSECT_ETOOSMALL when length exceeds the capacity.
 */
int shmsect_publish(const shmsect_t *s, uint64_t self, const void *src, uint64_t length,
                    uint64_t *version);

/* ==== Waiting ==== */

/*
 * Blocks until the version differs from `since`, timeout_ms passes (-1: no
 * limit), *cancel becomes non-zero or the table is retired. Linux sleeps on a
 * futex that writers wake; a writer that does not wake (see shmsect_claim) is
 * noticed within SHMSECT_POLL_MAX_MS. Other systems, Windows included, always
 * poll, at least every SHMSECT_POLL_MAX_MS. Returns 0 with the version then in
 * *version, or SHMSECT_ERETIRED.
 */
int shmsect_wait(const shmsect_t *s, uint64_t since, int64_t timeout_ms, const volatile int *cancel,
                 uint64_t *version);

/*
 * The hot path before a wait: checks the commit word in a tight loop, with
 * the CPU's pause instruction, for up to spin_ns nanoseconds. Returns 1 with
 * the new version in *version as soon as it differs from `since`, else 0
 * (then sleep with shmsect_wait). Costs a whole core while it spins.
 */
int shmsect_spin(const shmsect_t *s, uint64_t since, uint64_t spin_ns, uint64_t *version);

/*
 * The same wait, one step at a time, for callers that sleep their own way (an
 * event loop): start, then step until it returns 1 (over: *version is the
 * version then); on 0, sleep on shmsect_futex_word() while it holds *expected,
 * for at most *slice_ns, and step again. A step that returns 0 may have
 * counted this waiter among the section's sleepers (docs/sections.md, 7); the
 * next step un-counts it, and so does shmsect_wait_end for a wait abandoned
 * between steps.
 */
typedef struct shmsect_wait_s {
  uint64_t since, started_ns, poll_ns;
  int64_t timeout_ms;
  int counted; /* counted among the sleepers */
} shmsect_wait_t;
void shmsect_wait_start(shmsect_wait_t *w, uint64_t since, int64_t timeout_ms);
int shmsect_wait_step(const shmsect_t *s, shmsect_wait_t *w, int cancelled, uint64_t *version,
                      uint32_t *expected, uint64_t *slice_ns);
void shmsect_wait_end(const shmsect_t *s, shmsect_wait_t *w);
uint32_t *shmsect_futex_word(const shmsect_t *s);

/* A started wait, for at most ns nanoseconds more (a caller that must look
   up now and then, as a blocking wait in a thread that may be terminated).
   Returns 1 when the wait is over (*version: the version then), 0 when ns
   passed first, un-counted from the sleepers; the wait goes on from where it
   was at the next call. */
int shmsect_wait_for(const shmsect_t *s, shmsect_wait_t *w, uint64_t ns, uint64_t *version);

/* Wakes every thread waiting on the section (to make a cancelled wait return).
   Where waiters poll (not Linux), there is nothing to wake: a cancelled wait
   returns at its next poll. */
void shmsect_wake(const shmsect_t *s);

#define SHMSECT_POLL_MAX_MS 10

/*
 * One wait on n sections of a table at once, with one sleeper
 * (sections-many.c). The caller gives n of each: s (copies of the sections:
 * start may clear their counts), w, versions and expected. start with each
 * section's since (vectored: sleep on every futex word at once where the
 * system can and n <= SHMSECT_MANY_MAX; else poll); step until it returns 1
 * (some version differs from its since, a section is retired, the timeout
 * passed or cancelled; versions[] holds every version then); on 0, sleep on
 * the words shmsect_many_words() names, while each holds its expected[], for
 * at most *slice_ns, and step again. end un-counts a wait abandoned between
 * steps. wait blocks until over (or *cancel); wait_for for at most ns
 * (returns 0 when ns passed first, un-counted).
 */
#define SHMSECT_MANY_MAX 128 /* futex_waitv's limit (FUTEX_WAITV_MAX) */
typedef struct shmsect_many_s {
  shmsect_t *s;
  shmsect_wait_t *w;
  uint64_t *versions;
  uint32_t *expected;
  size_t n;
  int vectored; /* set by start */
} shmsect_many_t;
void shmsect_many_start(shmsect_many_t *m, const uint64_t *since, int64_t timeout_ms, int vectored);
int shmsect_many_step(shmsect_many_t *m, int cancelled, uint64_t *slice_ns);
void shmsect_many_end(shmsect_many_t *m);
size_t shmsect_many_words(const shmsect_many_t *m, uint32_t **words); /* room: SHMSECT_MANY_MAX */
int shmsect_many_wait(shmsect_many_t *m, const volatile int *cancel);
int shmsect_many_wait_for(shmsect_many_t *m, uint64_t ns);

/* ==== Claim locks (POSIX) ==== */

/*
 * One System V semaphore set of 3 per section, made by the table's manager
 * and recorded in the table, laid out as PHP's sem_get($key, 1) lays out its
 * own so that PHP's sem_acquire($sem, true) takes the same semaphore:
 * semaphore 0 is the lock (1: free), 1 counts PHP's users, 2 guards PHP's
 * setup. create makes the set (IPC_CREAT | IPC_EXCL: -EEXIST when the key is
 * taken) and sets it to {1, 1, 0}: the usage count starts at 1 and is never
 * undone, so a PHP process joining never counts itself the first user, and
 * never resets a held lock. check verifies the set with this id is that
 * set: its key, 3 semaphores, owner and creator as given (the segment's);
 * it returns 0, SHMSECT_EFOREIGN or -errno. remove deletes it.
 *
 * Windows has none (PHP has no sysvsem there): create gives *id = -1, check
 * accepts only -1, remove does nothing.
 */
int shmsect_lock_create(int32_t key, int perms, int *id);
int shmsect_lock_check(int id, int32_t key, uint32_t uid, uint32_t cuid);
int shmsect_lock_remove(int id);

#ifdef __cplusplus
}
#endif

/* The event-loop sleeper for shmsect_futex_word() is declared apart
   (futex-ring.h); included so that glue using both needs one header. */
#include "futex-ring.h"

#endif /* SECTIONS_H */
