/*
 * windows.c: the C tests of shmop.c's Windows branch, run under Wine (or on
 * Windows). They check what a PHP 8.2-8.5 process on the same machine would
 * see, byte by byte, by opening the mapping objects directly with the offsets
 * of win.h (written from php-shmop.md section 10, not from shmop.c), and that
 * segments laid out by hand as PHP 8.2-8.5 (layout B) and PHP <= 8.1 (layout
 * A) make them are opened correctly.
 *
 * Run without arguments; the two-process tests start this program again with
 * "child <case> <key>" and read its exit status.
 */
#include "../shmop-under-test.h"
#include "win.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *call;

/* A negative key unique to this process: names must carry the sign. */
static int32_t negative_key(int n) {
  return (int32_t)(0xEC000000u | ((unsigned)GetCurrentProcessId() & 0xffffu) << 8 | (unsigned)n);
}

/* ==== Raw access to PHP's objects ==== */

typedef struct {
  HANDLE mapping;
  unsigned char *view;
} raw_t;

/* Opens "prefix:key" and maps all of it; 0 or -1. */
static int raw_open(raw_t *raw, const char *prefix, int32_t key) {
  raw->view = NULL;
  raw->mapping = php_open(prefix, key);
  if (!raw->mapping) return -1;
  raw->view = php_view(raw->mapping);
  if (!raw->view) {
    CloseHandle(raw->mapping);
    return -1;
  }
  return 0;
}

/* Creates "prefix:key" of exactly size bytes, as PHP does; 0 or -1. */
static int raw_create(raw_t *raw, const char *prefix, int32_t key, uint64_t size) {
  char name[64];
  php_name(name, sizeof name, prefix, key);
  raw->view = NULL;
  raw->mapping = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, (DWORD)(size >> 32),
                                    (DWORD)size, name);
  if (!raw->mapping || GetLastError() == ERROR_ALREADY_EXISTS) return -1;
  raw->view = php_view(raw->mapping);
  return raw->view ? 0 : -1;
}

static void raw_close(raw_t *raw) {
  if (raw->view) UnmapViewOfFile(raw->view);
  if (raw->mapping) CloseHandle(raw->mapping);
  raw->view = NULL;
  raw->mapping = NULL;
}

static int exists(const char *prefix, int32_t key) {
  HANDLE h = php_open(prefix, key);
  if (h) CloseHandle(h);
  return h != NULL;
}

static int exists_named(const char *name) {
  HANDLE h = OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, name);
  if (h) CloseHandle(h);
  return h != NULL;
}

static int32_t rd32(const unsigned char *p) {
  int32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}
static int64_t rd64(const unsigned char *p) {
  int64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}
static unsigned rd16(const unsigned char *p) {
  uint16_t v;
  memcpy(&v, p, sizeof v);
  return v;
}
static int rds16(const unsigned char *p) {
  int16_t v;
  memcpy(&v, p, sizeof v);
  return v;
}
static void wr32(unsigned char *p, int32_t v) { memcpy(p, &v, sizeof v); }
static void wr64(unsigned char *p, int64_t v) { memcpy(p, &v, sizeof v); }
static void wr16(unsigned char *p, uint16_t v) { memcpy(p, &v, sizeof v); }

/* Writes a descriptor as PHP's shmget + shmat leave it (one attachment). */
static void php_descriptor(unsigned char *d, int32_t key, uint64_t segsz) {
  memset(d, 0, PHP_DESC_SIZE);
  wr32(d + PHP_KEY, key);
  wr64(d + PHP_SEGSZ, (int64_t)segsz);
  wr64(d + PHP_CTIME, (int64_t)time(NULL) - 100);
  wr64(d + PHP_ATIME, (int64_t)time(NULL) - 100);
  wr16(d + PHP_CPID, 4242);
  wr16(d + PHP_LPID, 4242);
  wr16(d + PHP_NATTCH, 1);
}

/* The bytes a view maps (whole pages). */
static uint64_t view_bytes(const void *view) {
  MEMORY_BASIC_INFORMATION info;
  return VirtualQuery(view, &info, sizeof info) ? (uint64_t)info.RegionSize : 0;
}

/* ==== Create: names and descriptor as PHP 8.2-8.5 make them ==== */

