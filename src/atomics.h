/*
 * atomics.h: the atomic accesses of the section protocol, with C11's
 * meanings (docs/sections.md, section 3), for GCC/Clang (mingw-w64 included)
 * and MSVC: acquire loads and release stores; relaxed loads and stores (one
 * untorn access, no ordering); the two fences of the seqlock; a full fence
 * (retirement, the sleeper count) and an atomic add (the sleeper count); a
 * compare-exchange. Every control-block word another process may touch at
 * the same time goes through these; payloads are copied plainly, and the
 * seqlock decides whether a copy counts.
 */
#ifndef SHMSECT_ATOMICS_H
#define SHMSECT_ATOMICS_H

#include <stdint.h>

#if defined(_MSC_VER)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <intrin.h>
#include <windows.h> /* MemoryBarrier */
#define ATOMICS_INLINE static __inline
#else
#define ATOMICS_INLINE static inline
#endif

#if defined(_MSC_VER)
/*
 * MSVC. Relaxed: the compiler makes exactly one access for each volatile one,
 * and an aligned 4- or 8-byte access is one untorn instruction on x64 and
 * ARM64. On x86 only the 4-byte one is (MSVC may split a volatile 8-byte
 * access into two 4-byte ones), so there 8-byte loads and stores are lock
 * cmpxchg8b (below).
 *
 * Order. x86 and x64 are TSO: the processor keeps loads in order with later
 * loads and stores, and stores in order with earlier loads and stores. That
 * is all that acquire, release and the two fences ask (only seq_cst would
 * need more, store-to-load order, and nothing here asks for it), so there
 * order() only stops the compiler (_ReadWriteBarrier, which holds whether
 * volatile means /volatile:ms or /volatile:iso). ARM64 reorders all of them:
 * order() is a barrier instruction there (MemoryBarrier: dmb). ARM64EC
 * defines _M_X64 but runs on ARM64. _InterlockedCompareExchange64 is a full
 * barrier on every target, more than acq_rel.
 */
#if (defined(_M_IX86) || defined(_M_X64)) && !defined(_M_ARM64EC)
ATOMICS_INLINE void order(void) { _ReadWriteBarrier(); }
#else
ATOMICS_INLINE void order(void) { MemoryBarrier(); }
#endif

#if defined(_M_IX86)
/* Exchanging 0 for 0 never changes the word and returns it whole. lock
   cmpxchg8b writes even so: fine, Windows segments are always mapped
   read-write (src/shmop-win.c). */
ATOMICS_INLINE uint64_t relaxed_load64(const uint64_t *p) {
  return (uint64_t)_InterlockedCompareExchange64((volatile long long *)p, 0, 0);
}
ATOMICS_INLINE void relaxed_store64(uint64_t *p, uint64_t v) {
  long long seen = (long long)relaxed_load64(p), was;
  for (;;) {
    was = _InterlockedCompareExchange64((volatile long long *)p, (long long)v, seen);
    if (was == seen) return;
    seen = was;
  }
}
#else
ATOMICS_INLINE uint64_t relaxed_load64(const uint64_t *p) { return *(const volatile uint64_t *)p; }
ATOMICS_INLINE void relaxed_store64(uint64_t *p, uint64_t v) { *(volatile uint64_t *)p = v; }
#endif

ATOMICS_INLINE uint32_t relaxed_load32(const uint32_t *p) { return *(const volatile uint32_t *)p; }
ATOMICS_INLINE int relaxed_load_int(const volatile int *p) { return *p; }
ATOMICS_INLINE void relaxed_store32(uint32_t *p, uint32_t v) { *(volatile uint32_t *)p = v; }

/* Acquire: nothing after the load moves before it. Release: nothing before
   the store moves after it. */
ATOMICS_INLINE uint64_t load64(const uint64_t *p) {
  uint64_t v = relaxed_load64(p);
  order();
  return v;
}
ATOMICS_INLINE uint32_t load32(const uint32_t *p) {
  uint32_t v = relaxed_load32(p);
  order();
  return v;
}
ATOMICS_INLINE void store64(uint64_t *p, uint64_t v) {
  order();
  relaxed_store64(p, v);
}
ATOMICS_INLINE void store32(uint32_t *p, uint32_t v) {
  order();
  relaxed_store32(p, v);
}
/* The reader's fence keeps its copy's loads before the seq it loads next;
   the writer's keeps the odd seq before the payload's stores. */
ATOMICS_INLINE void fence_acquire(void) { order(); }
ATOMICS_INLINE void fence_release(void) { order(); }
/* A full fence: stores before it are visible before loads after it (the
   handshakes of retirement and of the sleeper count, sections.c).
   MemoryBarrier is a locked instruction on x86 and x64, dmb on ARM64. */
ATOMICS_INLINE void fence_full(void) { MemoryBarrier(); }
/* Adds delta to *p atomically (a full barrier). */
ATOMICS_INLINE void add32(uint32_t *p, int32_t delta) {
  _InterlockedExchangeAdd((volatile long *)p, (long)delta);
}

/* Replaces *p by desired if it holds expected; returns whether it did. */
ATOMICS_INLINE int cas64(uint64_t *p, uint64_t expected, uint64_t desired) {
  return (uint64_t)_InterlockedCompareExchange64((volatile long long *)p, (long long)desired,
                                                 (long long)expected) == expected;
}

#else
/* GCC and Clang, mingw-w64 included: the C11 orders as builtins. */
ATOMICS_INLINE uint64_t relaxed_load64(const uint64_t *p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}
ATOMICS_INLINE uint32_t relaxed_load32(const uint32_t *p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}
ATOMICS_INLINE int relaxed_load_int(const volatile int *p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}
ATOMICS_INLINE void relaxed_store64(uint64_t *p, uint64_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
ATOMICS_INLINE void relaxed_store32(uint32_t *p, uint32_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
ATOMICS_INLINE uint64_t load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
ATOMICS_INLINE uint32_t load32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
ATOMICS_INLINE void store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
ATOMICS_INLINE void store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
ATOMICS_INLINE void fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
ATOMICS_INLINE void fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
/* A full fence: stores before it are visible before loads after it (the
   handshakes of retirement and of the sleeper count, sections.c). */
ATOMICS_INLINE void fence_full(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
/* Adds delta to *p atomically (sequentially consistent). */
ATOMICS_INLINE void add32(uint32_t *p, int32_t delta) {
  __atomic_fetch_add(p, (uint32_t)delta, __ATOMIC_SEQ_CST);
}

/* Replaces *p by desired if it holds expected; returns whether it did. */
ATOMICS_INLINE int cas64(uint64_t *p, uint64_t expected, uint64_t desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
#endif

/* Tells the CPU this is a spin-wait loop (x86 pause, ARM64 yield): it saves
   power and lets a sibling hyper-thread run; elsewhere, nothing. */
#if defined(_MSC_VER) && (defined(_M_IX86) || defined(_M_X64))
ATOMICS_INLINE void cpu_pause(void) { _mm_pause(); }
#elif defined(_MSC_VER) && defined(_M_ARM64)
ATOMICS_INLINE void cpu_pause(void) { __yield(); }
#elif defined(__i386__) || defined(__x86_64__)
ATOMICS_INLINE void cpu_pause(void) { __builtin_ia32_pause(); }
#elif defined(__aarch64__) || defined(__arm__)
ATOMICS_INLINE void cpu_pause(void) { __asm__ __volatile__("yield" ::: "memory"); }
#else
ATOMICS_INLINE void cpu_pause(void) {}
#endif

#endif /* SHMSECT_ATOMICS_H */
