/*
 * shmop-win.c: the Windows primitives under shmop.c and handles.c
 * (shmop-platform.h), and the introspection functions of shmop.h: PHP's
 * TSRM emulation of System V shared memory.
 *
 * Operating-system calls: CreateFileMappingA, OpenFileMappingA,
 * MapViewOfFile, VirtualQuery, UnmapViewOfFile, CloseHandle on
 * "TSRM_SHM_SEGMENT:<key>" (and PHP <= 8.1's "TSRM_SHM_DESCRIPTOR:<key>"),
 * Interlocked* on PHP's descriptor block; ftok from _wstat, CreateFileW,
 * GetFileInformationByHandle; the handle table is guarded by an SRWLOCK.
 *
 * PHP on Windows has no System V shared memory: TSRM/tsrm_win32.c emulates it
 * with named, pagefile-backed file mappings, and so does this file, so
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

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "shmop-platform.h"
#include "shmop.h"

/*
 * PHP's struct shmid_ds (TSRM/tsrm_win32.h) as MSVC lays it out, in types of
 * fixed width so that any compiler gives the same offsets. 32-bit PHP builds
 * use a 32-bit time_t (_USE_32BIT_TIME_T).
 */
typedef struct {
  LONG key;                             /* key_t; -1 once deleted */
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

void shmop__lock(void) { AcquireSRWLockExclusive(&table_lock); }

void shmop__unlock(void) { ReleaseSRWLockExclusive(&table_lock); }

long shmop__add_refs(long *refs, long delta) { return InterlockedExchangeAdd(refs, delta) + delta; }

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

int shmop__open(shmop_t *seg, int32_t key, int flags, int readonly, uint64_t size,
                const char **failed_call) {
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

/* Windows maps every segment read-write (readonly only refuses writes). */
unsigned char *shmop_writable(shmop_t *seg) { return seg->addr; }

int shmop__detach(shmop_t *seg) {
  shmop__desc_t *d = (shmop__desc_t *)seg->_view;
  if (!d) return -EINVAL; /* closed already: shmdt says the same */
  shmop__touch(d, 0);
  InterlockedDecrement16(&d->nattch);
  return shmop__release(seg);
}

/* By key, as the POSIX division does by id: the caller may have closed seg.
   A private segment (key 0) goes when it is closed; nothing else can open it. */
int shmop__remove(shmop_t *seg) { return seg->key ? shmop_remove(seg->id) : 0; }

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
    file =
        CreateFileW(wide, FILE_GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
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
