/*
 * sections.c: the C tests of the section protocol's POSIX half (src/sections.c
 * with sections-posix.c and sections-linux.c, or sections-poll.c when built
 * with SECTIONS_POLL), with threads and fork(): publish and read, claims and
 * their lock, process identity and liveness, waits and wakes, damaged control
 * blocks, and torn reads made deterministic.
 *
 * The product files are compiled into this program with SHMSECT_TEST_POINTS,
 * so that sections.c calls sect__test_point() (below) at chosen places in a
 * read and a publish: a thread armed for a point stops there until the test
 * lets it go. That is how a reader is made to copy a slot while a writer is
 * half-way through it, every time rather than once in 100 000 reads.
 *
 * The section lives in a private System V segment, marked for deletion as
 * soon as it is attached (forked children inherit the attachment), so that
 * nothing outlives the program. Control words are checked and damaged
 * through their bytes, at the offsets of docs/sections.md, 1.3.
 */
#define SHMSECT_TEST_POINTS
/* Each product file sets its own feature macros, as the addon compiles it
   alone; <features.h> redefines them, so they are undefined in between. */
#if defined(SECTIONS_POLL)
#include "../../src/futex-ring-none.c"
#include "../../src/sections-poll.c"
#else
#define calloc test_calloc /* harness.c's fault doubles */
#define mmap test_mmap
#include "../../src/futex-ring-linux.c"
#undef calloc
#undef mmap
#undef _XOPEN_SOURCE
#undef _DEFAULT_SOURCE
#include "../../src/sections-linux.c"
#endif
#undef _XOPEN_SOURCE
#undef _DEFAULT_SOURCE
#define semctl test_semctl /* a fault double, below */
#include "../../src/sections-posix.c"
#undef semctl
#include "../../src/copy.c"
#include "../../src/sections.c"
#include "../../src/sections-many.c"
#include "control-block.h"
#include "harness.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/wait.h>

