/*
 * shmop.h: PHP's ext/shmop in plain C, for programs that share System V
 * segments with PHP workers.
 *
 * Every function behaves as PHP 8's shmop_* does (see README.md, "Using it
 * with PHP"), with two deliberate differences: lengths and offsets are 64-bit
 * everywhere, and a segment this library created is removed again if it cannot
 * be attached, so a failed open never leaks one.
 *
 * Nothing here deletes or detaches anything implicitly: a segment goes away
 * only through shmop_delete(), a mapping only through shmop_close() (or
 * shmop_table_close() and the release of its last reference, handles.h).
 *
 * Return values: 0 is success; a negative errno value (-ENOENT, -EACCES, ...)
 * is an operating-system failure; the SHMOP_E* codes below are misuse, which
 * PHP 8 reports with ValueError or Error. shmop_strerror() names any of them.
 */
#ifndef SHMOP_H
#define SHMOP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Status codes for misuse (all below any -errno value) ==== */

enum {
  SHMOP_EMODE = -10001,      /* access mode is not exactly one of a, c, w, n */
  SHMOP_ESIZE = -10002,      /* size < 1 when the flags ask to create */
  SHMOP_EOFFSET = -10003,    /* start or offset outside 0..size */
  SHMOP_ECOUNT = -10004,     /* count goes past the end of the segment */
  SHMOP_EREADONLY = -10005,  /* write through a segment opened with "a" */
  SHMOP_EBADHANDLE = -10006, /* no open segment has this handle */
  SHMOP_EUNSAFE = -10007     /* perms hold SHM_HUGETLB with SHM_NORESERVE (see shmop_open) */
};

/* ==== One attached segment ==== */

/* Fields starting with '_' are private to shmop.c and its platform file. */
typedef struct shmop_s {
  unsigned char *addr; /* first byte of the user's data */
  uint64_t size;       /* bytes of user data, as the system reports them */
  int32_t key;         /* the key it was opened with (0: IPC_PRIVATE) */
  int id;              /* the system's id: the shmid on POSIX, the key on Windows */
  int readonly;        /* opened with "a": writes are refused */
  void *_view;         /* start of the mapping (Windows: its descriptor block) */
  void *_mapping;      /* Windows: the file-mapping HANDLE; unused elsewhere */
  void *_writable;     /* POSIX, opened with "a": shmop_writable's mapping, or (void *)-1 */
#ifdef _WIN32
  void *_info; /* Windows, PHP <= 8.1 layout: the descriptor's HANDLE */
#endif
} shmop_t;

/*
 * Opens a segment like PHP's shmop_open($key, $mode, $permissions, $size).
 * mode is one letter: 'a' attach read-only, 'w' attach read-write, 'c' create
 * or attach, 'n' create only. perms goes to the system unmasked (PHP does the
 * same: 010000 there is SHM_NORESERVE, 02000 IPC_EXCL). size is used only by
 * 'c' and 'n' and must then be >= 1; seg->size is the size the system reports.
 *
 * One difference from PHP: perms holding both SHM_HUGETLB and SHM_NORESERVE
 * (Linux) are refused with SHMOP_EUNSAFE, because such a segment takes its
 * huge pages at first touch and kills the process with SIGBUS when none is free.
 *
 * Returns 0 and fills *seg; SHMOP_EMODE, SHMOP_ESIZE or SHMOP_EUNSAFE for misuse; or -errno,
 * with *failed_call set to the call that failed ("shmget", "shmctl" or
 * "shmat"; PHP's warnings name the same three stages).
 *
 * Windows: the segment is PHP's file-mapping emulation (src/shmop-win.c);
 * perms is ignored except for its IPC_CREAT and IPC_EXCL bits, seg->size is
 * what PHP 8.2-8.5's shmop_size() reports (the size asked for plus
 * sizeof(void *)), and every failure is reported as "shmget".
 */
int shmop_open(shmop_t *seg, int32_t key, char mode, int perms, int64_t size,
               const char **failed_call);

/* Detaches the segment (PHP 7's shmop_close). Returns 0 or -errno. */
int shmop_close(shmop_t *seg);

