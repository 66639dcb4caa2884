/*
 * portable.c: the C tests of shmop.c for behaviour that every platform's
 * branch must share: PHP's modes and size rule, read and write spans, delete
 * keeping the mapping, shmop_copy, shmop_strerror and the handle table (also
 * under threads and with allocations failing). POSIX-only behaviour (key 0,
 * the failure stages, SHM_NORESERVE, the kernel's view) is in posix.c.
 *
 * Segments come from test_key(); each test deletes what it makes, also when
 * an assertion fails, and the last test checks that none is left.
 */
#include "shmop-under-test.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const unset = "(unset)";
static const char *ignored_call; /* failed_call of opens that are not under test */

/* Removes the segment with this key, if any, through the library itself. */
static void drop(int32_t key) {
  shmop_t seg;
  const char *call;
  if (shmop_open(&seg, key, 'w', 0, 0, &call) != 0) return;
  shmop_delete(&seg);
  shmop_close(&seg);
}

/* Opens key with 'n' and the given size, or fails the test and returns -1. */
static int create(shmop_t *seg, int32_t key, int64_t size) {
  const char *call = unset;
  int rc = shmop_open(seg, key, 'n', 0600, size, &call);
  if (rc != 0) ok(0, "create key 0x%08x: %s (%s)", (unsigned)key, shmop_strerror(rc), call);
  return rc == 0 ? 0 : -1;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  size_t i;
  for (i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (unsigned char)(seed >> 16);
  }
}

/* ==== shmop_open ==== */

static void test_open_modes(void) {
  int32_t key = test_key(1);
  shmop_t n, c, w, a, other;
  const char *call;
  unsigned char buf[100], zero[100] = {0};
  uint64_t written = 0;

  tap_group("shmop_open: the four modes");
  call = unset;
  is_int(shmop_open(&a, key, 'a', 0, 0, &call), -ENOENT, "'a' on a missing key: -ENOENT");
  is_str(call, "shmget", "... failed in shmget");
  call = unset;
  is_int(shmop_open(&w, key, 'w', 0600, 100, &call), -ENOENT,
         "'w' on a missing key: -ENOENT, even with a size");
  is_str(call, "shmget", "... failed in shmget");

  if (create(&n, key, 100) != 0) return;
  ok(1, "'n' on a missing key creates the segment");
  is_u64(n.size, 100, "... with the size asked for");
  is_int(n.key, key, "... and keeps the key");
  is_int(n.readonly, 0, "... read-write");
  ok(shmop_read(&n, 0, 100, buf) == 0 && memcmp(buf, zero, 100) == 0, "... zero-filled");

  call = unset;
  is_int(shmop_open(&other, key, 'n', 0600, 100, &call), -EEXIST,
         "'n' on an existing key: -EEXIST");
  is_str(call, "shmget", "... failed in shmget");

  shmop_write(&n, "hello", 5, 0, &written);
  if (is_int(shmop_open(&c, key, 'c', 0600, 100, &call), 0, "'c' on an existing key attaches it")) {
    is_int(c.id, n.id, "... the same segment");
    ok(c.addr != n.addr && memcmp(c.addr, "hello", 5) == 0,
       "... through a mapping of its own that sees the data");
    is_int(c.readonly, 0, "... read-write");
    shmop_close(&c);
  }
  if (is_int(shmop_open(&c, key, 'c', 0600, 1, &call), 0, "'c' with a smaller size attaches")) {
    is_u64(c.size, 100, "... and reports the segment's real size");
    shmop_close(&c);
  }
  call = unset;
  is_int(shmop_open(&c, key, 'c', 0600, 101, &call), -EINVAL,
         "'c' with a larger size: -EINVAL (there is no resize)");
  is_str(call, "shmget", "... failed in shmget");

  if (is_int(shmop_open(&w, key, 'w', 0, 999, &call), 0, "'w' attaches, ignoring the size")) {
    is_u64(w.size, 100, "... which is the segment's");
    is_int(w.readonly, 0, "... read-write");
    is_int(shmop_write(&w, "world", 5, 5, &written), 0, "... and writes");
    ok(memcmp(n.addr, "helloworld", 10) == 0, "... so that another mapping sees it");
    shmop_close(&w);
  }
  if (is_int(shmop_open(&a, key, 'a', 0, -5, &call), 0, "'a' attaches, ignoring the size")) {
    is_u64(a.size, 100, "... which is the segment's");
    is_int(a.readonly, 1, "... read-only");
    ok(shmop_read(&a, 0, 10, buf) == 0 && memcmp(buf, "helloworld", 10) == 0, "... and reads");
    shmop_close(&a);
  }
  shmop_delete(&n);
  shmop_close(&n);
  drop(key);
}

static void test_bad_modes(void) {
  const char modes[] = {'x', 'A', 'C', 'N', 'W', 'r', '+', ' ', '\0'};
  int32_t key = test_key(2);
  shmop_t seg;
  const char *call;
  size_t i;

  tap_group("shmop_open: mode letters");
  for (i = 0; i < sizeof modes; i++) {
    is_int(shmop_open(&seg, key, modes[i], 0600, 100, &call), SHMOP_EMODE,
           "mode 0x%02x: SHMOP_EMODE", (unsigned)(unsigned char)modes[i]);
  }
  call = unset;
  is_int(shmop_open(&seg, key, 'w', 0, 0, &call), -ENOENT, "a refused mode created nothing");
  drop(key);
}

