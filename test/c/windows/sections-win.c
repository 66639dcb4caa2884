/*
 * sections-win.c: the section protocol with its Windows hooks
 * (src/sections-win.c), run under Wine (or on Windows). One section is laid out by hand
 * (docs/sections.md, 1.4) in a segment made through shmop.c's Windows branch; then publish and
 * read, claims between this process, a second identity and child processes, waits that time out,
 * see another process's or thread's publish, or are cancelled, and reads of damaged control blocks.
 *
 * The section files are linked as the addon compiles them (build/src/) and
 * used through sections.h only; control words are checked and damaged through
 * their bytes, at the offsets of docs/sections.md, 1.3.
 *
 * Run without arguments; the two-process tests start this program again as
 * "child <case> <key>" and read its exit status.
 */
#include "../shmop-under-test.h"
#include "../control-block.h"
#include "win.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The section: control block at 128, data areas at 24 mod 64 (1.4). */
enum {
  CONTROL = 128, /* a multiple of 64 */
  CAPACITY = 1000,
  DATA0 = 320 + 24,  /* align64(CONTROL + 192) + 24 */
  DATA1 = 1344 + 24, /* align64(DATA0 + CAPACITY) + 24 */
  SEGMENT_SIZE = DATA1 + CAPACITY
};

static const char *call;

static void section_at(const shmop_t *seg, shmsect_t *s) {
  s->base = seg->addr;
  s->size = seg->size;
  s->control = CONTROL;
  s->data[0] = DATA0;
  s->data[1] = DATA1;
  s->capacity = CAPACITY;
  s->counts = s->base;
}

/* Low 32 bits of this process's creation time, as the test reads it. */
static uint32_t my_creation(void) {
  FILETIME created, exited, kernel, user;
  GetProcessTimes(GetCurrentProcess(), &created, &exited, &kernel, &user);
  return created.dwLowDateTime;
}

static double ms_between(LARGE_INTEGER from, LARGE_INTEGER to) {
  LARGE_INTEGER hz;
  QueryPerformanceFrequency(&hz);
  return (double)(to.QuadPart - from.QuadPart) * 1000.0 / (double)hz.QuadPart;
}

static double ms_since(LARGE_INTEGER from) {
  LARGE_INTEGER now;
  QueryPerformanceCounter(&now);
  return ms_between(from, now);
}

/* ==== Child processes ==== */

/* "sections-win-<name>-<key>", manual-reset; created by the parent. */
static HANDLE event(int32_t key, const char *name, int create) {
  char full[64];
  snprintf(full, sizeof full, "sections-win-%s-%ld", name, (long)key);
  return create ? CreateEventA(NULL, TRUE, FALSE, full)
                : OpenEventA(EVENT_MODIFY_STATE | SYNCHRONIZE, FALSE, full);
}

/* Starts this program as "child <what> <key>"; 0 or -1. */
static int start_child(const char *what, int32_t key, PROCESS_INFORMATION *pi) {
  char self[MAX_PATH], line[MAX_PATH + 64];
  STARTUPINFOA si;
  GetModuleFileNameA(NULL, self, sizeof self);
  snprintf(line, sizeof line, "\"%s\" child %s %ld", self, what, (long)key);
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  if (!CreateProcessA(self, line, NULL, NULL, FALSE, 0, NULL, NULL, &si, pi)) {
    tap_diag("CreateProcessA(%s): error %lu", line, (unsigned long)GetLastError());
    return -1;
  }
  CloseHandle(pi->hThread);
  return 0;
}

/* Waits for the child to exit; its exit status (the process handle stays open). */
static long child_status(const PROCESS_INFORMATION *pi, const char *what) {
  DWORD status;
  if (WaitForSingleObject(pi->hProcess, 30000) != WAIT_OBJECT_0) {
    TerminateProcess(pi->hProcess, 98);
    WaitForSingleObject(pi->hProcess, INFINITE);
  }
  if (!GetExitCodeProcess(pi->hProcess, &status)) status = (DWORD)-1;
  if (status != 0) tap_diag("child %s exited with %lu", what, (unsigned long)status);
  return (long)status;
}

