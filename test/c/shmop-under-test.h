/*
 * shmop-under-test.h: shmop.c and the files under it (src/: the platform's
 * primitives, the handle table, the copy) compiled into the test program,
 * first and with their own feature macros, as the addon builds them, except
 * that malloc, calloc, shmget and shmat are the fault-injection doubles of
 * harness.c. Each double is the real call until a test arms a fault.
 *
 * The system headers shmop.c includes declare the doubles under their real
 * names' place, so test files call xmalloc() rather than malloc(), and the
 * probes of harness.c rather than shmget(). Include this once per test
 * program, before anything else. Being in the same translation unit, tests
 * can also look at the handle table's private state.
 */
#ifndef TEST_SHMOP_UNDER_TEST_H
#define TEST_SHMOP_UNDER_TEST_H

#define malloc test_malloc
#define calloc test_calloc
#if !defined(_WIN32)
#define shmget test_shmget
#define shmat test_shmat
#endif

#if defined(_WIN32)
#include "../../src/shmop-win.c"
#else
#include "../../src/shmop-posix.c"
#endif
#include "../../shmop.c"
#include "../../src/handles.c"
#include "../../src/copy.c"

#undef malloc
#undef calloc
#if !defined(_WIN32)
#undef shmget
#undef shmat
#endif

#include "harness.h"

#endif /* TEST_SHMOP_UNDER_TEST_H */