static void test_create_layout(void) {
  int32_t key = test_key(1);
  shmop_t seg;
  raw_t raw;
  char name[64];
  time_t before = time(NULL), after;
  unsigned i, zero_ids = 1;
  uint64_t written;

  tap_group("'n' creates PHP 8.2-8.5's layout, byte for byte");
  if (!is_int(shmop_open(&seg, key, 'n', 0644, 100, &call), 0, "'n' key 0x%08x, 100 bytes",
              (unsigned)key))
    return;
  after = time(NULL);
  is_int(seg.id, key, "id is the key, as in TSRM");
  is_u64(seg.size, 100 + PHP_B_EXTRA, "size is 108: PHP's shmop_size() counts sizeof(void *) more");
  php_name(name, sizeof name, "TSRM_SHM_SEGMENT", key);
  if (!ok(raw_open(&raw, "TSRM_SHM_SEGMENT", key) == 0, "OpenFileMappingA(\"%s\") finds it",
          name)) {
    shmop_close(&seg);
    return;
  }
  ok(!exists("TSRM_SHM_DESCRIPTOR", key), "no TSRM_SHM_DESCRIPTOR:<key> (that is PHP <= 8.1)");
  is_int(rd32(raw.view + PHP_KEY), key, "byte 0: key");
  is_int(rd64(raw.view + PHP_SEGSZ), 108, "byte 16: shm_segsz = 100 + 8");
  for (i = 0; i < 6; i++) zero_ids = zero_ids && rd16(raw.view + PHP_UID + 2 * i) == 0;
  ok(zero_ids, "bytes 4..15: uid gid cuid cgid mode seq all 0 (permissions ignored, as PHP)");
  ok(rd64(raw.view + PHP_CTIME) >= before && rd64(raw.view + PHP_CTIME) <= after,
     "byte 40: ctime is now");
  ok(rd64(raw.view + PHP_ATIME) >= before && rd64(raw.view + PHP_ATIME) <= after,
     "byte 24: atime is now");
  is_int(rd64(raw.view + PHP_DTIME), 0, "byte 32: dtime 0 (never detached)");
  is_int(rd16(raw.view + PHP_CPID), GetCurrentProcessId() & 0xffff,
         "byte 48: cpid, 16 bits of the pid");
  is_int(rd16(raw.view + PHP_LPID), GetCurrentProcessId() & 0xffff, "byte 50: lpid");
  is_int(rds16(raw.view + PHP_NATTCH), 1, "byte 52: nattch 1");
  shmop_write(&seg, "payload!", 8, 0, &written);
  ok(memcmp(raw.view + PHP_B_DATA, "payload!", 8) == 0, "data written at 0 lands at byte 448");
  shmop_write(&seg, "end", 3, 105, &written);
  ok(written == 3 && memcmp(raw.view + PHP_B_DATA + 105, "end", 3) == 0,
     "the last bytes (105..107) land at 448 + 105");
  ok(view_bytes(raw.view) >= PHP_B_DATA + 108,
     "the section holds 448 + 108 bytes, so PHP can touch all it thinks it has");
  raw_close(&raw);
  is_int(shmop_close(&seg), 0, "close: 0");
  is_int(shmop_close(&seg), -EINVAL, "close again: -EINVAL");
  ok(!exists("TSRM_SHM_SEGMENT", key), "with no handle left anywhere, the segment is gone");
}

static void test_negative_key_name(void) {
  int32_t key = negative_key(1);
  shmop_t seg;
  char name[64];

  tap_group("names carry the key as signed decimal");
  if (!is_int(shmop_open(&seg, key, 'c', 0600, 10, &call), 0, "'c' key 0x%08x", (unsigned)key))
    return;
  snprintf(name, sizeof name, "TSRM_SHM_SEGMENT:%ld", (long)key);
  ok(name[17] == '-' && exists_named(name), "\"%s\" exists", name);
  snprintf(name, sizeof name, "TSRM_SHM_SEGMENT:%lu", (unsigned long)(uint32_t)key);
  ok(!exists_named(name), "\"%s\" (unsigned) does not", name);
  snprintf(name, sizeof name, "Global\\TSRM_SHM_SEGMENT:%ld", (long)key);
  ok(!exists_named(name), "nor a Global\\ name");
  shmop_close(&seg);
}

/* ==== Open: modes, sizes, bounds ==== */

