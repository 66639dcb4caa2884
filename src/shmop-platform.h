/*
 * shmop-platform.h: the primitives that shmop.c (PHP's rules) and handles.c
 * (the handle table) call, one set per platform: shmop-posix.c (System V)
 * and shmop-win.c (PHP's TSRM emulation), chosen by binding.gyp. These
 * "shmop__" names are internal to the library.
 */
#ifndef SHMOP_PLATFORM_H
#define SHMOP_PLATFORM_H

#include <stdint.h>

#include "shmop.h"

/* The flag values PHP uses on every platform (TSRM defines them alike). */
#define SHMOP_IPC_CREAT 01000
#define SHMOP_IPC_EXCL 02000

/*
 * Gets (or creates, with SHMOP_IPC_CREAT in flags) and attaches the segment
 * of key; fills *seg. Returns 0, SHMOP_EUNSAFE, or -errno with *failed_call
 * naming the stage that failed. A segment this call created is removed again
 * when a later stage fails.
 */
int shmop__open(shmop_t *seg, int32_t key, int flags, int readonly, uint64_t size,
                const char **failed_call);

/* Detaches (unmaps) the segment. Returns 0 or -errno. */
int shmop__detach(shmop_t *seg);

/* Marks the segment for deletion. Returns 0 or -errno. */
int shmop__remove(shmop_t *seg);

/* The handle table's lock (held for a hash lookup, or a copy of at most
   SHMOP_LOCKED_COPY bytes) and its atomic reference count: adds delta to
   *refs and returns the new value. */
void shmop__lock(void);
void shmop__unlock(void);
long shmop__add_refs(long *refs, long delta);

#endif /* SHMOP_PLATFORM_H */
