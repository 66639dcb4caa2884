/*
 * sections.c: the section protocol (docs/sections.md): what must be atomic
 * on one section's control block. Platform hooks (clocks, sleeps, wakes,
 * the claim lock, identity) are in sections-platform.h; atomics in atomics.h.
 *
 * Control block of a section (192 bytes, little-endian, 64-byte aligned):
 *     0  u64 commit   version * 2 + slot of the committed payload; its low
 *                     32 bits are the futex word waiters sleep on
 *     8  u64 claim    pid << 32 | start-time ticks of the writer; 0 = none
 *                     (information: the claim itself is the claim lock)
 *    16  u32 retired  0 live; 1 replaced, 2 removed (by the manager)
 *    20  u32 flags    bit 0: the claimant wakes waiters after each publish
 *    24  u32 sleepers waiters asleep on the futex word, counted by themselves
 *    64  slot 0 header, 128  slot 1 header, each:
 *         0 u32 seq (odd while being written)  8 u64 version  16 u64 length
 *        24 u64 published (us since the epoch)  32 u32 writer pid
 *
 * Publish writes the slot that the commit word does not name (a seqlock per
 * slot: seq odd, data, header, seq even), then stores the commit word with
 * release order and wakes sleepers, if any are counted (no system call
 * otherwise). A reader loads the commit word (acquire),
 * copies the named slot and accepts the copy only if that slot's seq was even
 * and unchanged around it. A writer killed mid-publish leaves the committed
 * slot untouched.
 *
 * Platform files (binding.gyp picks them): sections-posix.c with
 * sections-linux.c (futex) or sections-poll.c (polling) on POSIX systems,
 * where a claim is the section's claim lock (a semaphore taken without
 * waiting, SEM_UNDO); sections-win.c on Windows, where waiters always poll and
 * a claim is the compare-exchange of the claim word alone (no claim lock: PHP
 * has no sysvsem there), taking over a claimant that is gone.
 */
#include "sections.h"

#include <string.h>

#include "atomics.h"
#include "copy.h"
#include "sections-platform.h"

/* Control block offsets. */
#define CTRL_COMMIT 0
#define CTRL_CLAIM 8
#define CTRL_RETIRED 16
#define CTRL_FLAGS 20
#define CTRL_SLEEPERS 24
#define CTRL_SLOT(i) (64 + 64 * (i))
#define SLOT_SEQ 0
#define SLOT_VERSION 8
#define SLOT_LENGTH 16
#define SLOT_PUBLISHED 24
#define SLOT_PID 32

#define FLAG_WAKES 1u

/* A read gives up as corrupt after this many failed tries with no publish. */
#define READ_TRIES 10000