static void test_size_rule(void) {
  int32_t key = test_key(3);
  shmop_t seg, c;
  const char *call = unset;

  tap_group("shmop_open: size must be >= 1 when the flags create");
  is_int(shmop_open(&seg, key, 'c', 0600, 0, &call), SHMOP_ESIZE, "'c' with size 0: SHMOP_ESIZE");
  is_int(shmop_open(&seg, key, 'c', 0600, -1, &call), SHMOP_ESIZE, "'c' with size -1: SHMOP_ESIZE");
  is_int(shmop_open(&seg, key, 'c', 0600, INT64_MIN, &call), SHMOP_ESIZE,
         "'c' with size INT64_MIN: SHMOP_ESIZE");
  is_int(shmop_open(&seg, key, 'n', 0600, 0, &call), SHMOP_ESIZE, "'n' with size 0: SHMOP_ESIZE");
  is_int(shmop_open(&seg, key, 'n', 0600, -4096, &call), SHMOP_ESIZE,
         "'n' with size -4096: SHMOP_ESIZE");
  is_int(shmop_open(&seg, key, 'w', 01000 | 0600, 100, &call), SHMOP_ESIZE,
         "'w' with IPC_CREAT (01000) in the permissions: SHMOP_ESIZE, its size being 0");
  is_int(shmop_open(&seg, key, 'a', 01000, 100, &call), SHMOP_ESIZE,
         "'a' with IPC_CREAT (01000) in the permissions: SHMOP_ESIZE");
  is_int(shmop_open(&seg, key, 'w', -1, 100, &call), SHMOP_ESIZE,
         "'w' with permissions -1 (every flag): SHMOP_ESIZE");
  is_int(shmop_open(&seg, key, 'w', 0, 0, &call), -ENOENT, "none of these created a segment");

  if (create(&seg, key, 1) != 0) return;
  is_u64(seg.size, 1, "'n' with size 1 makes a 1-byte segment");
  is_int(shmop_open(&c, key, 'c', 0600, 0, &call), SHMOP_ESIZE,
         "'c' with size 0 on an existing segment: still SHMOP_ESIZE");
  is_int(shmop_open(&c, key, 'w', 01000 | 0600, 0, &call), SHMOP_ESIZE,
         "'w' with IPC_CREAT in the permissions on an existing segment: still SHMOP_ESIZE");
  if (is_int(shmop_open(&c, key, 'c', 0600, 1, &call), 0, "'c' with size 1 attaches"))
    shmop_close(&c);
  shmop_delete(&seg);
  shmop_close(&seg);
  drop(key);
}

static void test_excl_in_perms(void) {
  int32_t key = test_key(4);
  shmop_t seg, again;
  const char *call = unset;

  tap_group("shmop_open: IPC_EXCL (02000) in the permissions");
  if (!is_int(shmop_open(&seg, key, 'c', 02000 | 0600, 64, &call), 0,
              "'c' with IPC_EXCL creates a missing segment")) {
    drop(key);
    return;
  }
  call = unset;
  is_int(shmop_open(&again, key, 'c', 02000 | 0600, 64, &call), -EEXIST,
         "'c' with IPC_EXCL on an existing segment: -EEXIST, as 'n'");
  is_str(call, "shmget", "... failed in shmget");
  if (is_int(shmop_open(&again, key, 'w', 02000 | 0600, 0, &call), 0,
             "'w' with IPC_EXCL attaches: without IPC_CREAT it means nothing")) {
    shmop_close(&again);
  }
  if (is_int(shmop_open(&again, key, 'a', 02000, 0, &call), 0, "'a' with IPC_EXCL attaches")) {
    shmop_close(&again);
  }
  shmop_delete(&seg);
  shmop_close(&seg);
  drop(key);
}

/* ==== Reading and writing ==== */