/* The section: control block at 128, data areas at 24 mod 64 (1.4). */
enum {
  CONTROL = 128,
  CAPACITY = 5000, /* above copy.c's 2048-byte pieces */
  DATA0 = 320 + 24,
  DATA1 = 5376 + 24, /* align64(DATA0 + CAPACITY) + 24 */
  SEGMENT_SIZE = DATA1 + CAPACITY
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/* A fresh section in a private segment that goes away with its last attachment. */
static void section_new(shmsect_t *s) {
  int id = shmget(IPC_PRIVATE, SEGMENT_SIZE, IPC_CREAT | 0600);
  void *addr;
  if (id < 0) tap_bail("shmget: %s", strerror(errno));
  addr = shmat(id, NULL, 0);
  shmctl(id, IPC_RMID, NULL);
  if (addr == (void *)-1) tap_bail("shmat: %s", strerror(errno));
  s->base = (unsigned char *)addr;
  s->size = SEGMENT_SIZE;
  s->control = CONTROL;
  s->data[0] = DATA0;
  s->data[1] = DATA1;
  s->capacity = CAPACITY;
  s->counts = s->base;
}

static void section_free(shmsect_t *s) { shmdt(s->base); }

/* Payloads tell their version: every byte is the version's low byte, and the
   length depends on the version too, so a torn copy shows. */
static uint64_t length_of(uint64_t version) { return 100 + (version * 977) % (CAPACITY - 100); }

static void payload_of(uint64_t version, unsigned char *buf) {
  memset(buf, (int)(version & 0xff), (size_t)length_of(version));
}

static int payload_is(uint64_t version, const unsigned char *buf, uint64_t length) {
  uint64_t i;
  if (length != length_of(version)) return 0;
  for (i = 0; i < length; i++) {
    if (buf[i] != (unsigned char)(version & 0xff)) return 0;
  }
  return 1;
}

/* Publishes the next version's payload; returns the version, or 0 on failure. */
static uint64_t publish_next(const shmsect_t *s, uint64_t self) {
  static unsigned char buf[CAPACITY];
  uint64_t version = shmsect_version(s) + 1, got = 0;
  payload_of(version, buf);
  if (shmsect_publish(s, self, buf, length_of(version), &got) != 0) return 0;
  return got;
}

/* Forks a child that runs fn(s, arg) and exits with its result. */
static pid_t child_run(int (*fn)(const shmsect_t *, long), const shmsect_t *s, long arg) {
  pid_t pid;
  fflush(stdout);
  pid = fork();
  if (pid == 0) _exit(fn(s, arg));
  if (pid < 0) tap_bail("fork: %s", strerror(errno));
  return pid;
}

/* The child's exit status, or -1 if it did not exit normally. */
static int child_status(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

/*
 * ThreadSanitizer's one suppression (it reads this function when present):
 * a seqlock copies the payload while a writer may be overwriting it, by
 * design, and keeps the copy only if the slot's seq says it was left alone.
 * Every control word is accessed atomically and is checked as usual.
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void) { return "race:shmop_copy\n"; }

/* ==== Test points: stopping a reader or a writer mid-call ==== */

/* One stop per role; a thread arms its own, so the test knows who stops. */
enum { READER, WRITER, ROLES };
static struct {
  pthread_t thread;
  int point, armed, arrived, go;
} stops[ROLES];
static int commit_loads; /* SECT_AT_READ_COMMIT passes: one per try of a read */
static pthread_mutex_t stop_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;

void sect__test_point(int point) {
  int role;
  pthread_mutex_lock(&stop_mutex);
  if (point == SECT_AT_READ_COMMIT) commit_loads++;
  for (role = 0; role < ROLES; role++) {
    if (!stops[role].armed || stops[role].point != point) continue;
    if (!pthread_equal(stops[role].thread, pthread_self())) continue;
    stops[role].armed = 0;
    stops[role].arrived = 1;
    pthread_cond_broadcast(&stop_cond);
    while (!stops[role].go) pthread_cond_wait(&stop_cond, &stop_mutex);
  }
  pthread_mutex_unlock(&stop_mutex);
}

/* Called by the test before it starts the thread that plays role. */
static void stop_reset(int role) {
  pthread_mutex_lock(&stop_mutex);
  stops[role].armed = stops[role].arrived = stops[role].go = 0;
  pthread_mutex_unlock(&stop_mutex);
}

/* Called by the thread that is to stop at point (0: nowhere). */
static void stop_me_at(int role, int point) {
  pthread_mutex_lock(&stop_mutex);
  stops[role].thread = pthread_self();
  stops[role].point = point;
  stops[role].armed = point != 0;
  pthread_mutex_unlock(&stop_mutex);
}

static void wait_arrived(int role) {
  pthread_mutex_lock(&stop_mutex);
  while (!stops[role].arrived) pthread_cond_wait(&stop_cond, &stop_mutex);
  pthread_mutex_unlock(&stop_mutex);
}

static void let_go(int role) {
  pthread_mutex_lock(&stop_mutex);
  stops[role].go = 1;
  pthread_cond_broadcast(&stop_cond);
  pthread_mutex_unlock(&stop_mutex);
}

static int loads_of_commit(void) {
  int n;
  pthread_mutex_lock(&stop_mutex);
  n = commit_loads;
  pthread_mutex_unlock(&stop_mutex);
  return n;
}

/* ==== Threads that read, publish and wait ==== */

typedef struct {
  const shmsect_t *s;
  uint64_t self, since, version;
  int point, rc, cancel;
  int64_t timeout_ms;
  double done_ms;
  shmsect_snapshot_t snap;
  unsigned char buf[CAPACITY];
} job_t;

static void *reader_main(void *arg) {
  job_t *j = (job_t *)arg;
  stop_me_at(READER, j->point);
  j->rc = shmsect_read(j->s, j->buf, CAPACITY, &j->snap);
  return NULL;
}

static void *writer_main(void *arg) {
  job_t *j = (job_t *)arg;
  stop_me_at(WRITER, j->point);
  j->version = publish_next(j->s, j->self);
  return NULL;
}

static void *waiter_main(void *arg) {
  job_t *j = (job_t *)arg;
  j->rc = shmsect_wait(j->s, j->since, j->timeout_ms, &j->cancel, &j->version);
  j->done_ms = now_ms();
  return NULL;
}

static void start(pthread_t *t, void *(*fn)(void *), void *arg) {
  if (pthread_create(t, NULL, fn, arg) != 0) tap_bail("pthread_create failed");
}

/* ==== Layout, identity, empty section ==== */

static void test_check(const shmsect_t *good) {
  shmsect_t s = *good;
  tap_group("shmsect_check: every part inside the segment, aligned, apart");
  is_int(shmsect_check(&s), 0, "the test's section: 0");
  s.control = CONTROL + 8;
  is_int(shmsect_check(&s), SHMSECT_EBOUNDS, "a control block off 64: SHMSECT_EBOUNDS");
  s = *good, s.data[0] = CONTROL + 64;
  is_int(shmsect_check(&s), SHMSECT_EBOUNDS, "data over the control block: SHMSECT_EBOUNDS");
  s = *good, s.capacity = CAPACITY + 1;
  is_int(shmsect_check(&s), SHMSECT_EBOUNDS, "data past the segment: SHMSECT_EBOUNDS");
  s = *good, s.control = SEGMENT_SIZE + 64;
  is_int(shmsect_check(&s), SHMSECT_EBOUNDS, "a control block past it: SHMSECT_EBOUNDS");
}

/* Field 22 of /proc/self/stat, read here rather than through sections-linux.c. */
static uint32_t my_start_ticks(void) {
#if defined(SECTIONS_POLL)
  return 0; /* sections-poll.c knows no start times */
#else
  char text[1024], *p;
  size_t n;
  int field;
  FILE *f = fopen("/proc/self/stat", "r");
  if (!f) return 0;
  n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  p = strrchr(text, ')');
  for (field = 2; field < 22 && p; field++) p = strchr(p + 1, ' ');
  return p ? (uint32_t)strtoull(p + 1, NULL, 10) : 0;
#endif
}

/* exit(), not a return to child_run's _exit(): the atfork handler that made
   the child forget its parent's identity ran here, and gcov counts it at exit. */
static int child_identity(const shmsect_t *s, long parent_self) {
  uint64_t self = shmsect_self();
  (void)s;
  exit(self >> 32 == (uint64_t)getpid() && self != (uint64_t)parent_self ? 0 : 1);
}

static int child_exits(const shmsect_t *s, long arg) { return (void)s, (int)arg; }

static void test_identity(const shmsect_t *s, uint64_t self) {
  pid_t pid;
  tap_group("identity and liveness");
  is_u64(self >> 32, (uint64_t)getpid(), "shmsect_self: the pid in the high half");
  is_u64(self & 0xffffffffu, my_start_ticks(), "... the start time in the low half");
  is_u64(shmsect_self(), self, "... the same on the next call");
  ok(shmsect_alive(self), "this process is alive");
  ok(!shmsect_alive(0), "claim word 0 is no one");
  ok(!shmsect_alive((uint64_t)0x80000000u << 32), "a pid above INT_MAX is no one (not a group)");
  ok(!shmsect_alive((uint64_t)0xffffffffu << 32), "pid 0xffffffff is no one (not kill(-1))");
  is_int(child_status(child_run(child_identity, s, (long)self)), 0,
         "a forked child has its own identity");
  pid = child_run(child_exits, s, 0);
  child_status(pid);
  ok(!shmsect_alive((uint64_t)pid << 32), "a child that exited is not alive");
#if defined(SECTIONS_POLL)
  ok(shmsect_alive((self | 0xffffffffu) ^ 1), "another start time: no start times here, alive");
#else
  ok(!shmsect_alive(self ^ 1), "this pid with another start time is not alive (pid reuse)");
#endif
}

static void test_empty(const shmsect_t *s) {
  shmsect_snapshot_t snap;
  unsigned char buf[16];
  tap_group("a section before its first publish");
  is_u64(shmsect_version(s), 0, "version 0");
  is_int(shmsect_read(s, buf, sizeof buf, &snap), 0, "read: 0");
  ok(snap.version == 0 && snap.length == 0, "... version 0, no payload");
  is_u64(shmsect_claimant(s), 0, "unclaimed");
}

/* ==== Claims, publish and read in one process ==== */

static void test_claim(const shmsect_t *s, uint64_t self) {
  uint64_t holder = 0, version = 0, other = (uint64_t)getppid() << 32;
  unsigned char byte = 0;
  pid_t dead;
  tap_group("claim and release (no lock)");
  is_int(shmsect_publish(s, self, &byte, 1, &version), SHMSECT_ENOTWRITER,
         "publish without the claim: SHMSECT_ENOTWRITER");
  is_int(shmsect_claim(s, self, 1, -1, &holder), 0, "claim: 0");
  is_u64(shmsect_claimant(s), self, "... the claim word is ours");
  is_int(rd32(ctrl(s, FLAGS)), 1, "... flags: we wake waiters");
  is_int(shmsect_claim(s, self, 1, -1, &holder), SHMSECT_EBUSY, "claim again: SHMSECT_EBUSY");
  is_u64(holder, self, "... held by us");
  is_int(shmsect_claim(s, other, 0, -1, &holder), SHMSECT_EBUSY,
         "another live process (our parent) claims: SHMSECT_EBUSY");
  is_u64(holder, self, "... told that we hold it");
  is_int(shmsect_release(s, other, -1), SHMSECT_ENOTWRITER,
         "release by a non-holder: SHMSECT_ENOTWRITER");
  is_int(shmsect_release(s, self, -1), 0, "release: 0");
  ok(shmsect_claimant(s) == 0 && rd32(ctrl(s, FLAGS)) == 0, "... unclaimed, flags 0");
  dead = child_run(child_exits, s, 0);
  child_status(dead);
  wr64(ctrl(s, CLAIM), (uint64_t)dead << 32);
  is_int(shmsect_claim(s, self, 1, -1, &holder), 0, "a claim held by a dead process: taken over");
  is_u64(shmsect_claimant(s), self, "... the claim word is ours");
}

static void test_publish_read(const shmsect_t *s, uint64_t self) {
  static unsigned char buf[CAPACITY + 1], out[CAPACITY];
  shmsect_snapshot_t snap;
  uint64_t version = 0, commit;
  double now_us = (double)time(NULL) * 1e6;
  tap_group("publish and read");
  is_u64(publish_next(s, self), 1, "publish: version 1");
  is_int(shmsect_read(s, out, CAPACITY, &snap), 0, "read: 0");
  is_u64(snap.version, 1, "... version 1");
  ok(payload_is(1, out, snap.length), "... its payload (%llu bytes)",
     (unsigned long long)snap.length);
  is_int(snap.writer_pid, getpid(), "... written by this process");
  ok((double)snap.published_us > now_us - 5e6 && (double)snap.published_us < now_us + 5e6,
     "... published now (wall clock, microseconds)");
  is_u64(publish_next(s, self), 2, "publish again: version 2");
  commit = rd64(ctrl(s, COMMIT));
  ok(commit >> 1 == 2 && rd64(ctrl(s, (commit & 1) ? SLOT1 + VERSION : SLOT0 + VERSION)) == 2,
     "the commit word names version 2's slot");
  is_int(shmsect_read(s, out, 10, &snap), SHMSECT_ETOOSMALL,
         "read into 10 bytes: SHMSECT_ETOOSMALL");
  is_u64(snap.length, length_of(2), "... saying how many it needs");
  is_int(shmsect_publish(s, self, buf, CAPACITY + 1, &version), SHMSECT_ETOOSMALL,
         "publish past the capacity: SHMSECT_ETOOSMALL");
  memset(buf, 0xab, CAPACITY);
  is_int(shmsect_publish(s, self, buf, CAPACITY, &version), 0, "publish the whole capacity: 0");
  ok(shmsect_read(s, out, CAPACITY, &snap) == 0 && snap.length == CAPACITY &&
         memcmp(out, buf, CAPACITY) == 0,
     "... read back whole");
  is_int(shmsect_publish(s, self, buf, 0, &version), 0, "publish 0 bytes: 0");
  ok(shmsect_read(s, out, 0, &snap) == 0 && snap.length == 0 && snap.version == version,
     "... read back into no room");
}

/* Reads of a control block damaged at offset: SHMSECT_ECORRUPT; then repaired. */
static void corrupt_at(const shmsect_t *s, unsigned offset, uint64_t bad, int wide,
                       const char *what) {
  shmsect_snapshot_t snap;
  unsigned char out[CAPACITY];
  uint64_t good = wide ? rd64(ctrl(s, offset)) : rd32(ctrl(s, offset));
  if (wide) wr64(ctrl(s, offset), bad);
  else wr32(ctrl(s, offset), (uint32_t)bad);
  is_int(shmsect_read(s, out, CAPACITY, &snap), SHMSECT_ECORRUPT, "%s: SHMSECT_ECORRUPT", what);
  if (wide) wr64(ctrl(s, offset), good);
  else wr32(ctrl(s, offset), (uint32_t)good);
}

static void test_corrupt(const shmsect_t *s, uint64_t self) {
  shmsect_snapshot_t snap;
  unsigned char out[CAPACITY];
  unsigned slot;
  tap_group("a damaged control block: SHMSECT_ECORRUPT, not a hang");
  publish_next(s, self);
  slot = (rd64(ctrl(s, COMMIT)) & 1) ? SLOT1 : SLOT0;
  is_int(shmsect_read(s, out, CAPACITY, &snap), 0, "intact: read 0");
  corrupt_at(s, slot + VERSION, 12345, 1, "the slot's version is not the commit's");
  corrupt_at(s, slot + LENGTH, CAPACITY + 1, 1, "a length past the capacity");
  corrupt_at(s, slot + SEQ, rd32(ctrl(s, slot + SEQ)) | 1, 0, "the committed slot's seq stuck odd");
  is_int(shmsect_read(s, out, CAPACITY, &snap), 0, "repaired: read 0 again");
}

/* A hostile peer: keeps both slots' seq odd while it bumps the commit word. */
typedef struct hostile_s {
  const shmsect_t *s;
  int stop, started;
} hostile_t;

static void *hostile_main(void *arg) {
  hostile_t *h = (hostile_t *)arg;
  uint64_t commit = rd64(ctrl(h->s, COMMIT));
  /* Atomic stores (the readers' loads are atomic): a race, not a data race. */
  uint32_t *seq0 = (uint32_t *)(void *)ctrl(h->s, SLOT0 + SEQ);
  uint32_t *seq1 = (uint32_t *)(void *)ctrl(h->s, SLOT1 + SEQ);
  uint64_t *word = (uint64_t *)(void *)ctrl(h->s, COMMIT);
  while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
    __atomic_fetch_or(seq0, 1, __ATOMIC_RELEASE);
    __atomic_fetch_or(seq1, 1, __ATOMIC_RELEASE);
    commit += 2;
    __atomic_store_n(word, commit, __ATOMIC_RELEASE);
    __atomic_store_n(&h->started, 1, __ATOMIC_RELEASE); /* both slots odd from here on */
  }
  return NULL;
}

/* A hostile thread descheduled for the reader's 10 000 tries stands the commit
   still, which the reader rightly calls damage (SHMSECT_ECORRUPT): on a loaded
   machine that happens, so the reader gets a few attempts to see the commit
   move. Every attempt must end with an error within the bound, never hang. */
static void test_starved(uint64_t self) {
  static hostile_t h;
  shmsect_t s;
  shmsect_snapshot_t snap;
  unsigned char out[CAPACITY];
  pthread_t t;
  double started, took = 0;
  int rc = 0, attempt, bounded = 1;
  tap_group(
      "a hostile peer keeps the slots odd and the commit moving: SHMSECT_ESTARVED, not a hang");
  section_new(&s);
  publish_next(&s, self);
  for (attempt = 0; attempt < 5 && rc != SHMSECT_ESTARVED; attempt++) {
    memset(&h, 0, sizeof h);
    h.s = &s;
    start(&t, hostile_main, &h);
    while (!__atomic_load_n(&h.started, __ATOMIC_ACQUIRE)) sleep_ms(1);
    started = now_ms();
    rc = shmsect_read(&s, out, CAPACITY, &snap);
    took = now_ms() - started;
    __atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    if (rc != SHMSECT_ESTARVED && rc != SHMSECT_ECORRUPT) break;
    if (took >= 10 * SHMSECT_READ_MAX_MS) bounded = 0;
  }
  is_int(rc, SHMSECT_ESTARVED, "read: SHMSECT_ESTARVED (attempt %d of at most 5)", attempt);
  ok(took >= SHMSECT_READ_MAX_MS && took < 10 * SHMSECT_READ_MAX_MS,
     "... after %.1f ms (SHMSECT_READ_MAX_MS is %d)", took, SHMSECT_READ_MAX_MS);
  ok(bounded, "every attempt ended within %d ms", 10 * SHMSECT_READ_MAX_MS);
  section_free(&s);
}

/* ==== A claim that loses the compare-exchange ==== */

static void *claimer_main(void *arg) {
  job_t *j = (job_t *)arg;
  stop_me_at(READER, j->point);
  j->rc = shmsect_claim(j->s, j->self, 0, -1, &j->version);
  return NULL;
}

/* A claimer stops with the free claim word loaded; another claims first. */
static void test_claim_race(uint64_t self) {
  static job_t other;
  pthread_t t;
  shmsect_t s;
  uint64_t holder;
  tap_group("a claim that loses the race to the compare-exchange (no lock)");
  section_new(&s);
  memset(&other, 0, sizeof other);
  other.s = &s;
  other.self = (uint64_t)getppid() << 32; /* a live process: our parent */
  other.point = SECT_AT_CLAIM_LOADED;
  stop_reset(READER);
  start(&t, claimer_main, &other);
  wait_arrived(READER);
  shmsect_claim(&s, self, 0, -1, &holder);
  let_go(READER);
  pthread_join(t, NULL);
  is_int(other.rc, SHMSECT_EBUSY, "the late claimer: SHMSECT_EBUSY");
  ok(other.version == self && shmsect_claimant(&s) == self, "... naming the winner, who holds it");
  section_free(&s);
}

/* ==== Torn reads, deterministic: the reader and the writer stopped mid-call ==== */

typedef struct {
  int reader_at, writer_at; /* writer_at 0: the second publish runs whole */
  const char *what;
} scene_t;

static const scene_t scenes[] = {
    {SECT_AT_READ_COMMIT, SECT_AT_PUBLISH_ODD, "commit loaded; the writer has marked the slot odd"},
    {SECT_AT_READ_COMMIT, SECT_AT_PUBLISH_COPIED,
     "commit loaded; the writer has copied its payload"},
    {SECT_AT_READ_COMMIT, SECT_AT_PUBLISH_HEADER,
     "commit loaded; the writer has written the header"},
    {SECT_AT_READ_COMMIT, SECT_AT_PUBLISH_EVEN, "commit loaded; the writer's seq is even again"},
    {SECT_AT_READ_SEQ, SECT_AT_PUBLISH_ODD, "seq loaded; the writer has marked the slot odd"},
    {SECT_AT_READ_SEQ, SECT_AT_PUBLISH_COPIED, "seq loaded; the writer has copied its payload"},
    {SECT_AT_READ_SEQ, SECT_AT_PUBLISH_HEADER, "seq loaded; the writer has written the header"},
    {SECT_AT_READ_COPIED, 0, "payload copied; the writer has finished over it"}};
#define SCENES ((int)(sizeof scenes / sizeof scenes[0]))

/*
 * The reader stops at reader_at with version v's slot in hand. Version v+1
 * is published into the other slot, then v+2 into the reader's slot, by a
 * writer that stops at writer_at. The reader goes on: it must reject what it
 * saw and try again, once, and return a whole payload.
 */
static void torn_scene(const shmsect_t *s, uint64_t self, const scene_t *sc) {
  static job_t reader, writer;
  pthread_t rt, wt;
  uint64_t v = shmsect_version(s), last = 0;
  int loads;
  memset(&reader, 0, sizeof reader);
  memset(&writer, 0, sizeof writer);
  reader.s = writer.s = s;
  writer.self = self;
  reader.point = sc->reader_at;
  writer.point = sc->writer_at;
  tap_group(sc->what);
  stop_reset(READER);
  stop_reset(WRITER);
  start(&rt, reader_main, &reader);
  wait_arrived(READER);
  loads = loads_of_commit();
  publish_next(s, self);
  if (sc->writer_at) {
    start(&wt, writer_main, &writer);
    wait_arrived(WRITER);
  } else {
    last = publish_next(s, self);
  }
  let_go(READER);
  pthread_join(rt, NULL);
  is_int(reader.rc, 0, "the read returns 0");
  ok(payload_is(reader.snap.version, reader.buf, reader.snap.length),
     "... a whole payload, the one of the version it reports (%llu)",
     (unsigned long long)reader.snap.version);
  is_u64(reader.snap.version, sc->writer_at ? v + 1 : v + 2, "... the last committed version");
  is_int(loads_of_commit() - loads, 1, "... after trying once more");
  if (sc->writer_at) {
    let_go(WRITER);
    pthread_join(wt, NULL);
    last = writer.version;
  }
  is_u64(last, v + 2, "the writer's publish completes");
  ok(shmsect_read(s, reader.buf, CAPACITY, &reader.snap) == 0 && reader.snap.version == v + 2 &&
         payload_is(v + 2, reader.buf, reader.snap.length),
     "a read now sees it whole");
}

static void test_torn_reads(uint64_t self) {
  shmsect_t s;
  uint64_t holder;
  int i;
  section_new(&s);
  shmsect_claim(&s, self, 0, -1, &holder);
  publish_next(&s, self);
  for (i = 0; i < SCENES; i++) torn_scene(&s, self, &scenes[i]);
  section_free(&s);
}

/* ==== Readers lapped by a writer, at full speed (threads) ==== */

#define LAP_PUBLISHES 3000
#define LAP_READS 1000

typedef struct {
  const shmsect_t *s;
  int writing, reads, bad; /* writing and reads: atomic */
  unsigned char buf[CAPACITY];
} lap_t;

static void *lap_reader(void *arg) {
  lap_t *l = (lap_t *)arg;
  shmsect_snapshot_t snap;
  while (__atomic_load_n(&l->writing, __ATOMIC_ACQUIRE)) {
    int rc = shmsect_read(l->s, l->buf, CAPACITY, &snap);
    __atomic_add_fetch(&l->reads, 1, __ATOMIC_RELAXED);
    if (rc != 0 || (snap.version && !payload_is(snap.version, l->buf, snap.length))) l->bad++;
  }
  return NULL;
}

/* Whether both readers have read at least n times. */
static int both_read(lap_t *readers, int n) {
  return __atomic_load_n(&readers[0].reads, __ATOMIC_RELAXED) >= n &&
         __atomic_load_n(&readers[1].reads, __ATOMIC_RELAXED) >= n;
}

static void test_lapping(uint64_t self) {
  static lap_t readers[2];
  pthread_t t[2];
  shmsect_t s;
  uint64_t holder;
  int i, published = 0, failed = 0;
  double deadline = now_ms() + 20000;
  tap_group("two reader threads lapped by a writer: every read whole");
  section_new(&s);
  shmsect_claim(&s, self, 1, -1, &holder);
  for (i = 0; i < 2; i++) {
    readers[i].s = &s;
    readers[i].writing = 1;
    start(&t[i], lap_reader, &readers[i]);
  }
  while (!both_read(readers, 1) && now_ms() < deadline) sleep_ms(1);
  /* At least LAP_PUBLISHES, and on until each reader has read LAP_READS times. */
  while ((published < LAP_PUBLISHES || !both_read(readers, LAP_READS)) && now_ms() < deadline) {
    if (publish_next(&s, self)) published++;
    else failed++;
  }
  for (i = 0; i < 2; i++) __atomic_store_n(&readers[i].writing, 0, __ATOMIC_RELEASE);
  for (i = 0; i < 2; i++) pthread_join(t[i], NULL);
  ok(published >= LAP_PUBLISHES && failed == 0, "%d publishes, %d failed", published, failed);
  for (i = 0; i < 2; i++) {
    ok(readers[i].bad == 0 && readers[i].reads >= LAP_READS,
       "reader %d: %d reads, %d torn or failed", i, readers[i].reads, readers[i].bad);
  }
  section_free(&s);
}

/* semctl, whose next SETALL fails with setall_fails (0: none): shmsect_lock_create's clean-up. */
extern int semctl(int id, int num, int cmd, ...);
static int setall_fails;
int test_semctl(int id, int num, int cmd, ...) {
  union sect__semun arg;
  va_list ap;
  if (cmd != SETALL && cmd != IPC_STAT) return semctl(id, num, cmd);
  va_start(ap, cmd);
  arg = va_arg(ap, union sect__semun);
  va_end(ap);
  if (cmd == SETALL && setall_fails) {
    errno = setall_fails;
    setall_fails = 0;
    return -1;
  }
  return semctl(id, num, cmd, arg);
}

/* ==== Claim locks (a semaphore set per section, as PHP's sysvsem), between processes ==== */

static void test_lock(int *lock) {
  shmsect_t s;
  uint64_t holder, self = shmsect_self();
  int again = -1;
  struct sembuf join[3] = {{2, 0, 0}, {2, 1, SEM_UNDO}, {1, 1, SEM_UNDO}}, done = {2, -1, SEM_UNDO};
  uint32_t uid = (uint32_t)getuid();
  tap_group("a claim lock: made with IPC_EXCL, laid out as PHP's sem_get($key, 1) lays it out");
  is_int(shmsect_lock_create(test_key(1), 0600, lock), 0, "create: 0");
  ok(*lock >= 0, "... a semaphore set id (%d)", *lock);
  is_int(semctl(*lock, 0, GETVAL), 1, "... semaphore 0, the lock: free (1)");
  is_int(semctl(*lock, 1, GETVAL), 1, "... semaphore 1, PHP's user count: 1, never undone");
  is_int(semctl(*lock, 2, GETVAL), 0, "... semaphore 2, PHP's setup guard: 0");
  is_int(shmsect_lock_create(test_key(1), 0600, &again), -EEXIST,
         "create again at that key: -EEXIST");
  setall_fails = ENOSPC;
  is_int(shmsect_lock_create(test_key(3), 0600, &again), -ENOSPC,
         "a set that cannot be set up: the error");
  ok(semget(test_key(3), 0, 0) < 0 && errno == ENOENT, "... and no set is left at its key");
  is_int(shmsect_lock_check(*lock, test_key(1), uid, uid), 0,
         "check: the set, its key, 3 semaphores, owner, creator");
  is_int(shmsect_lock_check(*lock, test_key(2), uid, uid), SHMSECT_EFOREIGN,
         "... recorded at another key: SHMSECT_EFOREIGN");
  is_int(shmsect_lock_check(*lock, test_key(1), uid + 1, uid), SHMSECT_EFOREIGN,
         "... another owner: SHMSECT_EFOREIGN");
  is_int(shmsect_lock_check(*lock, test_key(1), uid, uid + 1), SHMSECT_EFOREIGN,
         "... another creator: SHMSECT_EFOREIGN");
  is_int(shmsect_lock_check(-1, test_key(1), uid, uid), SHMSECT_EFOREIGN,
         "... no set (-1): SHMSECT_EFOREIGN");
  section_new(&s);
  is_int(shmsect_claim(&s, self, 1, *lock, &holder), 0, "claim under the lock: 0");
  is_int(semctl(*lock, 0, GETVAL), 0, "... semaphore 0 taken");
  is_int(shmsect_claim(&s, self, 1, *lock, &holder), SHMSECT_EBUSY,
         "claim again: SHMSECT_EBUSY at once (never waits)");
  is_u64(holder, self, "... naming the claim word");
  /* A PHP process joins the set (sem_get): it counts 2 users, so it never resets the held lock. */
  is_int(semop(*lock, join, 3), 0, "PHP's sem_get joins: semop {2,0},{2,+1},{1,+1}");
  is_int(semctl(*lock, 1, GETVAL), 2, "... it counts 2 users: not the first, no SETVAL");
  is_int(semop(*lock, &done, 1), 0, "... and ends its setup");
  is_int(semctl(*lock, 0, GETVAL), 0, "... the lock is still held");
  is_int(shmsect_release(&s, self, *lock), 0, "release under the lock: 0");
  is_int(semctl(*lock, 0, GETVAL), 1, "... the lock is free again");
  section_free(&s);
}

/* Pipes between the test and its claiming children. */
static int go_pipe[2], report_pipe[2], done_pipe[2];

typedef struct {
  int rc;
  uint64_t self, holder;
} claim_report_t;

/* A child: waits for the start, claims, reports, and stays alive until told. */
static int child_claims(const shmsect_t *s, long lock) {
  claim_report_t r;
  char c;
  close(go_pipe[1]);
  close(report_pipe[0]);
  close(done_pipe[1]);
  if (read(go_pipe[0], &c, 1) != 0) return 2; /* the start: end of file */
  memset(&r, 0, sizeof r);
  r.self = shmsect_self();
  r.rc = shmsect_claim(s, r.self, 1, (int)lock, &r.holder);
  if (write(report_pipe[1], &r, sizeof r) != (ssize_t)sizeof r) return 3;
  return read(done_pipe[0], &c, 1) == 0 ? 0 : 4; /* alive until the test has looked */
}

#define CLAIMERS 4
#define CLAIM_ROUNDS 5

/* One round: CLAIMERS children released at once claim one free section. */
static void claim_round(const shmsect_t *s, int lock, int round) {
  claim_report_t r[CLAIMERS];
  pid_t pids[CLAIMERS];
  int i, winners = 0, winner = -1, losers_told = 1, exits = 1;
  if (pipe(go_pipe) || pipe(report_pipe) || pipe(done_pipe)) tap_bail("pipe failed");
  for (i = 0; i < CLAIMERS; i++) pids[i] = child_run(child_claims, s, lock);
  close(go_pipe[0]);
  close(go_pipe[1]); /* go */
  close(report_pipe[1]);
  for (i = 0; i < CLAIMERS; i++) {
    if (read(report_pipe[0], &r[i], sizeof r[i]) != (ssize_t)sizeof r[i]) r[i].rc = -1;
    if (r[i].rc == 0) winners++, winner = i;
  }
  is_int(winners, 1, "round %d: exactly one of %d processes wins", round, CLAIMERS);
  for (i = 0; i < CLAIMERS && winner >= 0; i++) {
    /* The winner writes its claim word just after it takes the lock: a loser may read it before. */
    if (i != winner &&
        (r[i].rc != SHMSECT_EBUSY || (r[i].holder != r[winner].self && r[i].holder != 0)))
      losers_told = 0;
  }
  ok(winner >= 0 && losers_told,
     "... the others get SHMSECT_EBUSY naming the winner (or no one yet)");
  ok(winner >= 0 && shmsect_claimant(s) == r[winner].self, "... the claim word names the winner");
  close(report_pipe[0]);
  close(done_pipe[0]);
  close(done_pipe[1]); /* done */
  for (i = 0; i < CLAIMERS; i++) exits &= child_status(pids[i]) == 0;
  ok(exits, "... every child exits with 0");
  wr64(ctrl(s, CLAIM), 0);
}

static void test_claim_processes(int lock) {
  shmsect_t s;
  int round;
  tap_group("concurrent claims by processes, under the claim lock");
  section_new(&s);
  for (round = 1; round <= CLAIM_ROUNDS; round++) claim_round(&s, lock, round);
  section_free(&s);
}

/* A child that takes the lock itself and dies holding it, when told. */
static int child_holds_lock(const shmsect_t *s, long lock) {
  struct sembuf take = {0, -1, SEM_UNDO};
  char c;
  (void)s;
  close(report_pipe[0]);
  close(done_pipe[1]);
  if (semop((int)lock, &take, 1) != 0) return 1;
  if (write(report_pipe[1], "x", 1) != 1) return 2;
  return read(done_pipe[0], &c, 1) == 0 ? 0 : 3; /* exits holding it: SEM_UNDO gives it back */
}

#define NO_SUCH_PID ((uint64_t)0x7ffffff0u << 32)

static void test_lock_dies(int lock) {
  shmsect_t s;
  uint64_t holder, self = shmsect_self();
  pid_t pid;
  char c = 0;
  double started;
  tap_group("a lock holder that dies: busy while it lives (no wait), SEM_UNDO frees the lock");
  section_new(&s);
  if (pipe(report_pipe) || pipe(done_pipe)) tap_bail("pipe failed");
  pid = child_run(child_holds_lock, &s, lock);
  close(report_pipe[1]);
  close(done_pipe[0]);
  ok(read(report_pipe[0], &c, 1) == 1, "the child holds the lock");
  close(report_pipe[0]);
  started = now_ms();
  is_int(shmsect_claim(&s, self, 1, lock, &holder), SHMSECT_EBUSY,
         "claim while it lives: SHMSECT_EBUSY");
  ok(now_ms() - started < 100, "... at once (%.1f ms)", now_ms() - started);
  /* A pid no process has here: what a claimant in another PID namespace looks like. */
  ok(shmsect_claim_alive(NO_SUCH_PID, lock),
     "claim_alive: the lock is held, whatever pid the word names");
  ok(!shmsect_alive(NO_SUCH_PID), "... where the pid alone says gone");
  close(done_pipe[1]); /* the child exits */
  is_int(child_status(pid), 0, "the child exited with 0, holding the lock");
  ok(!shmsect_claim_alive(self, lock),
     "claim_alive: the lock is free, whatever live pid the word names");
  ok(!shmsect_claim_alive(0, lock), "... and claim word 0 is no one");
  is_int(shmsect_claim(&s, self, 1, lock, &holder), 0, "claim: 0, at once after it is gone");
  is_int(shmsect_release(&s, self, lock), 0, "release: 0");
  is_int(semctl(lock, 0, GETVAL), 1, "the lock is free");
  section_free(&s);
}

/* ==== Retirement (docs/sections.md, section 8) ==== */

static void *retire_later(void *arg) {
  shmsect_snapshot_t snap;
  unsigned char out[CAPACITY];
  sleep_ms(100);
  shmsect_retire((const shmsect_t *)arg, SHMSECT_REMOVED, out, sizeof out, &snap);
  return NULL;
}

static void test_retire(uint64_t self) {
  shmsect_t s;
  shmsect_snapshot_t snap;
  unsigned char out[CAPACITY];
  uint64_t holder, version = 0, before;
  pthread_t thread;
  double started;
  tap_group("a retired section: carried over, then refused everywhere; waiters wake at once");
  section_new(&s);
  is_int(shmsect_claim(&s, self, 1, -1, &holder), 0, "claim: 0");
  publish_next(&s, self);
  before = shmsect_version(&s);
  is_u64(shmsect_retired(&s), SHMSECT_LIVE, "live: the retired word is 0");
  is_int(shmsect_retire(&s, SHMSECT_REPLACED, out, sizeof out, &snap), 0,
         "retire: the carry-over reads 0");
  is_u64(snap.version, before, "... the last version");
  is_u64(shmsect_retired(&s), SHMSECT_REPLACED, "the retired word: 1 (replaced)");
  is_u64(shmsect_version(&s), before + 1,
         "the futex word changed (a sleeper about to sleep returns)");
  is_int(shmsect_read(&s, out, sizeof out, &snap), SHMSECT_ERETIRED, "read: SHMSECT_ERETIRED");
  is_int(shmsect_publish(&s, self, out, 1, &version), SHMSECT_ERETIRED,
         "publish: SHMSECT_ERETIRED");
  is_int(shmsect_claim(&s, self, 1, -1, &holder), SHMSECT_ERETIRED, "claim: SHMSECT_ERETIRED");
  is_int(shmsect_wait(&s, shmsect_version(&s), 5000, NULL, &version), SHMSECT_ERETIRED,
         "wait: SHMSECT_ERETIRED");
  is_int(shmsect_release(&s, self, -1), 0, "release still gives the claim back: 0");
  section_free(&s);

  section_new(&s);
  if (pthread_create(&thread, NULL, retire_later, &s) != 0) tap_bail("pthread_create failed");
  started = now_ms();
  is_int(shmsect_wait(&s, 0, 10000, NULL, &version), SHMSECT_ERETIRED,
         "a pending wait ends when the section retires");
  ok(now_ms() - started < 400.0, "... at once (%.0f ms; its slice was 10 s)", now_ms() - started);
  pthread_join(thread, NULL);
  is_u64(shmsect_retired(&s), SHMSECT_REMOVED, "the retired word: 2 (removed)");
  section_free(&s);
}

/* ==== Waits and wakes ==== */

/*
 * Bounds on wake-ups are far from both sides: a wake-up takes well under a
 * millisecond, a missed one costs the waiter's whole slice (1 s while the
 * claimant wakes waiters).
 */
#define WAKE_BOUND_MS 300.0

static void test_wait_timeout(const shmsect_t *s) {
  uint64_t version = 0, since = shmsect_version(s);
  double started = now_ms(), took;
  is_int(shmsect_wait(s, since, 50, NULL, &version), 0, "a 50 ms wait with no publish: 0");
  took = now_ms() - started;
  is_u64(version, since, "... the version unchanged");
  ok(took >= 49 && took < 2000, "... after its timeout (%.1f ms)", took);
}

/* Starts a thread waiting on s from its current version, and gives it 50 ms to fall asleep. */
static void start_waiter(pthread_t *t, job_t *w, const shmsect_t *s, int64_t timeout_ms) {
  memset(w, 0, sizeof *w);
  w->s = s;
  w->since = shmsect_version(s);
  w->timeout_ms = timeout_ms;
  start(t, waiter_main, w);
  sleep_ms(50);
}

static void test_wait_thread(const shmsect_t *s, uint64_t self, int64_t timeout_ms) {
  static job_t w;
  pthread_t t;
  double published;
  start_waiter(&t, &w, s, timeout_ms);
  published = now_ms();
  publish_next(s, self);
  pthread_join(t, NULL);
  ok(w.rc == 0 && w.version == w.since + 1, "a wait (timeout %lld ms) sees a thread's publish",
     (long long)timeout_ms);
  ok(w.done_ms - published < WAKE_BOUND_MS, "... %.2f ms after it", w.done_ms - published);
}

static void test_wait_cancel(const shmsect_t *s) {
  static job_t w;
  pthread_t t;
  double cancelled;
  start_waiter(&t, &w, s, -1);
  cancelled = now_ms();
  __atomic_store_n(&w.cancel, 1, __ATOMIC_RELAXED);
  shmsect_wake(s);
  pthread_join(t, NULL);
  ok(w.rc == 0 && w.version == w.since,
     "a wait without a timeout, cancelled: 0, version unchanged");
  ok(w.done_ms - cancelled < WAKE_BOUND_MS, "... %.2f ms after the cancel and wake",
     w.done_ms - cancelled);
}

/* The wait one step at a time, as an event loop drives it. */
static void test_wait_steps(const shmsect_t *s, uint64_t self) {
  shmsect_wait_t w;
  uint64_t version, slice = 0, slices[4], holder;
  uint32_t expected = 0;
  int i;
  ok(shmsect_futex_word(s) == (uint32_t *)(void *)ctrl(s, COMMIT),
     "the futex word is the commit word's low half");
  shmsect_wait_start(&w, shmsect_version(s), 10000);
  is_int(shmsect_wait_step(s, &w, 0, &version, &expected, &slice), 0, "a step with nothing new: 0");
  ok(expected == rd32(ctrl(s, COMMIT)) && slice == 1000000000u,
     "... sleep while the word holds the commit, 1 s: the claimant wakes us");
  is_int(rd32(ctrl(s, SLEEPERS)), 1, "... counted among the sleepers, so that a publish wakes it");
  publish_next(s, self);
  ok(shmsect_wait_step(s, &w, 0, &version, &expected, &slice) == 1 && version == w.since + 1,
     "after a publish: 1, the new version");
  is_int(rd32(ctrl(s, SLEEPERS)), 0, "... and no longer counted");
  {
    /* The count where it cannot be written (a write would end the test with
       SIGSEGV): a waiter woken by a publish looks before it counts itself. */
    shmsect_t looker = *s;
    int id = shmget(IPC_PRIVATE, SEGMENT_SIZE, IPC_CREAT | 0600);
    void *unwritable = id < 0 ? (void *)-1 : shmat(id, NULL, SHM_RDONLY);
    if (id >= 0) shmctl(id, IPC_RMID, NULL);
    if (unwritable == (void *)-1) tap_bail("read-only segment: %s", strerror(errno));
    looker.counts = (unsigned char *)unwritable;
    shmsect_wait_start(&w, shmsect_version(s) - 1, 10000);
    ok(shmsect_wait_step(&looker, &w, 0, &version, &expected, &slice) == 1 && !w.counted,
       "a step that finds a new version at once returns it without touching the count");
    shmdt(unwritable);
  }
  shmsect_wait_start(&w, shmsect_version(s), 10000);
  shmsect_wait_step(s, &w, 0, &version, &expected, &slice);
  shmsect_wait_end(s, &w);
  shmsect_wait_end(s, &w);
  is_int(rd32(ctrl(s, SLEEPERS)), 0, "a wait abandoned between steps is un-counted, once");
  {
    shmsect_t reader = *s;
    reader.counts = NULL;
    shmsect_wait_start(&w, shmsect_version(s), 10000);
    shmsect_wait_step(&reader, &w, 0, &version, &expected, &slice);
    ok(slice == 100000 && rd32(ctrl(s, SLEEPERS)) == 0,
       "a waiter that cannot write the segment cannot count itself: it polls from 0.1 ms");
  }
  shmsect_release(s, self, -1);
  shmsect_claim(s, self, 0, -1, &holder); /* a claimant that does not wake */
  shmsect_wait_start(&w, shmsect_version(s), -1);
  for (i = 0; i < 4; i++) shmsect_wait_step(s, &w, 0, &version, &expected, &slices[i]);
  ok(slices[0] == 100000 && slices[1] == 200000 && slices[3] == 800000,
     "a claimant that does not wake: polls from 0.1 ms, doubling");
  shmsect_wait_start(&w, shmsect_version(s), 0);
  is_int(shmsect_wait_step(s, &w, 0, &version, &expected, &slice), 1, "timeout 0: over at once");
  is_int(shmsect_wait_step(s, &w, 1, &version, &expected, &slice), 1, "cancelled: over at once");
}

/* The wait in slices, as waitSync looks up between them (src/shm-sections.cc). */
static void test_wait_for(const shmsect_t *s, uint64_t self) {
  shmsect_wait_t w;
  uint64_t version = 0, holder;
  double started, took;
  shmsect_release(s, self, -1);
  shmsect_claim(s, self, 1, -1, &holder); /* a claimant that wakes: the slices count themselves */
  started = now_ms();
  shmsect_wait_start(&w, shmsect_version(s), -1);
  is_int(shmsect_wait_for(s, &w, 20000000u, &version), 0, "a 20 ms slice with nothing new: 0");
  took = now_ms() - started;
  ok(took >= 19 && took < 2000, "... after the slice (%.1f ms)", took);
  is_int(rd32(ctrl(s, SLEEPERS)), 0, "... no longer counted among the sleepers between slices");
  publish_next(s, self);
  ok(shmsect_wait_for(s, &w, 20000000u, &version) == 1 && version == w.since + 1,
     "the next slice after a publish: 1, the new version");
  shmsect_wait_start(&w, version, 30);
  ok(shmsect_wait_for(s, &w, 1000000000u, &version) == 1 && version == w.since,
     "a slice longer than the timeout: over at the timeout, the version unchanged");
}

/* The hot path: a tight loop on the commit word before a wait sleeps. */
static void test_spin(const shmsect_t *s, uint64_t self) {
  uint64_t version = 0, since = shmsect_version(s);
  double started = now_ms();
  is_int(shmsect_spin(s, since, 0, &version), 0, "spin 0 ns with nothing new: 0 at once");
  is_int(shmsect_spin(s, since, 2000000u, &version), 0, "spin 2 ms with nothing new: 0");
  ok(now_ms() - started >= 2 && version == since, "... after spinning 2 ms (%.2f ms)",
     now_ms() - started);
  publish_next(s, self);
  ok(shmsect_spin(s, since, 2000000u, &version) == 1 && version == since + 1,
     "a version that differs: 1 and the version, at once");
}

static void test_waits(uint64_t self) {
  shmsect_t s;
  uint64_t holder;
  tap_group("waits and wakes between threads");
  section_new(&s);
  shmsect_claim(&s, self, 1, -1, &holder);
  publish_next(&s, self);
  test_wait_timeout(&s);
  test_wait_thread(&s, self, 10000);
  test_wait_thread(&s, self, INT64_MAX); /* too long to count in ns: no limit */
  test_wait_cancel(&s);
  test_wait_steps(&s, self);
  test_wait_for(&s, self);
  test_spin(&s, self);
  section_free(&s);
}

/* ==== Waiting on several sections at once (sections-many.c) ==== */

#define MANY 130 /* past SHMSECT_MANY_MAX: such a wait polls */
#define MANY_TESTS 20
#if defined(SECTIONS_POLL)
#define VECTORED 0 /* no futex_waitv: every wait on several sections polls */
#else
#define VECTORED 1
#endif

typedef struct {
  shmsect_many_t m;
  shmsect_t s[MANY];
  shmsect_wait_t w[MANY];
  uint64_t since[MANY], versions[MANY];
  uint32_t expected[MANY];
  volatile int cancel;
  double done_ms;
} many_t;

/* MANY sections of 8 bytes in one private segment, 256 bytes apart. */
static unsigned char *many_segment(shmsect_t *s, uint64_t self) {
  size_t size = 256 * MANY;
  int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600), i;
  unsigned char *base;
  uint64_t holder;
  if (id < 0) tap_bail("shmget: %s", strerror(errno));
  base = (unsigned char *)shmat(id, NULL, 0);
  shmctl(id, IPC_RMID, NULL);
  if (base == (unsigned char *)-1) tap_bail("shmat: %s", strerror(errno));
  for (i = 0; i < MANY; i++) {
    shmsect_t one = {
        base, size, 256u * (unsigned)i, {256u * (unsigned)i + 192, 256u * (unsigned)i + 200},
        8,    base};
    s[i] = one;
    shmsect_claim(&s[i], self, 1, -1, &holder); /* a claimant that wakes */
  }
  return base;
}

