/*
 * shmop.c: PHP's ext/shmop (PHP 8.0-8.5) re-implemented in C99.
 *
 * What is copied from PHP, case by case (php-src ext/shmop/shmop.c):
 *   open    mode letter -> shmget flags and size, then shmget, IPC_STAT, shmat,
 *           in that order, so that a failure happens at the same stage as PHP's.
 *           The size kept is the kernel's (IPC_STAT), never the requested one.
 *   read    start in 0..size, count 0 = to the end, count checked against the
 *           end without overflow.
 *   write   read-only checked first, then offset in 0..size, then the data is
 *           cut at the end of the segment.
 *   delete  IPC_RMID only; the mapping stays usable.
 *   close   shmdt (PHP 7; PHP 8 detaches when the object is freed).
 * What is not copied: PHP truncates lengths to int and leaks a segment it
 * created when IPC_STAT or shmat then fails. Here lengths are 64-bit and a
 * segment this call created is removed again before the error is returned.
 *
 * Operating-system calls by platform:
 *   POSIX    shmget, shmctl(IPC_STAT), shmat, shmdt, shmctl(IPC_RMID), ftok;
 *            the handle table is guarded by a spin lock (GCC/Clang atomics).
 *
 * Divisions of this file: portable PHP logic; copying; the handle table;
 * the POSIX primitives and introspection. Platform code comes as whole functions.
 */
#if !defined(_WIN32)
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE /* SHM_DEST on Linux */
#endif

#include "shmop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The flag values PHP uses on every platform (TSRM defines them alike). */
#define SHMOP_IPC_CREAT 01000
#define SHMOP_IPC_EXCL 02000

/* Platform primitives, one set per platform at the end of this file. */
static int shmop__open(shmop_t *seg, int32_t key, int flags, int readonly,
                       uint64_t size, const char **failed_call);
static int shmop__detach(shmop_t *seg);
static int shmop__remove(shmop_t *seg);
static void shmop__lock(void);
static void shmop__unlock(void);
static long shmop__add_refs(long *refs, long delta);

/* ==== Portable PHP logic ==== */

int shmop_open(shmop_t *seg, int32_t key, char mode, int perms, int64_t size,
               const char **failed_call) {
  int flags = perms, readonly = 0;
  switch (mode) {
  case 'a': readonly = 1; size = 0; break;
  case 'w': size = 0; break;
  case 'c': flags |= SHMOP_IPC_CREAT; break;
  case 'n': flags |= SHMOP_IPC_CREAT | SHMOP_IPC_EXCL; break;
  default: return SHMOP_EMODE;
  }
  /* PHP tests the combined flags: IPC_CREAT smuggled in through the
     permissions of 'a' or 'w' also demands a size, and theirs is 0. */
  if ((flags & SHMOP_IPC_CREAT) && size < 1) return SHMOP_ESIZE;
  if ((uint64_t)size > SIZE_MAX) {
    *failed_call = "shmget";
    return -ENOMEM;
  }
  return shmop__open(seg, key, flags, readonly, (uint64_t)size, failed_call);
}

int shmop_close(shmop_t *seg) { return shmop__detach(seg); }

int shmop_delete(shmop_t *seg) { return shmop__remove(seg); }

int shmop_read_span(const shmop_t *seg, uint64_t start, uint64_t count,
                    uint64_t *length) {
  if (start > seg->size) return SHMOP_EOFFSET;
  if (count > seg->size - start) return SHMOP_ECOUNT;
  *length = count ? count : seg->size - start;
  return 0;
}

int shmop_read(const shmop_t *seg, uint64_t start, uint64_t length, void *dst) {
  uint64_t checked;
  int rc = shmop_read_span(seg, start, length, &checked);
  if (rc != 0) return rc;
  if (length) shmop_copy(dst, seg->addr + start, (size_t)length);
  return 0;
}