/* The child's side; the exit status says which step failed (0: none). */
static int child(const char *what, int32_t key) {
  shmop_t seg;
  shmsect_t s;
  uint64_t self = shmsect_self(), holder, version;
  HANDLE ready = event(key, "ready", 0), go = event(key, "go", 0);
  int rc = 0;
  if (!ready || !go) return 10;
  if (shmop_open(&seg, key, 'w', 0, 0, &call) != 0) return 11;
  section_at(&seg, &s);
  if (strcmp(what, "claim-and-exit") == 0) {
    /* Claims, publishes, and exits without releasing when told to. */
    if (shmsect_claim(&s, self, 1, -1, &holder) != 0) rc = 20;
    else if (shmsect_publish(&s, self, "from the child", 14, &version) != 0) rc = 21;
    else if (!SetEvent(ready) || WaitForSingleObject(go, 20000) != WAIT_OBJECT_0) rc = 22;
  } else if (strcmp(what, "publish-later") == 0) {
    /* Claims, says so, then publishes 100 ms after being told to go. */
    if (shmsect_claim(&s, self, 0, -1, &holder) != 0) rc = 30;
    else if (!SetEvent(ready) || WaitForSingleObject(go, 20000) != WAIT_OBJECT_0) rc = 31;
    else {
      Sleep(100);
      if (shmsect_publish(&s, self, "later", 5, &version) != 0) rc = 32;
      else if (shmsect_release(&s, self, -1) != 0) rc = 33;
    }
  } else {
    rc = 99;
  }
  shmop_close(&seg);
  return rc;
}

/* ==== Threads ==== */

typedef struct {
  const shmsect_t *s;
  uint64_t self;
  DWORD delay_ms;
  volatile int *cancel; /* NULL: publish; else set it */
  LARGE_INTEGER at;     /* just before the publish or cancel */
  uint64_t version;
  int rc;
} helper_t;

static DWORD WINAPI helper_main(void *arg) {
  helper_t *h = (helper_t *)arg;
  Sleep(h->delay_ms);
  QueryPerformanceCounter(&h->at);
  if (h->cancel) {
    *h->cancel = 1;
    shmsect_wake(h->s); /* does nothing on Windows: the wait must notice by polling */
    h->rc = 0;
  } else {
    h->rc = shmsect_publish(h->s, h->self, "from a thread", 13, &h->version);
  }
  return 0;
}

/* ==== Tests ==== */

static void test_layout(const shmop_t *seg, const shmsect_t *s) {
  shmsect_t bad;
  tap_group("a section laid out by hand in a shmop segment");
  is_u64((uintptr_t)seg->addr % 64, 0, "the segment's data starts 64-aligned");
  is_u64((uintptr_t)ctrl(s, 0) % 64, 0, "control block at a 64-aligned address");
  is_u64((uintptr_t)(s->base + s->data[0]) % 64, 24, "data area 0 at 24 mod 64");
  is_u64((uintptr_t)(s->base + s->data[1]) % 64, 24, "data area 1 at 24 mod 64");
  is_int(shmsect_check(s), 0, "shmsect_check accepts it");
  bad = *s;
  bad.control = CONTROL + 8;
  is_int(shmsect_check(&bad), SHMSECT_EBOUNDS, "a control block off 64 alignment: SHMSECT_EBOUNDS");
  bad = *s;
  bad.data[1] = DATA0 + 64;
  is_int(shmsect_check(&bad), SHMSECT_EBOUNDS, "overlapping data areas: SHMSECT_EBOUNDS");
  bad = *s;
  bad.size = DATA1 + CAPACITY - 1;
  is_int(shmsect_check(&bad), SHMSECT_EBOUNDS, "a data area past the segment: SHMSECT_EBOUNDS");
}

