<?php
declare(strict_types=1);

namespace NodejsShm;

/**
 * Checks that each section's claim lock is the semaphore set the table's
 * manager made (docs/sections.md, section 5): the set at the recorded key has
 * the recorded id, 3 semaphores, and the segment's owner and creator. sysvsem
 * cannot look at a set (sem_get even creates a missing one), so this needs
 * FFI; without it the table's checksummed record is all PHP goes by.
 * @internal
 */
final class ClaimLocks
{
    private const IPC_STAT = 2;
    private const GETVAL = 12;

    private static ?\FFI $libc = null;

    /** libc through FFI, or null where FFI cannot be used. */
    private static function libc(): ?\FFI
    {
        if (!self::checkable()) {
            return null;
        }
        try {
            return self::$libc ??= \FFI::cdef('int shmget(int key, size_t size, int flags);'
                . 'int shmctl(int id, int cmd, void *buf);'
                . 'int semget(int key, int nsems, int flags);'
                . 'int semctl(int id, int num, int cmd, ...);', 'libc.so.6');
        } catch (\FFI\Exception) {
            return null;
        }
    }

    /** Whether the checks can run here (FFI usable). */
    public static function checkable(): bool
    {
        $enabled = ini_get('ffi.enable');
        return extension_loaded('ffi') && ($enabled === '1' || ($enabled === 'preload' && PHP_SAPI === 'cli'));
    }

    /**
     * Why the claim lock of $entry is not the manager's, or null when it is (or cannot be checked).
     * @param array{name:string, lock:int, lockId:int} $entry
     */
    public static function problem(int $segmentKey, array $entry): ?string
    {
        $libc = self::libc();
        if ($libc === null) {
            return null;
        }
        $what = sprintf('its claim lock (semaphore set id %d, key 0x%08x)', $entry['lockId'], $entry['lock'] & 0xffffffff);
        $owner = self::owner($libc->shmctl($libc->shmget($segmentKey, 0, 0), self::IPC_STAT, $buffer = $libc->new('char[512]')), $buffer);
        $id = $libc->semget($entry['lock'], 0, 0);
        if ($id < 0 || $id !== $entry['lockId']) {
            return $id < 0 ? "$what cannot be used (it is missing: it was removed)" : "$what is not the set the table's manager made (another id at its key)";
        }
        $set = self::owner($libc->semctl($id, 0, self::IPC_STAT, \FFI::addr($sem = $libc->new('char[512]'))), $sem);
        $three = $libc->semctl($id, 2, self::GETVAL) >= 0 && $libc->semctl($id, 3, self::GETVAL) < 0;
        if ($owner === null || $set === null || $set['key'] !== $entry['lock'] || $set['uid'] !== $owner['uid'] || $set['cuid'] !== $owner['cuid'] || !$three) {
            return "$what is not the set the table's manager made (another key, size, owner or creator)";
        }
        return null;
    }

    /**
     * Whether a claim lock is taken (its holder lives: the kernel undoes it when
     * the holder ends, in whatever PID namespace), or null where that cannot be
     * known (no FFI, a set that is gone or may not be read).
     */
    public static function held(int $lockId): ?bool
    {
        $libc = self::libc();
        $value = $libc === null ? -1 : $libc->semctl($lockId, 0, self::GETVAL);
        return $value < 0 ? null : $value === 0;
    }

    /** The key, owner and creator at the start of an ipc_perm (x86 glibc: __key, uid, gid, cuid). */
    private static function owner(int $rc, \FFI\CData $buffer): ?array
    {
        if ($rc !== 0) {
            return null;
        }
        $ints = unpack('lkey/Vuid/Vgid/Vcuid', \FFI::string($buffer, 16));
        return ['key' => $ints['key'], 'uid' => $ints['uid'], 'cuid' => $ints['cuid']];
    }
}