int shmop_write(const shmop_t *seg, const void *src, uint64_t length,
                uint64_t offset, uint64_t *written) {
  uint64_t room;
  if (seg->readonly) return SHMOP_EREADONLY;
  if (offset > seg->size) return SHMOP_EOFFSET;
  room = seg->size - offset;
  *written = length < room ? length : room;
  if (*written) shmop_copy(seg->addr + offset, src, (size_t)*written);
  return 0;
}

const char *shmop_strerror(int status) {
  switch (status) {
  case 0: return "success";
  case SHMOP_EMODE: return "access mode must be one of a, c, w, n";
  case SHMOP_ESIZE: return "size must be greater than 0 when creating";
  case SHMOP_EOFFSET: return "offset must be between 0 and the segment size";
  case SHMOP_ECOUNT: return "count goes past the end of the segment";
  case SHMOP_EREADONLY: return "read-only segment cannot be written";
  case SHMOP_EBADHANDLE: return "no open segment has this handle";
  default: return status < 0 ? strerror(-status) : "unknown status";
  }
}

/* ==== Copying ==== */

/* Below every rep-movsb threshold glibc picks (2048 bytes and up). */
#define SHMOP_COPY_PIECE 2048

void shmop_copy(void *dst, const void *src, size_t length) {
  unsigned char *d = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  size_t distance = ((uintptr_t)d - (uintptr_t)s) & 4095;
  size_t head;
  if (length <= SHMOP_COPY_PIECE || distance == 0 || distance >= 64) {
    memcpy(d, s, length);
    return;
  }
  /* Align the destination once, then copy pieces too short for rep movsb. */
  head = (64 - ((uintptr_t)d & 63)) & 63;
  memcpy(d, s, head);
  d += head, s += head, length -= head;
  while (length > SHMOP_COPY_PIECE) {
    memcpy(d, s, SHMOP_COPY_PIECE);
    d += SHMOP_COPY_PIECE, s += SHMOP_COPY_PIECE, length -= SHMOP_COPY_PIECE;
  }
  memcpy(d, s, length);
}

/* ==== Handle table ==== */

/*
 * A chained hash table from handle to entry, behind one short lock (a lookup
 * is a few loads; calls are far more frequent than contention). An entry lives
 * while it is in the table or referenced: closing takes it out of the table,
 * and whoever drops the last reference detaches the segment and frees it.
 */
