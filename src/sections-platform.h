/*
 * sections-platform.h: the hooks the section protocol (sections.c) calls,
 * one set per platform, chosen by binding.gyp:
 *   sections-posix.c  clocks, yield, liveness, identity, claim locks
 *   sections-linux.c  futex sleep and wake, start times from /proc (Linux)
 *   sections-poll.c   polling sleeps and no wake (other POSIX systems)
 *   sections-win.c    all of them for Windows (polling, no claim locks)
 * These "sect__" names are internal to the library.
 */
#ifndef SHMSECT_PLATFORM_H
#define SHMSECT_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* Clocks: monotonic nanoseconds, and wall-clock microseconds since the epoch. */
uint64_t sect__now_ns(void);
uint64_t sect__epoch_us(void);

/* Lets other threads run (a reader lapped by its writer again and again). */
void sect__yield(void);

/* Sleeps while *word holds expected, for at most ns; wakes every sleeper on
   word. Where sleepers poll, a sleep is at most SHMSECT_POLL_MAX_MS and a
   wake does nothing. */
void sect__sleep_on(uint32_t *word, uint32_t expected, uint64_t ns);
void sect__wake(uint32_t *word);

/* Sleeps while each of the n words holds its expected value, for at most ns,
   waking when any is woken (futex_waitv); only where can_sleep_on_many says 1
   (Linux 5.16+), with 2 <= n <= SHMSECT_MANY_MAX. */
int sect__can_sleep_on_many(void);
void sect__sleep_on_many(uint32_t *const *words, const uint32_t *expected, size_t n, uint64_t ns);

/* The claim lock (shmsect_lock_create's id, or -1: none): take it without
   waiting (0, SHMSECT_EBUSY or -errno; none: 0), give it back (a lock that is
   gone holds nothing to give). */
int sect__take(int lock);
void sect__give(int lock);
/* Whether the claim lock is taken: 1, 0, or -1 where that cannot be known
   (no lock, a set that is gone or that this process may not read). */
int sect__held(int lock);

/* Whether process pid, started at start (0: unknown), is still running. */
int sect__running(uint32_t pid, uint32_t start);

/* This process's claim word: pid << 32 | start time (see shmsect_self). */
uint64_t sect__identity(void);

#if !defined(_WIN32)
/* POSIX: the low 32 bits of a process's start time, 0 if unknown (Linux:
   clock ticks since boot; elsewhere always 0). */
uint32_t sect__start_ticks(uint32_t pid);
#endif

/*
 * Test points: the C tests (test/c/sections.c) build with SHMSECT_TEST_POINTS
 * defined and stop a reader or a writer at these places, to interleave them
 * deterministically. In the addon they compile to nothing.
 */
enum {
  SECT_AT_READ_COMMIT = 1, /* read: the commit word is loaded */
  SECT_AT_READ_SEQ,        /* read: the slot's seq is loaded, even */
  SECT_AT_READ_COPIED,     /* read: the payload is copied, seq not re-checked */
  SECT_AT_PUBLISH_ODD,     /* publish: the slot's seq is marked odd */
  SECT_AT_PUBLISH_COPIED,  /* publish: the payload is in the slot */
  SECT_AT_PUBLISH_HEADER,  /* publish: the slot's header is written */
  SECT_AT_PUBLISH_EVEN,    /* publish: the seq is even again, not yet committed */
  SECT_AT_CLAIM_LOADED     /* claim: the claim word is loaded, not yet exchanged */
};
#if defined(SHMSECT_TEST_POINTS)
void sect__test_point(int point);
#define SECT_TEST_POINT(point) sect__test_point(point)
#else
#define SECT_TEST_POINT(point) ((void)0)
#endif

#endif /* SHMSECT_PLATFORM_H */
