/*
 * size32.c: shmop.c as a platform with a 32-bit size_t compiles it, where a
 * requested size above SIZE_MAX cannot reach shmget() and shmop_open()
 * returns -ENOMEM from "shmget" itself. On 64-bit systems that check can
 * never fire, so this program gives SIZE_MAX its 32-bit value before
 * shmop.c is included. Only that one limit changes; the system calls are
 * the real ones. (POSIX: it creates a 4 GiB - 1 segment with SHM_NORESERVE.)
 */

/* shmop.c's own feature macros must be in force before <stdint.h>; they are
   undefined after it only so that shmop.c can define them again unchanged. */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE
#include <stdint.h>
#undef _XOPEN_SOURCE
#undef _DEFAULT_SOURCE
#undef SIZE_MAX
#define SIZE_MAX UINT32_MAX

#include "shmop-under-test.h"

#define NORESERVE 010000 /* SHM_NORESERVE */

int main(void) {
  const int64_t four = INT64_C(1) << 32;
  int32_t key;
  shmop_t seg;
  const char *call = "(unset)";
  long calls = test_shmget_calls;

  tap_start(9);
  key = test_key(1);
  tap_group("sizes above a 32-bit SIZE_MAX");
  is_int(shmop_open(&seg, key, 'c', 0600, four, &call), -ENOMEM, "'c' with size 4 GiB: -ENOMEM");
  is_str(call, "shmget", "... reported as from shmget");
  is_int(test_shmget_calls - calls, 0, "... without calling it");
  is_int(shmop_open(&seg, key, 'n', 0600, INT64_MAX, &call), -ENOMEM,
         "'n' with size INT64_MAX: -ENOMEM");
  is_int(shmop_open(&seg, key, 'w', 0600, INT64_MAX, &call), -ENOENT,
         "'w' ignores its size: -ENOENT, the key is missing");
  is_int(probe_key(key), -ENOENT, "nothing was created");
  if (is_int(shmop_open(&seg, key, 'n', 0600 | NORESERVE, four - 1, &call), 0,
             "'n' with size 4 GiB - 1, the largest: creates")) {
    is_u64(seg.size, four - 1, "... of that size");
    shmop_delete(&seg);
    shmop_close(&seg);
  }
  tap_group("cleanup");
  is_int(probe_sweep(), 0, "no segment left behind");
  return tap_done();
}
