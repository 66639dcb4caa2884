/*
 * win.h: what the Windows tests know of PHP's layout, written from
 * php-shmop.md (section 10) and not from shmop.c, so that the byte-level tests
 * check shmop.c against PHP rather than against itself. x64 only.
 */
#ifndef TEST_WIN_H
#define TEST_WIN_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stddef.h>
#include <stdint.h>

/* struct shmid_ds of TSRM/tsrm_win32.h under MSVC packing, x64. */
enum {
  PHP_KEY = 0,    /* int32 key_t */
  PHP_UID = 4,    /* uid gid cuid cgid mode seq: 6 x uint16 */
  PHP_SEGSZ = 16, /* size_t */
  PHP_ATIME = 24, /* int64 time_t */
  PHP_DTIME = 32,
  PHP_CTIME = 40,
  PHP_CPID = 48,   /* uint16 */
  PHP_LPID = 50,   /* uint16 */
  PHP_NATTCH = 52, /* int16 */
  PHP_DESC_SIZE = 56,
  PHP_B_DATA = 8 * PHP_DESC_SIZE, /* 448: descriptor + sizeof(void *) structs */
  PHP_B_EXTRA = 8                 /* shm_segsz = size + sizeof(void *) */
};

/* "prefix:key", key as signed decimal; returns snprintf's count. */
int php_name(char *name, size_t room, const char *prefix, int32_t key);
/* OpenFileMappingA(FILE_MAP_ALL_ACCESS) of "prefix:key", or NULL. */
HANDLE php_open(const char *prefix, int32_t key);
/* A whole-section read-write view, or NULL. */
unsigned char *php_view(HANDLE mapping);

#endif /* TEST_WIN_H */