static void test_read_spans(void) {
  int32_t key = test_key(5);
  shmop_t seg, big;
  uint64_t len = 0, written = 0;
  unsigned char data[100], buf[128];
  const uint64_t huge = (UINT64_C(1) << 40) + 5;

  tap_group("shmop_read_span / shmop_read");
  if (create(&seg, key, 100) != 0) return;
  fill(data, sizeof data, 5);
  shmop_write(&seg, data, sizeof data, 0, &written);

  ok(shmop_read_span(&seg, 0, 0, &len) == 0 && len == 100,
     "start 0, count 0: to the end, 100 bytes");
  ok(shmop_read_span(&seg, 99, 0, &len) == 0 && len == 1, "start 99, count 0: 1 byte");
  ok(shmop_read_span(&seg, 100, 0, &len) == 0 && len == 0, "start == size, count 0: 0 bytes");
  ok(shmop_read_span(&seg, 0, 100, &len) == 0 && len == 100, "start 0, count 100: 100 bytes");
  ok(shmop_read_span(&seg, 50, 50, &len) == 0 && len == 50, "start 50, count 50: 50 bytes");
  is_int(shmop_read_span(&seg, 100, 1, &len), SHMOP_ECOUNT, "start == size, count 1: SHMOP_ECOUNT");
  is_int(shmop_read_span(&seg, 50, 51, &len), SHMOP_ECOUNT, "start 50, count 51: SHMOP_ECOUNT");
  is_int(shmop_read_span(&seg, 0, UINT64_MAX, &len), SHMOP_ECOUNT,
         "count UINT64_MAX: SHMOP_ECOUNT");
  is_int(shmop_read_span(&seg, 1, UINT64_MAX, &len), SHMOP_ECOUNT,
         "start 1, count UINT64_MAX: SHMOP_ECOUNT (no wrap-around)");
  is_int(shmop_read_span(&seg, 101, 0, &len), SHMOP_EOFFSET, "start 101: SHMOP_EOFFSET");
  is_int(shmop_read_span(&seg, UINT64_MAX, 0, &len), SHMOP_EOFFSET,
         "start UINT64_MAX: SHMOP_EOFFSET");
  is_int(shmop_read_span(&seg, 101, 1000, &len), SHMOP_EOFFSET,
         "start and count both wrong: SHMOP_EOFFSET first");

  memset(buf, 0xEE, sizeof buf);
  ok(shmop_read(&seg, 0, 100, buf) == 0 && memcmp(buf, data, 100) == 0 && buf[100] == 0xEE,
     "shmop_read(0, 100) copies the 100 bytes and no more");
  memset(buf, 0xEE, sizeof buf);
  ok(shmop_read(&seg, 97, 3, buf) == 0 && memcmp(buf, data + 97, 3) == 0 && buf[3] == 0xEE,
     "shmop_read(97, 3) copies the last 3 bytes");
  memset(buf, 0xEE, sizeof buf);
  ok(shmop_read(&seg, 100, 0, buf) == 0 && buf[0] == 0xEE, "shmop_read(100, 0) copies nothing");
  ok(shmop_read(&seg, 0, 0, buf) == 0 && buf[0] == 0xEE, "shmop_read(0, 0) copies nothing");
  is_int(shmop_read(&seg, 0, 101, buf), SHMOP_ECOUNT, "shmop_read(0, 101): SHMOP_ECOUNT");
  is_int(shmop_read(&seg, 101, 0, buf), SHMOP_EOFFSET, "shmop_read(101, 0): SHMOP_EOFFSET");
  ok(buf[0] == 0xEE, "... and a refused read copies nothing");
  shmop_delete(&seg);
  shmop_close(&seg);
  drop(key);

  /* 64-bit spans need no memory: the checks never touch the mapping. */
  memset(&big, 0, sizeof big);
  big.size = huge;
  ok(shmop_read_span(&big, 0, 0, &len) == 0 && len == huge,
     "a 1 TiB + 5 segment: count 0 from 0 is all of it, in 64 bits");
  ok(shmop_read_span(&big, UINT64_C(1) << 32, 0, &len) == 0 && len == huge - (UINT64_C(1) << 32),
     "... from 4 GiB: the rest");
  ok(shmop_read_span(&big, 5, UINT64_C(1) << 40, &len) == 0 && len == UINT64_C(1) << 40,
     "... a 1 TiB count that ends at the end");
  is_int(shmop_read_span(&big, 6, UINT64_C(1) << 40, &len), SHMOP_ECOUNT,
         "... one byte more: SHMOP_ECOUNT");
  ok(shmop_read_span(&big, huge, 0, &len) == 0 && len == 0, "... start == size: 0 bytes");
  is_int(shmop_read_span(&big, huge + 1, 0, &len), SHMOP_EOFFSET,
         "... start == size + 1: SHMOP_EOFFSET");
  ok(shmop_read(&big, huge, 0, buf) == 0, "... shmop_read at the end of it reads nothing");
}

static void test_write_spans(void) {
  int32_t key = test_key(6);
  shmop_t seg, ro, big;
  uint64_t written;
  unsigned char data[150], before[100], buf[100];

  tap_group("shmop_write");
  if (create(&seg, key, 100) != 0) return;
  fill(data, sizeof data, 6);

  written = 99;
  ok(shmop_write(&seg, "abcdef", 6, 97, &written) == 0 && written == 3,
     "6 bytes at 97 of 100: 3 written, the rest cut");
  ok(memcmp(seg.addr + 97, "abc", 3) == 0 && seg.addr[96] == 0, "... into bytes 97..99 only");
  written = 99;
  ok(shmop_write(&seg, "x", 1, 100, &written) == 0 && written == 0,
     "1 byte at offset == size: 0 written");
  written = 99;
  ok(shmop_write(&seg, "", 0, 0, &written) == 0 && written == 0, "0 bytes at 0: 0 written");
  written = 0;
  ok(shmop_write(&seg, data, 150, 0, &written) == 0 && written == 100,
     "150 bytes at 0: 100 written");
  ok(memcmp(seg.addr, data, 100) == 0, "... the first 100 of them");
  written = 0;
  ok(shmop_write(&seg, data + 1, UINT64_MAX, 0, &written) == 0 && written == 100,
     "a UINT64_MAX length is cut to the 100 bytes there is room for");
  ok(memcmp(seg.addr, data + 1, 100) == 0, "... and copies those");
  is_int(shmop_write(&seg, "x", 1, 101, &written), SHMOP_EOFFSET, "offset 101: SHMOP_EOFFSET");
  is_int(shmop_write(&seg, "x", 1, UINT64_MAX, &written), SHMOP_EOFFSET,
         "offset UINT64_MAX: SHMOP_EOFFSET");
  ok(memcmp(seg.addr, data + 1, 100) == 0, "... and refused writes change nothing");

  memcpy(before, seg.addr, 100);
  if (is_int(shmop_open(&ro, key, 'a', 0, 0, &ignored_call), 0, "an 'a' handle")) {
    is_int(shmop_write(&ro, "x", 1, 0, &written), SHMOP_EREADONLY,
           "... refuses a write: SHMOP_EREADONLY");
    is_int(shmop_write(&ro, "x", 1, 101, &written), SHMOP_EREADONLY,
           "... refuses it before looking at a bad offset");
    is_int(shmop_write(&ro, "x", 1, UINT64_MAX, &written), SHMOP_EREADONLY, "... even UINT64_MAX");
    is_int(shmop_write(&ro, "", 0, 0, &written), SHMOP_EREADONLY, "... even of 0 bytes");
    ok(shmop_read(&ro, 0, 100, buf) == 0 && memcmp(buf, before, 100) == 0,
       "... reads, and the segment is unchanged");
    shmop_close(&ro);
  }
  shmop_delete(&seg);
  shmop_close(&seg);
  drop(key);

  memset(&big, 0, sizeof big);
  big.size = (UINT64_C(1) << 40) + 5;
  ok(shmop_write(&big, "x", 1, big.size, &written) == 0 && written == 0,
     "a 1 TiB + 5 segment: a write at its end writes 0 bytes");
  is_int(shmop_write(&big, "x", 1, big.size + 1, &written), SHMOP_EOFFSET,
         "... past its end: SHMOP_EOFFSET");
  big.readonly = 1;
  is_int(shmop_write(&big, "x", 1, big.size + 1, &written), SHMOP_EREADONLY,
         "... read-only: SHMOP_EREADONLY first");
}