/* A wait on the first n sections from their versions now. */
static void many_start(many_t *m, const shmsect_t *all, size_t n, int64_t timeout_ms,
                       int vectored) {
  size_t i;
  memset(m, 0, sizeof *m);
  for (i = 0; i < n; i++) m->s[i] = all[i], m->since[i] = shmsect_version(&all[i]);
  m->m.s = m->s, m->m.w = m->w, m->m.versions = m->versions, m->m.expected = m->expected;
  m->m.n = n;
  shmsect_many_start(&m->m, m->since, timeout_ms, vectored);
}

static void *many_waiter(void *arg) {
  many_t *m = (many_t *)arg;
  shmsect_many_wait(&m->m, &m->cancel);
  m->done_ms = now_ms();
  return NULL;
}

static uint32_t sleepers_of(const shmsect_t *s) {
  return __atomic_load_n((uint32_t *)(void *)ctrl(s, SLEEPERS), __ATOMIC_ACQUIRE);
}

static uint32_t sleepers_sum(const shmsect_t *s, size_t n) {
  uint32_t sum = 0;
  size_t i;
  for (i = 0; i < n; i++) sum += sleepers_of(&s[i]);
  return sum;
}

static void publish_one(const shmsect_t *s, uint64_t self) {
  uint64_t version;
  shmsect_publish(s, self, "x", 1, &version);
}