static void test_modes(void) {
  int32_t key = test_key(2);
  shmop_t n, c, w, a, other;
  raw_t raw;
  uint64_t written, length;
  unsigned char buf[16];

  tap_group("the four modes");
  is_int(shmop_open(&a, key, 'a', 0, 0, &call), -ENOENT, "'a' on a missing key: -ENOENT");
  is_str(call, "shmget", "... failed in shmget");
  is_int(shmop_open(&w, key, 'w', 0, 0, &call), -ENOENT, "'w' on a missing key: -ENOENT");
  if (!is_int(shmop_open(&n, key, 'n', 0600, 100, &call), 0, "'n' creates")) return;
  raw_open(&raw, "TSRM_SHM_SEGMENT", key);
  is_int(shmop_open(&other, key, 'n', 0600, 100, &call), -EEXIST, "'n' again: -EEXIST");
  is_str(call, "shmget", "... failed in shmget");
  is_int(shmop_open(&other, key, 'c', 0600 | 02000, 100, &call), -EEXIST,
         "'c' with IPC_EXCL (02000) in the permissions: -EEXIST");
  is_int(rds16(raw.view + PHP_NATTCH), 1, "failed opens left nattch at 1");
  shmop_write(&n, "hello", 5, 0, &written);

  if (is_int(shmop_open(&c, key, 'c', 0600, 50, &call), 0, "'c' with a smaller size attaches")) {
    is_u64(c.size, 108, "... with the segment's size");
    ok(memcmp(c.addr, "hello", 5) == 0, "... and sees the data");
    is_int(rds16(raw.view + PHP_NATTCH), 2, "... nattch 2");
    shmop_close(&c);
  }
  if (is_int(shmop_open(&c, key, 'c', 0600, 108, &call), 0,
             "'c' with 108 (= shm_segsz) attaches, as in PHP")) {
    shmop_close(&c);
  }
  is_int(shmop_open(&c, key, 'c', 0600, 109, &call), -EINVAL,
         "'c' with 109 (> shm_segsz): -EINVAL");
  is_str(call, "shmget", "... failed in shmget");
  if (is_int(shmop_open(&w, key, 'w', 0, 9999, &call), 0, "'w' attaches, ignoring the size")) {
    is_int(w.readonly, 0, "... read-write");
    shmop_write(&w, "world", 5, 5, &written);
    ok(memcmp(n.addr, "helloworld", 10) == 0, "... and another mapping sees its write");
    shmop_close(&w);
  }
  is_int(rds16(raw.view + PHP_NATTCH), 1, "closes took nattch back to 1");
  ok(rd64(raw.view + PHP_DTIME) >= rd64(raw.view + PHP_CTIME), "... and set dtime");
  if (is_int(shmop_open(&a, key, 'a', 0, 0, &call), 0, "'a' attaches")) {
    is_int(a.readonly, 1, "... read-only");
    is_int(shmop_write(&a, "x", 1, 0, &written), SHMOP_EREADONLY, "... a write: SHMOP_EREADONLY");
    ok(shmop_read(&a, 0, 10, buf) == 0 && memcmp(buf, "helloworld", 10) == 0, "... reads");
    ok(shmop_read_span(&a, 0, 0, &length) == 0 && length == 108,
       "... count 0 reads to the end: 108 bytes");
    shmop_close(&a);
  }
  raw_close(&raw);
  shmop_close(&n);
}

static void test_sizes_and_bounds(void) {
  int32_t key = test_key(3);
  shmop_t seg;
  raw_t raw;
  uint64_t written, length;
  unsigned char data[200], buf[200];
  int rc;

  tap_group("size rules and read/write bounds");
  is_int(shmop_open(&seg, key, 'c', 0600, 0, &call), SHMOP_ESIZE, "'c' size 0: SHMOP_ESIZE");
  is_int(shmop_open(&seg, key, 'n', 0600, -1, &call), SHMOP_ESIZE, "'n' size -1: SHMOP_ESIZE");
  is_int(shmop_open(&seg, key, 'w', 01000, 0, &call), SHMOP_ESIZE,
         "'w' with IPC_CREAT in perms: SHMOP_ESIZE");
  ok(!exists("TSRM_SHM_SEGMENT", key), "... none of them made a segment");
  rc = shmop_open(&seg, key, 'n', 0600, INT64_MAX, &call);
  ok(rc == -ENOMEM || rc == -EINVAL,
     "'n' with INT64_MAX bytes: refused, -ENOMEM or -EINVAL (got %d)", rc);
  if (rc == 0) shmop_close(&seg);
  rc = shmop_open(&seg, key, 'n', 0600, (int64_t)1 << 46, &call);
  is_int(rc, -ENOMEM, "'n' with 64 TiB: -ENOMEM from CreateFileMapping");
  if (rc == 0) shmop_close(&seg);

  if (!is_int(shmop_open(&seg, key, 'n', 0600, 1, &call), 0, "'n' with size 1")) return;
  is_u64(seg.size, 9, "... size 9 (1 + sizeof(void *))");
  shmop_close(&seg);

  if (!is_int(shmop_open(&seg, key, 'n', 0600, 192, &call), 0, "'n' with 192 bytes")) return;
  raw_open(&raw, "TSRM_SHM_SEGMENT", key);
  memset(data, 'd', sizeof data);
  ok(shmop_write(&seg, data, 200, 0, &written) == 0 && written == 200,
     "200 bytes at 0: all 200 fit (size 200)");
  ok(shmop_write(&seg, "abcdef", 6, 197, &written) == 0 && written == 3,
     "6 bytes at 197: 3 written");
  ok(memcmp(raw.view + PHP_B_DATA + 197, "abc", 3) == 0, "... into bytes 197..199");
  ok(raw.view[PHP_B_DATA + 200] == 0, "... and byte 200 is untouched");
  ok(shmop_write(&seg, "x", 1, 200, &written) == 0 && written == 0,
     "1 byte at offset == size: 0 written");
  is_int(shmop_write(&seg, "x", 1, 201, &written), SHMOP_EOFFSET, "offset 201: SHMOP_EOFFSET");
  ok(shmop_read_span(&seg, 200, 0, &length) == 0 && length == 0, "read at 200 (== size): 0 bytes");
  is_int(shmop_read_span(&seg, 201, 0, &length), SHMOP_EOFFSET, "read at 201: SHMOP_EOFFSET");
  is_int(shmop_read_span(&seg, 100, 101, &length), SHMOP_ECOUNT, "read 101 at 100: SHMOP_ECOUNT");
  ok(shmop_read(&seg, 194, 6, buf) == 0 && memcmp(buf, "dddabc", 6) == 0,
     "read 6 at 194: the last bytes");
  raw_close(&raw);
  shmop_close(&seg);
}