static void test_delete_keeps_mapping(void) {
  int32_t key = test_key(7);
  shmop_t seg;
  uint64_t written;
  unsigned char buf[8];

  tap_group("shmop_delete keeps the mapping");
  if (create(&seg, key, 64) != 0) return;
  shmop_write(&seg, "before", 6, 0, &written);
  is_int(shmop_delete(&seg), 0, "delete: 0");
  ok(shmop_read(&seg, 0, 6, buf) == 0 && memcmp(buf, "before", 6) == 0, "the mapping still reads");
  ok(shmop_write(&seg, "after!", 6, 58, &written) == 0 && written == 6, "... and writes");
  ok(shmop_read(&seg, 58, 6, buf) == 0 && memcmp(buf, "after!", 6) == 0, "... what was written");
  is_u64(seg.size, 64, "... and keeps its size");
  is_int(shmop_close(&seg), 0, "close: 0");
  drop(key);
}

/* ==== shmop_copy ==== */

/* Byte by byte: the reference shmop_copy must agree with. */
static void copy_bytes(unsigned char *dst, const unsigned char *src, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) dst[i] = src[i];
}

static unsigned char *page_align(unsigned char *p) {
  return p + ((4096 - ((uintptr_t)p & 4095)) & 4095);
}

static void test_copy(void) {
  static const size_t sizes[] = {0,    1,    63,   64,   65,   2047, 2048, 2049,  2050, 2111,
                                 2112, 2113, 4095, 4096, 4097, 6161, 8192, 10000, 12345};
  static const size_t aligns[] = {0, 1, 7, 31, 32, 33, 63, 64, 100, 4000, 4095};
  static const size_t beyond[] = {64, 65, 100, 2048, 4032, 4095};
  enum { ROOM = 3 * 4096 + 12345 + 64 };
  unsigned char *src_mem = xmalloc(ROOM + 4096), *dst_mem = xmalloc(ROOM + 4096);
  unsigned char *want_mem = xmalloc(ROOM), *src, *dst;
  size_t d, step, s, a, cases, bad;
  char what[96];

  tap_group("shmop_copy at every distance (dst - src) mod 4096 in 0..63, and beyond");
  src = page_align(src_mem);
  dst = page_align(dst_mem);
  fill(src, ROOM, 77);
  for (step = 0; step < 64 + sizeof beyond / sizeof beyond[0]; step++) {
    d = step < 64 ? step : beyond[step - 64];
    cases = bad = 0;
    for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      for (a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        /* dst at page offset aligns[a], src at (aligns[a] - d) mod 4096 */
        unsigned char *to = dst + 4096 + aligns[a];
        const unsigned char *from = src + 4096 + ((aligns[a] - d) & 4095);
        memset(dst, 0xA5, ROOM);
        memset(want_mem, 0xA5, ROOM);
        copy_bytes(want_mem + (to - dst), from, sizes[s]);
        shmop_copy(to, from, sizes[s]);
        cases++;
        if (memcmp(dst, want_mem, ROOM) != 0 && bad++ == 0) {
          sprintf(what, "size %lu, destination page offset %lu", (unsigned long)sizes[s],
                  (unsigned long)aligns[a]);
          tap_diag("distance %lu: %s differs from a byte-by-byte copy", (unsigned long)d, what);
        }
      }
    }
    ok(bad == 0, "distance %lu: %lu copies (sizes 0..12345, 11 alignments) match byte for byte",
       (unsigned long)d, (unsigned long)cases);
  }
  free(src_mem);
  free(dst_mem);
  free(want_mem);
}

/* The same through a segment: its mapping is page-aligned, so offsets set the distance. */
static void test_copy_through_segment(void) {
  int32_t key = test_key(8);
  shmop_t seg;
  enum { LEN = 5000, AT = 4096 + 128 };
  unsigned char *src_mem = xmalloc(LEN + 2 * 4096), *dst_mem = xmalloc(LEN + 2 * 4096);
  unsigned char *src, *dst;
  uint64_t written;
  size_t d, bad = 0;

  tap_group("shmop_write / shmop_read at every distance 0..63");
  if (create(&seg, key, 3 * 4096 + LEN) != 0) {
    free(src_mem);
    free(dst_mem);
    return;
  }
  for (d = 0; d < 64; d++) {
    /* write: (addr + AT) - src = d (mod 4096); read: dst - (addr + AT) = d */
    src = page_align(src_mem) + ((AT - d) & 4095);
    dst = page_align(dst_mem) + ((AT + d) & 4095);
    fill(src, LEN, (unsigned)d);
    memset(dst, 0, LEN);
    if (shmop_write(&seg, src, LEN, AT, &written) != 0 || written != LEN ||
        shmop_read(&seg, AT, LEN, dst) != 0 || memcmp(dst, src, LEN) != 0) {
      if (bad++ == 0) tap_diag("distance %lu: a 5000-byte round trip differs", (unsigned long)d);
    }
  }
  ok(bad == 0, "5000-byte writes and reads at distances 0..63 keep every byte");
  shmop_delete(&seg);
  shmop_close(&seg);
  free(src_mem);
  free(dst_mem);
  drop(key);
}

