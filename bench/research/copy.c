/*
 * copy.c: plain memcpy() next to shmop_copy() at every page distance
 * d = (dst - src) mod 4096 in 0..dmax (why: docs/performance.md, "The memcpy
 * trap"). Run by bench/research/copy.js (npm run bench -- --research copy), or
 * by hand:
 *   gcc -O2 -std=c99 -Isrc bench/research/copy.c src/copy.c -o /tmp/copy && /tmp/copy
 *   GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=0x10000000 /tmp/copy
 *
 * Source and destination are page-aligned anonymous mappings, the destination
 * offset by d. A sample copies the same span back to back for about
 * --sample-us microseconds (iterations calibrated once per size on memcpy at
 * d=0); each round visits every distance in a rotated order and times the
 * functions back to back, rotating which goes first. Output: one JSON object
 * per line, {"type":"sample","size","d","fn","round","ns"} (ns per copy).
 *
 * Options: --sizes 10240,102400  --dmax 63 (or --dlist 0,9,...)
 *          --fns memcpy,shmop_copy,pieces  --rounds 5  --sample-us 2000
 *          --clock cpu|wall (default cpu: this thread's CPU time)
 */
#define _GNU_SOURCE

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "copy.h"

#define PAGE 4096

typedef void *(*copy_fn)(void *, const void *, size_t);

static void *shmop_copy_ret(void *dst, const void *src, size_t length) {
  shmop_copy(dst, src, length);
  return dst;
}

/* Called through volatile pointers, so the compiler can neither inline nor
   drop a copy it believes repeats the previous one. */
static copy_fn volatile fn_memcpy = memcpy;

/*
 * "pieces": shmop_copy()'s algorithm (as of this file's commit) with every
 * piece handed to glibc's memcpy through a pointer the compiler cannot see
 * through. gcc -O2 expands copy.c's memcpy(d, s, 2048) inline as "rep movsq",
 * a string instruction of its own; this shows what the algorithm costs when the
 * pieces really take glibc's vector path, i.e. what a fixed shmop_copy costs.
 */
static void *pieces(void *dst, const void *src, size_t length) {
  unsigned char *d = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  size_t distance = ((uintptr_t)d - (uintptr_t)s) & 4095, head;
  copy_fn copy = fn_memcpy;
  if (length <= 2048 || distance == 0 || distance >= 64) return copy(d, s, length);
  head = (64 - ((uintptr_t)d & 63)) & 63;
  copy(d, s, head);
  d += head, s += head, length -= head;
  while (length > 2048) {
    copy(d, s, 2048);
    d += 2048, s += 2048, length -= 2048;
  }
  copy(d, s, length);
  return dst;
}

#define NFNS 3
static const char *const fn_names[NFNS] = {"memcpy", "shmop_copy", "pieces"};
static copy_fn volatile fns[NFNS] = {memcpy, shmop_copy_ret, pieces};

/* CPU time of this thread by default (time spent waiting for a core on a
   shared machine is not the copy's), or wall-clock time with --clock wall. */