static void test_identity(void) {
  uint64_t self = shmsect_self();
  uint32_t pid = (uint32_t)GetCurrentProcessId();
  tap_group("identity and liveness: pid and creation time");
  is_u64(self >> 32, pid, "shmsect_self() >> 32 is GetCurrentProcessId()");
  is_u64(self & 0xffffffffu, my_creation(), "... low 32 bits: low 32 bits of the creation time");
  is_u64(shmsect_self(), self, "... the same on every call");
  ok(shmsect_alive(self), "this process is alive");
  ok(!shmsect_alive(0), "claim word 0 names no one");
  ok(!shmsect_alive((uint64_t)pid << 32 | (my_creation() ^ 1u)),
     "this pid with another creation time: gone (a reused pid)");
  ok(shmsect_alive((uint64_t)pid << 32), "this pid with start 0 (unknown): the pid alone decides");
  ok(!shmsect_alive(1), "pid 0 (the idle process) is no claimant");
  ok(!shmsect_alive((uint64_t)0xffffffffu << 32 | 1), "pid 4294967295 is no process");
  ok(shmsect_claim_alive(self, -1),
     "claim_alive with no claim lock (-1, Windows): the pid decides");
  ok(!shmsect_claim_alive((uint64_t)0xffffffffu << 32 | 1, -1),
     "... a pid that is no process: gone");
}

static void test_lock(int32_t key) {
  int lock = 12345;
  tap_group("no claim locks on Windows");
  is_int(shmsect_lock_create(key, 0600, &lock), 0, "shmsect_lock_create: 0");
  is_int(lock, -1, "... and the lock is -1 (none)");
  is_int(shmsect_lock_check(-1, key, 0, 0), 0,
         "shmsect_lock_check: -1 is what a Windows table records");
  is_int(shmsect_lock_check(5, key, 0, 0), SHMSECT_EFOREIGN, "... any other id is not");
  is_int(shmsect_lock_remove(-1), 0, "shmsect_lock_remove: 0");
}

static void test_empty(const shmsect_t *s) {
  shmsect_snapshot_t snap;
  char buf[8];
  tap_group("before the first publish");
  is_u64(shmsect_version(s), 0, "version 0");
  is_u64(shmsect_claimant(s), 0, "no claimant");
  is_int(shmsect_read(s, buf, sizeof buf, &snap), 0, "read: 0");
  ok(snap.version == 0 && snap.length == 0, "... version 0, length 0");
}

static void test_claim(const shmsect_t *s) {
  uint64_t self = shmsect_self(), other = self ^ 1u, holder = 0, version = 0;
  tap_group("claim by this process; busy for a second identity");
  is_int(shmsect_publish(s, self, "x", 1, &version), SHMSECT_ENOTWRITER,
         "publish before claiming: SHMSECT_ENOTWRITER");
  is_int(shmsect_claim(s, self, 0, -1, &holder), 0, "claim: 0");
  is_u64(shmsect_claimant(s), self, "the claimant is this process");
  is_u64(rd64(ctrl(s, CLAIM)), self, "claim word (offset 8) = pid << 32 | creation");
  is_u64(rd32(ctrl(s, FLAGS)), 0, "flags: 0 (does not wake)");
  holder = 0;
  is_int(shmsect_claim(s, self, 0, -1, &holder), SHMSECT_EBUSY, "claiming again: SHMSECT_EBUSY");
  is_u64(holder, self, "... held by this process");
  holder = 0;
  is_int(shmsect_claim(s, other, 0, -1, &holder), SHMSECT_EBUSY,
         "a second identity: SHMSECT_EBUSY");
  is_u64(holder, self, "... held by this process, alive");
  is_int(shmsect_publish(s, other, "x", 1, &version), SHMSECT_ENOTWRITER, "it cannot publish");
  is_int(shmsect_release(s, other, -1), SHMSECT_ENOTWRITER, "nor release");
  is_u64(shmsect_claimant(s), self, "the claim stays this process's");
}