static void test_many(uint64_t self) {
  static many_t m;
  static shmsect_t all[MANY];
  unsigned char *base;
  uint32_t *words[SHMSECT_MANY_MAX];
  uint64_t slice = 0;
  pthread_t t;
  double published, started;
  tap_group("waits on several sections at once (sections-many.c)");
  base = many_segment(all, self);

  many_start(&m, all, 4, -1, 1);
  is_int(m.m.vectored, VECTORED,
         "4 sections: one sleep on all their words where futex_waitv exists");
  is_int(shmsect_many_step(&m.m, 0, &slice), 0, "a step with nothing new: 0");
  is_u64(slice, VECTORED ? 1000000000u : 100000u,
         "... a slice of 1 s behind claimants that wake (polling: 0.1 ms)");
  is_int(sleepers_sum(all, 4), VECTORED ? 4 : 0,
         "... counted once in each section (polling: nowhere)");
  is_int((int)shmsect_many_words(&m.m, words), VECTORED ? 4 : 1,
         "... asleep on every word (polling: one)");
  ok(words[0] == shmsect_futex_word(&all[0]), "... the commit words");
  shmsect_many_end(&m.m);
  shmsect_many_end(&m.m);
  is_int(sleepers_sum(all, 4), 0, "a wait abandoned between steps is un-counted, once");

  many_start(&m, all, 4, -1, 1);
  start(&t, many_waiter, &m);
  sleep_ms(50);
  published = now_ms();
  publish_one(&all[2], self);
  pthread_join(t, NULL);
  ok(m.versions[2] == m.since[2] + 1 && m.versions[0] == m.since[0],
     "a publish to the third section ends the wait, with every version");
  ok(m.done_ms - published < WAKE_BOUND_MS, "... %.2f ms after it", m.done_ms - published);
  is_int(sleepers_sum(all, 4), 0, "... and un-counts it everywhere");

  many_start(&m, all, 4, -1, 1);
  start(&t, many_waiter, &m);
  sleep_ms(50);
  started = now_ms();
  __atomic_store_n(&m.cancel, 1, __ATOMIC_RELAXED);
  shmsect_wake(&all[0]); /* as the wait runtime stops a sleeper */
  pthread_join(t, NULL);
  ok(m.done_ms - started < WAKE_BOUND_MS && m.versions[1] == m.since[1],
     "cancelled and woken on the first word: over, nothing changed (%.2f ms)", m.done_ms - started);

  many_start(&m, all, 3, 30, 1);
  started = now_ms();
  is_int(shmsect_many_wait_for(&m.m, 20000000u), 0, "a 20 ms slice with nothing new: 0");
  is_int(sleepers_sum(all, 3), 0, "... un-counted between slices");
  is_int(shmsect_many_wait_for(&m.m, 1000000000u), 1, "a slice past the 30 ms timeout: over");
  ok(now_ms() - started >= 29 && now_ms() - started < 2000 && m.versions[0] == m.since[0],
     "... at the timeout (%.1f ms), the versions unchanged", now_ms() - started);

  many_start(&m, all, 3, -1, 0);
  is_int(m.m.vectored, 0, "vectored 0 (NODEJS_SHM_WAITV=0): polls");
  many_start(&m, all, MANY, -1, 1);
  is_int(m.m.vectored, 0, "more sections than futex_waitv takes: polls");
  shmsect_many_step(&m.m, 0, &slice);
  ok(slice == 100000u && sleepers_sum(all, MANY) == 0,
     "... from 0.1 ms, counted nowhere (no writer wakes for it in vain)");
  publish_one(&all[MANY - 1], self);
  ok(shmsect_many_wait_for(&m.m, 1000000000u) == 1 && m.versions[MANY - 1] == m.since[MANY - 1] + 1,
     "... and sees a publish to its last section");
  {
    uint32_t expected[2];
    words[0] = shmsect_futex_word(&all[0]), words[1] = shmsect_futex_word(&all[1]);
    expected[0] = *words[0] + 1, expected[1] = *words[1];
    started = now_ms();
    sect__sleep_on_many(words, expected, 2, 1000000000u);
    ok(now_ms() - started < WAKE_BOUND_MS,
       VECTORED ? "the platform's sleep on several words: over at once when one differs"
                : "the platform's sleep on several words: a poll, at most 10 ms");
  }
  shmdt(base);
}