/* The control block's words (aligned: shmsect_check). */
static uint64_t *u64_at(const shmsect_t *s, uint64_t offset) {
  return (uint64_t *)(void *)(s->base + s->control + offset);
}
static uint32_t *u32_at(const shmsect_t *s, uint64_t offset) {
  return (uint32_t *)(void *)(s->base + s->control + offset);
}

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
      int apart =
          parts[i][0] >= parts[j][0] + parts[j][1] || parts[j][0] >= parts[i][0] + parts[i][1];
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
  uint64_t last_commit = 0, started = 0;
  int tries = 0, failed = 0, moved = 0;
  for (;;) {
    uint64_t commit = load64(u64_at(s, CTRL_COMMIT));
    uint64_t slot = CTRL_SLOT(commit & 1);
    uint32_t seq, seq_after;
    /* After the commit's acquire load: a commit changed by the retirement is never read. */
    if (!retired_too && shmsect_retired(s) != SHMSECT_LIVE) return SHMSECT_ERETIRED;
    if (commit != last_commit) last_commit = commit, tries = 0, moved = started != 0;
    else if (++tries > READ_TRIES) return SHMSECT_ECORRUPT;
    /* Every try but the first failed. After a few, let the writer run, and
       give up once the failures have lasted SHMSECT_READ_MAX_MS: a commit
       that stood still meanwhile is damage; one that moved while its
       slot never held a stable copy is a writer far faster than the copy, or
       one that never finishes (broken or hostile). */
    if (++failed > 16) {
      uint64_t now = sect__now_ns();
      if (!started) {
        started = now;
      } else if (now - started > (uint64_t)SHMSECT_READ_MAX_MS * 1000000u) {
        return moved ? SHMSECT_ESTARVED : SHMSECT_ECORRUPT;
      }
      sect__yield();
    }
    memset(out, 0, sizeof *out);
    if (commit >> 1 == 0) return 0; /* nothing published yet */
    SECT_TEST_POINT(SECT_AT_READ_COMMIT);
    seq = load32(u32_at(s, slot + SLOT_SEQ));
    if (seq & 1) continue; /* the writer has lapped us: read the new commit */
    SECT_TEST_POINT(SECT_AT_READ_SEQ);
    out->version = relaxed_load64(u64_at(s, slot + SLOT_VERSION));
    out->length = relaxed_load64(u64_at(s, slot + SLOT_LENGTH));
    out->published_us = relaxed_load64(u64_at(s, slot + SLOT_PUBLISHED));
    out->writer_pid = relaxed_load32(u32_at(s, slot + SLOT_PID));
    if (out->version != commit >> 1 || out->length > s->capacity) continue;
    if (out->length <= room) shmop_copy(dst, s->base + s->data[commit & 1], (size_t)out->length);
    SECT_TEST_POINT(SECT_AT_READ_COPIED);
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
  shmsect_wake(s); /* whatever the sleeper count says: every waiter must look */
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
  SECT_TEST_POINT(SECT_AT_PUBLISH_ODD);
  shmop_copy(s->base + s->data[which], src, (size_t)length);
  SECT_TEST_POINT(SECT_AT_PUBLISH_COPIED);
  *version = (commit >> 1) + 1;
  relaxed_store64(u64_at(s, slot + SLOT_VERSION), *version);
  relaxed_store64(u64_at(s, slot + SLOT_LENGTH), length);
  relaxed_store64(u64_at(s, slot + SLOT_PUBLISHED), sect__epoch_us());
  relaxed_store32(u32_at(s, slot + SLOT_PID), (uint32_t)(self >> 32));
  SECT_TEST_POINT(SECT_AT_PUBLISH_HEADER);
  store32(u32_at(s, slot + SLOT_SEQ), seq + 1);
  SECT_TEST_POINT(SECT_AT_PUBLISH_EVEN);
  store64(u64_at(s, CTRL_COMMIT), *version * 2 + (uint64_t)which);
  /* One full fence, then two loads. The retired flag: retired meanwhile, the
     manager's carry-over may have missed this version (its mirror image is in
     shmsect_retire). The sleeper count: wake only if someone sleeps; the fence
     pairs with the sleeper's (shmsect_wait_step): either it sees the new
     commit and does not sleep, or this load sees its count and wakes it
     (docs/sections.md, 7). */
  fence_full();
  if (load32(u32_at(s, CTRL_SLEEPERS)) != 0) shmsect_wake(s);
  return shmsect_retired(s) != SHMSECT_LIVE ? SHMSECT_ERETIRED : 0;
}

void shmsect_wake(const shmsect_t *s) { sect__wake(u32_at(s, CTRL_COMMIT)); }

void shmsect_wait_start(shmsect_wait_t *w, uint64_t since, int64_t timeout_ms) {
  w->since = since;
  w->started_ns = sect__now_ns();
  /* A timeout too long to count in nanoseconds is no limit (and no overflow). */
  w->timeout_ms = timeout_ms > INT64_MAX / 1000000 ? -1 : timeout_ms;
  w->poll_ns = 100000; /* 0.1 ms, doubling up to SHMSECT_POLL_MAX_MS */
  w->counted = 0;
}

/* The sleeper count, through the read-write mapping. */
static uint32_t *sleepers(const shmsect_t *s) {
  return (uint32_t *)(void *)(s->counts + s->control + CTRL_SLEEPERS);
}

void shmsect_wait_end(const shmsect_t *s, shmsect_wait_t *w) {
  if (w->counted) add32(sleepers(s), -1);
  w->counted = 0;
}