static void test_publish_read(const shmsect_t *s) {
  uint64_t self = shmsect_self(), version = 0, now_us;
  shmsect_snapshot_t snap;
  unsigned char big[CAPACITY + 1], got[CAPACITY + 1];
  char small[4];
  FILETIME ft;
  ULARGE_INTEGER t;
  int i, bad = 0;

  tap_group("publish and read");
  is_int(shmsect_publish(s, self, "first", 5, &version), 0, "publish 5 bytes: 0");
  is_u64(version, 1, "... version 1");
  is_u64(shmsect_version(s), 1, "shmsect_version: 1");
  is_u64(rd64(ctrl(s, COMMIT)), 1 * 2 + 1, "commit word: version 1 in slot 1");
  is_u64(rd32(ctrl(s, SLOT1 + SEQ)), 2, "slot 1's seq: even again (2)");
  memset(got, 0, sizeof got);
  is_int(shmsect_read(s, got, sizeof got, &snap), 0, "read: 0");
  ok(snap.version == 1 && snap.length == 5 && memcmp(got, "first", 5) == 0,
     "... version 1, the 5 bytes");
  is_u64(snap.writer_pid, GetCurrentProcessId(), "... writer pid: this process");
  GetSystemTimeAsFileTime(&ft);
  t.LowPart = ft.dwLowDateTime;
  t.HighPart = ft.dwHighDateTime;
  now_us = (t.QuadPart - 116444736000000000u) / 10u;
  ok(snap.published_us <= now_us + 20000 && now_us - snap.published_us < 5000000,
     "... published: microseconds since 1970, just now (%llu, now %llu)",
     (unsigned long long)snap.published_us, (unsigned long long)now_us);

  for (i = 0; i < CAPACITY; i++) big[i] = (unsigned char)(i * 7 + 3);
  is_int(shmsect_publish(s, self, big, CAPACITY, &version), 0, "publish the whole capacity: 0");
  is_u64(rd64(ctrl(s, COMMIT)), 2 * 2 + 0, "commit word: version 2 in slot 0");
  ok(memcmp(s->base + s->data[0], big, CAPACITY) == 0, "the payload is in data area 0");
  is_int(shmsect_read(s, got, sizeof got, &snap), 0, "read: 0");
  ok(snap.version == 2 && snap.length == CAPACITY && memcmp(got, big, CAPACITY) == 0,
     "... all of it");
  is_int(shmsect_read(s, small, sizeof small, &snap), SHMSECT_ETOOSMALL,
         "read into 4 bytes: SHMSECT_ETOOSMALL");
  is_u64(snap.length, CAPACITY, "... length says the room needed");
  is_int(shmsect_publish(s, self, big, CAPACITY + 1, &version), SHMSECT_ETOOSMALL,
         "publish capacity + 1: SHMSECT_ETOOSMALL");
  is_u64(shmsect_version(s), 2, "... nothing published");
  is_int(shmsect_publish(s, self, "", 0, &version), 0, "publish 0 bytes: 0");
  is_int(shmsect_read(s, got, sizeof got, &snap), 0, "read: 0");
  ok(snap.version == 3 && snap.length == 0, "... version 3, empty");

  for (i = 0; i < 200; i++) {
    uint64_t want = 4 + (uint64_t)i;
    unsigned n = (unsigned)(i * 37 % CAPACITY);
    memset(big, i, n);
    if (shmsect_publish(s, self, big, n, &version) != 0 || version != want) bad++;
    else if (shmsect_read(s, got, sizeof got, &snap) != 0) bad++;
    else if (snap.version != want || snap.length != n || memcmp(got, big, n) != 0) bad++;
    else if (shmsect_version(s) != want) bad++;
  }
  is_int(bad, 0, "200 round trips of varied lengths, alternating slots");
}

static void test_release(const shmsect_t *s) {
  uint64_t self = shmsect_self(), holder;
  tap_group("release");
  is_int(shmsect_release(s, self, -1), 0, "release: 0");
  is_u64(shmsect_claimant(s), 0, "no claimant");
  is_int(shmsect_release(s, self, -1), SHMSECT_ENOTWRITER, "releasing again: SHMSECT_ENOTWRITER");
  is_int(shmsect_claim(s, self, 1, -1, &holder), 0, "claim, waking: 0");
  is_u64(rd32(ctrl(s, FLAGS)), 1, "... flags bit 0 set");
  is_int(shmsect_release(s, self, -1), 0, "release: 0");
  is_u64(rd32(ctrl(s, FLAGS)), 0, "... flags cleared");
}