/* ==== shmop_strerror ==== */

static void test_strerror(void) {
  static const struct {
    int code;
    const char *name, *word;
  } codes[] = {{SHMOP_EMODE, "SHMOP_EMODE", "mode"},
               {SHMOP_ESIZE, "SHMOP_ESIZE", "size"},
               {SHMOP_EOFFSET, "SHMOP_EOFFSET", "offset"},
               {SHMOP_ECOUNT, "SHMOP_ECOUNT", "count"},
               {SHMOP_EREADONLY, "SHMOP_EREADONLY", "read-only"},
               {SHMOP_EBADHANDLE, "SHMOP_EBADHANDLE", "handle"},
               {SHMOP_EUNSAFE, "SHMOP_EUNSAFE", "SIGBUS"}};
  static const int errnos[] = {ENOENT, EEXIST, EINVAL, EACCES, EPERM, ENOMEM, ENOSPC, EIDRM};
  const size_t ncodes = sizeof codes / sizeof codes[0];
  const char *unknown = shmop_strerror(1), *success = shmop_strerror(0), *text;
  char want[256];
  size_t i, j;
  int distinct;

  tap_group("shmop_strerror");
  ok(success && strstr(success, "success"), "0: \"%s\"", success ? success : "(null)");
  for (i = 0; i < ncodes; i++) {
    text = shmop_strerror(codes[i].code);
    distinct = text && text != unknown && strcmp(text, success) != 0;
    for (j = 0; distinct && j < i; j++) distinct = strcmp(text, shmop_strerror(codes[j].code)) != 0;
    ok(distinct && strstr(text, codes[i].word) != NULL, "%s: \"%s\"", codes[i].name,
       text ? text : "(null)");
    ok(shmop_strerror(codes[i].code) == text, "%s: the same static string every time",
       codes[i].name);
  }
  for (i = 0; i < sizeof errnos / sizeof errnos[0]; i++) {
    /* strerror() may reuse its buffer: keep a copy of the expected text */
    sprintf(want, "%.200s", strerror(errnos[i]));
    is_str(shmop_strerror(-errnos[i]), want, "-%d: the system's text", errnos[i]);
  }
  ok(unknown && strstr(unknown, "unknown"), "1: \"%s\"", unknown ? unknown : "(null)");
  is_str(shmop_strerror(42), unknown, "42: the same");
  is_str(shmop_strerror(INT32_MAX), unknown, "INT32_MAX: the same");
  is_str(shmop_strerror(-10000), unknown, "-10000, next to the misuse codes but not one: the same");
  is_str(shmop_strerror(-10008), unknown, "-10008, past the last misuse code: the same");
  is_str(shmop_strerror(-1000000), unknown, "-1000000, no errno: the same");
  is_str(shmop_strerror(INT32_MIN), unknown, "INT32_MIN: the same (and no overflow negating it)");
}

/* ==== Handle table ==== */

/* Must run before anything else uses the table: its first add allocates the buckets. */
static void test_table_first_use(void) {
  int32_t key = test_key(9);
  shmop_t seg, *got;
  int64_t handle = 0;
  long calls;

  tap_group("handle table: first use, allocation failures");
  is_u64(shmop_table_count(), 0, "no handle is open at first");
  ok(shmop_table_acquire(1) == NULL, "acquire(1) on the empty table: NULL");
  ok(shmop_table_acquire(0) == NULL && shmop_table_acquire(-1) == NULL &&
         shmop_table_acquire(INT64_MAX) == NULL && shmop_table_acquire(INT64_MIN) == NULL,
     "acquire(0, -1, INT64_MAX, INT64_MIN): NULL");
  is_int(shmop_table_close(1), SHMOP_EBADHANDLE, "close(1) on the empty table: SHMOP_EBADHANDLE");
  if (create(&seg, key, 64) != 0) return;

  calls = test_calloc_calls;
  fail_next_calloc(1);
  is_int(shmop_table_add(&seg, &handle), -ENOMEM,
         "add while the first buckets cannot be allocated: -ENOMEM");
  is_int(test_calloc_calls - calls, 1, "... after trying once");
  calls = test_malloc_calls;
  fail_next_malloc(1);
  is_int(shmop_table_add(&seg, &handle), -ENOMEM,
         "add while its entry cannot be allocated: -ENOMEM");
  is_int(test_malloc_calls - calls, 1, "... after trying once");
  is_u64(shmop_table_count(), 0, "... and the table stays empty");
  is_int(probe_nattch(seg.id), 1, "a failed add leaves the caller's mapping attached");

  if (!is_int(shmop_table_add(&seg, &handle), 0, "add once memory is back")) {
    shmop_delete(&seg);
    shmop_close(&seg);
    return;
  }
  is_int(handle, 1, "handles start at 1: the failed adds used none");
  is_u64(shmop_table_count(), 1, "1 handle open");
  got = shmop_table_acquire(handle);
  ok(got && got->addr == seg.addr && got->size == seg.size && got->id == seg.id && got->key == key,
     "acquire(1) gives the segment that was added");
  if (got) shmop_table_release(got);
  is_int(probe_nattch(seg.id), 1,
         "release of a reference while the handle is open keeps the mapping");
  is_int(shmop_table_close(handle), 0, "close(1): 0");
  is_u64(shmop_table_count(), 0, "0 handles open");
  is_int(probe_nattch(seg.id), 0, "with no reference held, close detaches at once");
  ok(shmop_table_acquire(handle) == NULL, "a closed handle is not found");
  is_int(shmop_table_close(handle), SHMOP_EBADHANDLE, "closing it again: SHMOP_EBADHANDLE");
  shmop_delete(&seg);
  drop(key);
}