int shmsect_wait_step(const shmsect_t *s, shmsect_wait_t *w, int cancelled, uint64_t *version,
                      uint32_t *expected, uint64_t *slice_ns) {
  uint64_t commit, waited, limit;
  int counts;
  shmsect_wait_end(s, w); /* awake now */
  waited = sect__now_ns() - w->started_ns;
  limit = w->timeout_ms < 0 ? UINT64_MAX : (uint64_t)w->timeout_ms * 1000000u;
  /* A claimant that wakes us lets us sleep, if we can count ourselves among
     its sleepers (we can write the segment); else poll. Either way look up at
     least once a second, in case the claim changes hands. */
  counts = (load32(u32_at(s, CTRL_FLAGS)) & FLAG_WAKES) && shmsect_claimant(s) != 0 && s->counts;
  /* Look first: after a wake the version has usually changed, and then the
     count below (two atomic writes and a fence on the line the writer reads)
     would be undone at once. */
  commit = load64(u64_at(s, CTRL_COMMIT));
  if (commit >> 1 == w->since && counts && !cancelled && waited < limit) {
    /* Count ourselves, then look again: a publish before the count is seen
       below; one after it sees the count and wakes us (the full fences here
       and in shmsect_publish pair up; docs/sections.md, 7). */
    add32(sleepers(s), 1);
    w->counted = 1;
    fence_full();
    commit = load64(u64_at(s, CTRL_COMMIT));
  }
  *version = commit >> 1;
  if (*version != w->since || cancelled || waited >= limit || shmsect_retired(s) != SHMSECT_LIVE) {
    shmsect_wait_end(s, w);
    return 1;
  }
  *slice_ns = counts ? 1000000000u : w->poll_ns;
  if (w->poll_ns < (uint64_t)SHMSECT_POLL_MAX_MS * 1000000u) w->poll_ns *= 2;
  if (*slice_ns > limit - waited) *slice_ns = limit - waited;
  /* The sleeper must sleep only while the word still holds what we saw. */
  *expected = (uint32_t)commit;
  return 0;
}

int shmsect_spin(const shmsect_t *s, uint64_t since, uint64_t spin_ns, uint64_t *version) {
  uint64_t deadline = spin_ns ? sect__now_ns() + spin_ns : 0;
  unsigned i = 0;
  for (;;) {
    *version = load64(u64_at(s, CTRL_COMMIT)) >> 1;
    if (*version != since) return 1;
    /* The clock (vDSO, ~20 ns) is read every 64 pauses, not every turn. */
    if (++i % 64 == 0 && sect__now_ns() >= deadline) return 0;
    if (!spin_ns) return 0;
    cpu_pause();
  }
}

/* The flag is set by another thread: one untorn load each time round. */
static int is_cancelled(const volatile int *cancel) { return cancel && relaxed_load_int(cancel); }

int shmsect_wait(const shmsect_t *s, uint64_t since, int64_t timeout_ms, const volatile int *cancel,
                 uint64_t *version) {
  shmsect_wait_t w;
  uint32_t expected;
  uint64_t slice;
  shmsect_wait_start(&w, since, timeout_ms);
  while (!shmsect_wait_step(s, &w, is_cancelled(cancel), version, &expected, &slice)) {
    sect__sleep_on(u32_at(s, CTRL_COMMIT), expected, slice);
  }
  return shmsect_retired(s) != SHMSECT_LIVE ? SHMSECT_ERETIRED : 0;
}

int shmsect_wait_for(const shmsect_t *s, shmsect_wait_t *w, uint64_t ns, uint64_t *version) {
  uint64_t until = sect__now_ns() + ns, slice, now;
  uint32_t expected;
  while (!shmsect_wait_step(s, w, 0, version, &expected, &slice)) {
    now = sect__now_ns();
    if (now >= until) {
      shmsect_wait_end(s, w); /* awake between calls: a caller that stops here leaves no count */
      return 0;
    }
    if (slice > until - now) slice = until - now;
    sect__sleep_on(u32_at(s, CTRL_COMMIT), expected, slice);
  }
  return 1;
}

uint32_t *shmsect_futex_word(const shmsect_t *s) { return u32_at(s, CTRL_COMMIT); }

uint64_t shmsect_self(void) { return sect__identity(); }

int shmsect_alive(uint64_t claim) {
  return claim != 0 && sect__running((uint32_t)(claim >> 32), (uint32_t)claim);
}

int shmsect_claim_alive(uint64_t claim, int lock) {
  int held = claim == 0 ? 0 : sect__held(lock);
  return held >= 0 ? held : shmsect_alive(claim);
}

/* Without a claim lock (Windows): the claim word alone, taking over a claimant that is gone. */
static int sect__take_word(const shmsect_t *s, uint64_t self) {
  uint64_t *word = u64_at(s, CTRL_CLAIM);
  for (;;) {
    uint64_t current = load64(word);
    SECT_TEST_POINT(SECT_AT_CLAIM_LOADED);
    if (current == self || shmsect_alive(current)) return SHMSECT_EBUSY;
    if (cas64(word, current, self)) return 0;
  }
}

int shmsect_claim(const shmsect_t *s, uint64_t self, int wakes, int lock, uint64_t *holder) {
  int rc;
  if (shmsect_retired(s) != SHMSECT_LIVE) return SHMSECT_ERETIRED;
  rc = sect__take(lock);
  if (rc == 0 && lock < 0) rc = sect__take_word(s, self);
  else if (rc == 0) store64(u64_at(s, CTRL_CLAIM), self); /* the lock is ours: the word says so */
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