static void test_takeover(const shmsect_t *s, int32_t key) {
  uint64_t self = shmsect_self(), claim, holder = 0, version;
  HANDLE ready = event(key, "ready", 1), go = event(key, "go", 1);
  PROCESS_INFORMATION pi;
  shmsect_snapshot_t snap;
  char buf[32];
  long status;

  tap_group("takeover of a claim held by a process that is gone");
  if (!ok(ready && go, "two events for the child")) return;
  if (!ok(start_child("claim-and-exit", key, &pi) == 0, "a child that claims and publishes"))
    return;
  if (!ok(WaitForSingleObject(ready, 20000) == WAIT_OBJECT_0, "... says it has")) {
    SetEvent(go);
    child_status(&pi, "claim-and-exit");
    CloseHandle(pi.hProcess);
    return;
  }
  claim = shmsect_claimant(s);
  is_u64(claim >> 32, pi.dwProcessId, "the claimant is the child's pid");
  ok(shmsect_alive(claim), "... alive");
  is_u64(rd32(ctrl(s, FLAGS)), 1, "... which says it wakes (flags bit 0)");
  is_int(shmsect_claim(s, self, 0, -1, &holder), SHMSECT_EBUSY,
         "claim while it lives: SHMSECT_EBUSY");
  is_u64(holder, claim, "... holder: the child's word");
  is_int(shmsect_read(s, buf, sizeof buf, &snap), 0, "its publish reads back");
  ok(snap.length == 14 && memcmp(buf, "from the child", 14) == 0, "... its bytes");
  is_u64(snap.writer_pid, pi.dwProcessId, "... writer pid: the child");

  SetEvent(go);
  status = child_status(&pi, "claim-and-exit");
  is_int(status, 0, "the child exits without releasing");
  is_u64(shmsect_claimant(s), claim, "its claim word stays");
  ok(!shmsect_alive(claim), "gone, while its process object lives on (a handle is open)");
  CloseHandle(pi.hProcess);
  ok(!shmsect_alive(claim), "gone, once its process object is too");
  is_int(shmsect_claim(s, self, 0, -1, &holder), 0, "claim: taken over");
  is_u64(shmsect_claimant(s), self, "... the claimant is this process");
  version = shmsect_version(s);
  is_int(shmsect_publish(s, self, "after", 5, &version), 0, "... which publishes");

  /* A pid reused by another process: here, this one with another start. */
  wr64(ctrl(s, CLAIM), (uint64_t)GetCurrentProcessId() << 32 | (my_creation() ^ 1u));
  is_int(shmsect_claim(s, self, 0, -1, &holder), 0,
         "a claim word with this pid and another creation time: taken over");
  is_int(shmsect_release(s, self, -1), 0, "release: 0");
  CloseHandle(ready);
  CloseHandle(go);
}

static void test_wait_timeout(const shmsect_t *s) {
  uint64_t v = shmsect_version(s), got = 0;
  LARGE_INTEGER t0;
  double ms;
  tap_group("waits that time out, or need not wait");
  QueryPerformanceCounter(&t0);
  is_int(shmsect_wait(s, v, 100, NULL, &got), 0, "wait 100 ms for a change that never comes: 0");
  ms = ms_since(t0);
  is_u64(got, v, "... the version unchanged");
  ok(ms >= 99.0 && ms < 1000.0, "... after 100 ms (%.1f ms)", ms);
  QueryPerformanceCounter(&t0);
  is_int(shmsect_wait(s, v, 0, NULL, &got), 0, "timeout 0: 0");
  ok(ms_since(t0) < 50.0, "... at once");
  QueryPerformanceCounter(&t0);
  is_int(shmsect_wait(s, v + 5, -1, NULL, &got), 0, "since another version, no timeout: 0");
  ok(got == v && ms_since(t0) < 50.0, "... at once, with the version");
}

