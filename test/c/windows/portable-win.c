/*
 * portable-win.c: ../portable.c, the tests every platform's branch must
 * pass, built against the Windows branch. <windows.h> (pulled in by shmop.c)
 * defines `far` and `near` as empty macros for 16-bit code; portable.c uses
 * `far` as a name, so they are undefined in between.
 */
#include "../shmop-under-test.h"
#undef far
#undef near
#include "../portable.c"