typedef struct shmop_entry_s {
  shmop_t seg; /* first member: a shmop_t* from acquire is the entry */
  int64_t handle;
  long refs;   /* 1 for the table while open, plus one per acquire; atomic */
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

size_t shmop_table_count(void) {
  size_t count;
  shmop__lock();
  count = table_count;
  shmop__unlock();
  return count;
}

/* ==== POSIX primitives ==== */
#if !defined(_WIN32)

#include <sched.h>
#include <sys/ipc.h>
#include <sys/shm.h>

static int table_lock; /* a spin lock: held for a hash lookup at most */

static void shmop__lock(void) {
  while (__atomic_exchange_n(&table_lock, 1, __ATOMIC_ACQUIRE)) sched_yield();
}

static void shmop__unlock(void) { __atomic_store_n(&table_lock, 0, __ATOMIC_RELEASE); }

static long shmop__add_refs(long *refs, long delta) {
  return __atomic_add_fetch(refs, delta, __ATOMIC_ACQ_REL);
}

#if IPC_CREAT != SHMOP_IPC_CREAT || IPC_EXCL != SHMOP_IPC_EXCL
#error "this system's IPC flags differ from PHP's"
#endif

/*
 * shmget() that also tells whether this call created the segment, so that a
 * failed open can remove it. Creating flags first try IPC_EXCL; if the key
 * exists, the segment is looked up without IPC_CREAT, which the kernel checks
 * exactly as it checks a plain IPC_CREAT call (size, then permissions). A
 * segment that vanishes in between is created on the next round.
 */
static int shmop__get(int32_t key, size_t size, int flags, int *created) {
  int id, round;
  *created = 0;
  if (!(flags & IPC_CREAT)) {
    id = shmget((key_t)key, size, flags);
    return id >= 0 ? id : -errno;
  }
  for (round = 0; round < 100; round++) {
    id = shmget((key_t)key, size, flags | IPC_EXCL);
    if (id >= 0) {
      *created = 1;
      return id;
    }
    if (errno != EEXIST || (flags & IPC_EXCL)) return -errno;
    id = shmget((key_t)key, size, flags & ~IPC_CREAT);
    if (id >= 0) return id;
    if (errno != ENOENT) return -errno;
  }
  id = shmget((key_t)key, size, flags); /* a creation storm: do as PHP does */
  return id >= 0 ? id : -errno;
}

static int shmop__open(shmop_t *seg, int32_t key, int flags, int readonly,
                       uint64_t size, const char **failed_call) {
  struct shmid_ds ds;
  void *addr;
  int id, created, rc;
  *failed_call = "shmget";
  id = shmop__get(key, (size_t)size, flags, &created);
  if (id < 0) return id;
  *failed_call = "shmctl";
  if (shmctl(id, IPC_STAT, &ds) != 0) goto failed;
  *failed_call = "shmat";
  addr = shmat(id, NULL, readonly ? SHM_RDONLY : 0);
  if (addr == (void *)-1) goto failed;
  memset(seg, 0, sizeof *seg);
  seg->addr = (unsigned char *)addr;
  seg->size = (uint64_t)ds.shm_segsz;
  seg->key = key;
  seg->id = id;
  seg->readonly = readonly;
  seg->_view = addr;
  return 0;
failed:
  rc = -errno;
  if (created) shmctl(id, IPC_RMID, NULL);
  return rc;
}

static int shmop__detach(shmop_t *seg) {
  return shmdt(seg->_view) == 0 ? 0 : -errno;
}

static int shmop__remove(shmop_t *seg) { return shmop_remove(seg->id); }

/* The key field of struct ipc_perm is spelt differently by each libc. */
#if defined(__GLIBC__)
#define SHMOP__PERM_KEY(perm) ((perm).__key)
#elif defined(__APPLE__)
#define SHMOP__PERM_KEY(perm) ((perm)._key)
#else
#define SHMOP__PERM_KEY(perm) ((perm).key)
#endif

int shmop_find(int32_t key, int *id) {
  /* IPC_PRIVATE would make a new segment rather than find one. */
  if (key == IPC_PRIVATE) return -EINVAL;
  *id = shmget((key_t)key, 0, 0);
  return *id >= 0 ? 0 : -errno;
}

int shmop_stat(int id, shmop_stat_t *st) {
  struct shmid_ds ds;
  if (shmctl(id, IPC_STAT, &ds) != 0) return -errno;
  memset(st, 0, sizeof *st);
  st->key = (int32_t)SHMOP__PERM_KEY(ds.shm_perm);
  st->id = id;
  st->size = (uint64_t)ds.shm_segsz;
  st->mode = ds.shm_perm.mode & 0777;
#ifdef SHM_DEST
  st->marked = (ds.shm_perm.mode & SHM_DEST) != 0;
#endif
  st->uid = ds.shm_perm.uid;
  st->gid = ds.shm_perm.gid;
  st->cuid = ds.shm_perm.cuid;
  st->cgid = ds.shm_perm.cgid;
  st->cpid = ds.shm_cpid;
  st->lpid = ds.shm_lpid;
  st->attachments = (uint64_t)ds.shm_nattch;
  st->atime = (int64_t)ds.shm_atime;
  st->dtime = (int64_t)ds.shm_dtime;
  st->ctime = (int64_t)ds.shm_ctime;
  return 0;
}

int shmop_remove(int id) { return shmctl(id, IPC_RMID, NULL) == 0 ? 0 : -errno; }

int shmop_ftok(const char *path, unsigned char project, int32_t *key) {
  key_t k;
  errno = 0; /* -1 is also a valid key: only errno tells a failure */
  k = ftok(path, project);
  if (k == (key_t)-1 && errno) return -errno;
  *key = (int32_t)k;
  return 0;
}

#endif /* POSIX primitives */
