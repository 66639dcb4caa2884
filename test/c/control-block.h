/*
 * control-block.h: a section's control block as the C tests of the section
 * protocol see it (sections.c, windows/sections-win.c): the offsets of
 * docs/sections.md, 1.3, written from the document rather than from
 * src/sections.c, and byte access to the words, so that tests can check and
 * damage them without going through the code under test.
 */
#ifndef TEST_CONTROL_BLOCK_H
#define TEST_CONTROL_BLOCK_H

#include <stdint.h>
#include <string.h>

#include "sections.h"

/* control block */
enum { COMMIT = 0, CLAIM = 8, RETIRED = 16, FLAGS = 20, SLEEPERS = 24, SLOT0 = 64, SLOT1 = 128 };
enum { SEQ = 0, VERSION = 8, LENGTH = 16, PUBLISHED = 24, PID = 32 }; /* slot header */

static inline unsigned char *ctrl(const shmsect_t *s, unsigned offset) {
  return s->base + s->control + offset;
}
static inline uint64_t rd64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline uint32_t rd32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline void wr64(unsigned char *p, uint64_t v) { memcpy(p, &v, sizeof v); }
static inline void wr32(unsigned char *p, uint32_t v) { memcpy(p, &v, sizeof v); }

#endif /* TEST_CONTROL_BLOCK_H */
