/*
 * copy.h: memcpy() without glibc's page-distance trap (copy.c), used by
 * shmop.c for segment reads and writes and by sections.c for payloads.
 */
#ifndef SHMOP_COPY_H
#define SHMOP_COPY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * memcpy() without the page-offset trap: on some x86 CPUs glibc's memcpy
 * runs 14-27x slower when the destination lies 1-63 bytes past the source
 * modulo 4096 (its "rep movsb" path). This copies such spans in pieces that
 * stay on glibc's vector path; every other span goes to memcpy() unchanged.
 */
void shmop_copy(void *dst, const void *src, size_t length);

#ifdef __cplusplus
}
#endif

#endif /* SHMOP_COPY_H */
