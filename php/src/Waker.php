<?php
declare(strict_types=1);

namespace NodejsShm;

/**
 * Wakes Node.js waiters after a publish with futex(FUTEX_WAKE), through FFI:
 * shmop gives no address, so this attaches the segment a second time to name
 * the futex word. After a publish it wakes only when the section's sleeper
 * count is not 0, with a full fence between the commit and that count
 * (docs/sections.md, 7). The same attachment gives reads and publishes the
 * control words as C integers ($u32, $u64): a load or store there costs
 * ~20 ns, a shmop_read or shmop_write with its unpack or pack ~85 ns
 * (Section). It is read-write, read-only for a table attached read-only. Without FFI (or where it is disabled) Node.js waiters
 * poll and see a publish within 10 ms.
 * @internal
 */
final class Waker
{
    private const FUTEX_WAKE = 1;
    private const SYS_FUTEX = ['x86_64' => 202, 'amd64' => 202, 'i386' => 240, 'i686' => 240];
    private const SHM_RDONLY = 010000;

    private static ?\FFI $libc = null; // one binding of libc for the process
    private static ?\FFI $fencing = null; // pthread_spin_trylock, whose xchg is a full fence on x86
    private static ?\FFI\CData $fenceWord = null; // the address of the word the exchange is made on

    /** uint32_t * and uint64_t * at the segment's start: $u32[$offset >> 2], $u64[$offset >> 3] */
    public readonly \FFI\CData $u32;
    public readonly \FFI\CData $u64;

    private function __construct(private \FFI\CData $base, private int $syscall)
    {
        $this->u32 = \FFI::cast('uint32_t *', $base);
        $this->u64 = \FFI::cast('uint64_t *', $base);
    }

    /** Detaches the second attachment with the waker. */
    public function __destruct()
    {
        self::$libc->shmdt($this->base);
    }

    /** A waker for the segment with this key (attached read-only for a read-only table), or null when FFI cannot be used. */
    public static function open(int $key, bool $readOnly = false): ?self
    {
        $syscall = self::SYS_FUTEX[php_uname('m')] ?? null;
        if ($syscall === null || !ClaimLocks::checkable()) {
            return null;
        }
        try {
            self::$libc ??= \FFI::cdef('int shmget(int key, size_t size, int flags);'
                . 'void *shmat(int id, const void *address, int flags);'
                . 'int shmdt(const void *address);'
                . 'long syscall(long number, ...);', 'libc.so.6');
            self::$fencing ??= self::fencing();
            $id = self::$libc->shmget($key, 0, 0);
            $base = $id < 0 ? null : \FFI::cast('char *', self::$libc->shmat($id, null, $readOnly ? self::SHM_RDONLY : 0));
            if ($base === null || \FFI::cast('intptr_t', $base)->cdata === -1) {
                return null;
            }
            return new self($base, $syscall);
        } catch (\FFI\Exception) {
            return null;
        }
    }

    /** Whether this attachment begins with $header. */
    public function shows(string $header): bool
    {
        return \FFI::string($this->base, strlen($header)) === $header;
    }

    /** pthread_spin_trylock (libc since glibc 2.34, libpthread before), or null: then every publish wakes. */
    private static function fencing(): ?\FFI
    {
        foreach (['libc.so.6', 'libpthread.so.0'] as $library) {
            try {
                $ffi = \FFI::cdef('int pthread_spin_trylock(volatile int *lock);', $library);
                self::$fenceWord = \FFI::addr($ffi->new('int', false, true)); // persistent: lives with the process
                return $ffi;
            } catch (\FFI\Exception) {
            }
        }
        return null;
    }

    /**
     * After a publish: a full fence (an atomic exchange; PHP has no fence of
     * its own), then the sleeper count and the retired word, each one 4-byte
     * load through this attachment; a wake only if the count is not 0. Returns the retired word, loaded
     * after the fence (docs/sections.md, 6 and 8).
     */
    public function published(int $control): int
    {
        $word = $control >> 2;
        if (self::$fencing === null) {
            $this->wake($control); // no fence: the count could be read too early, so always wake
            return $this->u32[$word + 4];
        }
        self::$fencing->pthread_spin_trylock(self::$fenceWord);
        if ($this->u32[$word + 6] !== 0) {
            $this->wake($control);
        }
        return $this->u32[$word + 4];
    }

    /** Wakes every thread asleep on the commit word of the section at $control. */
    public function wake(int $control): void
    {
        self::$libc->syscall($this->syscall, $this->base + $control, self::FUTEX_WAKE, 0x7fffffff, null, null, 0);
    }
}
