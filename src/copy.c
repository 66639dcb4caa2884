/* copy.c: memcpy() without glibc's page-distance trap (see copy.h). */
#include "copy.h"

#include <stdint.h>
#include <string.h>

/*
 * Pieces stay below every rep-movsb threshold glibc picks (2048 bytes and up).
 * The size is read through a volatile: with a constant, compilers inline each
 * piece as their own "rep movsq", which is just as slow at these distances.
 */
static volatile size_t shmop__copy_piece = 2048;

void shmop_copy(void *dst, const void *src, size_t length) {
  unsigned char *d = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  size_t distance = ((uintptr_t)d - (uintptr_t)s) & 4095;
  size_t piece = shmop__copy_piece, head;
  if (length <= piece || distance == 0 || distance >= 64) {
    memcpy(d, s, length);
    return;
  }
  /* Align the destination once, then copy pieces too short for rep movsb. */
  head = (64 - ((uintptr_t)d & 63)) & 63;
  memcpy(d, s, head);
  d += head, s += head, length -= head;
  while (length > piece) {
    memcpy(d, s, piece);
    d += piece, s += piece, length -= piece;
  }
  memcpy(d, s, length);
}
