/*
 * harness-win.c: ../harness.c (TAP, fault doubles) with the Windows half it
 * leaves to each platform: the per-program keys and the probes, which look
 * at PHP's mapping objects directly (OpenFileMappingA, MapViewOfFile) rather
 * than through shmop.c, at the offsets of win.h. Being the same translation
 * unit, it can define the static hooks harness.c declares.
 */
#include "../harness.c"
#include "win.h"

/* ==== Keys ==== */

static unsigned key_base;

/* Called by tap_start(). A child process gets its keys on its command line. */
static void keys_start(void) {
  key_base = 0x6C000000u | ((unsigned)GetCurrentProcessId() & 0xffffu) << 8;
}

int32_t test_key(int n) {
  if (n < 0 || n > 255) tap_bail("key index %d out of 0..255", n);
  if (!key_base) tap_bail("test_key() before tap_start()");
  return (int32_t)(key_base | (unsigned)n);
}

/* ==== PHP's objects ==== */

int php_name(char *name, size_t room, const char *prefix, int32_t key) {
  return snprintf(name, room, "%s:%ld", prefix, (long)key);
}

HANDLE php_open(const char *prefix, int32_t key) {
  char name[64];
  php_name(name, sizeof name, prefix, key);
  return OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, name);
}

unsigned char *php_view(HANDLE mapping) {
  return (unsigned char *)MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, 0);
}

/* The descriptor of key's segment, layout B, mapped; *mapping to close. */
static unsigned char *descriptor(int32_t key, HANDLE *mapping) {
  unsigned char *view;
  *mapping = php_open("TSRM_SHM_SEGMENT", key);
  if (!*mapping) return NULL;
  view = php_view(*mapping);
  if (!view) CloseHandle(*mapping);
  return view;
}

static void done(unsigned char *view, HANDLE mapping) {
  UnmapViewOfFile(view);
  CloseHandle(mapping);
}

long probe_nattch(int id) {
  HANDLE mapping;
  unsigned char *d = descriptor((int32_t)id, &mapping);
  int16_t nattch;
  if (!d) return -ENOENT;
  memcpy(&nattch, d + PHP_NATTCH, sizeof nattch);
  done(d, mapping);
  return nattch;
}

int probe_key(int32_t key) {
  HANDLE mapping;
  unsigned char *d = descriptor(key, &mapping);
  int32_t stored;
  if (!d) return -ENOENT;
  memcpy(&stored, d + PHP_KEY, sizeof stored);
  done(d, mapping);
  return stored == key ? key : -ENOENT;
}

/* ==== Probes ==== */

/*
 * A mapping object lives while some handle to it is open: one still there
 * was left open by this process. Marking its key -1 is all that can be done.
 */
int probe_sweep(void) {
  HANDLE mapping;
  unsigned char *d;
  int n, left = 0;
  int32_t gone = -1;
  for (n = 0; n < 256; n++) {
    d = descriptor(test_key(n), &mapping);
    if (!d) continue;
    left++;
    tap_diag("segment left open: key 0x%08x", (unsigned)test_key(n));
    memcpy(d + PHP_KEY, &gone, sizeof gone);
    done(d, mapping);
  }
  return left;
}
