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
 *   Windows  PHP's TSRM emulation: CreateFileMappingA, OpenFileMappingA,
 *            MapViewOfFile, VirtualQuery, UnmapViewOfFile, CloseHandle on
 *            "TSRM_SHM_SEGMENT:<key>" (and PHP <= 8.1's "TSRM_SHM_DESCRIPTOR:
 *            <key>"), Interlocked* on PHP's descriptor block; ftok from
 *            _wstat, CreateFileW, GetFileInformationByHandle; the handle table
 *            is guarded by an SRWLOCK.
 *
 * Divisions of this file: portable PHP logic; copying; the handle table;
 * the POSIX primitives and introspection; the Windows primitives and
 * introspection. Platform code comes as whole functions.
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
  case SHMOP_EUNSAFE: return "SHM_HUGETLB with SHM_NORESERVE can crash the process (SIGBUS)";
  default: return status < 0 && status > -4096 ? strerror(-status) : "unknown status";
  }
}

/* ==== Copying ==== */

/*
 * Pieces stay below every rep-movsb threshold glibc picks (2048 bytes and up).
 * The size is read through a volatile: with a constant, compilers inline each
 * piece as their own "rep movsq", which is just as slow at these distances.
 */
static volatile size_t shmop__copy_piece = 2048;

void shmop_copy(void *dst, const void *src, size_t length) {
  unsigned char *d = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  size_t distance = ((uintptr_t)d - (uintptr_t)s) & 4095;
  size_t piece = shmop__copy_piece, head;
  if (length <= piece || distance == 0 || distance >= 64) {
    memcpy(d, s, length);
    return;
  }
  /* Align the destination once, then copy pieces too short for rep movsb. */
  head = (64 - ((uintptr_t)d & 63)) & 63;
  memcpy(d, s, head);
  d += head, s += head, length -= head;
  while (length > piece) {
    memcpy(d, s, piece);
    d += piece, s += piece, length -= piece;
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
#if defined(SHM_HUGETLB) && defined(SHM_NORESERVE)
  /* Huge pages taken at first touch rather than at shmget: when none is free
     then, the process dies of SIGBUS. PHP passes these bits on; we refuse. */
  if ((flags & SHM_HUGETLB) && (flags & SHM_NORESERVE)) return SHMOP_EUNSAFE;
#endif
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

/* ==== Windows primitives ==== */
#if defined(_WIN32)

/*
 * PHP on Windows has no System V shared memory: TSRM/tsrm_win32.c emulates it
 * with named, pagefile-backed file mappings, and so does this division, so
 * that PHP and Node processes of one session meet by key.
 *
 *   name     "TSRM_SHM_SEGMENT:<key as signed decimal>", ANSI, no Global\ or
 *            Local\ prefix (the session's namespace); key 0 is an unnamed,
 *            process-private mapping, as in PHP since 7.4.6.
 *   layout B (PHP 8.2-8.5, the default): one mapping; PHP's descriptor block
 *            (struct shmid_ds) at byte 0, the data at byte sizeof(void *) *
 *            sizeof(struct shmid_ds) (448 on x64), shm_segsz = size asked for
 *            + sizeof(void *), which is what shmop_size() reports there.
 *   layout A (PHP <= 8.1): the data alone at byte 0 of the segment mapping,
 *            the descriptor in "TSRM_SHM_DESCRIPTOR:<key>"; detected by the
 *            presence of that name, opened, never created.
 *   layout C (php-src master after 8.5, data at sizeof(struct shmid_ds)) is
 *            not recognised: it would open as B.
 *
 * What differs from PHP, on purpose: a mapping this library creates holds the
 * whole of [448, 448 + shm_segsz), where PHP's own holds shm_segsz bytes from
 * byte 0 (so PHP faults on the tail when the last page has < 448 bytes left);
 * the counters are updated with interlocked operations; a creator that finds
 * the name taken opens the segment (PHP would re-initialise it); a segment
 * still being initialised by its creator is waited for, briefly; and
 * shmop_delete marks the key -1 even while attached (PHP only does so when
 * nothing is attached, which is never the case from shmop_delete).
 *
 * The mapping lives as long as some process holds a handle to it; this
 * library holds its handles until shmop_close().
 */

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

/*
 * PHP's struct shmid_ds (TSRM/tsrm_win32.h) as MSVC lays it out, in types of
 * fixed width so that any compiler gives the same offsets. 32-bit PHP builds
 * use a 32-bit time_t (_USE_32BIT_TIME_T).
 */
typedef struct {
  LONG key;                              /* key_t; -1 once deleted */
  WORD uid, gid, cuid, cgid, mode, seq; /* always 0 */
  SIZE_T segsz;
#if defined(_WIN64)
  LONGLONG atime, dtime, ctime;
#else
  LONG atime, dtime, ctime;
#endif
  WORD cpid, lpid; /* process ids cut to 16 bits, as PHP does */
  SHORT nattch;
} shmop__desc_t;

/* The offsets PHP's x64 and x86 builds use (php-shmop.md, section 10.2). */
#define SHMOP__CHECK(name, holds) typedef char shmop__check_##name[(holds) ? 1 : -1]
SHMOP__CHECK(key, offsetof(shmop__desc_t, key) == 0);
SHMOP__CHECK(segsz, offsetof(shmop__desc_t, segsz) == 16);
#if defined(_WIN64)
SHMOP__CHECK(atime, offsetof(shmop__desc_t, atime) == 24);
SHMOP__CHECK(cpid, offsetof(shmop__desc_t, cpid) == 48);
SHMOP__CHECK(nattch, offsetof(shmop__desc_t, nattch) == 52);
SHMOP__CHECK(size, sizeof(shmop__desc_t) == 56);
#else
SHMOP__CHECK(atime, offsetof(shmop__desc_t, atime) == 20);
SHMOP__CHECK(cpid, offsetof(shmop__desc_t, cpid) == 32);
SHMOP__CHECK(nattch, offsetof(shmop__desc_t, nattch) == 36);
SHMOP__CHECK(size, sizeof(shmop__desc_t) == 40);
#endif

/* PHP 8.2-8.5 put the data at descriptor + sizeof(void *) in *struct* units
   and count sizeof(void *) more in shm_segsz. */
#define SHMOP__DATA (sizeof(void *) * sizeof(shmop__desc_t))
#define SHMOP__EXTRA sizeof(void *)

#define SHMOP__SEGMENT "TSRM_SHM_SEGMENT:"
#define SHMOP__DESCRIPTOR "TSRM_SHM_DESCRIPTOR:"

/* How long an opener waits for a creator to fill in the descriptor. */
#define SHMOP__INIT_WAIT_MS 200

static SRWLOCK table_lock = SRWLOCK_INIT;

static void shmop__lock(void) { AcquireSRWLockExclusive(&table_lock); }

static void shmop__unlock(void) { ReleaseSRWLockExclusive(&table_lock); }

static long shmop__add_refs(long *refs, long delta) {
  return InterlockedExchangeAdd(refs, delta) + delta;
}

/*
 * The one translation of Windows errors, into the errno values the POSIX
 * division returns for the same situations (all defined by MSVC's errno.h).
 * Anything else is EINVAL: the call was refused for a reason errno cannot
 * name better.
 */
static int shmop__errno(DWORD error) {
  switch (error) {
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND: return -ENOENT;
  case ERROR_ALREADY_EXISTS:
  case ERROR_FILE_EXISTS: return -EEXIST;
  case ERROR_ACCESS_DENIED: return -EACCES;
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
  case ERROR_COMMITMENT_LIMIT: /* the pagefile cannot back the section */
  case ERROR_NO_SYSTEM_RESOURCES: return -ENOMEM;
  case ERROR_INVALID_PARAMETER:
  case ERROR_INVALID_HANDLE:
  default: return -EINVAL;
  }
}

static int shmop__last_errno(void) { return shmop__errno(GetLastError()); }

static void shmop__name(char *name, size_t room, const char *prefix, int32_t key) {
  snprintf(name, room, "%s%ld", prefix, (long)key);
}

static void shmop__touch(shmop__desc_t *d, int attach) {
  if (attach) d->atime = time(NULL);
  else d->dtime = time(NULL);
  d->lpid = (WORD)GetCurrentProcessId();
}

/* Unmaps seg's views and closes its descriptor handle (layout A); the
   segment handle stays. Returns 0 or the first failure. */
static int shmop__unmap(shmop_t *seg) {
  int rc = 0;
  if (seg->_info) { /* layout A: the data has a view of its own */
    if (seg->addr && !UnmapViewOfFile(seg->addr)) rc = shmop__last_errno();
    if (!CloseHandle(seg->_info) && rc == 0) rc = shmop__last_errno();
  }
  if (seg->_view && !UnmapViewOfFile(seg->_view) && rc == 0) rc = shmop__last_errno();
  seg->addr = NULL;
  seg->_view = seg->_info = NULL;
  return rc;
}

/* Unmaps everything and closes seg's handles. */
static int shmop__release(shmop_t *seg) {
  int rc = shmop__unmap(seg);
  if (seg->_mapping && !CloseHandle(seg->_mapping) && rc == 0) rc = shmop__last_errno();
  seg->_mapping = NULL;
  return rc;
}

/* The bytes a view holds from at on (views are whole pages). */
static uint64_t shmop__room(const void *view, const unsigned char *at) {
  MEMORY_BASIC_INFORMATION info;
  const unsigned char *end;
  if (VirtualQuery(view, &info, sizeof info) == 0) return 0;
  end = (const unsigned char *)info.BaseAddress + info.RegionSize;
  return at < end ? (uint64_t)(end - at) : 0;
}

/*
 * Maps the segment whose handle is seg->_mapping: sets _view (the descriptor),
 * addr (the data), _info (layout A) and *room (bytes mapped from addr on).
 * A segment this call did not create may still be being filled in by its
 * creator (its key and size read 0): it is mapped again until they are set,
 * for at most SHMOP__INIT_WAIT_MS (a PHP <= 8.1 creator makes its descriptor
 * mapping after the segment, so the layout is looked up again each time).
 */
static int shmop__map(shmop_t *seg, int32_t key, int created, uint64_t *room) {
  char name[48];
  const shmop__desc_t *d;
  ULONGLONG deadline = GetTickCount64() + SHMOP__INIT_WAIT_MS;
  for (;;) {
    if (!created && key != 0) {
      shmop__name(name, sizeof name, SHMOP__DESCRIPTOR, key);
      seg->_info = OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, name);
    }
    if (seg->_info) {
      seg->addr = (unsigned char *)MapViewOfFile(seg->_mapping, FILE_MAP_ALL_ACCESS, 0, 0, 0);
      if (!seg->addr) return shmop__last_errno();
      seg->_view = MapViewOfFile(seg->_info, FILE_MAP_ALL_ACCESS, 0, 0, 0);
      if (!seg->_view) return shmop__last_errno();
      *room = shmop__room(seg->addr, seg->addr);
    } else {
      seg->_view = MapViewOfFile(seg->_mapping, FILE_MAP_ALL_ACCESS, 0, 0, 0);
      if (!seg->_view) return shmop__last_errno();
      seg->addr = (unsigned char *)seg->_view + SHMOP__DATA;
      *room = shmop__room(seg->_view, seg->addr);
    }
    d = (const shmop__desc_t *)seg->_view;
    if (created || (d->key != 0 && d->segsz != 0) || GetTickCount64() >= deadline) return 0;
    shmop__unmap(seg);
    Sleep(1);
  }
}

static int shmop__open(shmop_t *seg, int32_t key, int flags, int readonly,
                       uint64_t size, const char **failed_call) {
  char name[48];
  shmop__desc_t *d;
  uint64_t room, total;
  int created = 0, rc;
  memset(seg, 0, sizeof *seg);
  *failed_call = "shmget";
  /* IPC_PRIVATE cannot be found by name; Linux says EINVAL here too. */
  if (key == 0 && !(flags & SHMOP_IPC_CREAT)) return -EINVAL;
  shmop__name(name, sizeof name, SHMOP__SEGMENT, key);
  if (flags & SHMOP_IPC_CREAT) {
    if (size > (uint64_t)SIZE_MAX - SHMOP__DATA - SHMOP__EXTRA) return -ENOMEM;
    total = SHMOP__DATA + size + SHMOP__EXTRA;
    /* Atomic "create or open": an existing object comes back as it is. */
    seg->_mapping = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE,
                                       (DWORD)(total >> 32), (DWORD)total, key ? name : NULL);
    if (!seg->_mapping) return shmop__last_errno();
    created = GetLastError() != ERROR_ALREADY_EXISTS;
    if (!created && (flags & SHMOP_IPC_EXCL)) {
      shmop__release(seg);
      return -EEXIST;
    }
  } else {
    seg->_mapping = OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, name);
    if (!seg->_mapping) return shmop__last_errno();
  }
  rc = shmop__map(seg, key, created, &room);
  d = (shmop__desc_t *)seg->_view;
  if (rc == 0 && created) {
    /* A new section is zero-filled: the rest of the descriptor is PHP's 0.
       The key goes last, so that an opener that sees it sees the rest. */
    d->segsz = (SIZE_T)(size + SHMOP__EXTRA);
    d->ctime = time(NULL);
    d->cpid = (WORD)GetCurrentProcessId();
    InterlockedExchange(&d->key, key);
  } else if (rc == 0) {
    /* PHP's checks on an existing segment, with the deleted case told apart:
       'a'/'w' no longer find the key (ENOENT, as on Linux after IPC_RMID);
       'c' cannot make a new one while the deleted one holds the name. */
    if (d->key == -1) rc = flags & SHMOP_IPC_CREAT ? -EIDRM : -ENOENT;
    else if (d->key != key || size > (uint64_t)d->segsz) rc = -EINVAL;
  }
  if (rc != 0) {
    shmop__release(seg);
    return rc;
  }
  seg->key = key;
  seg->id = key;
  seg->readonly = readonly;
  /* Never past the view, whatever shm_segsz says (PHP's own mappings can be short). */
  seg->size = (uint64_t)d->segsz < room ? (uint64_t)d->segsz : room;
  shmop__touch(d, 1);
  InterlockedIncrement16(&d->nattch);
  return 0;
}