/* A child that waits for the next version and reports when it woke. */
static int child_waits(const shmsect_t *s, long since) {
  uint64_t version = 0;
  double woke;
  close(report_pipe[0]);
  if (shmsect_wait(s, (uint64_t)since, 10000, NULL, &version) != 0) return 1;
  woke = now_ms();
  if (write(report_pipe[1], &woke, sizeof woke) != (ssize_t)sizeof woke) return 2;
  return version == (uint64_t)since + 1 ? 0 : 3;
}

static void test_wait_process(uint64_t self) {
  shmsect_t s;
  uint64_t holder;
  double published, woke = 0;
  pid_t pid;
  tap_group("a wait in another process (fork) woken by a publish");
  section_new(&s);
  shmsect_claim(&s, self, 1, -1, &holder);
  if (pipe(report_pipe)) tap_bail("pipe failed");
  pid = child_run(child_waits, &s, (long)shmsect_version(&s));
  close(report_pipe[1]);
  sleep_ms(100);
  published = now_ms();
  publish_next(&s, self);
  ok(read(report_pipe[0], &woke, sizeof woke) == (ssize_t)sizeof woke, "the child woke");
  close(report_pipe[0]);
  is_int(child_status(pid), 0, "... saw the new version and exited with 0");
  ok(woke - published < WAKE_BOUND_MS, "... %.2f ms after the publish", woke - published);
  section_free(&s);
}

