/*
 * handoff-floor.c: the floors under the handoff benchmark, in plain C between
 * two processes (fork), with the same method as the Node and PHP rows
 * (docs/performance.md, "Handoff"); bench/handoff.js runs it once per round,
 * interleaved with the rows it is the floor of.
 *
 *   futex  payload memcpy'd into shared memory, a version word stored with
 *          release order and futex(FUTEX_WAKE) on it (shared futex); the
 *          reader sleeps in futex(FUTEX_WAIT) and memcpy's the payload out:
 *          what a section handoff costs with nothing else around it
 *   spin   the same, but the reader never sleeps: it spins on the version
 *          word (pause, sched_yield every 256 spins), burning its core
 *   unix   write(2) of a u32 length + payload on a Unix-domain stream socket,
 *          read(2) until the whole payload is in one buffer
 *   tcp    the same over TCP loopback, TCP_NODELAY
 *   sections   this project's section protocol (src/sections.c, linked in)
 *          on two sections of a private System V segment, as the Node rows
 *          use it: the writer's shmsect_publish and shmsect_wait on the
 *          acknowledgement section, the reader's shmsect_wait (futex) and
 *          shmsect_read: what the protocol costs over the bare futex, the
 *          floor of waitSync()
 *   ring   the same, but the reader sleeps where an event loop sleeps, as
 *          `await wait()` does on Linux 6.7+: an IORING_OP_FUTEX_WAIT on an
 *          io_uring (src/futex-ring-linux.c) whose fd is in an epoll set,
 *          the reader in epoll_wait: the kernel's cost of an event-loop
 *          wake, the floor of `await wait()` (left out, with a line on
 *          stderr, where io_uring cannot sleep on a futex)
 *
 * Built with the project's section sources (bench/handoff.js: gcc -O2
 * -I src handoff-floor.c src/sections.c ...).
 * Usage: handoff-floor --size BYTES --messages M --drop D --rounds R
 *          --gap-us MIN,MAX [--start FIRST_ROUND]
 *          [--transports futex,spin,unix,tcp,sections,ring]
 * Output, one JSON object per line: {"transport","round","latencies":[ns...],
 * "messages","writerCpuNs","readerCpuNs"}: the CPU time (getrusage, user +
 * system) each process used over the batch's M messages.
 * Transports are interleaved: each round runs a batch of each, in an order
 * rotated (and reversed on odd rounds) from round to round.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "futex-ring.h"
#include "sections.h"

enum { T_FUTEX, T_SPIN, T_UNIX, T_TCP, T_SECTIONS, T_RING, T_COUNT };
static const char *NAMES[T_COUNT] = {"futex", "spin", "unix", "tcp", "sections", "ring"};

struct shared {
  uint32_t version __attribute__((aligned(64)));
  uint32_t ack __attribute__((aligned(64)));
  int64_t failed;
  uint64_t reader_cpu_ns; /* the reader's CPU time over its last batch */
};

static void futex_wake(uint32_t *word) {
  syscall(SYS_futex, word, FUTEX_WAKE, 1 << 30, NULL, NULL, 0);
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("write");
    p += w, n -= (size_t)w;
  }
}

static void read_all(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("read");
    p += r, n -= (size_t)r;
  }
}

static void sleep_us(double us) {
  struct timespec ts = {0, (long)(us * 1000)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static unsigned rng = 12345;
static double uniform(void) {
  rng = rng * 1103515245u + 12345u;
  return (double)(rng >> 8) / (double)(1u << 24);
}

static void spin_until_changed(volatile uint32_t *word, uint32_t old) {
  unsigned spins = 0;
  uint64_t start = now_ns();
  while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == old) {
    __builtin_ia32_pause();
    if (++spins % 256 == 0) {
      sched_yield();
      if (now_ns() - start > 10000000000u) die("no message within 10 s");
    }
  }
}

/* Gives up after 10 s: the other process is gone. */
static void wait_until_changed(uint32_t *word, uint32_t old) {
  uint64_t start = now_ns();
  while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == old) {
    struct timespec ts = {1, 0};
    syscall(SYS_futex, word, FUTEX_WAIT, old, &ts, NULL, 0);
    if (now_ns() - start > 10000000000u) die("no wake-up within 10 s");
  }
}