/* ==== Delete ==== */

static void test_delete(void) {
  int32_t key = test_key(4);
  shmop_t seg, other;
  shmop_stat_t st;
  raw_t raw;
  uint64_t written;
  unsigned char buf[8];
  int id;

  tap_group("shmop_delete marks the key -1, as PHP's IPC_RMID does");
  if (!is_int(shmop_open(&seg, key, 'n', 0600, 64, &call), 0, "'n'")) return;
  raw_open(&raw, "TSRM_SHM_SEGMENT", key);
  ok(shmop_find(key, &id) == 0 && id == key, "shmop_find finds it, id = key");
  is_int(shmop_delete(&seg), 0, "delete: 0");
  is_int(rd32(raw.view + PHP_KEY), -1, "byte 0: key -1");
  ok(shmop_write(&seg, "still", 5, 0, &written) == 0 && shmop_read(&seg, 0, 5, buf) == 0 &&
         memcmp(buf, "still", 5) == 0,
     "the mapping stays usable");
  is_int(shmop_open(&other, key, 'w', 0, 0, &call), -ENOENT,
         "'w' no longer finds the key: -ENOENT");
  is_int(shmop_open(&other, key, 'a', 0, 0, &call), -ENOENT, "'a': -ENOENT");
  is_int(shmop_open(&other, key, 'c', 0600, 64, &call), -EIDRM,
         "'c': -EIDRM (the deleted segment holds the name while open)");
  is_int(shmop_open(&other, key, 'n', 0600, 64, &call), -EEXIST, "'n': -EEXIST");
  is_int(shmop_find(key, &id), -ENOENT, "shmop_find: -ENOENT");
  if (is_int(shmop_stat(key, &st), 0, "shmop_stat by id still works")) {
    ok(st.marked && st.key == 0, "... marked, key 0 (as Linux shows a deleted segment)");
    is_int(st.attachments, 1, "... 1 attachment");
  }
  is_int(shmop_remove(key), 0, "shmop_remove again: 0");
  is_int(shmop_delete(&seg), 0, "delete again: 0");
  raw_close(&raw);
  is_int(shmop_close(&seg), 0, "close: 0");
  ok(!exists("TSRM_SHM_SEGMENT", key), "the last close frees the name");
  if (is_int(shmop_open(&seg, key, 'n', 0600, 64, &call), 0, "... so 'n' creates the key anew")) {
    ok(shmop_read(&seg, 0, 5, buf) == 0 && memcmp(buf, "\0\0\0\0\0", 5) == 0, "... zero-filled");
    is_int(shmop_delete(&seg), 0, "delete it");
    is_int(shmop_close(&seg), 0, "close it");
  }
  is_int(shmop_delete(&seg), -EINVAL, "delete after everything closed: -EINVAL (no such id)");
  is_int(shmop_remove(key), -EINVAL, "shmop_remove of a gone id: -EINVAL");
  is_int(shmop_stat(key, &st), -EINVAL, "shmop_stat of a gone id: -EINVAL");
}

/* ==== Introspection ==== */

static void test_introspection(void) {
  int32_t key = test_key(5);
  shmop_t seg;
  shmop_stat_t st;
  int id;
  time_t before = time(NULL);

  tap_group("shmop_find and shmop_stat read PHP's descriptor");
  is_int(shmop_find(key, &id), -ENOENT, "find on a missing key: -ENOENT");
  is_int(shmop_find(0, &id), -EINVAL, "find key 0: -EINVAL");
  is_int(shmop_stat(0, &st), -EINVAL, "stat id 0: -EINVAL");
  if (!is_int(shmop_open(&seg, key, 'n', 0600, 1000, &call), 0, "'n' 1000 bytes")) return;
  if (is_int(shmop_stat(key, &st), 0, "stat")) {
    is_int(st.key, key, "key");
    is_int(st.id, key, "id = key");
    is_u64(st.size, 1008, "size 1008 (shm_segsz)");
    ok(st.mode == 0 && st.uid == 0 && st.gid == 0 && st.cuid == 0 && st.cgid == 0,
       "mode and owners 0");
    is_int(st.cpid, GetCurrentProcessId() & 0xffff, "cpid");
    is_int(st.attachments, 1, "1 attachment");
    ok(st.ctime >= before && st.atime >= before && st.dtime == 0, "times from the descriptor");
    is_int(st.marked, 0, "not marked");
  }
  shmop_delete(&seg);
  shmop_close(&seg);
}

/* ==== Key 0 ==== */

