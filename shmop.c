/*
 * shmop.c: PHP's ext/shmop (PHP 8.0-8.5) re-implemented in C99: PHP's rules,
 * on top of one platform's primitives (src/shmop-platform.h).
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
 * Where the rest lives (binding.gyp builds one platform's files):
 *   src/shmop-posix.c  shmget, shmctl, shmat, shmdt, ftok (System V)
 *   src/shmop-win.c    PHP's TSRM emulation with named file mappings
 *   src/handles.c      the integer handles of the original six functions
 *   src/copy.c         the memcpy that reads and writes go through
 */
#include "shmop.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "copy.h"
#include "shmop-platform.h"

int shmop_open(shmop_t *seg, int32_t key, char mode, int perms, int64_t size,
               const char **failed_call) {
  int flags = perms, readonly = 0;
  switch (mode) {
  case 'a':
    readonly = 1;
    size = 0;
    break;
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

int shmop_read_span(const shmop_t *seg, uint64_t start, uint64_t count, uint64_t *length) {
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

int shmop_write(const shmop_t *seg, const void *src, uint64_t length, uint64_t offset,
                uint64_t *written) {
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