static void test_wait_process(const shmsect_t *s, int32_t key) {
  HANDLE ready = event(key, "ready", 1), go = event(key, "go", 1);
  PROCESS_INFORMATION pi;
  shmsect_snapshot_t snap;
  uint64_t v, got = 0, now_us;
  char buf[16];
  LARGE_INTEGER t0;
  FILETIME ft;
  ULARGE_INTEGER t;
  double ms;

  tap_group("a wait returns when another process publishes");
  if (!ok(ready && go, "two events for the child")) return;
  if (!ok(start_child("publish-later", key, &pi) == 0, "a child that claims")) return;
  if (ok(WaitForSingleObject(ready, 20000) == WAIT_OBJECT_0, "... says it has")) {
    v = shmsect_version(s);
    SetEvent(go); /* it publishes 100 ms from now */
    QueryPerformanceCounter(&t0);
    is_int(shmsect_wait(s, v, 20000, NULL, &got), 0, "wait up to 20 s: 0");
    ms = ms_since(t0);
    GetSystemTimeAsFileTime(&ft);
    t.LowPart = ft.dwLowDateTime;
    t.HighPart = ft.dwHighDateTime;
    now_us = (t.QuadPart - 116444736000000000u) / 10u;
    is_u64(got, v + 1, "... with the child's version");
    ok(ms >= 90.0 && ms < 5000.0, "... after the child's 100 ms (%.1f ms)", ms);
    is_int(shmsect_read(s, buf, sizeof buf, &snap), 0, "read: 0");
    ok(snap.length == 5 && memcmp(buf, "later", 5) == 0 && snap.writer_pid == pi.dwProcessId,
       "... the child's bytes");
    tap_diag("seen %.1f ms after the child's publish (its clock)",
             (double)(int64_t)(now_us - snap.published_us) / 1000.0);
  } else {
    SetEvent(go);
  }
  is_int(child_status(&pi, "publish-later"), 0, "the child released and exited");
  CloseHandle(pi.hProcess);
  CloseHandle(ready);
  CloseHandle(go);
}

static void test_wait_thread(const shmsect_t *s) {
  enum { ROUNDS = 20 };
  uint64_t self = shmsect_self(), holder, got;
  helper_t h;
  HANDLE thread;
  LARGE_INTEGER done;
  double worst = 0, total = 0, late;
  int i, wrong = 0;

  tap_group("a wait returns when a thread publishes: polls, even behind a claimant that 'wakes'");
  if (!is_int(shmsect_claim(s, self, 1, -1, &holder), 0, "claim, saying this writer wakes waiters"))
    return;
  for (i = 0; i < ROUNDS; i++) {
    memset(&h, 0, sizeof h);
    h.s = s;
    h.self = self;
    h.delay_ms = 5 + (DWORD)i;
    h.rc = -1;
    thread = CreateThread(NULL, 0, helper_main, &h, 0, NULL);
    if (!thread) {
      wrong++;
      break;
    }
    /* The wakes flag would let a futex waiter sleep 1 s; nothing wakes on Windows. */
    shmsect_wait(s, shmsect_version(s), 5000, NULL, &got);
    QueryPerformanceCounter(&done);
    WaitForSingleObject(thread, INFINITE);
    CloseHandle(thread);
    if (h.rc != 0 || got != h.version) wrong++;
    late = ms_between(h.at, done);
    total += late;
    if (late > worst) worst = late;
  }
  is_int(wrong, 0, "%d waits each return the version a thread published %d-%d ms after", ROUNDS, 5,
         5 + ROUNDS - 1);
  /* A waiter trusting the flag would sleep its whole 1 s slice. The bound
     leaves room for a loaded machine: Wine's timers overshoot there. */
  ok(worst < 10.0 * SHMSECT_POLL_MAX_MS,
     "... each seen at a poll (every %d ms): mean %.1f ms, worst %.1f ms after",
     SHMSECT_POLL_MAX_MS, total / ROUNDS, worst);
  is_int(shmsect_release(s, self, -1), 0, "release: 0");
}

