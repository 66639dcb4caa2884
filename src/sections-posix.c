/*
 * sections-posix.c: the section protocol's hooks common to every POSIX
 * system (sections-platform.h): the clocks, liveness (kill(pid, 0) and the
 * start time of sections-linux.c or sections-poll.c), this process's
 * identity, and the claim lock: a System V semaphore set driven exactly as
 * PHP's sysvsem drives its own (semget, semop with SEM_UNDO, semctl), so
 * that PHP and Node claimants exclude each other.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "sections-platform.h"
#include "sections.h"

uint64_t sect__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sect__epoch_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void sect__yield(void) { sched_yield(); }

int sect__running(uint32_t pid, uint32_t start) {
  uint32_t now;
  /* kill() reads 0 and negative pids as process groups: no process has them. */
  if (pid == 0 || pid > INT_MAX) return 0;
  if (kill((pid_t)pid, 0) != 0 && errno != EPERM) return 0;
  now = sect__start_ticks(pid);
  /* A different start time is another process that reuses the pid. */
  return start == 0 || now == 0 || now == start;
}

/* Learnt once per process, not per publish (getpid is a system call): a
   child of fork() forgets it in an atfork handler and learns its own. One
   atomic word, so that threads racing on the first call each see a whole
   identity. (A child made by a raw clone() without fork's handlers would
   keep its parent's identity: this library makes none.) */
static uint64_t identity;
static pthread_once_t identity_once = PTHREAD_ONCE_INIT;
static void forget_identity(void) { relaxed_store64(&identity, 0); }
static void watch_forks(void) { pthread_atfork(NULL, NULL, forget_identity); }

uint64_t sect__identity(void) {
  uint64_t id = relaxed_load64(&identity);
  if (id == 0) {
    uint32_t pid = (uint32_t)getpid();
    pthread_once(&identity_once, watch_forks);
    id = (uint64_t)pid << 32 | sect__start_ticks(pid);
    relaxed_store64(&identity, id);
  }
  return id;
}

/* PHP's sysvsem: semaphore 0 is the lock, 1 counts users, 2 guards setup. */
union sect__semun {
  int val;
  struct semid_ds *buf;
  unsigned short *array;
};

static int sect__semop(int id, struct sembuf *ops, size_t count) {
  while (semop(id, ops, count) != 0) {
    if (errno != EINTR) return -errno;
  }
  return 0;
}

int shmsect_lock_open(int32_t key, int perms, int *lock) {
  struct sembuf join[3] = {{2, 0, 0}, {2, 1, SEM_UNDO}, {1, 1, SEM_UNDO}};
  struct sembuf done = {2, -1, SEM_UNDO};
  union sect__semun one;
  int id = semget((key_t)key, 3, perms | IPC_CREAT), rc;
  if (id < 0) return -errno;
  if ((rc = sect__semop(id, join, 3)) != 0) return rc;
  if (semctl(id, 1, GETVAL) == 1) { /* the first user sets the lock free */
    one.val = 1;
    semctl(id, 0, SETVAL, one);
  }
  if ((rc = sect__semop(id, &done, 1)) != 0) return rc;
  *lock = id;
  return 0;
}

int shmsect_lock_remove(int32_t key) {
  int id = semget((key_t)key, 0, 0);
  if (id < 0 || semctl(id, 0, IPC_RMID) != 0) return -errno;
  return 0;
}

int sect__lock(int lock) {
  struct sembuf take = {0, -1, SEM_UNDO};
  return lock < 0 ? 0 : sect__semop(lock, &take, 1);
}

void sect__unlock(int lock) {
  struct sembuf give = {0, 1, SEM_UNDO};
  if (lock >= 0) sect__semop(lock, &give, 1);
}