static clockid_t clock_id = CLOCK_THREAD_CPUTIME_ID;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(clock_id, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double sample(copy_fn volatile *fn, unsigned char *dst, const unsigned char *src,
                     size_t size, long iters) {
  double start = now_ns();
  for (long i = 0; i < iters; i++) {
    (*fn)(dst, src, size);
    __asm__ volatile("" ::: "memory");
  }
  return (now_ns() - start) / (double)iters;
}

static unsigned char *map(size_t bytes) {
  unsigned char *p =
      mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  memset(p, 0x5a, bytes);
  return p;
}

static int parse_list(const char *text, size_t *values, int max) {
  int n = 0;
  char *end;
  while (*text && n < max) {
    values[n++] = strtoul(text, &end, 0);
    if (*end != ',') break;
    text = end + 1;
  }
  return n;
}

/* Which functions --fns names: a bit per entry of fn_names. */
static int parse_fns(const char *text) {
  int mask = 0;
  for (int f = 0; f < NFNS; f++) {
    const char *p = strstr(text, fn_names[f]);
    size_t len = strlen(fn_names[f]);
    if (p && (p == text || p[-1] == ',') && (p[len] == ',' || p[len] == 0)) mask |= 1 << f;
  }
  return mask;
}

int main(int argc, char **argv) {
  size_t sizes[16] = {10240, 102400}, dlist[PAGE];
  int nsizes = 2, dmax = 63, nd = 0, rounds = 5, fn_mask = (1 << NFNS) - 1;
  double sample_us = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--sizes")) nsizes = parse_list(argv[i + 1], sizes, 16);
    else if (!strcmp(argv[i], "--dmax")) dmax = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--dlist")) nd = parse_list(argv[i + 1], dlist, PAGE);
    else if (!strcmp(argv[i], "--fns")) fn_mask = parse_fns(argv[i + 1]);
    else if (!strcmp(argv[i], "--clock"))
      clock_id = strcmp(argv[i + 1], "wall") ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
    else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--sample-us")) sample_us = atof(argv[i + 1]);
    else {
      fprintf(stderr, "copy: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (dmax < 0 || dmax >= PAGE) dmax = 63;
  if (!nd)
    for (int d = 0; d <= dmax; d++) dlist[nd++] = (size_t)d;
  for (int k = 0; k < nd; k++) dlist[k] %= PAGE;
  int fns_used[NFNS], nfns = 0;
  for (int f = 0; f < NFNS; f++)
    if (fn_mask & (1 << f)) fns_used[nfns++] = f;
  if (!nfns) {
    fprintf(stderr, "copy: --fns names none of memcpy, shmop_copy, pieces\n");
    return 2;
  }

  size_t largest = 0;
  for (int s = 0; s < nsizes; s++)
    if (sizes[s] > largest) largest = sizes[s];
  size_t span = (largest + 2 * PAGE + PAGE - 1) / PAGE * PAGE;
  unsigned char *src = map(span), *dst_base = map(span);
  const char *tunables = getenv("GLIBC_TUNABLES");
  printf("{\"type\":\"info\",\"tunables\":\"%s\",\"sizes\":[", tunables ? tunables : "");
  for (int s = 0; s < nsizes; s++) printf("%s%zu", s ? "," : "", sizes[s]);
  printf("],\"d\":[");
  for (int k = 0; k < nd; k++) printf("%s%zu", k ? "," : "", dlist[k]);
  printf("],\"rounds\":%d,\"sample_us\":%g,\"clock\":\"%s\"}\n", rounds, sample_us,
         clock_id == CLOCK_MONOTONIC ? "wall" : "cpu");

  for (int s = 0; s < nsizes; s++) {
    size_t size = sizes[s];
    /* Warm up, then calibrate on memcpy at d = 0. */
    long iters = 1;
    double ns = 0;
    for (int k = 0; k < 3; k++) sample(&fn_memcpy, dst_base, src, size, 1000);
    for (;;) {
      ns = sample(&fn_memcpy, dst_base, src, size, iters) * (double)iters;
      if (ns >= sample_us * 1000 / 4 || iters >= (1L << 40)) break;
      iters *= 2;
    }
    iters = (long)((double)iters * (sample_us * 1000) / (ns > 0 ? ns : 1)) + 1;
    printf("{\"type\":\"calibration\",\"size\":%zu,\"iters\":%ld}\n", size, iters);
    for (int r = 0; r < rounds; r++) {
      for (int k = 0; k < nd; k++) {
        int j = (k + r * 7) % nd; /* rotate the order of the distances */
        int d = (int)dlist[j];
        unsigned char *dst = dst_base + d;
        for (int k2 = 0; k2 < nfns; k2++) {
          int f = fns_used[(k2 + r + j) % nfns]; /* rotate which function goes first */
          double t = sample(&fns[f], dst, src, size, iters);
          printf("{\"type\":\"sample\",\"size\":%zu,\"d\":%d,\"fn\":\"%s\",\"round\":%d,"
                 "\"ns\":%.2f}\n",
                 size, d, fn_names[f], r, t);
        }
      }
      fflush(stdout);
    }
  }
  munmap(src, span);
  munmap(dst_base, span);
  return 0;
}