static void test_wait_cancel(const shmsect_t *s) {
  volatile int cancel = 0;
  uint64_t v = shmsect_version(s), got = 0;
  helper_t h;
  HANDLE thread;
  LARGE_INTEGER t0;
  double ms, after;

  tap_group("a cancelled wait returns (shm.cc's sectionWaitCancel)");
  memset(&h, 0, sizeof h);
  h.s = s;
  h.delay_ms = 50;
  h.cancel = &cancel;
  thread = CreateThread(NULL, 0, helper_main, &h, 0, NULL);
  if (!ok(thread != NULL, "a thread that cancels in 50 ms")) return;
  QueryPerformanceCounter(&t0);
  is_int(shmsect_wait(s, v, -1, &cancel, &got), 0, "wait without a timeout: 0");
  ms = ms_since(t0);
  WaitForSingleObject(thread, INFINITE);
  CloseHandle(thread);
  is_u64(got, v, "... the version unchanged");
  after = ms - ms_between(t0, h.at);
  ok(after >= 0 && after < 10.0 * SHMSECT_POLL_MAX_MS,
     "... at its next poll (every %d ms at most): %.1f ms after the cancel", SHMSECT_POLL_MAX_MS,
     after);
}

static void test_corrupt(const shmsect_t *s) {
  uint64_t commit;
  shmsect_snapshot_t snap;
  char buf[CAPACITY];
  unsigned slot;
  LARGE_INTEGER t0;

  tap_group("a damaged control block: SHMSECT_ECORRUPT, not a hang");
  commit = rd64(ctrl(s, COMMIT));
  slot = (commit & 1) ? SLOT1 : SLOT0;
  is_int(shmsect_read(s, buf, sizeof buf, &snap), 0, "intact: read 0");

  wr64(ctrl(s, slot + VERSION), (commit >> 1) + 7);
  QueryPerformanceCounter(&t0);
  is_int(shmsect_read(s, buf, sizeof buf, &snap), SHMSECT_ECORRUPT,
         "the slot's version is not the commit's: SHMSECT_ECORRUPT");
  tap_diag("gave up after %.1f ms", ms_since(t0));
  wr64(ctrl(s, slot + VERSION), commit >> 1);

  wr64(ctrl(s, slot + LENGTH), CAPACITY + 1);
  is_int(shmsect_read(s, buf, sizeof buf, &snap), SHMSECT_ECORRUPT,
         "a length past the capacity: SHMSECT_ECORRUPT");
  wr64(ctrl(s, slot + LENGTH), 1);

  wr32(ctrl(s, slot + SEQ), rd32(ctrl(s, slot + SEQ)) | 1);
  is_int(shmsect_read(s, buf, sizeof buf, &snap), SHMSECT_ECORRUPT,
         "the committed slot's seq stuck odd: SHMSECT_ECORRUPT");
  wr32(ctrl(s, slot + SEQ), rd32(ctrl(s, slot + SEQ)) + 1);

  is_int(shmsect_read(s, buf, sizeof buf, &snap), 0, "repaired: read 0 again");
}

static void test_retired(const shmsect_t *s) {
  uint64_t self = shmsect_self(), holder, version = 0, before;
  shmsect_snapshot_t snap;
  char buf[CAPACITY];
  LARGE_INTEGER t0;

  tap_group("a retired section (docs/sections.md, section 8)");
  is_int(shmsect_claim(s, self, 0, -1, &holder), 0, "claim: 0");
  before = shmsect_version(s);
  is_u64(shmsect_retired(s), SHMSECT_LIVE, "live: retired word 0");
  is_int(shmsect_retire(s, SHMSECT_REPLACED, buf, sizeof buf, &snap), 0,
         "retire: the carry-over reads 0");
  is_u64(snap.version, before, "... the last version");
  is_u64(shmsect_retired(s), SHMSECT_REPLACED, "retired word: 1 (replaced)");
  is_u64(shmsect_version(s), before + 1, "the commit word changed (a sleeper cannot miss it)");
  is_int(shmsect_read(s, buf, sizeof buf, &snap), SHMSECT_ERETIRED, "read: SHMSECT_ERETIRED");
  is_int(shmsect_publish(s, self, "x", 1, &version), SHMSECT_ERETIRED, "publish: SHMSECT_ERETIRED");
  is_int(shmsect_claim(s, self, 0, -1, &holder), SHMSECT_ERETIRED, "claim: SHMSECT_ERETIRED");
  QueryPerformanceCounter(&t0);
  is_int(shmsect_wait(s, shmsect_version(s), 5000, NULL, &version), SHMSECT_ERETIRED,
         "wait: SHMSECT_ERETIRED");
  ok(ms_since(t0) < 1000, "... at once (%.1f ms)", ms_since(t0));
  is_int(shmsect_release(s, self, -1), 0, "release still gives the claim back: 0");
}

