/*
 * handoff-c-reader.c: a C reader of a section (docs/sections.md), the reader
 * side of the PHP writer's floor in bench/handoff.js: PHP's publish and its
 * FFI wake, received by a reader that adds nothing to the kernel's wake-up (a
 * futex wait with the sleeper count, a memcpy out), beside the Node reader's
 * row and the C -> C futex floor of the same run.
 *
 * Usage: handoff-c-reader KEY SECTION ACK MESSAGES
 * Attaches the section table at KEY (decimal), prints "armed", then for each
 * of MESSAGES messages: waits for a new version of SECTION (section 7: counts
 * itself in the sleepers, fence, loads the commit, FUTEX_WAIT), copies the
 * payload out (section 4), takes t1 = CLOCK_MONOTONIC and records t1 - t0
 * (t0: the payload's first 8 bytes, PHP's hrtime(true)), then acknowledges by
 * publishing the message's number to ACK (section 6), which the PHP writer
 * polls. It publishes there without the claim: the Node reader of the
 * benchmark holds it and is idle while this reader runs.
 * Last line: {"latencies":[ns...],"cpuNs":N}, N the CPU time (user + system)
 * over the messages.
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct section {
  uint64_t *commit; /* its low 32 bits are the futex word */
  uint32_t *sleepers;
  unsigned char *slot[2]; /* slot headers */
  unsigned char *data[2];
  uint64_t capacity;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
         ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static void die(const char *what) {
  fprintf(stderr, "handoff-c-reader: %s\n", what);
  exit(1);
}

static uint64_t u64at(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* The section named `name` of the table at `base` (its layout checked on attach by the benchmark's
 * Node side). */
static struct section find(unsigned char *base, const char *name) {
  uint32_t count;
  memcpy(&count, base + 20, 4);
  for (uint32_t i = 0; i < count; i++) {
    unsigned char *entry = base + 64 + 80 * (size_t)i;
    if (strnlen((const char *)entry, 32) == strlen(name) && !memcmp(entry, name, strlen(name))) {
      unsigned char *control = base + u64at(entry + 32);
      return (struct section){(uint64_t *)(void *)control,
                              (uint32_t *)(void *)(control + 24),
                              {control + 64, control + 128},
                              {base + u64at(entry + 48), base + u64at(entry + 56)},
                              u64at(entry + 40)};
    }
  }
  die("no such section");
  return (struct section){0};
}

/* Section 7: the commit of a version other than `since`; gives up after 10 s (the writer is gone).
 */
static uint64_t wait_new(struct section *s, uint64_t since) {
  uint64_t start = now_ns();
  for (;;) {
    uint64_t c = __atomic_load_n(s->commit, __ATOMIC_ACQUIRE);
    if (c >> 1 != since) return c;
    __atomic_add_fetch(s->sleepers, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    c = __atomic_load_n(s->commit, __ATOMIC_ACQUIRE);
    if (c >> 1 == since) {
      struct timespec second = {1, 0};
      syscall(SYS_futex, (uint32_t *)(void *)s->commit, FUTEX_WAIT, (uint32_t)c, &second, NULL, 0);
    }
    __atomic_sub_fetch(s->sleepers, 1, __ATOMIC_SEQ_CST);
    if (now_ns() - start > 10000000000u) die("no message within 10 s");
  }
}

/* Section 4: copies the committed payload into `out`; returns its version. */
static uint64_t read_into(struct section *s, unsigned char *out) {
  for (;;) {
    uint64_t c = __atomic_load_n(s->commit, __ATOMIC_ACQUIRE);
    unsigned char *h = s->slot[c & 1];
    uint32_t seq = __atomic_load_n((uint32_t *)(void *)h, __ATOMIC_ACQUIRE);
    if (seq & 1) continue;
    uint64_t version = u64at(h + 8), length = u64at(h + 16);
    if (version != c >> 1 || length > s->capacity) continue;
    memcpy(out, s->data[c & 1], length);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n((uint32_t *)(void *)h, __ATOMIC_RELAXED) == seq) return version;
  }
}

/* Section 6, as the section's only writer at this time. */
static void publish(struct section *s, const void *payload, uint64_t length) {
  uint64_t c = __atomic_load_n(s->commit, __ATOMIC_ACQUIRE), version = (c >> 1) + 1,
           which = 1 - (c & 1);
  unsigned char *h = s->slot[which];
  uint32_t seq = __atomic_load_n((uint32_t *)(void *)h, __ATOMIC_RELAXED) | 1;
  __atomic_store_n((uint32_t *)(void *)h, seq, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  memcpy(s->data[which], payload, length);
  uint64_t published = (uint64_t)time(NULL) * 1000000u;
  uint32_t pid = (uint32_t)getpid();
  memcpy(h + 8, &version, 8);
  memcpy(h + 16, &length, 8);
  memcpy(h + 24, &published, 8);
  memcpy(h + 32, &pid, 4);
  __atomic_store_n((uint32_t *)(void *)h, seq + 1, __ATOMIC_RELEASE);
  __atomic_store_n(s->commit, version * 2 + which, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n(s->sleepers, __ATOMIC_RELAXED) != 0) {
    syscall(SYS_futex, (uint32_t *)(void *)s->commit, FUTEX_WAKE, 1 << 30, NULL, NULL, 0);
  }
}

int main(int argc, char **argv) {
  if (argc != 5) die("usage: handoff-c-reader KEY SECTION ACK MESSAGES");
  int id = shmget((key_t)strtol(argv[1], NULL, 10), 0, 0);
  unsigned char *base = id < 0 ? NULL : shmat(id, NULL, 0);
  if (base == NULL || base == (void *)-1) die("cannot attach the table");
  struct section message = find(base, argv[2]), ack = find(base, argv[3]);
  int messages = atoi(argv[4]);
  uint64_t *latencies = calloc((size_t)messages, sizeof *latencies);
  unsigned char *copy = malloc(message.capacity);
  if (latencies == NULL || copy == NULL) die("out of memory");
  uint64_t seen = __atomic_load_n(message.commit, __ATOMIC_ACQUIRE) >> 1;
  printf("armed\n");
  fflush(stdout);
  uint64_t cpu0 = cpu_ns();
  for (int i = 0; i < messages; i++) {
    wait_new(&message, seen);
    seen = read_into(&message, copy);
    uint64_t t1 = now_ns(), t0;
    memcpy(&t0, copy, 8);
    latencies[i] = t1 - t0;
    uint32_t number = (uint32_t)i;
    publish(&ack, &number, 4);
  }
  uint64_t cpu = cpu_ns() - cpu0;
  printf("{\"latencies\":[");
  for (int i = 0; i < messages; i++)
    printf("%s%llu", i ? "," : "", (unsigned long long)latencies[i]);
  printf("],\"cpuNs\":%llu}\n", (unsigned long long)cpu);
  shmdt(base);
  return 0;
}
