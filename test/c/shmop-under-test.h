/*
 * shmop-under-test.h: shmop.c compiled into the test program, with the
 * fault-injection doubles of harness.c in place of malloc, calloc, shmget and
 * shmat. Each double is the real call until a test arms a fault.
 *
 * Include it once per test program, after harness.h. Being in the same
 * translation unit, tests can also look at the handle table's private state.
 */
#ifndef TEST_SHMOP_UNDER_TEST_H
#define TEST_SHMOP_UNDER_TEST_H

#include "harness.h"

/* Every header shmop.c includes, declared first under its real names. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#if !defined(_WIN32)
#include <sched.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#endif

#define malloc test_malloc
#define calloc test_calloc
#if !defined(_WIN32)
#define shmget test_shmget
#define shmat test_shmat
#endif

#include "../../shmop.c"

#undef malloc
#undef calloc
#if !defined(_WIN32)
#undef shmget
#undef shmat
#endif

#endif /* TEST_SHMOP_UNDER_TEST_H */
