/*
 * handles.h: a process-wide table of open segments for bindings that hand
 * out integer handles, as PHP 5 did and the original six functions do
 * (handles.c). It has no fixed size and is safe to use from several threads:
 * a segment stays mapped while any thread holds a reference, so a read
 * racing a close in another thread never touches unmapped memory. Handles
 * start at 1 and are never reused while the process lives.
 */
#ifndef SHMOP_HANDLES_H
#define SHMOP_HANDLES_H

#include <stddef.h>
#include <stdint.h>

#include "shmop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Takes ownership of an open segment. Returns 0 and its new handle, or -ENOMEM. */
int shmop_table_add(const shmop_t *seg, int64_t *handle);

/*
 * Returns the open segment with this handle and takes a reference to it,
 * or NULL. Every non-NULL result must be given back with shmop_table_release().
 */
shmop_t *shmop_table_acquire(int64_t handle);

/* Gives back a reference; the last one detaches a closed segment. */
void shmop_table_release(shmop_t *seg);

/*
 * Closes a handle: it stops being found at once, and the segment is detached
 * when the last reference is released (at once, if no one holds one).
 * Returns 0 or SHMOP_EBADHANDLE.
 */
int shmop_table_close(int64_t handle);

/*
 * shmop_read and shmop_write on a handle, in one step: a copy of at most
 * SHMOP_LOCKED_COPY bytes is made holding the table's lock (cheaper than a
 * reference), a longer one under a reference. *size gets the segment's size.
 * Return as shmop_read/shmop_write do, or SHMOP_EBADHANDLE.
 */
#define SHMOP_LOCKED_COPY 256
int shmop_table_read(int64_t handle, uint64_t start, uint64_t length, void *dst, uint64_t *size);
int shmop_table_write(int64_t handle, const void *src, uint64_t length, uint64_t offset,
                      uint64_t *written, uint64_t *size);

/* Number of handles open in the process (for tests and diagnostics). */
size_t shmop_table_count(void);

#ifdef __cplusplus
}
#endif

#endif /* SHMOP_HANDLES_H */