/*
 * Marks the segment for deletion (IPC_RMID), as shmop_delete does. The
 * mapping stays usable until it is closed; the key is free at once.
 * Returns 0, or -errno (-EPERM: not the owner).
 *
 * Windows: marks the descriptor's key -1, which PHP and this library read as
 * "deleted": new opens of the key fail until every process has closed the
 * segment, then the name is free. (PHP's own shmop_delete does nothing there.)
 */
int shmop_delete(shmop_t *seg);

/* ==== Data ==== */

/*
 * Checks a read of count bytes from start like shmop_read: start must lie
 * in 0..size (start == size is legal), count 0 means "to the end".
 * Returns 0 and the number of bytes in *length, or SHMOP_EOFFSET/SHMOP_ECOUNT.
 */
int shmop_read_span(const shmop_t *seg, uint64_t start, uint64_t count, uint64_t *length);

/*
 * Copies length bytes from start into dst, which has room for them; the span
 * must have passed shmop_read_span(). Returns 0, SHMOP_EOFFSET or SHMOP_ECOUNT.
 */
int shmop_read(const shmop_t *seg, uint64_t start, uint64_t length, void *dst);

/*
 * Writes like shmop_write: offset must lie in 0..size, the data is cut at the
 * end of the segment, and *written is the number of bytes copied (0 when
 * offset == size). Returns 0, SHMOP_EREADONLY (checked first, as PHP does) or
 * SHMOP_EOFFSET.
 */
int shmop_write(const shmop_t *seg, const void *src, uint64_t length, uint64_t offset,
                uint64_t *written);

/*
 * A read-write mapping of the same segment, at the same offsets as addr: addr
 * itself unless the segment was opened with "a"; then a second attachment,
 * made on the first call (thread-safe) and detached by shmop_close. NULL when
 * the process may not write the segment. Section waiters attached read-only
 * count themselves through it (docs/sections.md, 7) and write nothing else.
 */
unsigned char *shmop_writable(shmop_t *seg);

/* ==== Introspection (no attach needed) ==== */

/* What the system knows of a segment (IPC_STAT). On Windows, what PHP's
   descriptor block holds: id is the key, mode and the owners are 0. */
typedef struct shmop_stat_s {
  int32_t key;                 /* 0 once marked for deletion (Linux) or for IPC_PRIVATE */
  int id;                      /* the system's id (shmid) */
  uint64_t size;               /* bytes */
  unsigned mode;               /* permission bits, 0..0777 */
  uint32_t uid, gid;           /* owner */
  uint32_t cuid, cgid;         /* creator */
  int64_t cpid, lpid;          /* creator, and last process to attach or detach */
  uint64_t attachments;        /* current number of attachments (nattch) */
  int64_t atime, dtime, ctime; /* last attach, detach, change: Unix seconds, 0 = never */
  int marked;                  /* marked for deletion, destroyed at the last detach */
} shmop_stat_t;

/* Finds the id of the segment with this key (read permission not needed).
   Returns 0, or -errno (-ENOENT: no such key; -EINVAL for key 0). */
int shmop_find(int32_t key, int *id);

/* Fills *st for a segment id. Returns 0 or -errno (-EACCES without read
   permission, -EINVAL when there is no such id). */
int shmop_stat(int id, shmop_stat_t *st);

/* Marks a segment id for deletion (IPC_RMID) without attaching to it.
   Returns 0 or -errno (-EPERM: not the owner). */
int shmop_remove(int id);

/* ftok(3), the key PHP's ftok() gives for a path and a project byte (on
   Windows: PHP's win32/ftok.c from the drive number and the file index; the
   path is UTF-8). Returns 0, or -errno when the path cannot be stat'ed. */
int shmop_ftok(const char *path, unsigned char project, int32_t *key);

/* ==== Errors ==== */

/* A static English description of any return value of this library. */
const char *shmop_strerror(int status);

#ifdef __cplusplus
}
#endif

/*
 * The integer-handle table of the original six functions (src/handles.h) is
 * a binding's need, not PHP's, and is declared there; it is included here so
 * that glue written against this one header keeps building.
 */
#include "handles.h"

#endif /* SHMOP_H */