static uint64_t align64(uint64_t n) { return (n + 63) / 64 * 64; }

/* Two sections (the message, and a 64-byte acknowledgement) in a private
   System V segment, laid out as docs/sections.md lays out a table's: control
   blocks 64-byte aligned, data areas 24 bytes past a 64-byte boundary. The
   segment is marked for removal at once: it goes with the last process. */
static void sections_new(shmsect_t *msg, shmsect_t *ack, uint64_t size) {
  uint64_t at = 2 * SHMSECT_CONTROL_SIZE, total;
  shmsect_t *both[2] = {msg, ack};
  for (int i = 0; i < 2; i++) {
    both[i]->control = (uint64_t)i * SHMSECT_CONTROL_SIZE;
    both[i]->capacity = i == 0 ? size : 64;
    for (int k = 0; k < 2; k++) {
      both[i]->data[k] = align64(at) + SHMSECT_DATA_SHIFT;
      at = both[i]->data[k] + both[i]->capacity;
    }
  }
  total = at;
  int id = shmget(IPC_PRIVATE, total, IPC_CREAT | 0600);
  if (id < 0) die("shmget");
  void *addr = shmat(id, NULL, 0);
  shmctl(id, IPC_RMID, NULL);
  if (addr == (void *)-1) die("shmat");
  for (int i = 0; i < 2; i++) {
    both[i]->base = both[i]->counts = addr;
    both[i]->size = total;
    if (shmsect_check(both[i]) != 0) die("section layout");
  }
}

/* This process becomes the section's writer, one that wakes its waiters (as the Node writer). */
static void claim(const shmsect_t *s) {
  uint64_t holder;
  if (shmsect_claim(s, shmsect_self(), 1, -1, &holder) != 0) die("shmsect_claim");
}

static uint64_t publish(const shmsect_t *s, const void *src, uint64_t length) {
  uint64_t version;
  if (shmsect_publish(s, shmsect_self(), src, length, &version) != 0) die("shmsect_publish");
  return version;
}

/* Waits (futex, through the protocol's own loop) until the version differs from since; gives up
 * after 10 s. */
static uint64_t section_wait(const shmsect_t *s, uint64_t since) {
  uint64_t version;
  if (shmsect_wait(s, since, 10000, NULL, &version) != 0 || version == since)
    die("no publish within 10 s");
  return version;
}

/* The same, asleep where an event loop sleeps: the protocol's steps, each
   sleep an io_uring futex wait, the reader in epoll_wait on the ring's fd
   (level-triggered, as libuv polls it) until that sleep's completion is
   reaped (its linked timeout's completion may come apart from it). The
   completion reaches a task asleep in epoll_wait as task work, which ends
   the epoll_wait with EINTR, the completion posted: reaped all the same
   (libuv calls epoll_wait again instead, and finds the fd readable). */
static uint64_t ring_wait(const shmsect_t *s, uint64_t since, shmsect_ring_t *ring, int ep) {
  shmsect_wait_t w;
  uint64_t version, slice, tags[4];
  uint32_t expected;
  shmsect_wait_start(&w, since, 10000);
  while (!shmsect_wait_step(s, &w, 0, &version, &expected, &slice)) {
    if (shmsect_ring_sleep(ring, shmsect_futex_word(s), expected, slice, 1) != 0)
      die("io_uring futex wait");
    for (int woke = 0; !woke;) {
      struct epoll_event ev;
      if (epoll_wait(ep, &ev, 1, 11000) == 0) die("no completion within 11 s");
      for (int n = shmsect_ring_reap(ring, tags, 4), i = 0; i < n; i++) woke |= tags[i] == 1;
    }
  }
  if (version == since) die("no publish within 10 s");
  return version;
}