static void test_table_handles_unique(void) {
  enum { N = 6 };
  int32_t key = test_key(10);
  shmop_t base, seg;
  int64_t handles[N], kept;
  int i, j, unique = 1, added = 0;

  tap_group("handle table: handles are never reused");
  if (create(&base, key, 64) != 0) return;
  for (i = 0; i < N; i++) {
    if (shmop_open(&seg, key, 'w', 0, 0, &ignored_call) != 0) break;
    if (shmop_table_add(&seg, &handles[i]) != 0) {
      shmop_close(&seg);
      break;
    }
    added++;
    for (j = 0; j < i; j++) unique = unique && handles[i] != handles[j];
    unique = unique && handles[i] >= 1;
    /* close all but the last, so that a freed number would be free to reuse */
    if (i < N - 1) shmop_table_close(handles[i]);
  }
  is_int(added, N, "%d adds, each after closing the handle before", N);
  ok(unique, "... gave %d different handles, all >= 1", N);
  kept = handles[N - 1];
  for (i = 0; i < N - 1; i++) unique = unique && shmop_table_acquire(handles[i]) == NULL;
  ok(unique, "the closed ones are not found");
  if (added == N) shmop_table_close(kept);
  is_int(probe_nattch(base.id), 1, "every added mapping was detached by its close");
  shmop_delete(&base);
  shmop_close(&base);
  drop(key);
}

static void test_table_references(void) {
  int32_t key = test_key(11);
  shmop_t base, seg, *first, *second;
  int64_t handle;
  uint64_t written;
  unsigned char buf[4];
  size_t open_before = shmop_table_count();

  tap_group("handle table: references keep the mapping");
  if (create(&base, key, 64) != 0) return;
  shmop_write(&base, "kept", 4, 0, &written);
  if (shmop_open(&seg, key, 'w', 0, 0, &ignored_call) != 0 || shmop_table_add(&seg, &handle) != 0) {
    ok(0, "open and add a mapping");
    shmop_delete(&base);
    shmop_close(&base);
    return;
  }
  first = shmop_table_acquire(handle);
  second = shmop_table_acquire(handle);
  ok(first && first == second, "two acquires give the same segment");
  is_int(probe_nattch(base.id), 2, "one mapping for the handle (plus the test's own)");
  is_int(shmop_table_close(handle), 0, "close while both references are held: 0");
  ok(shmop_table_acquire(handle) == NULL, "... the handle is no longer found");
  is_u64(shmop_table_count(), open_before, "... nor counted");
  is_int(probe_nattch(base.id), 2, "... but the mapping stays");
  ok(first && shmop_read(first, 0, 4, buf) == 0 && memcmp(buf, "kept", 4) == 0,
     "... and reads through a held reference");
  if (first) shmop_table_release(first);
  is_int(probe_nattch(base.id), 2, "after one release, the other reference keeps it");
  if (second) shmop_table_release(second);
  is_int(probe_nattch(base.id), 1, "the last release detaches it");
  shmop_delete(&base);
  shmop_close(&base);
  drop(key);
}

static void test_table_read_write(void) {
  int32_t key = test_key(15);
  shmop_t base, seg;
  int64_t handle;
  uint64_t written = 0, size = 0;
  unsigned char big[SHMOP_LOCKED_COPY + 100], back[SHMOP_LOCKED_COPY + 100], ro_buf[8];
  size_t n = sizeof big;

  tap_group("handle table: read and write in one step (locked short copies, referenced long ones)");
  if (create(&base, key, 4096) != 0) return;
  if (shmop_open(&seg, key, 'w', 0, 0, &ignored_call) != 0 || shmop_table_add(&seg, &handle) != 0) {
    ok(0, "open and add a mapping");
    shmop_delete(&base);
    shmop_close(&base);
    return;
  }
  is_int(shmop_table_write(handle, "short", 5, 10, &written, &size), 0, "a short write: 0");
  ok(written == 5 && size == 4096 && memcmp(base.addr + 10, "short", 5) == 0,
     "... 5 bytes, size 4096");
  fill(big, n, 7);
  is_int(shmop_table_write(handle, big, n, 100, &written, &size), 0,
         "a write longer than SHMOP_LOCKED_COPY: 0");
  ok(written == n && memcmp(base.addr + 100, big, n) == 0, "... all of it landed");
  is_int(shmop_table_write(handle, "tail", 4, 4094, &written, &size), 0,
         "a write cut at the end: 0");
  is_u64(written, 2, "... 2 bytes written");
  is_int(shmop_table_write(handle, "x", 1, 4097, &written, &size), SHMOP_EOFFSET,
         "past the end: SHMOP_EOFFSET");
  is_int(shmop_table_read(handle, 10, 5, ro_buf, &size), 0, "a short read: 0");
  ok(memcmp(ro_buf, "short", 4) == 0, "... the bytes written");
  is_int(shmop_table_read(handle, 100, n, back, &size), 0, "a long read: 0");
  ok(memcmp(back, big, n) == 0, "... the bytes written");
  is_int(shmop_table_read(handle, 4097, 0, back, &size), SHMOP_EOFFSET,
         "start past the end: SHMOP_EOFFSET");
  is_int(shmop_table_read(handle, 4000, n, back, &size), SHMOP_ECOUNT,
         "a long read past the end: SHMOP_ECOUNT");
  is_int(shmop_table_close(handle), 0, "close the handle");
  is_int(shmop_table_read(handle, 0, 1, back, &size), SHMOP_EBADHANDLE,
         "a short read of a closed handle: SHMOP_EBADHANDLE");
  is_int(shmop_table_read(handle, 0, n, back, &size), SHMOP_EBADHANDLE,
         "a long one: SHMOP_EBADHANDLE");
  is_int(shmop_table_write(handle, "x", 1, 0, &written, &size), SHMOP_EBADHANDLE,
         "a short write: SHMOP_EBADHANDLE");
  is_int(shmop_table_write(handle, big, n, 0, &written, &size), SHMOP_EBADHANDLE,
         "a long one: SHMOP_EBADHANDLE");
  shmop_delete(&base);
  shmop_close(&base);
  drop(key);
}