static void test_key_zero(void) {
  shmop_t a, b, w;
  uint64_t written;

  tap_group("key 0 (IPC_PRIVATE): private, unnamed mappings");
  is_int(shmop_open(&w, 0, 'w', 0, 0, &call), -EINVAL, "'w' key 0: -EINVAL (as on Linux)");
  is_int(shmop_open(&w, 0, 'a', 0, 0, &call), -EINVAL, "'a' key 0: -EINVAL");
  if (!is_int(shmop_open(&a, 0, 'c', 0600, 10, &call), 0, "'c' key 0")) return;
  if (is_int(shmop_open(&b, 0, 'n', 0600, 10, &call), 0, "'n' key 0 again: another segment")) {
    shmop_write(&a, "A", 1, 0, &written);
    shmop_write(&b, "B", 1, 0, &written);
    ok(a.addr[0] == 'A' && b.addr[0] == 'B', "... the two do not share data");
    is_int(shmop_delete(&b), 0, "delete of a private segment: 0");
    shmop_close(&b);
  }
  ok(!exists("TSRM_SHM_SEGMENT", 0), "no \"TSRM_SHM_SEGMENT:0\" object");
  shmop_close(&a);
}

/* ==== Segments PHP made ==== */

static void test_php_layout_b(void) {
  int32_t key = test_key(6);
  raw_t raw;
  shmop_t seg;
  shmop_stat_t st;
  uint64_t written;
  unsigned char buf[16];

  tap_group("a segment laid out by hand as PHP 8.2-8.5 makes one (layout B)");
  /* PHP: one mapping of size + 8 bytes, descriptor at 0, data at 448. */
  if (!ok(raw_create(&raw, "TSRM_SHM_SEGMENT", key, 100 + PHP_B_EXTRA) == 0,
          "PHP-style mapping of 108 bytes"))
    return;
  php_descriptor(raw.view, key, 100 + PHP_B_EXTRA);
  memcpy(raw.view + PHP_B_DATA, "from php", 8);
  if (is_int(shmop_open(&seg, key, 'w', 0, 0, &call), 0, "'w' opens it")) {
    is_u64(seg.size, 108, "size 108, what PHP's shmop_size() reports");
    ok(shmop_read(&seg, 0, 8, buf) == 0 && memcmp(buf, "from php", 8) == 0,
       "reads PHP's data at byte 448");
    is_int(rds16(raw.view + PHP_NATTCH), 2, "nattch 1 -> 2");
    is_int(rd16(raw.view + PHP_CPID), 4242, "cpid left as PHP wrote it");
    shmop_write(&seg, "from node", 9, 20, &written);
    ok(memcmp(raw.view + PHP_B_DATA + 20, "from node", 9) == 0,
       "writes where PHP reads (448 + 20)");
    shmop_close(&seg);
    is_int(rds16(raw.view + PHP_NATTCH), 1, "close: nattch back to 1");
  }
  if (is_int(shmop_open(&seg, key, 'c', 0600, 100, &call), 0,
             "'c' with PHP's own size 100 opens it")) {
    shmop_close(&seg);
  }
  is_int(shmop_open(&seg, key, 'c', 0600, 109, &call), -EINVAL, "'c' with 109: -EINVAL, as in PHP");
  is_int(shmop_open(&seg, key, 'n', 0600, 100, &call), -EEXIST, "'n': -EEXIST");
  if (is_int(shmop_stat(key, &st), 0, "stat")) {
    ok(st.size == 108 && st.cpid == 4242 && st.attachments == 1, "... reads PHP's descriptor");
  }
  raw_close(&raw);
}

static void test_php_layout_b_short_view(void) {
  int32_t key = test_key(7);
  raw_t raw;
  shmop_t seg;

  tap_group("PHP 8.2-8.5's short mapping: 4000 bytes leave 3648 after byte 448");
  /* 4000 + 8 bytes round to one page, so the data can only go to 4096 - 448. */
  if (!ok(raw_create(&raw, "TSRM_SHM_SEGMENT", key, 4000 + PHP_B_EXTRA) == 0,
          "PHP-style mapping of 4008 bytes"))
    return;
  php_descriptor(raw.view, key, 4000 + PHP_B_EXTRA);
  if (is_int(shmop_open(&seg, key, 'w', 0, 0, &call), 0, "'w' opens it")) {
    is_u64(seg.size, view_bytes(raw.view) - PHP_B_DATA,
           "size is what the view holds (%lu), not 4008",
           (unsigned long)(view_bytes(raw.view) - PHP_B_DATA));
    memset(seg.addr, 'x', (size_t)seg.size); /* faults if the size were past the view */
    ok(1, "all of it can be written");
    shmop_close(&seg);
  }
  raw_close(&raw);
}

