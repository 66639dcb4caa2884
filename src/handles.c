/*
 * handles.c: the process-wide table of integer handles (see handles.h).
 *
 * A chained hash table from handle to entry, behind one short lock (a lookup
 * is a few loads; calls are far more frequent than contention). An entry lives
 * while it is in the table or referenced: closing takes it out of the table,
 * and whoever drops the last reference detaches the segment and frees it.
 * The lock, the reference count's atomic add and the detach are the
 * platform's (shmop-platform.h).
 */
#include "handles.h"

#include <errno.h>
#include <stdlib.h>

#include "shmop-platform.h"

typedef struct shmop_entry_s {
  shmop_t seg; /* first member: a shmop_t* from acquire is the entry */
  int64_t handle;
  long refs; /* 1 for the table while open, plus one per acquire; atomic */
  struct shmop_entry_s *next;
} shmop_entry_t;

static shmop_entry_t **table_buckets;
static size_t table_bucket_count; /* a power of two, or 0 before first use */
static size_t table_count;
static int64_t table_last_handle;

static size_t table_slot(int64_t handle, size_t bucket_count) {
  return (size_t)((uint64_t)handle * 0x9E3779B97F4A7C15ull >> 32) & (bucket_count - 1);
}

/* Doubles the buckets when the table gets full; keeps the old ones on ENOMEM. */
static void table_grow(void) {
  size_t count = table_bucket_count ? table_bucket_count * 2 : 64, i;
  shmop_entry_t **buckets = (shmop_entry_t **)calloc(count, sizeof *buckets);
  if (!buckets) return;
  for (i = 0; i < table_bucket_count; i++) {
    shmop_entry_t *e = table_buckets[i], *next;
    for (; e; e = next) {
      size_t slot = table_slot(e->handle, count);
      next = e->next;
      e->next = buckets[slot];
      buckets[slot] = e;
    }
  }
  free(table_buckets);
  table_buckets = buckets;
  table_bucket_count = count;
}

static shmop_entry_t **table_find(int64_t handle) {
  shmop_entry_t **link;
  if (!table_bucket_count) return NULL;
  link = &table_buckets[table_slot(handle, table_bucket_count)];
  while (*link && (*link)->handle != handle) link = &(*link)->next;
  return *link ? link : NULL;
}

int shmop_table_add(const shmop_t *seg, int64_t *handle) {
  shmop_entry_t *e = (shmop_entry_t *)malloc(sizeof *e);
  size_t slot;
  if (!e) return -ENOMEM;
  e->seg = *seg;
  e->refs = 1;
  shmop__lock();
  if (table_count >= table_bucket_count) table_grow();
  if (!table_bucket_count) {
    shmop__unlock();
    free(e);
    return -ENOMEM;
  }
  e->handle = *handle = ++table_last_handle;
  slot = table_slot(e->handle, table_bucket_count);
  e->next = table_buckets[slot];
  table_buckets[slot] = e;
  table_count++;
  shmop__unlock();
  return 0;
}

shmop_t *shmop_table_acquire(int64_t handle) {
  shmop_entry_t **link, *e = NULL;
  shmop__lock();
  link = table_find(handle);
  if (link) {
    e = *link;
    shmop__add_refs(&e->refs, 1);
  }
  shmop__unlock();
  return e ? &e->seg : NULL;
}

void shmop_table_release(shmop_t *seg) {
  shmop_entry_t *e = (shmop_entry_t *)seg;
  /* No lock: once out of the table, an entry gains no new references. */
  if (shmop__add_refs(&e->refs, -1) == 0) {
    shmop__detach(&e->seg);
    free(e);
  }
}

int shmop_table_close(int64_t handle) {
  shmop_entry_t **link, *e;
  shmop__lock();
  link = table_find(handle);
  if (!link) {
    shmop__unlock();
    return SHMOP_EBADHANDLE;
  }
  e = *link;
  *link = e->next;
  table_count--;
  shmop__unlock();
  shmop_table_release(&e->seg); /* the table's own reference */
  return 0;
}

/* The entry for a handle, locked (the caller unlocks), or NULL unlocked. */
static shmop_t *table_lock_entry(int64_t handle) {
  shmop_entry_t **link;
  shmop__lock();
  link = table_find(handle);
  if (!link) shmop__unlock();
  return link ? &(*link)->seg : NULL;
}

int shmop_table_read(int64_t handle, uint64_t start, uint64_t length, void *dst, uint64_t *size) {
  int locked = length <= SHMOP_LOCKED_COPY, rc;
  shmop_t *seg = locked ? table_lock_entry(handle) : shmop_table_acquire(handle);
  if (!seg) return SHMOP_EBADHANDLE;
  *size = seg->size;
  rc = shmop_read(seg, start, length, dst);
  if (locked) shmop__unlock();
  else shmop_table_release(seg);
  return rc;
}

int shmop_table_write(int64_t handle, const void *src, uint64_t length, uint64_t offset,
                      uint64_t *written, uint64_t *size) {
  int locked = length <= SHMOP_LOCKED_COPY, rc;
  shmop_t *seg = locked ? table_lock_entry(handle) : shmop_table_acquire(handle);
  if (!seg) return SHMOP_EBADHANDLE;
  *size = seg->size;
  rc = shmop_write(seg, src, length, offset, written);
  if (locked) shmop__unlock();
  else shmop_table_release(seg);
  return rc;
}

size_t shmop_table_count(void) {
  size_t count;
  shmop__lock();
  count = table_count;
  shmop__unlock();
  return count;
}
