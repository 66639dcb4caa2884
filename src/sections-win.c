/*
 * sections-win.c: the Windows hooks of the section protocol
 * (sections-platform.h), and its claim-lock functions, which do nothing.
 *
 * Waiters always poll: there is no futex across processes (WaitOnAddress
 * wakes only the threads of its own process). There is no claim lock (PHP
 * has no sysvsem there): a claim is the compare-exchange of the claim word
 * alone. Identity and liveness: the process id and creation time
 * (OpenProcess, GetExitCodeProcess, GetProcessTimes). Clocks: QPC and
 * GetSystemTimePreciseAsFileTime.
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include "atomics.h"
#include "sections-platform.h"
#include "sections.h"

/*
 * Every sleep is capped at SHMSECT_POLL_MAX_MS whatever the claimant's flags
 * say, and a wake does nothing; a cancelled wait is noticed at its next poll.
 *
 * Sleep() rounds up to the system timer tick (15.6 ms unless some code in the
 * process raised the resolution), which would make the first 0.1 ms poll, and
 * the 10 ms bound, 16 ms. A high-resolution waitable timer (Windows 10 1803
 * and later) sleeps for the time asked; where it cannot be made, Sleep().
 */
#ifndef CREATE_WAITABLE_TIMER_HIGH_RESOLUTION
#define CREATE_WAITABLE_TIMER_HIGH_RESOLUTION 0x00000002
#endif

uint64_t sect__now_ns(void) {
  LARGE_INTEGER count, hz;
  QueryPerformanceCounter(&count);
  QueryPerformanceFrequency(&hz);
  /* In two parts: count * 1e9 overflows after 15 minutes of a 10 MHz counter. */
  return (uint64_t)(count.QuadPart / hz.QuadPart) * 1000000000u +
         (uint64_t)(count.QuadPart % hz.QuadPart) * 1000000000u / (uint64_t)hz.QuadPart;
}

uint64_t sect__epoch_us(void) {
  FILETIME now;
  ULARGE_INTEGER ticks;
  GetSystemTimePreciseAsFileTime(&now);
  ticks.LowPart = now.dwLowDateTime;
  ticks.HighPart = now.dwHighDateTime;
  /* 100 ns ticks since 1601-01-01; 11644473600 s from there to 1970-01-01. */
  return (ticks.QuadPart - 116444736000000000u) / 10u;
}

void sect__yield(void) { SwitchToThread(); }

void sect__sleep_on(uint32_t *word, uint32_t expected, uint64_t ns) {
  HANDLE timer;
  LARGE_INTEGER due;
  (void)word, (void)expected;
  if (ns > 1000000u * SHMSECT_POLL_MAX_MS) ns = 1000000u * SHMSECT_POLL_MAX_MS;
  timer = CreateWaitableTimerExW(NULL, NULL, CREATE_WAITABLE_TIMER_HIGH_RESOLUTION,
                                 TIMER_MODIFY_STATE | SYNCHRONIZE);
  due.QuadPart = -(LONGLONG)(ns / 100u); /* negative: relative, in 100 ns units */
  if (timer && SetWaitableTimer(timer, &due, 0, NULL, NULL, FALSE)) {
    WaitForSingleObject(timer, INFINITE);
  } else {
    Sleep((DWORD)((ns + 999999u) / 1000000u));
  }
  if (timer) CloseHandle(timer);
}

void sect__wake(uint32_t *word) { (void)word; }

/* No vectored sleep: a wait on several sections polls (sections-many.c). */
int sect__can_sleep_on_many(void) { return 0; }
void sect__sleep_on_many(uint32_t *const *words, const uint32_t *expected, size_t n, uint64_t ns) {
  (void)n;
  sect__sleep_on(words[0], expected[0], ns);
}

/* The low 32 bits of a process's creation time (100 ns units), 0 if unknown. */
static uint32_t sect__created(HANDLE process) {
  FILETIME created, exited, kernel, user;
  if (!GetProcessTimes(process, &created, &exited, &kernel, &user)) return 0;
  return created.dwLowDateTime;
}

int sect__running(uint32_t pid, uint32_t start) {
  HANDLE process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
  DWORD code;
  uint32_t now;
  /* Denied: it exists (as kill's EPERM says on POSIX). Anything else: no such pid. */
  if (!process) return GetLastError() == ERROR_ACCESS_DENIED;
  /* A process object outlives its process while handles to it are open, so
     ask whether it has exited. (One that exits with code 259, STILL_ACTIVE,
     looks alive until its object goes.) */
  if (!GetExitCodeProcess(process, &code)) code = STILL_ACTIVE; /* cannot tell */
  now = sect__created(process);
  CloseHandle(process);
  if (code != STILL_ACTIVE) return 0;
  /* A different creation time is another process that reuses the pid. */
  return start == 0 || now == 0 || now == start;
}

uint64_t sect__identity(void) {
  static uint64_t identity; /* no fork on Windows: it never changes */
  uint64_t id = relaxed_load64(&identity);
  if (id == 0) { /* threads that race here all store the same value */
    id = ((uint64_t)GetCurrentProcessId() << 32) | sect__created(GetCurrentProcess());
    relaxed_store64(&identity, id);
  }
  return id;
}

/*
 * No claim locks: PHP has no sysvsem on Windows, so there is nothing both
 * could share (PHP's helper refuses to claim there). The lock is -1, and a
 * claim or release is the compare-exchange of the claim word alone
 * (sections.c); a claimant that is gone is taken over.
 */
int shmsect_lock_create(int32_t key, int perms, int *id) {
  (void)key, (void)perms;
  *id = -1;
  return 0;
}

int shmsect_lock_check(int id, int32_t key, uint32_t uid, uint32_t cuid) {
  (void)key, (void)uid, (void)cuid;
  return id == -1 ? 0 : SHMSECT_EFOREIGN;
}

int shmsect_lock_remove(int id) {
  (void)id;
  return 0;
}

int sect__take(int lock) {
  (void)lock;
  return 0;
}

void sect__give(int lock) { (void)lock; }

int sect__held(int lock) {
  (void)lock;
  return -1;
}