/* ==== The futex ring (io_uring) ==== */

#if defined(SECTIONS_POLL)
#define RING_TESTS 5
static void test_ring(uint64_t self) {
  shmsect_ring_t *ring = NULL;
  uint32_t word = 0;
  uint64_t tag;
  (void)self;
  tap_group("no futex ring here (futex-ring-none.c)");
  is_int(shmsect_ring_open(&ring), -ENOSYS, "open: -ENOSYS, so waits go to threads");
  is_int(shmsect_ring_fd(ring), -1, "fd: -1");
  is_int(shmsect_ring_sleep(ring, &word, 0, 1000, 1), -ENOSYS, "sleep: -ENOSYS");
  {
    uint32_t *words[1] = {&word};
    is_int(shmsect_ring_sleepv(ring, words, &word, 1, 1000, 1), -ENOSYS, "sleepv: -ENOSYS");
  }
  is_int(shmsect_ring_reap(ring, &tag, 1), 0, "reap: nothing");
  shmsect_ring_close(ring);
}
#else
#include <poll.h>
#define RING_TESTS 17

/* Reaps what ends within ms (the linked timeouts' completions are not
   reported, but make the fd readable); the count, the tag in *tag. */
static int ring_reap_within(shmsect_ring_t *ring, int ms, uint64_t *tag) {
  struct pollfd p;
  double deadline = now_ms() + ms;
  int n = 0;
  p.fd = shmsect_ring_fd(ring);
  p.events = POLLIN;
  while (n == 0 && now_ms() < deadline) {
    if (poll(&p, 1, (int)(deadline - now_ms()) + 1) == 1) n = shmsect_ring_reap(ring, tag, 1);
  }
  return n;
}