/* A hostile peer: keeps both slots' seq odd while it bumps the commit word. */
typedef struct hostile_s {
  const shmsect_t *s;
  volatile LONG stop, started;
} hostile_t;

static DWORD WINAPI hostile_main(void *arg) {
  hostile_t *h = (hostile_t *)arg;
  uint64_t commit = rd64(ctrl(h->s, COMMIT));
  while (!InterlockedCompareExchange(&h->stop, 0, 0)) {
    wr32(ctrl(h->s, SLOT0 + SEQ), rd32(ctrl(h->s, SLOT0 + SEQ)) | 1);
    wr32(ctrl(h->s, SLOT1 + SEQ), rd32(ctrl(h->s, SLOT1 + SEQ)) | 1);
    commit += 2;
    wr64(ctrl(h->s, COMMIT), commit);
    InterlockedExchange(&h->started, 1); /* both slots odd from here on */
  }
  return 0;
}

static void test_starved(const shmsect_t *s) {
  shmsect_snapshot_t snap;
  char buf[CAPACITY];
  uint64_t commit = rd64(ctrl(s, COMMIT));
  uint32_t seq0 = rd32(ctrl(s, SLOT0 + SEQ)), seq1 = rd32(ctrl(s, SLOT1 + SEQ));
  hostile_t h;
  HANDLE thread;
  LARGE_INTEGER t0;
  double ms;

  tap_group(
      "a hostile peer keeps the slots odd and the commit moving: SHMSECT_ESTARVED, not a hang");
  h.s = s;
  h.stop = h.started = 0;
  thread = CreateThread(NULL, 0, hostile_main, &h, 0, NULL);
  if (!ok(thread != NULL, "a hostile thread")) return;
  while (!InterlockedCompareExchange(&h.started, 0, 0)) Sleep(1);
  QueryPerformanceCounter(&t0);
  is_int(shmsect_read(s, buf, sizeof buf, &snap), SHMSECT_ESTARVED, "read: SHMSECT_ESTARVED");
  ms = ms_since(t0);
  InterlockedExchange(&h.stop, 1);
  WaitForSingleObject(thread, INFINITE);
  CloseHandle(thread);
  ok(ms >= SHMSECT_READ_MAX_MS && ms < 10.0 * SHMSECT_READ_MAX_MS,
     "... after %.1f ms (SHMSECT_READ_MAX_MS is %d)", ms, SHMSECT_READ_MAX_MS);
  wr64(ctrl(s, COMMIT), commit);
  wr32(ctrl(s, SLOT0 + SEQ), seq0);
  wr32(ctrl(s, SLOT1 + SEQ), seq1);
}

int main(int argc, char **argv) {
  int32_t key;
  shmop_t seg;
  shmsect_t s;

  if (argc == 4 && strcmp(argv[1], "child") == 0)
    return child(argv[2], (int32_t)strtol(argv[3], NULL, 10));
  tap_start(138);
  key = test_key(40);
  tap_group("a segment for the section (shmop.c's Windows branch)");
  if (!is_int(shmop_open(&seg, key, 'n', 0600, SEGMENT_SIZE, &call), 0, "'n' %d bytes",
              SEGMENT_SIZE)) {
    return tap_done();
  }
  ok(seg.size >= SEGMENT_SIZE, "size %llu", (unsigned long long)seg.size);
  section_at(&seg, &s);

  test_layout(&seg, &s);
  test_identity();
  test_lock(key);
  test_empty(&s);
  test_claim(&s);
  test_publish_read(&s);
  test_release(&s);
  test_takeover(&s, key);
  test_wait_timeout(&s);
  test_wait_process(&s, key);
  test_wait_thread(&s);
  test_wait_cancel(&s);
  test_corrupt(&s);
  test_starved(&s);
  test_retired(&s);

  tap_group("cleanup");
  is_int(shmop_delete(&seg), 0, "delete");
  is_int(shmop_close(&seg), 0, "close");
  is_int(probe_sweep(), 0, "no segment left open");
  return tap_done();
}
