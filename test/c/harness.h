/*
 * harness.h: what the C tests of shmop.c share (harness.c implements it).
 *
 *   TAP        tap_start(planned) prints the plan "1..planned" first, so a
 *              program that stops early or skips tests fails the run even
 *              when it exits with 0; ok()/is_*() print "ok N - name" or
 *              "not ok N - name" at once, with the file and line of a
 *              failure as a "#" comment; tap_done() fails a run of any other
 *              count than the plan.
 *   keys       test_key(n): 256 keys unique to this process (its pid), so
 *              test programs can run side by side; test/c.test.js sweeps the
 *              same range after each program.
 *   doubles    test_malloc, test_calloc (portable) and test_shmget,
 *              test_shmat, test_mmap (POSIX) stand in for the real functions
 *              inside shmop.c (see shmop-under-test.h) and the futex ring
 *              (see sections.c). Each passes straight through
 *              to the real function unless a test arms a fault.
 *   probes     the platform's own view of a segment, to check what shmop.c
 *              did without asking shmop.c. A Windows port supplies its own.
 *
 * Test programs include it through shmop-under-test.h, after shmop.c, whose
 * feature macros then hold for the whole program.
 */
#ifndef TEST_HARNESS_H
#define TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* ==== TAP ==== */

/* Prints the plan: the number of tests a passing run makes. */
void tap_start(int planned);
int tap_ok(int pass, const char *file, int line, const char *fmt, ...);
void tap_diag(const char *fmt, ...);
void tap_group(const char *name);
/* Counts n planned tests as skipped ("ok N # SKIP why"): for what this
   machine cannot do, never for what is inconvenient. */
void tap_skip(int n, const char *why);
int tap_done(void); /* the exit status to return: 1 on a failure or a count off the plan */
void tap_bail(const char *fmt, ...);

#define ok(pass, ...) tap_ok(!!(pass), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) \
  is_int_at((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)
#define is_u64(got, want, ...) \
  is_u64_at((uint64_t)(got), (uint64_t)(want), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) is_str_at((got), (want), __FILE__, __LINE__, __VA_ARGS__)

int is_int_at(long long got, long long want, const char *file, int line, const char *fmt, ...);
int is_u64_at(uint64_t got, uint64_t want, const char *file, int line, const char *fmt, ...);
int is_str_at(const char *got, const char *want, const char *file, int line, const char *fmt, ...);

/* malloc() that bails out when memory runs out. Test files call this: there,
   malloc is declared only under its double's name (see shmop-under-test.h). */
void *xmalloc(size_t size);

/* ==== Keys ==== */

/* Key n (0..255) of this program's range: 0x6Cpppp00 + n, pppp = pid & 0xffff
   of the process that called tap_start() (forked children share its range). */
int32_t test_key(int n);

/* ==== Fault-injection doubles ==== */

/*
 * fail_next_*(n): the n-th call from now (1 = the next one) fails, once.
 * The *_calls counters count every call, faulty or not.
 */
extern long test_malloc_calls, test_calloc_calls;
void fail_next_malloc(int n);
void fail_next_calloc(int n);
void *test_malloc(size_t size);
void *test_calloc(size_t count, size_t size);

#if !defined(_WIN32)
#include <sys/types.h>

extern long test_shmget_calls, test_shmat_calls;
/* The next shmget() fails with this errno without reaching the kernel. */
void fail_next_shmget(int err);
/* The next shmat() fails with this errno without reaching the kernel. */
void fail_next_shmat(int err);
/*
 * For the next `rounds` creating calls (IPC_CREAT|IPC_EXCL), another
 * "process" creates the key just before the call and removes it just after:
 * the call really fails with EEXIST and a lookup right after really finds
 * nothing (ENOENT), as when a peer creates and deletes the key in a loop.
 */
void race_next_creates(int rounds);
int test_shmget(key_t key, size_t size, int flags);
void *test_shmat(int id, const void *addr, int flags);
/* The next mmap() fails with this errno without reaching the kernel. */
void fail_next_mmap(int err);
void *test_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
#endif

/* ==== Probes of the platform's view ==== */

/* Attachments of the segment with this id, or -errno. */
long probe_nattch(int id);
/* The id of the segment that has this key, or -errno (-ENOENT: none). */
int probe_key(int32_t key);
#if !defined(_WIN32)
/* Creates a segment with the real shmget (IPC_CREAT|IPC_EXCL|perms): its id, or -errno. */
int probe_create(int32_t key, size_t size, int perms);
#endif
/* Removes every segment still carrying one of test_key(0..255); returns how many. */
int probe_sweep(void);

#if !defined(_WIN32)
/*
 * For a forked child: drops root to uid/gid 65534 (nobody) with no
 * supplementary groups. Returns 1 if it did, 0 if the process was not root
 * (it then stays the unprivileged user it is), -errno if dropping failed.
 */
int drop_to_nobody(void);
#endif

#endif /* TEST_HARNESS_H */