static void test_php_layout_a(void) {
  int32_t key = test_key(8);
  raw_t data, desc;
  shmop_t seg;
  shmop_stat_t st;
  uint64_t written;
  unsigned char buf[16];

  tap_group("a segment laid out by hand as PHP <= 8.1 makes one (layout A)");
  /* PHP <= 8.1: the data alone in TSRM_SHM_SEGMENT, the descriptor in TSRM_SHM_DESCRIPTOR. */
  if (!ok(raw_create(&data, "TSRM_SHM_SEGMENT", key, 100) == 0 &&
              raw_create(&desc, "TSRM_SHM_DESCRIPTOR", key, sizeof(void *)) == 0,
          "PHP-style pair of mappings")) {
    return;
  }
  php_descriptor(desc.view, key, 100);
  memcpy(data.view, "old php", 7);
  if (is_int(shmop_open(&seg, key, 'c', 0600, 100, &call), 0, "'c' opens it")) {
    is_u64(seg.size, 100, "size 100 (shm_segsz; no extra bytes in this layout)");
    ok(shmop_read(&seg, 0, 7, buf) == 0 && memcmp(buf, "old php", 7) == 0,
       "reads PHP's data at byte 0");
    is_int(rds16(desc.view + PHP_NATTCH), 2, "nattch 1 -> 2 in the descriptor mapping");
    shmop_write(&seg, "node", 4, 96, &written);
    ok(written == 4 && memcmp(data.view + 96, "node", 4) == 0,
       "writes at 96..99 of the data mapping");
    ok(memcmp(desc.view + PHP_DESC_SIZE, "\0\0\0\0", 4) == 0 && rd32(desc.view) == key,
       "... and nothing into the descriptor mapping");
    if (is_int(shmop_stat(key, &st), 0, "stat")) {
      ok(st.size == 100 && st.attachments == 2 && st.cpid == 4242,
         "... reads the descriptor mapping");
    }
    is_int(shmop_delete(&seg), 0, "delete");
    is_int(rd32(desc.view + PHP_KEY), -1, "... marks the descriptor mapping's key -1");
    is_int(shmop_close(&seg), 0, "close");
    is_int(rds16(desc.view + PHP_NATTCH), 1, "... nattch back to 1");
  }
  is_int(shmop_open(&seg, key, 'w', 0, 0, &call), -ENOENT, "'w' after delete: -ENOENT");
  ok(exists("TSRM_SHM_DESCRIPTOR", key), "both mappings still exist (PHP's handles)");
  raw_close(&data);
  raw_close(&desc);
}

static void test_foreign_and_unready(void) {
  int32_t key = test_key(9);
  raw_t raw;
  shmop_t seg;
  DWORD started;

  tap_group("a name whose descriptor is not this key's");
  /* As when old PHP cut names short: the stored key differs. */
  if (!ok(raw_create(&raw, "TSRM_SHM_SEGMENT", key, 108) == 0, "mapping under this key's name"))
    return;
  php_descriptor(raw.view, key + 1, 108);
  is_int(shmop_open(&seg, key, 'w', 0, 0, &call), -EINVAL, "a stored key that differs: -EINVAL");
  wr32(raw.view + PHP_KEY, 0);
  wr64(raw.view + PHP_SEGSZ, 0);
  started = GetTickCount();
  is_int(shmop_open(&seg, key, 'w', 0, 0, &call), -EINVAL,
         "a descriptor never filled in: -EINVAL after waiting for its creator");
  ok(GetTickCount() - started >= 150, "... which it did (%lu ms)",
     (unsigned long)(GetTickCount() - started));
  raw_close(&raw);
}

/* Fills in a PHP descriptor 50 ms after it is started, as a slow creator. */
static DWORD WINAPI late_creator(void *arg) {
  raw_t *raw = (raw_t *)arg;
  Sleep(50);
  wr64(raw->view + PHP_SEGSZ, 108);
  wr32(raw->view + PHP_KEY, test_key(10));
  return 0;
}

static void test_waits_for_creator(void) {
  int32_t key = test_key(10);
  raw_t raw;
  shmop_t seg;
  HANDLE thread;

  tap_group("an opener waits for a creator that has not filled in the descriptor yet");
  if (!ok(raw_create(&raw, "TSRM_SHM_SEGMENT", key, 108) == 0, "an empty PHP-style mapping"))
    return;
  thread = CreateThread(NULL, 0, late_creator, &raw, 0, NULL);
  if (is_int(shmop_open(&seg, key, 'c', 0600, 100, &call), 0, "'c' opens it once filled in")) {
    is_u64(seg.size, 108, "... with the creator's size");
    shmop_close(&seg);
  }
  if (thread) {
    WaitForSingleObject(thread, INFINITE);
    CloseHandle(thread);
  }
  raw_close(&raw);
}

/* ==== Two creators at once ==== */

typedef struct {
  HANDLE go;
  int32_t key;
  shmop_t seg;
  int rc;
} racer_t;

static DWORD WINAPI racer_main(void *arg) {
  racer_t *r = (racer_t *)arg;
  const char *ignored;
  WaitForSingleObject(r->go, INFINITE);
  r->rc = shmop_open(&r->seg, r->key, 'c', 0600, 64, &ignored);
  return 0;
}

