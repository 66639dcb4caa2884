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
    private static ?int $identity = null;
    private static int $identityPid = 0;

    public static function identity(): int
    {
        $pid = getmypid();
        if (self::$identity === null || self::$identityPid !== $pid) {
            self::$identity = ($pid << 32) | self::startTicks($pid);
            self::$identityPid = $pid;
        }
        return self::$identity;
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