static void test_table_growth(void) {
  enum { N = 5000 };
  int32_t key = test_key(12);
  shmop_t base, seg, *got;
  int64_t *handles = xmalloc(N * sizeof *handles);
  unsigned char **addrs = xmalloc(N * sizeof *addrs);
  size_t buckets = 0, open_before = shmop_table_count();
  int i, added = 0, found = 1, gone = 1, fault_tried = 0, fault_kept = 0, grew_after = 0;
  long calls = 0;

  tap_group("handle table: growth past 64 buckets");
  if (create(&base, key, 64) != 0) {
    free(handles);
    free(addrs);
    return;
  }
  for (i = 0; i < N; i++) {
    int full = table_count >= table_bucket_count, armed = 0;
    if (shmop_open(&seg, key, 'w', 0, 0, &ignored_call) != 0) break;
    if (full && !fault_tried) {
      /* this add must grow the buckets: make the allocation fail */
      fault_tried = armed = 1;
      buckets = table_bucket_count;
      calls = test_calloc_calls;
      fail_next_calloc(1);
    }
    if (shmop_table_add(&seg, &handles[i]) != 0) {
      shmop_close(&seg);
      break;
    }
    if (armed) fault_kept = test_calloc_calls - calls == 1 && table_bucket_count == buckets;
    else if (fault_tried && !grew_after) grew_after = table_bucket_count > buckets ? 1 : -1;
    addrs[i] = seg.addr;
    added++;
  }
  is_int(added, N, "%d handles added", N);
  ok(fault_tried && fault_kept,
     "an add whose growth fails still succeeds, with the %lu old buckets", (unsigned long)buckets);
  is_int(grew_after, 1, "... and the next add grows them");
  ok(table_bucket_count > 64, "the table grew to %lu buckets", (unsigned long)table_bucket_count);
  is_u64(shmop_table_count(), open_before + (size_t)added, "shmop_table_count counts them");
  is_int(probe_nattch(base.id), added + 1, "each is a mapping of its own");
  for (i = 0; i < added; i++) {
    got = shmop_table_acquire(handles[i]);
    found = found && got && got->addr == addrs[i];
    if (got) shmop_table_release(got);
  }
  ok(found, "every handle finds its own segment");
  for (i = 0; i < added; i += 2) shmop_table_close(handles[i]);
  for (i = 0; i < added; i++) {
    got = shmop_table_acquire(handles[i]);
    if (i % 2 == 0) gone = gone && got == NULL;
    else found = found && got && got->addr == addrs[i];
    if (got) shmop_table_release(got);
  }
  ok(gone, "after closing every other handle, those are not found");
  ok(found, "... and the rest still find their segments");
  for (i = 1; i < added; i += 2) shmop_table_close(handles[i]);
  is_u64(shmop_table_count(), open_before, "all closed");
  is_int(probe_nattch(base.id), 1, "... and detached");
  shmop_delete(&base);
  shmop_close(&base);
  free(handles);
  free(addrs);
  drop(key);
}

/* ==== Handle table under threads ==== */

typedef struct {
  int64_t handle;
  const unsigned char *want;
  size_t size;
  long reads, bad;
} reader_t;

/* Reads the whole segment through the table until its handle is closed. */
static void *reader_main(void *arg) {
  reader_t *r = (reader_t *)arg;
  unsigned char *buf = xmalloc(r->size);
  shmop_t *seg;
  while ((seg = shmop_table_acquire(r->handle)) != NULL) {
    if (shmop_read(seg, 0, seg->size, buf) != 0 || memcmp(buf, r->want, r->size) != 0) r->bad++;
    shmop_table_release(seg);
    __atomic_add_fetch(&r->reads, 1, __ATOMIC_RELEASE);
  }
  free(buf);
  return NULL;
}