static int shmop__detach(shmop_t *seg) {
  shmop__desc_t *d = (shmop__desc_t *)seg->_view;
  if (!d) return -EINVAL; /* closed already: shmdt says the same */
  shmop__touch(d, 0);
  InterlockedDecrement16(&d->nattch);
  return shmop__release(seg);
}

/* By key, as the POSIX division does by id: the caller may have closed seg.
   A private segment (key 0) goes when it is closed; nothing else can open it. */
static int shmop__remove(shmop_t *seg) { return seg->key ? shmop_remove(seg->id) : 0; }

/* Maps the named segment of key for a look at its descriptor (no attach). */
static int shmop__peek(int32_t key, shmop_t *seg) {
  char name[48];
  uint64_t room;
  int rc;
  memset(seg, 0, sizeof *seg);
  if (key == 0) return -EINVAL;
  shmop__name(name, sizeof name, SHMOP__SEGMENT, key);
  seg->_mapping = OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, name);
  if (!seg->_mapping) return shmop__last_errno();
  rc = shmop__map(seg, key, 0, &room);
  if (rc != 0) shmop__release(seg);
  return rc;
}

int shmop_find(int32_t key, int *id) {
  shmop_t seg;
  int rc = shmop__peek(key, &seg);
  if (rc != 0) return rc;
  /* A deleted segment (key -1) is not found by key, as on Linux. */
  rc = ((const shmop__desc_t *)seg._view)->key == key ? 0 : -ENOENT;
  shmop__release(&seg);
  if (rc == 0) *id = key;
  return rc;
}

