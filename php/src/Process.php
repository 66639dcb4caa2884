<?php
declare(strict_types=1);

namespace NodejsShm;

/**
 * Who holds a claim: pid << 32 | the low 32 bits of the process's start time
 * (clock ticks since boot, field 22 of /proc/<pid>/stat), so that a reused pid
 * is not taken for a live claimant. Where /proc is missing the start is 0 and
 * the pid alone decides.
 * @internal
 */
final class Process
{
    private const PROT_READ_WRITE = 3;
    private const MAP_PRIVATE_ANONYMOUS = 0x22;
    private const MADV_WIPEONFORK = 18;

    private static ?int $identity = null;
    private static int $identityPid = 0;
    private static ?\FFI $libc = null;
    /** @var ?\FFI\CData int * into a page the kernel zero-fills in a forked child (MADV_WIPEONFORK) */
    private static ?\FFI\CData $forkMark = null;
    private static bool $markTried = false;

    /**
     * This process's claim word. getmypid() is a system call (1 µs on some VMs), and a publish
     * checks its claim every time, so the identity is learnt once and asked again only after a
     * fork: PHP has no fork hook, but a MADV_WIPEONFORK page (through FFI; Linux 4.14+, the fork
     * detection of OpenSSL's and LibreSSL's random generators) reads as zeros in a child. Without
     * FFI, or where the kernel refuses the advice, every call asks getmypid().
     */
    public static function identity(): int
    {
        if (self::$forkMark !== null && self::$forkMark[0] === 1) {
            return self::$identity; // not forked since the mark was set with this identity
        }
        $pid = getmypid();
        if (self::$identity === null || self::$identityPid !== $pid) {
            self::$identity = ($pid << 32) | self::startTicks($pid);
            self::$identityPid = $pid;
        }
        self::markUnforked();
        return self::$identity;
    }

    /** Sets the fork mark (making its page on first use), if FFI and the kernel allow one. */
    private static function markUnforked(): void
    {
        if (self::$forkMark === null && !self::$markTried) {
            self::$markTried = true;
            if (!ClaimLocks::checkable()) {
                return;
            }
            try {
                self::$libc = \FFI::cdef('void *mmap(void *address, size_t length, int protection, int flags, int fd, long offset);'
                    . 'int madvise(void *address, size_t length, int advice);'
                    . 'int munmap(void *address, size_t length);', 'libc.so.6');
                $page = \FFI::cast('char *', self::$libc->mmap(null, 4096, self::PROT_READ_WRITE, self::MAP_PRIVATE_ANONYMOUS, -1, 0));
                if (\FFI::cast('intptr_t', $page)->cdata === -1) {
                    return;
                }
                if (self::$libc->madvise($page, 4096, self::MADV_WIPEONFORK) !== 0) {
                    self::$libc->munmap($page, 4096); // an older kernel (EINVAL): ask getmypid() every time
                    return;
                }
                self::$forkMark = \FFI::cast('int *', $page);
            } catch (\FFI\Exception) {
                return;
            }
        }
        if (self::$forkMark !== null) {
            self::$forkMark[0] = 1;
        }
    }

    /** Whether the process a claim word names is still running. */
    public static function alive(int $claim): bool
    {
        $pid = $claim >> 32;
        if (is_dir('/proc/self')) {
            if (!is_dir("/proc/$pid")) {
                return false;
            }
        } elseif (function_exists('posix_kill') && !posix_kill($pid, 0) && posix_get_last_error() === 3 /* ESRCH */) {
            return false;
        }
        $start = $claim & 0xffffffff;
        $now = self::startTicks($pid);
        return $start === 0 || $now === 0 || $now === $start;
    }

    private static function startTicks(int $pid): int
    {
        $stat = @file_get_contents("/proc/$pid/stat");
        if ($stat === false || ($close = strrpos($stat, ')')) === false) {
            return 0;
        }
        $fields = explode(' ', trim(substr($stat, $close + 1)));
        return isset($fields[19]) ? ((int) $fields[19]) & 0xffffffff : 0;
    }
}
