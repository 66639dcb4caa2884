/*
 * sections-posix.c: the section protocol's hooks common to every POSIX
 * system (sections-platform.h): the clocks, liveness (kill(pid, 0) and the
 * start time of sections-linux.c or sections-poll.c), this process's
 * identity, and claim locks: one System V semaphore set per section, made
 * by the manager and laid out as PHP's sysvsem lays out its own (semget,
 * semop with SEM_UNDO | IPC_NOWAIT, semctl), so that PHP and Node claimants
 * exclude each other.
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

/* PHP's sysvsem layout: semaphore 0 is the lock, 1 counts PHP's users, 2 guards PHP's setup. */
union sect__semun {
  int val;
  struct semid_ds *buf;
  unsigned short *array;
};

int shmsect_lock_create(int32_t key, int perms, int *id) {
  unsigned short start[3] = {1, 1, 0}; /* free; a usage count PHP never sees as 1; setup done */
  union sect__semun arg;
  int made = semget((key_t)key, 3, (perms & 0777) | IPC_CREAT | IPC_EXCL), err;
  if (made < 0) return -errno;
  arg.array = start;
  if (semctl(made, 0, SETALL, arg) != 0) {
    err = errno;
    semctl(made, 0, IPC_RMID);
    return -err;
  }
  *id = made;
  return 0;
}

int shmsect_lock_check(int id, int32_t key, uint32_t uid, uint32_t cuid) {
  struct semid_ds ds;
  union sect__semun arg;
  if (id < 0) return SHMSECT_EFOREIGN;
  arg.buf = &ds;
  if (semctl(id, 0, IPC_STAT, arg) != 0) return -errno;
  if ((int32_t)ds.sem_perm.__key != key || ds.sem_nsems != 3 || ds.sem_perm.uid != uid ||
      ds.sem_perm.cuid != cuid) {
    return SHMSECT_EFOREIGN;
  }
  return 0;
}

int shmsect_lock_remove(int id) { return semctl(id, 0, IPC_RMID) == 0 ? 0 : -errno; }

int sect__held(int lock) {
  int value = lock < 0 ? -1 : semctl(lock, 0, GETVAL);
  return value < 0 ? -1 : value == 0;
}

/* The claim: semaphore 0, never waiting (IPC_NOWAIT); SEM_UNDO gives it back
   when this process dies. */
int sect__take(int lock) {
  struct sembuf take = {0, -1, SEM_UNDO | IPC_NOWAIT};
  if (lock < 0) return 0;
  while (semop(lock, &take, 1) != 0) {
    if (errno == EAGAIN) return SHMSECT_EBUSY;
    if (errno != EINTR) return -errno;
  }
  return 0;
}

/* Gives semaphore 0 back, cancelling the undo entry the take made. A set that
   is gone (EIDRM, EINVAL: the table was removed) holds no claim to give. */
void sect__give(int lock) {
  struct sembuf give = {0, 1, SEM_UNDO | IPC_NOWAIT};
  if (lock < 0) return;
  while (semop(lock, &give, 1) != 0 && errno == EINTR) {
  }
}