static void test_creators_race(void) {
  enum { ROUNDS = 200 };
  racer_t racers[2];
  HANDLE threads[2];
  int round, i, failed = 0, split = 0, counted = 0;
  uint64_t written;

  tap_group("two threads 'c' the same key at once");
  for (round = 0; round < ROUNDS && !failed; round++) {
    HANDLE go = CreateEventA(NULL, TRUE, FALSE, NULL);
    for (i = 0; i < 2; i++) {
      racers[i].go = go;
      racers[i].key = test_key(14);
      racers[i].rc = 1;
      threads[i] = CreateThread(NULL, 0, racer_main, &racers[i], 0, NULL);
    }
    SetEvent(go);
    WaitForMultipleObjects(2, threads, TRUE, INFINITE);
    for (i = 0; i < 2; i++) CloseHandle(threads[i]);
    CloseHandle(go);
    if (racers[0].rc != 0 || racers[1].rc != 0) {
      failed = 1;
      tap_diag("round %d: %d and %d", round, racers[0].rc, racers[1].rc);
      for (i = 0; i < 2; i++)
        if (racers[i].rc == 0) shmop_close(&racers[i].seg);
      break;
    }
    shmop_write(&racers[0].seg, &round, sizeof round, 0, &written);
    split += memcmp(racers[1].seg.addr, &round, sizeof round) != 0;
    counted += probe_nattch(racers[0].key) == 2;
    for (i = 0; i < 2; i++) shmop_close(&racers[i].seg);
  }
  is_int(failed, 0,
         "%d rounds: both opens succeed (one creates, the other finds ERROR_ALREADY_EXISTS)",
         ROUNDS);
  is_int(split, 0, "... and both always have the same segment");
  is_int(counted, ROUNDS, "... counted twice in nattch");
}

/* ==== Errors ==== */

static void test_errno_mapping(void) {
  tap_group("Windows errors -> errno, in one place");
  is_int(shmop__errno(ERROR_FILE_NOT_FOUND), -ENOENT, "ERROR_FILE_NOT_FOUND: -ENOENT");
  is_int(shmop__errno(ERROR_PATH_NOT_FOUND), -ENOENT, "ERROR_PATH_NOT_FOUND: -ENOENT");
  is_int(shmop__errno(ERROR_ALREADY_EXISTS), -EEXIST, "ERROR_ALREADY_EXISTS: -EEXIST");
  is_int(shmop__errno(ERROR_ACCESS_DENIED), -EACCES, "ERROR_ACCESS_DENIED: -EACCES");
  is_int(shmop__errno(ERROR_NOT_ENOUGH_MEMORY), -ENOMEM, "ERROR_NOT_ENOUGH_MEMORY: -ENOMEM");
  is_int(shmop__errno(ERROR_OUTOFMEMORY), -ENOMEM, "ERROR_OUTOFMEMORY: -ENOMEM");
  is_int(shmop__errno(ERROR_COMMITMENT_LIMIT), -ENOMEM, "ERROR_COMMITMENT_LIMIT: -ENOMEM");
  is_int(shmop__errno(ERROR_INVALID_PARAMETER), -EINVAL, "ERROR_INVALID_PARAMETER: -EINVAL");
  is_int(shmop__errno(ERROR_INVALID_HANDLE), -EINVAL, "ERROR_INVALID_HANDLE: -EINVAL");
  is_int(shmop__errno(ERROR_GEN_FAILURE), -EINVAL, "anything else: -EINVAL");
}

static void test_name_of_other_type(void) {
  int32_t key = test_key(11);
  char name[64];
  HANDLE event;
  shmop_t seg;

  tap_group("a Windows failure reaches the caller as errno");
  php_name(name, sizeof name, "TSRM_SHM_SEGMENT", key);
  event = CreateEventA(NULL, FALSE, FALSE, name); /* the name taken by another kind of object */
  if (!ok(event != NULL, "an event named \"%s\"", name)) return;
  is_int(shmop_open(&seg, key, 'c', 0600, 10, &call), -EINVAL,
         "'c': ERROR_INVALID_HANDLE -> -EINVAL");
  is_str(call, "shmget", "... in shmget");
  CloseHandle(event);
}

/* ==== ftok ==== */

static void test_ftok(void) {
  char dir[MAX_PATH], path[MAX_PATH + 32];
  HANDLE file;
  BY_HANDLE_FILE_INFORMATION info;
  int32_t key = 0;
  int rc;
  unsigned drive;

  tap_group("shmop_ftok: PHP's win32/ftok.c");
  GetTempPathA(sizeof dir, dir);
  snprintf(path, sizeof path, "%sshmop-ftok-%lu.txt", dir, (unsigned long)GetCurrentProcessId());
  file = CreateFileA(path, GENERIC_WRITE | GENERIC_READ, FILE_SHARE_READ, NULL, CREATE_ALWAYS, 0,
                     NULL);
  if (!ok(file != INVALID_HANDLE_VALUE, "a file %s", path)) return;
  GetFileInformationByHandle(file, &info);
  CloseHandle(file);
  drive = (unsigned)(toupper((unsigned char)path[0]) - 'A');
  rc = shmop_ftok(path, 'z', &key);
  is_int(rc, 0, "ftok: 0");
  is_int(key, (int32_t)((uint32_t)'z' << 24 | (drive & 0xff) << 16 | (info.nFileIndexLow & 0xffff)),
         "key = 'z' << 24 | drive %u << 16 | low 16 bits of the file index", drive);
  rc = shmop_ftok(path, 0xff, &key);
  ok(rc == 0 && key < 0, "project 0xff gives a negative key");
  DeleteFileA(path);
  is_int(shmop_ftok(path, 'z', &key), -ENOENT, "a missing file: -ENOENT");
  is_int(shmop_ftok(dir, 'z', &key), -EACCES,
         "a directory: -EACCES (PHP's CreateFileW cannot open one either)");
}

