/*
 * shmop-posix.c: the System V primitives under shmop.c and handles.c
 * (shmop-platform.h), and the introspection functions of shmop.h.
 *
 * Operating-system calls: shmget, shmctl(IPC_STAT), shmat, shmdt,
 * shmctl(IPC_RMID), ftok; the handle table is guarded by a spin lock
 * (GCC/Clang atomics).
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE /* SHM_DEST on Linux */

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include "shmop-platform.h"
#include "shmop.h"

static int table_lock; /* a spin lock: held for a hash lookup at most */

void shmop__lock(void) {
  while (__atomic_exchange_n(&table_lock, 1, __ATOMIC_ACQUIRE)) sched_yield();
}

void shmop__unlock(void) { __atomic_store_n(&table_lock, 0, __ATOMIC_RELEASE); }

long shmop__add_refs(long *refs, long delta) {
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

#if defined(__linux__)
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; newer than some system headers */
#endif

/* The smallest huge page this kernel offers (2 MiB on x86-64; 64 KiB on some
   arm64 kernels), from /sys/kernel/mm/hugepages/hugepages-<size>kB; 0: none. */
static uint64_t smallest_huge_page;
static pthread_once_t huge_pages_found = PTHREAD_ONCE_INIT;

static void shmop__find_huge_pages(void) {
  DIR *dir = opendir("/sys/kernel/mm/hugepages");
  struct dirent *entry;
  uint64_t kb;
  if (!dir) return;
  while ((entry = readdir(dir)) != NULL) {
    if (sscanf(entry->d_name, "hugepages-%" SCNu64 "kB", &kb) == 1 && kb > 0 &&
        (smallest_huge_page == 0 || kb * 1024 < smallest_huge_page)) {
      smallest_huge_page = kb * 1024;
    }
  }
  closedir(dir);
}

/* The page size of the mapping that starts at addr when it is larger than
   the base page (the segment lives in huge pages, SHM_HUGETLB), else 0. The
   kernel keeps no trace of SHM_HUGETLB in IPC_STAT or /proc/sysvipc/shm;
   /proc/self/smaps shows it, at a cost that grows with the process's
   mappings (the kernel walks the pages of every mapping before this one).
   Huge-page mappings are aligned to their page size, so all but one
   attachment in (smallest huge page / base page) are told apart without it. */
static uint64_t shmop__huge_page(const void *addr) {
  char line[256];
  unsigned long start, end;
  uint64_t kb = 0;
  int found = 0;
  FILE *f;
  pthread_once(&huge_pages_found, shmop__find_huge_pages);
  if (smallest_huge_page == 0 || (uintptr_t)addr % smallest_huge_page != 0) return 0;
  f = fopen("/proc/self/smaps", "r");
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
      if (found) break;
      found = start == (uintptr_t)addr;
    } else if (found && sscanf(line, "KernelPageSize: %" SCNu64 " kB", &kb) == 1) {
      break;
    }
  }
  fclose(f);
  return kb * 1024 > (uint64_t)sysconf(_SC_PAGESIZE) ? kb * 1024 : 0;
}

/* A segment in huge pages made with SHM_NORESERVE (by PHP, say) takes its
   pages at first touch, and a touch that finds none free kills the process
   with SIGBUS. Populating the pages first reports that as an error instead;
   once populated they stay with the segment. Returns 0 or -errno. */
static int shmop__populate(void *addr, uint64_t size) {
  uint64_t page = shmop__huge_page(addr);
  if (!page) return 0;
  size = (size + page - 1) / page * page;
  if (madvise(addr, (size_t)size, MADV_POPULATE_READ) == 0) return 0;
  /* EFAULT: no huge page free; EINVAL: a kernel before 5.14, which cannot
     tell: either way, touching it could kill the process. */
  return -ENOMEM;
}
#else
static int shmop__populate(void *addr, uint64_t size) {
  (void)addr, (void)size;
  return 0;
}
#endif

int shmop__open(shmop_t *seg, int32_t key, int flags, int readonly, uint64_t size,
                const char **failed_call) {
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
  *failed_call = "madvise";
  if ((rc = shmop__populate(addr, (uint64_t)ds.shm_segsz)) != 0) {
    shmdt(addr);
    if (created) shmctl(id, IPC_RMID, NULL);
    return rc;
  }
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

int shmop__detach(shmop_t *seg) {
  void *writable = seg->_writable;
  if (writable && writable != (void *)-1) shmdt(writable);
  seg->_writable = NULL;
  return shmdt(seg->_view) == 0 ? 0 : -errno;
}

/* One lock for every segment: taken once per wait of a read-only table. */
static pthread_mutex_t writable_lock = PTHREAD_MUTEX_INITIALIZER;

unsigned char *shmop_writable(shmop_t *seg) {
  void *writable;
  if (!seg->readonly) return seg->addr;
  pthread_mutex_lock(&writable_lock);
  /* (void *)-1 without write permission: remembered, not tried again. */
  if (!seg->_writable) seg->_writable = shmat(seg->id, NULL, 0);
  writable = seg->_writable;
  pthread_mutex_unlock(&writable_lock);
  return writable == (void *)-1 ? NULL : (unsigned char *)writable;
}

int shmop__remove(shmop_t *seg) { return shmop_remove(seg->id); }

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