/* More sleeps end than the completion queue holds: none may be lost. */
static void test_ring_overflow(shmsect_ring_t *ring, uint32_t *word) {
  static uint64_t tags[1024];
  int i, n, got = 0, sum = 0;
  double deadline = now_ms() + 5000;
  for (i = 0; i < 400; i++) shmsect_ring_sleep(ring, word, *word + 1, 1000000000u, 100 + i);
  while (got < 400 && now_ms() < deadline) {
    n = shmsect_ring_reap(ring, tags, 1024);
    for (i = 0; i < n; i++) sum += tags[i] >= 100 && tags[i] < 500;
    got += n;
  }
  ok(got == 400 && sum == 400, "400 sleeps that end at once, past the queue's size: %d reaped",
     got);
}

/* One sleep on several words (IORING_OP_FUTEX_WAITV), as a wait on several sections sleeps. */
static void test_ring_sleepv(shmsect_ring_t *ring, uint64_t self) {
  static many_t m;
  static shmsect_t all[MANY];
  unsigned char *base = many_segment(all, self);
  uint32_t *words[SHMSECT_MANY_MAX];
  uint64_t tag = 0, slice;
  size_t n;
  many_start(&m, all, 3, -1, 1);
  shmsect_many_step(&m.m, 0, &slice);
  n = shmsect_many_words(&m.m, words);
  is_int(shmsect_ring_sleepv(ring, words, m.expected, n, 10000000000u, 21), 0,
         "a 10 s sleep on 3 words: 0");
  is_int(ring_reap_within(ring, 50, &tag), 0, "... not over by itself");
  publish_one(&all[1], self);
  ok(ring_reap_within(ring, 2000, &tag) == 1 && tag == 21, "... ended by a publish to the second");
  shmsect_many_end(&m.m);
  is_int(shmsect_ring_sleepv(ring, words, m.expected, 0, 1000, 22), -EINVAL, "no words: -EINVAL");
  is_int(shmsect_ring_sleepv(ring, words, m.expected, 129, 1000, 22), -EINVAL,
         "129 words: -EINVAL");
  shmdt(base);
}