static void test_table_threads_read_close(void) {
  enum { ROUNDS = 100, READERS = 2, SIZE = 64 * 1024 };
  int32_t key = test_key(13);
  shmop_t base, seg;
  pthread_t threads[READERS];
  reader_t readers[READERS];
  unsigned char *want = xmalloc(SIZE);
  uint64_t written;
  int round, i, started, all_read = 1, detached = 1, held = 0, failures = 0;
  long bad = 0;

  tap_group("handle table: threads read while another closes");
  if (create(&base, key, SIZE) != 0) {
    free(want);
    return;
  }
  fill(want, SIZE, 13);
  shmop_write(&base, want, SIZE, 0, &written);
  for (round = 0; round < ROUNDS; round++) {
    int64_t handle;
    if (shmop_open(&seg, key, 'w', 0, 0, &ignored_call) != 0 ||
        shmop_table_add(&seg, &handle) != 0) {
      failures++;
      break;
    }
    for (i = 0, started = 0; i < READERS; i++) {
      readers[i].handle = handle;
      readers[i].want = want;
      readers[i].size = SIZE;
      readers[i].reads = readers[i].bad = 0;
      if (pthread_create(&threads[i], NULL, reader_main, &readers[i]) != 0) break;
      started++;
    }
    /* close once every reader is in its loop */
    for (i = 0; i < started; i++) {
      while (__atomic_load_n(&readers[i].reads, __ATOMIC_ACQUIRE) == 0) sched_yield();
    }
    shmop_table_close(handle);
    if (probe_nattch(base.id) > 1) held++; /* a reader still had it */
    for (i = 0; i < started; i++) {
      pthread_join(threads[i], NULL);
      bad += readers[i].bad;
      all_read = all_read && readers[i].reads > 0;
    }
    if (started != READERS) failures++;
    detached = detached && probe_nattch(base.id) == 1;
    if (failures) break;
  }
  is_int(failures, 0, "%d rounds of %d readers against one close", ROUNDS, READERS);
  is_int(bad, 0, "every read saw the whole segment's data");
  ok(all_read, "every reader read before the close and stopped after it");
  ok(detached, "each round's mapping was detached once the last reader let go");
  tap_diag("a reader still held the segment right after close in %d of %d rounds", held, ROUNDS);
  shmop_delete(&base);
  shmop_close(&base);
  free(want);
  drop(key);
}

typedef struct {
  shmop_t *segs;
  int64_t *handles;
  int count, added, closed;
} adder_t;

/* Adds its segments, then closes them, while other threads do the same. */
static void *adder_main(void *arg) {
  adder_t *a = (adder_t *)arg;
  int i;
  for (i = 0; i < a->count; i++) {
    if (shmop_table_add(&a->segs[i], &a->handles[a->added]) == 0) a->added++;
    else shmop_close(&a->segs[i]); /* still the caller's */
  }
  for (i = 0; i < a->added; i++) a->closed += shmop_table_close(a->handles[i]) == 0;
  return NULL;
}

static int compare_handles(const void *x, const void *y) {
  int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
  return (a > b) - (a < b);
}

static void test_table_threads_add_close(void) {
  enum { THREADS = 4, EACH = 500 };
  int32_t key = test_key(14);
  shmop_t base, *segs = xmalloc(THREADS * EACH * sizeof *segs);
  int64_t *handles = xmalloc(THREADS * EACH * sizeof *handles);
  pthread_t threads[THREADS];
  adder_t adders[THREADS];
  size_t open_before = shmop_table_count();
  int i, n, opened = 0, started = 0, added = 0, closed = 0, unique = 1;

  tap_group("handle table: threads add and close at once");
  if (create(&base, key, 64) != 0) {
    free(segs);
    free(handles);
    return;
  }
  while (opened < THREADS * EACH && shmop_open(&segs[opened], key, 'w', 0, 0, &ignored_call) == 0)
    opened++;
  is_int(opened, THREADS * EACH, "%d mappings opened", THREADS * EACH);
  for (i = 0; i < THREADS && opened == THREADS * EACH; i++) {
    adders[i].segs = segs + i * EACH;
    adders[i].handles = handles + i * EACH;
    adders[i].count = EACH;
    adders[i].added = adders[i].closed = 0;
    if (pthread_create(&threads[i], NULL, adder_main, &adders[i]) != 0) break;
    started++;
  }
  for (i = 0; i < started; i++) {
    pthread_join(threads[i], NULL);
    added += adders[i].added;
    closed += adders[i].closed;
  }
  is_int(added, THREADS * EACH, "%d threads added %d handles", THREADS, THREADS * EACH);
  is_int(closed, added, "... and closed each");
  for (i = 0, n = 0; i < started; i++) { /* gather the handles each thread got */
    memmove(handles + n, adders[i].handles, (size_t)adders[i].added * sizeof *handles);
    n += adders[i].added;
  }
  qsort(handles, (size_t)n, sizeof *handles, compare_handles);
  for (i = 1; i < n; i++) unique = unique && handles[i] != handles[i - 1];
  ok(unique, "no two threads got the same handle");
  is_u64(shmop_table_count(), open_before, "the table is back to where it was");
  is_int(probe_nattch(base.id), 1, "every mapping was detached");
  if (started < THREADS) { /* the mappings no thread took */
    for (i = started * EACH; i < opened; i++) shmop_close(&segs[i]);
  }
  shmop_delete(&base);
  shmop_close(&base);
  free(segs);
  free(handles);
  drop(key);
}

int main(void) {
  tap_start(282);
  test_open_modes();
  test_bad_modes();
  test_size_rule();
  test_excl_in_perms();
  test_read_spans();
  test_write_spans();
  test_delete_keeps_mapping();
  test_copy();
  test_copy_through_segment();
  test_strerror();
  test_table_first_use(); /* first to use the table */
  test_table_handles_unique();
  test_table_references();
  test_table_read_write();
  test_table_growth();
  test_table_threads_read_close();
  test_table_threads_add_close();
  tap_group("cleanup");
  is_int(probe_sweep(), 0, "no segment left behind");
  return tap_done();
}