int shmop_stat(int id, shmop_stat_t *st) {
  shmop_t seg;
  const shmop__desc_t *d;
  int rc = shmop__peek((int32_t)id, &seg);
  if (rc != 0) return rc == -ENOENT ? -EINVAL : rc; /* no such id */
  d = (const shmop__desc_t *)seg._view;
  if (d->key != id && d->key != -1) {
    shmop__release(&seg);
    return -EINVAL; /* another key's segment under this name */
  }
  memset(st, 0, sizeof *st);
  st->marked = d->key == -1;
  st->key = st->marked ? 0 : (int32_t)d->key;
  st->id = id;
  st->size = (uint64_t)d->segsz;
  st->cpid = d->cpid;
  st->lpid = d->lpid;
  st->attachments = d->nattch > 0 ? (uint64_t)d->nattch : 0;
  st->atime = (int64_t)d->atime;
  st->dtime = (int64_t)d->dtime;
  st->ctime = (int64_t)d->ctime;
  return shmop__release(&seg);
}

int shmop_remove(int id) {
  shmop_t seg;
  shmop__desc_t *d;
  int rc = shmop__peek((int32_t)id, &seg);
  if (rc != 0) return rc == -ENOENT ? -EINVAL : rc;
  d = (shmop__desc_t *)seg._view;
  if (InterlockedCompareExchange(&d->key, -1, id) != id && d->key != -1) rc = -EINVAL;
  shmop__release(&seg);
  return rc;
}