/* ==== Two processes ==== */

/* Starts this program as "child <what> <key>"; returns its exit status or -1. */
static long run_child(const char *what, int32_t key) {
  char self[MAX_PATH], line[MAX_PATH + 64];
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  DWORD status;
  GetModuleFileNameA(NULL, self, sizeof self);
  snprintf(line, sizeof line, "\"%s\" child %s %ld", self, what, (long)key);
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  if (!CreateProcessA(self, line, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) {
    tap_diag("CreateProcessA(%s): error %lu", line, (unsigned long)GetLastError());
    return -1;
  }
  WaitForSingleObject(pi.hProcess, INFINITE);
  if (!GetExitCodeProcess(pi.hProcess, &status)) status = (DWORD)-1;
  if (status != 0) tap_diag("child %s exited with 0x%08lx", what, (unsigned long)status);
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  return (long)status;
}

/* The child's side; the exit status says which check failed (0: none). */
static int child(const char *what, int32_t key) {
  shmop_t seg;
  raw_t raw;
  uint64_t written;
  unsigned char buf[32];
  if (strcmp(what, "share") == 0) {
    if (shmop_open(&seg, key, 'w', 0, 0, &call) != 0) return 10;
    if (shmop_read(&seg, 0, 17, buf) != 0 || memcmp(buf, "parent wrote this", 17) != 0) return 11;
    if (raw_open(&raw, "TSRM_SHM_SEGMENT", key) != 0) return 12;
    if (rds16(raw.view + PHP_NATTCH) != 2) return 13;
    raw_close(&raw);
    if (shmop_write(&seg, "child was here", 14, 100, &written) != 0 || written != 14) return 14;
    return shmop_close(&seg) == 0 ? 0 : 15;
  }
  if (strcmp(what, "create-and-exit") == 0) {
    /* exits holding the segment: the system closes its handle */
    if (shmop_open(&seg, key, 'n', 0600, 64, &call) != 0) return 20;
    shmop_write(&seg, "orphan", 6, 0, &written);
    return 0;
  }
  if (strcmp(what, "attach-and-exit") == 0) {
    return shmop_open(&seg, key, 'w', 0, 0, &call) == 0 ? 0 : 30;
  }
  return 99;
}

static void test_two_processes(void) {
  int32_t key = test_key(12), orphan = test_key(13);
  shmop_t seg;
  raw_t raw;
  uint64_t written;
  unsigned char buf[32];
  long status;

  tap_group("two processes share one segment");
  if (!is_int(shmop_open(&seg, key, 'n', 0600, 256, &call), 0, "parent: 'n' 256 bytes")) return;
  shmop_write(&seg, "parent wrote this", 17, 0, &written);
  raw_open(&raw, "TSRM_SHM_SEGMENT", key);
  status = run_child("share", key);
  is_int(status, 0, "child: 'w' reads the parent's bytes, sees nattch 2, writes, closes");
  ok(shmop_read(&seg, 100, 14, buf) == 0 && memcmp(buf, "child was here", 14) == 0,
     "parent reads what the child wrote");
  is_int(rds16(raw.view + PHP_NATTCH), 1, "the child's close took nattch back to 1");
  ok(rd16(raw.view + PHP_LPID) != (GetCurrentProcessId() & 0xffff), "lpid is the child's");

  status = run_child("attach-and-exit", key);
  is_int(status, 0, "a child that attaches and exits without closing");
  is_int(rds16(raw.view + PHP_NATTCH), 2, "... leaves nattch counted (a plain counter, as in PHP)");
  wr16(raw.view + PHP_NATTCH, 1);
  raw_close(&raw);
  shmop_delete(&seg);
  shmop_close(&seg);

  status = run_child("create-and-exit", orphan);
  is_int(status, 0, "a child creates a segment and exits holding it");
  is_int(shmop_open(&seg, orphan, 'w', 0, 0, &call), -ENOENT,
         "... it is gone with the child's handle (no segment outlives every process)");
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "child") == 0)
    return child(argv[2], (int32_t)strtol(argv[3], NULL, 10));
  tap_start(183);
  test_create_layout();
  test_negative_key_name();
  test_modes();
  test_sizes_and_bounds();
  test_delete();
  test_introspection();
  test_key_zero();
  test_php_layout_b();
  test_php_layout_b_short_view();
  test_php_layout_a();
  test_foreign_and_unready();
  test_waits_for_creator();
  test_creators_race();
  test_errno_mapping();
  test_name_of_other_type();
  test_ftok();
  test_two_processes();
  tap_group("cleanup");
  is_int(probe_sweep(), 0, "no segment left open");
  return tap_done();
}