static void test_ring(uint64_t self) {
  shmsect_ring_t *ring = NULL;
  shmsect_t s;
  shmsect_wait_t w;
  uint64_t holder, tag = 0, version, slice;
  uint32_t *word, expected;
  int rc;
  tap_group("futex sleeps through io_uring (futex-ring-linux.c)");
  rc = shmsect_ring_open(&ring);
  if (rc != 0) { /* Linux < 6.7, or io_uring disabled (sysctl, seccomp) */
    tap_skip(RING_TESTS, "io_uring FUTEX_WAIT is not available here");
    return;
  }
  section_new(&s);
  shmsect_claim(&s, self, 1, -1, &holder);
  word = shmsect_futex_word(&s);
  ok(shmsect_ring_fd(ring) >= 0, "open: 0 and an fd");
  /* A sleeper counted as an event loop's wait counts itself, so that the publish wakes it. */
  shmsect_wait_start(&w, shmsect_version(&s), -1);
  shmsect_wait_step(&s, &w, 0, &version, &expected, &slice);
  is_int(shmsect_ring_sleep(ring, word, expected, 10000000000u, 7), 0, "a 10 s sleep: 0");
  is_int(ring_reap_within(ring, 50, &tag), 0, "... not over by itself");
  publish_next(&s, self);
  ok(ring_reap_within(ring, 2000, &tag) == 1 && tag == 7, "... ended by the publish's wake");
  shmsect_wait_end(&s, &w);
  is_int(shmsect_ring_sleep(ring, word, *word + 1, 10000000000u, 8), 0,
         "a sleep on a value the word does not hold: 0");
  ok(ring_reap_within(ring, 2000, &tag) == 1 && tag == 8, "... over at once");
  is_int(shmsect_ring_sleep(ring, word, *word, 20000000u, 9), 0, "a 20 ms sleep: 0");
  ok(ring_reap_within(ring, 2000, &tag) == 1 && tag == 9, "... over by its timeout");
  test_ring_overflow(ring, word);
  test_ring_sleepv(ring, self);
  shmsect_ring_close(ring);
  section_free(&s);
  fail_next_calloc(1);
  is_int(shmsect_ring_open(&ring), -ENOSYS, "open without memory for the probe: -ENOSYS");
  fail_next_calloc(2);
  is_int(shmsect_ring_open(&ring), -ENOMEM, "open without memory for the ring: -ENOMEM");
  fail_next_mmap(ENOMEM);
  is_int(shmsect_ring_open(&ring), -ENOMEM, "open with a mapping refused: -ENOMEM");
}
#endif

/* Tests in a passing run, in main()'s order: count them again when adding some. */
#define PLANNED                                                                              \
  (5 + 10 + 4 + 13 + 15 + 5 + 6 * SCENES + 2 + 3 + 23 + 4 * CLAIM_ROUNDS + 7 + 14 + 26 + 3 + \
   RING_TESTS + 3 + 3 + 4 + 6)

int main(void) {
  shmsect_t s;
  uint64_t self, holder;
  int lock = -1;

  tap_start(PLANNED + MANY_TESTS); /* and the waits on several sections (test_many) */
  self = shmsect_self();
  section_new(&s);
  test_check(&s);
  test_identity(&s, self);
  test_empty(&s);
  test_claim(&s, self);
  test_publish_read(&s, self);
  test_corrupt(&s, self);
  section_free(&s);
  test_torn_reads(self);
  test_claim_race(self);
  test_lapping(self);
  test_starved(self);
  test_lock(&lock);
  test_claim_processes(lock);
  test_lock_dies(lock);
  test_retire(self);
  test_waits(self);
  test_wait_process(self);
  test_many(self);
  test_ring(self);

  tap_group("cleanup");
  is_int(shmsect_lock_remove(lock), 0, "the claim lock's semaphore set is removed");
  is_int(shmsect_lock_remove(lock), -EINVAL, "... and is gone: -EINVAL");
  ok(shmsect_claim_alive(self, lock),
     "claim_alive with a lock that is gone: the pid decides (alive)");
  ok(!shmsect_claim_alive(NO_SUCH_PID, -1), "... and with no lock (gone)");
  section_new(&s);
  is_int(shmsect_claim(&s, self, 1, lock, &holder), -EINVAL,
         "a claim under the removed lock: -EINVAL");
  section_free(&s);
  return tap_done();
}
