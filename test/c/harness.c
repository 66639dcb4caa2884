/* harness.c: TAP output, per-process keys, fault doubles and probes (see harness.h). */
#if !defined(_WIN32)
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE /* setgroups() */
#endif

#include "harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== TAP ==== */

static int tap_count, tap_failed, tap_planned;

/* Each platform's: below for POSIX, in windows/harness-win.c for Windows. */
static void keys_start(void);

void tap_start(int planned) {
  /* Line by line: a sanitizer ends the process without flushing stdio. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  tap_planned = planned;
  printf("1..%d\n", planned);
  keys_start();
}

static void tap_line(int pass, const char *file, int line, const char *fmt, va_list args) {
  tap_count++;
  if (!pass) tap_failed++;
  printf("%sok %d - ", pass ? "" : "not ", tap_count);
  vprintf(fmt, args);
  printf("\n");
  if (!pass) printf("#   at %s:%d\n", file, line);
}

int tap_ok(int pass, const char *file, int line, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  tap_line(pass, file, line, fmt, args);
  va_end(args);
  return pass;
}

void tap_diag(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  printf("# ");
  vprintf(fmt, args);
  printf("\n");
  va_end(args);
}

void tap_group(const char *name) { printf("# %s\n", name); }

void tap_skip(int n, const char *why) {
  while (n-- > 0) printf("ok %d # SKIP %s\n", ++tap_count, why);
}

int tap_done(void) {
  if (tap_count != tap_planned) printf("# planned %d tests, ran %d\n", tap_planned, tap_count);
  if (tap_failed) printf("# failed %d of %d\n", tap_failed, tap_count);
  return tap_failed || tap_count != tap_planned ? 1 : 0;
}

void tap_bail(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  printf("Bail out! ");
  vprintf(fmt, args);
  printf("\n");
  va_end(args);
  exit(2);
}

int is_int_at(long long got, long long want, const char *file, int line, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  tap_line(got == want, file, line, fmt, args);
  va_end(args);
  if (got != want) printf("#   got %lld, want %lld\n", got, want);
  return got == want;
}

int is_u64_at(uint64_t got, uint64_t want, const char *file, int line, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  tap_line(got == want, file, line, fmt, args);
  va_end(args);
  if (got != want) {
    printf("#   got %llu, want %llu\n", (unsigned long long)got, (unsigned long long)want);
  }
  return got == want;
}

int is_str_at(const char *got, const char *want, const char *file, int line, const char *fmt, ...) {
  int pass = got && want ? strcmp(got, want) == 0 : got == want;
  va_list args;
  va_start(args, fmt);
  tap_line(pass, file, line, fmt, args);
  va_end(args);
  if (!pass) {
    printf("#   got \"%s\", want \"%s\"\n", got ? got : "(null)", want ? want : "(null)");
  }
  return pass;
}

void *xmalloc(size_t size) {
  void *p = malloc(size);
  if (!p) tap_bail("out of memory (%lu bytes)", (unsigned long)size);
  return p;
}

/* ==== Fault-injection doubles: portable ==== */

long test_malloc_calls, test_calloc_calls;
static int malloc_fault_in, calloc_fault_in; /* calls to go before a fault; 0: none */

void fail_next_malloc(int n) { malloc_fault_in = n; }
void fail_next_calloc(int n) { calloc_fault_in = n; }

/* Counts down to the armed call; true for that one call. */
static int fault_due(int *countdown) {
  if (*countdown <= 0 || --*countdown > 0) return 0;
  return 1;
}

void *test_malloc(size_t size) {
  __atomic_add_fetch(&test_malloc_calls, 1, __ATOMIC_RELAXED);
  if (fault_due(&malloc_fault_in)) {
    errno = ENOMEM;
    return NULL;
  }
  return malloc(size);
}

void *test_calloc(size_t count, size_t size) {
  __atomic_add_fetch(&test_calloc_calls, 1, __ATOMIC_RELAXED);
  if (fault_due(&calloc_fault_in)) {
    errno = ENOMEM;
    return NULL;
  }
  return calloc(count, size);
}

/* ==== POSIX: keys, doubles, probes ==== */
#if !defined(_WIN32)

#include <grp.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

/* Set by tap_start(), so that forked children keep using their parent's keys. */
static unsigned key_base;

static void keys_start(void) { key_base = 0x6C000000u | ((unsigned)getpid() & 0xffffu) << 8; }

int32_t test_key(int n) {
  if (n < 0 || n > 255) tap_bail("key index %d out of 0..255", n);
  if (!key_base) tap_bail("test_key() before tap_start()");
  return (int32_t)(key_base | (unsigned)n);
}

long test_shmget_calls, test_shmat_calls;
static int shmget_fault, shmat_fault, race_rounds;

void fail_next_shmget(int err) { shmget_fault = err; }
void fail_next_shmat(int err) { shmat_fault = err; }
void race_next_creates(int rounds) { race_rounds = rounds; }

int test_shmget(key_t key, size_t size, int flags) {
  int id, err, peer;
  __atomic_add_fetch(&test_shmget_calls, 1, __ATOMIC_RELAXED);
  if (shmget_fault) {
    errno = shmget_fault;
    shmget_fault = 0;
    return -1;
  }
  if (race_rounds > 0 && (flags & IPC_CREAT) && (flags & IPC_EXCL)) {
    race_rounds--;
    peer = shmget(key, 1, IPC_CREAT | IPC_EXCL | 0600);
    id = shmget(key, size, flags);
    err = errno;
    if (peer >= 0) shmctl(peer, IPC_RMID, NULL);
    errno = err;
    return id;
  }
  return shmget(key, size, flags);
}

void *test_shmat(int id, const void *addr, int flags) {
  __atomic_add_fetch(&test_shmat_calls, 1, __ATOMIC_RELAXED);
  if (shmat_fault) {
    errno = shmat_fault;
    shmat_fault = 0;
    return (void *)-1;
  }
  return shmat(id, addr, flags);
}

static int mmap_fault;

void fail_next_mmap(int err) { mmap_fault = err; }

void *test_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset) {
  if (mmap_fault) {
    errno = mmap_fault;
    mmap_fault = 0;
    return MAP_FAILED;
  }
  return mmap(addr, length, prot, flags, fd, offset);
}

long probe_nattch(int id) {
  struct shmid_ds ds;
  return shmctl(id, IPC_STAT, &ds) == 0 ? (long)ds.shm_nattch : -errno;
}

int probe_key(int32_t key) {
  int id = shmget((key_t)key, 0, 0);
  return id >= 0 ? id : -errno;
}

int probe_create(int32_t key, size_t size, int perms) {
  int id = shmget((key_t)key, size, IPC_CREAT | IPC_EXCL | perms);
  return id >= 0 ? id : -errno;
}

int probe_sweep(void) {
  int n, id, left = 0;
  for (n = 0; n < 256; n++) {
    id = shmget((key_t)test_key(n), 0, 0);
    if (id < 0) continue;
    left++;
    tap_diag("segment left behind: key 0x%08x, shmid %d", (unsigned)test_key(n), id);
    shmctl(id, IPC_RMID, NULL);
  }
  return left;
}

int drop_to_nobody(void) {
  if (geteuid() != 0) return 0;
  if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) return -errno;
  return 1;
}

#endif /* POSIX */
