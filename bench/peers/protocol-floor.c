/*
 * protocol-floor.c: what the section protocol itself costs, in plain C with no
 * Node around it: shmsect_publish and shmsect_read (../../src/sections.c, as
 * built by gcc -O2) next to memcpy of the same bytes, timed interleaved in the
 * same run (bench/protocol.js builds and runs it; docs/performance.md,
 * "Where a call's time goes").
 *
 *   memcpy    page-aligned to page-aligned anonymous memory: what Buffer.copy,
 *             the floor of the Node rows, does
 *   copy_in   memcpy into the section's data area (24 bytes past a 64-byte
 *             boundary, docs/sections.md): the copy a publish cannot avoid
 *   publish   shmsect_publish of the same bytes, nobody asleep (no system call)
 *   copy_out  memcpy out of the data area into a page-aligned buffer
 *   read      shmsect_read of the committed payload into that buffer
 *   clock     the wall clock a publish stamps its slot with (sect__epoch_us:
 *             clock_gettime(CLOCK_REALTIME), the vDSO), alone
 *   coarse    clock_gettime(CLOCK_REALTIME_COARSE), alone: what a stamp that
 *             is only as fine as the kernel's tick (1-4 ms) would cost instead
 *
 * The section lives in a real System V segment (IPC_PRIVATE, removed as soon
 * as it is attached, so nothing is left behind even if this is killed), laid
 * out as lib/section-layout.js lays one out; this process writes its own
 * identity into the claim word (what shmsect_claim records), so no claim
 * lock is needed.
 *
 * Usage: protocol-floor --sizes 16,10240,102400 --rounds R --sample-us U
 *          [--clock cpu|wall]
 * Output, one JSON object per line: {"size","fn","round","ns"} (ns per call,
 * the median of 3 samples of about U microseconds). Each round visits every
 * size, and every function in an order rotated from round to round.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <time.h>

#include "sections-platform.h"
#include "sections.h"

enum { F_MEMCPY, F_COPY_IN, F_PUBLISH, F_COPY_OUT, F_READ, F_CLOCK, F_COARSE, F_COUNT };
static const char *NAMES[F_COUNT] = {"memcpy", "copy_in", "publish", "copy_out",
                                     "read",   "clock",   "coarse"};
#define MAX_SIZES 8
#define SAMPLES 3

static shmsect_t sect;
static uint64_t self;
static unsigned char *src, *dst;
static volatile uint64_t stamp;
static clockid_t clock_id = CLOCK_THREAD_CPUTIME_ID;

/* Through a volatile pointer, so that gcc can neither inline nor drop a copy
   it believes repeats the previous one. */
static void *(*volatile copy)(void *, const void *, size_t) = memcpy;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(clock_id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what, int rc) {
  fprintf(stderr, "protocol-floor: %s failed (%d)\n", what, rc);
  exit(1);
}

/* One call of fn on size bytes. */
static void call(int fn, size_t size) {
  uint64_t version;
  shmsect_snapshot_t snap;
  int rc = 0;
  switch (fn) {
  case F_MEMCPY: copy(dst, src, size); break;
  case F_COPY_IN: copy(sect.base + sect.data[0], src, size); break;
  case F_PUBLISH: rc = shmsect_publish(&sect, self, src, size, &version); break;
  case F_COPY_OUT: copy(dst, sect.base + sect.data[0], size); break;
  case F_READ: rc = shmsect_read(&sect, dst, sect.capacity, &snap); break;
  case F_CLOCK: stamp = sect__epoch_us(); break;
  case F_COARSE: {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    stamp = (uint64_t)ts.tv_nsec;
    break;
  }
  }
  if (rc != 0) fail(NAMES[fn], rc);
}

/* ns per call over iters calls. */
static double sample(int fn, size_t size, uint64_t iters) {
  uint64_t i, start = now_ns();
  for (i = 0; i < iters; i++) call(fn, size);
  return (double)(now_ns() - start) / (double)iters;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Lays out one section of the given capacity in a fresh segment, as lib/section-layout.js does. */
static void make_section(uint64_t capacity) {
  uint64_t data0 = SHMSECT_CONTROL_SIZE + SHMSECT_DATA_SHIFT;
  uint64_t data1 = (data0 + capacity + 63) / 64 * 64 + SHMSECT_DATA_SHIFT;
  uint64_t size = data1 + capacity;
  int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
  void *base;
  if (id < 0) fail("shmget", id);
  base = shmat(id, NULL, 0);
  shmctl(id, IPC_RMID, NULL); /* gone once detached: nothing left behind */
  if (base == (void *)-1) fail("shmat", -1);
  sect.base = (unsigned char *)base;
  sect.size = size;
  sect.control = 0;
  sect.data[0] = data0;
  sect.data[1] = data1;
  sect.capacity = capacity;
  sect.counts = sect.base;
  if (shmsect_check(&sect) != 0) fail("shmsect_check", -1);
  self = shmsect_self();
  memcpy(sect.base + 8, &self, sizeof self); /* the claim word: this process */
}

int main(int argc, char **argv) {
  size_t sizes[MAX_SIZES], n_sizes = 0, s, largest = 0;
  int rounds = 9, sample_us = 250, r, k, i;
  uint64_t iters[MAX_SIZES][F_COUNT];
  for (i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--sizes")) {
      char *p = argv[i + 1];
      while (*p && n_sizes < MAX_SIZES) {
        sizes[n_sizes++] = strtoul(p, &p, 10);
        if (*p == ',') p++;
      }
    } else if (!strcmp(argv[i], "--rounds")) {
      rounds = atoi(argv[i + 1]);
    } else if (!strcmp(argv[i], "--sample-us")) {
      sample_us = atoi(argv[i + 1]);
    } else if (!strcmp(argv[i], "--clock")) {
      clock_id = strcmp(argv[i + 1], "wall") ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
    }
  }
  if (!n_sizes) sizes[n_sizes++] = 10240;
  for (s = 0; s < n_sizes; s++) largest = sizes[s] > largest ? sizes[s] : largest;
  src = mmap(NULL, largest, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  dst = mmap(NULL, largest, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (src == MAP_FAILED || dst == MAP_FAILED) fail("mmap", -1);
  memset(src, 0x61, largest), memset(dst, 0, largest);
  make_section(largest);

  /* Iterations per sample: calibrated once, after a warm-up, per size and function. */
  for (s = 0; s < n_sizes; s++) {
    for (k = 0; k < F_COUNT; k++) {
      uint64_t n = 1;
      double total;
      if (k == F_READ) call(F_PUBLISH, sizes[s]); /* read what is published at this size */
      sample(k, sizes[s], 1000);
      while ((total = sample(k, sizes[s], n) * (double)n) < sample_us * 250.0) n *= 2;
      iters[s][k] = (uint64_t)((double)n * sample_us * 1000.0 / total) + 1;
    }
  }
  for (r = 0; r < rounds; r++) {
    for (s = 0; s < n_sizes; s++) {
      call(F_PUBLISH, sizes[s]); /* reads copy this size */
      for (i = 0; i < F_COUNT; i++) {
        int fn = (i + r) % F_COUNT;
        double ns[SAMPLES];
        int j;
        for (j = 0; j < SAMPLES; j++) ns[j] = sample(fn, sizes[s], iters[s][fn]);
        qsort(ns, SAMPLES, sizeof ns[0], by_value);
        printf("{\"size\":%zu,\"fn\":\"%s\",\"round\":%d,\"ns\":%.2f}\n", sizes[s], NAMES[fn], r,
               ns[SAMPLES / 2]);
      }
    }
  }
  shmdt(sect.base);
  return 0;
}