/* PHP's win32/ftok.c: project byte, drive number (st_dev of _wstat) and the
   low 16 bits of the file index. A directory cannot be opened this way, so it
   fails, as in PHP. */
int shmop_ftok(const char *path, unsigned char project, int32_t *key) {
  struct _stat st;
  BY_HANDLE_FILE_INFORMATION info;
  HANDLE file;
  wchar_t *wide;
  int rc = 0, length = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0);
  if (length <= 0) return -EINVAL; /* not UTF-8 */
  wide = (wchar_t *)malloc((size_t)length * sizeof *wide);
  if (!wide) return -ENOMEM;
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, wide, length);
  if (_wstat(wide, &st) != 0) {
    rc = -errno;
  } else {
    file = CreateFileW(wide, FILE_GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                       NULL, OPEN_EXISTING, 0, NULL);
    if (file == INVALID_HANDLE_VALUE) {
      rc = shmop__last_errno();
    } else {
      if (GetFileInformationByHandle(file, &info)) {
        *key = (int32_t)((uint32_t)project << 24 | ((uint32_t)st.st_dev & 0xff) << 16 |
                         (info.nFileIndexLow & 0xffff));
      } else {
        rc = shmop__last_errno();
      }
      CloseHandle(file);
    }
  }
  free(wide);
  return rc;
}

#endif /* Windows primitives */