/* Whether io_uring can sleep on a futex here (Linux 6.7+, not refused by seccomp or sysctl). */
static int ring_works(void) {
  shmsect_ring_t *ring;
  if (shmsect_ring_open(&ring) != 0) return 0;
  shmsect_ring_close(ring);
  return 1;
}

int main(int argc, char **argv) {
  size_t size = 10240;
  int messages = 100, drop = 5, rounds = 10, start = 0;
  double gap_min = 300, gap_max = 700;
  int use[T_COUNT] = {1, 1, 1, 1};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--size")) size = strtoul(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--messages")) messages = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--drop")) drop = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--start")) start = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--gap-us")) sscanf(argv[i + 1], "%lf,%lf", &gap_min, &gap_max);
    else if (!strcmp(argv[i], "--transports")) {
      for (int t = 0; t < T_COUNT; t++) use[t] = strstr(argv[i + 1], NAMES[t]) != NULL;
    } else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (size < 16) size = 16;
  if (use[T_RING] && !ring_works()) {
    fprintf(stderr, "ring: io_uring cannot sleep on a futex here (Linux 6.7+ needed): left out\n");
    use[T_RING] = 0;
  }
  int list[T_COUNT], count = 0;
  for (int t = 0; t < T_COUNT; t++)
    if (use[t]) list[count++] = t;

  /* Shared: control words, the data area (24 bytes into a 64-byte line, as
     sections place theirs), and the reader's latencies. */
  size_t total = 4096 + size;
  char *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  uint64_t *lat = mmap(NULL, sizeof(uint64_t) * (size_t)messages, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED || lat == MAP_FAILED) die("mmap");
  struct shared *sh = (struct shared *)(void *)mem;
  char *area = mem + 1024 + 24;
  shmsect_t msg, ack; /* the sections transports' */
  sections_new(&msg, &ack, size);
  claim(&msg); /* the writer's, before the reader can wait */

  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) die("socketpair");
  int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof addr;
  if (lfd < 0 || bind(lfd, (void *)&addr, sizeof addr) || listen(lfd, 1) ||
      getsockname(lfd, (void *)&addr, &alen))
    die("tcp listen");
  int tw = socket(AF_INET, SOCK_STREAM, 0);
  if (tw < 0 || connect(tw, (void *)&addr, sizeof addr)) die("tcp connect");
  int tr = accept(lfd, NULL, NULL);
  if (tr < 0) die("accept");
  setsockopt(tw, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(tr, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval limit = {10, 0}; /* no read waits longer: the other process is gone */
  int fds[4] = {pair[0], pair[1], tw, tr};
  for (int i = 0; i < 4; i++) setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);

  char *src = malloc(size + 4), *dst = malloc(size + 4);
  if (!src || !dst) die("malloc");
  memset(src, 0x6b, size + 4);
  memcpy(src, &(uint32_t){(uint32_t)size}, 4); /* a socket frame: u32 length, payload */

  /* The writer (parent) reports; the reader (child) fills lat[]. */
  int go[2], done[2];
  if (pipe(go) || pipe(done)) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  int reader = child == 0;
  shmsect_ring_t *ring = NULL; /* the reader's ring, in the epoll set ep */
  int ep = -1;
  if (reader) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return 1;
    close(go[0]), close(done[0]);
    claim(&ack); /* before the first "go": the writer waits on it */
    if (use[T_RING]) {
      struct epoll_event ev = {.events = EPOLLIN};
      ep = epoll_create1(0);
      if (ep < 0 || shmsect_ring_open(&ring) != 0 ||
          epoll_ctl(ep, EPOLL_CTL_ADD, shmsect_ring_fd(ring), &ev) != 0)
        die("ring");
    }
  } else {
    close(go[1]), close(done[1]);
  }
  for (int r = start; r < start + rounds; r++) {
    for (int k = 0; k < count; k++) {
      int t = list[r % 2 ? (count - 1 - (k + r) % count) : (k + r) % count];
      int fdw = t == T_UNIX ? pair[0] : tw, fdr = t == T_UNIX ? pair[1] : tr;
      char token = 0;
      if (reader) {
        uint32_t version = __atomic_load_n(&sh->version, __ATOMIC_ACQUIRE);
        uint64_t sversion = shmsect_version(&msg);
        uint64_t cpu0 = cpu_ns();
        write_all(go[1], "g", 1);
        for (int i = 0; i < messages; i++) {
          uint64_t t0, t1;
          if (t == T_FUTEX || t == T_SPIN) {
            if (t == T_FUTEX) wait_until_changed(&sh->version, version);
            else spin_until_changed(&sh->version, version);
            version = __atomic_load_n(&sh->version, __ATOMIC_ACQUIRE);
            memcpy(dst, area, size);
            t1 = now_ns();
            memcpy(&t0, dst, 8);
          } else if (t == T_SECTIONS || t == T_RING) {
            shmsect_snapshot_t snap;
            sversion = t == T_SECTIONS ? section_wait(&msg, sversion)
                                       : ring_wait(&msg, sversion, ring, ep);
            if (shmsect_read(&msg, dst, size, &snap) != 0 || snap.length != size)
              die("shmsect_read");
            sversion = snap.version;
            t1 = now_ns();
            memcpy(&t0, dst, 8);
          } else {
            uint32_t n;
            read_all(fdr, &n, 4);
            if (n != size) die("frame");
            read_all(fdr, dst, n);
            t1 = now_ns();
            memcpy(&t0, dst, 8);
          }
          lat[i] = t1 - t0;
          if (t == T_FUTEX || t == T_SPIN) {
            __atomic_add_fetch(&sh->ack, 1, __ATOMIC_RELEASE);
            futex_wake(&sh->ack);
          } else if (t == T_SECTIONS || t == T_RING) {
            publish(&ack, &i, 4);
          } else {
            write_all(fdr, &i, 4);
          }
        }
        sh->reader_cpu_ns = cpu_ns() - cpu0;
        write_all(done[1], "d", 1);
      } else {
        read_all(go[0], &token, 1);
        uint64_t cpu0 = cpu_ns();
        for (int i = 0; i < messages; i++) {
          uint32_t acked = __atomic_load_n(&sh->ack, __ATOMIC_ACQUIRE);
          uint64_t sacked = shmsect_version(&ack);
          sleep_us(gap_min + uniform() * (gap_max - gap_min));
          uint64_t t0 = now_ns();
          if (t == T_FUTEX || t == T_SPIN) {
            memcpy(src + 4, &t0, 8);
            memcpy(area, src + 4, size);
            __atomic_add_fetch(&sh->version, 1, __ATOMIC_RELEASE);
            futex_wake(&sh->version);
            wait_until_changed(&sh->ack, acked);
          } else if (t == T_SECTIONS || t == T_RING) {
            memcpy(src + 4, &t0, 8);
            publish(&msg, src + 4, size);
            section_wait(&ack, sacked);
          } else {
            int got;
            memcpy(src + 4, &t0, 8);
            write_all(fdw, src, size + 4);
            read_all(fdw, &got, 4);
            if (got != i) die("ack");
          }
        }
        uint64_t writer_cpu = cpu_ns() - cpu0;
        read_all(done[0], &token, 1);
        printf("{\"transport\":\"%s\",\"round\":%d,\"latencies\":[", NAMES[t], r);
        for (int i = drop; i < messages; i++)
          printf("%s%llu", i > drop ? "," : "", (unsigned long long)lat[i]);
        printf("],\"messages\":%d,\"writerCpuNs\":%llu,\"readerCpuNs\":%llu}\n", messages,
               (unsigned long long)writer_cpu, (unsigned long long)sh->reader_cpu_ns);
        fflush(stdout);
      }
    }
  }
  if (!reader) {
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  }
  return 0;
}
