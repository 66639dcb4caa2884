<?php
declare(strict_types=1);

namespace NodejsShm;

/**
 * Section::publish(): the writer's seqlock stores (docs/sections.md, 6), as C integers through
 * the waker's attachment (FFI) or with shmop_write, and the checks before them. A trait of
 * Section, whose state it reads.
 * @internal
 */
trait SectionPublishing
{
    /**
     * Publishes $data as the next version and returns that version: docs/sections.md, 6, each
     * load and store of it one access in the protocol's order (x86 keeps loads in order, and
     * stores). With FFI the control words are loaded and stored through the waker's attachment;
     * without it, with shmop_read and shmop_write. The payload is one shmop_write either way.
     */
    public function publish(string $data): int
    {
        $this->open();
        if ($this->lostClaim) {
            throw $this->writerRetired('replaced');
        }
        $waker = $this->table->waker();
        return $waker !== null ? $this->publishThrough($waker, $data) : $this->publishWithShmop($data);
    }

    private function publishThrough(Waker $waker, string $data): int
    {
        $u32 = $waker->u32;
        $u64 = $waker->u64;
        $c = $this->control >> 2; // the control block, in u32s
        $length = strlen($data);
        $me = $this->writer($u32[$c + 4], $u64[($c >> 1) + 1], $length); // retired, claim
        $commit = $u64[$c >> 1];
        $which = 1 - ($commit & 1); // the slot readers are not reading
        $h = $c + 16 + 16 * $which; // its header, in u32s
        $seq = $u32[$h] | 1; // odd: being written (stays odd after a writer died here)
        $u32[$h] = $seq;
        if ($length > 0) {
            shmop_write($this->shm, $data, $this->data[$which]);
        }
        $version = ($commit >> 1) + 1;
        $u64[($h >> 1) + 1] = $version;
        $u64[($h >> 1) + 2] = $length;
        $u64[($h >> 1) + 3] = (int) (microtime(true) * 1e6);
        $u32[$h + 8] = $me >> 32;
        $u32[$h] = ($seq + 1) & 0xffffffff;
        $u64[$c >> 1] = $version * 2 + $which;
        // A full fence, the sleeper count (a wake only if a waiter counted itself asleep:
        // docs/sections.md, 7), then retired: set meanwhile, the manager's carry-over may have
        // missed this version (docs/sections.md, 8).
        $retired = $waker->published($this->control);
        if ($retired !== 0) {
            throw $this->writerRetired(self::how($retired));
        }
        return $version;
    }

    private function publishWithShmop(string $data): int
    {
        $shm = $this->shm;
        $control = $this->control;
        // Every load a publish needs before its stores, in one copy: commit, claim, retired and
        // both slots' seq. Each field is still one aligned load (a shmop_read of 8 bytes was
        // one memcpy too, no more atomic per word), and their order among themselves does not
        // matter: this process is the only writer of commit, claim and seq, and retired is
        // checked again after the stores.
        $line = shmop_read($shm, $control, 132);
        ['c' => $commit, 'w' => $claim, 'r' => $retired] = unpack('Pc/Pw/Vr', $line); // unpack's cost is per field
        $length = strlen($data);
        $me = $this->writer($retired, $claim, $length);
        $which = 1 - ($commit & 1);
        $slot = 64 + 64 * $which;
        $seq = unpack('V', $line, $slot)[1] | 1;
        $slot += $control;
        shmop_write($shm, pack('V', $seq), $slot);
        if ($length > 0) {
            shmop_write($shm, $data, $this->data[$which]);
        }
        $version = ($commit >> 1) + 1;
        shmop_write($shm, pack('PPPV', $version, $length, (int) (microtime(true) * 1e6), $me >> 32), $slot + 8);
        shmop_write($shm, pack('V', ($seq + 1) & 0xffffffff), $slot);
        shmop_write($shm, pack('P', $version * 2 + $which), $control);
        // No FFI: nobody to wake (waiters poll), and no fence. x86 may let this load of retired
        // pass the stores above, so the check narrows the race with a retirement but cannot
        // close it (docs/sections.md, 8).
        $retired = unpack('V', shmop_read($shm, $control + self::RETIRED, 4))[1];
        if ($retired !== 0) {
            throw $this->writerRetired(self::how($retired));
        }
        return $version;
    }

    /** A publish's checks before its stores; returns this process's claim word. */
    private function writer(int $retired, int $claim, int $length): int
    {
        if ($this->claimed && $retired !== 0) {
            throw $this->writerRetired(self::how($retired));
        }
        $me = Process::identity(); // a system call only after a fork (Process::identity)
        if (!$this->claimed || $claim !== $me) {
            throw new SectionsException('ERR_SHM_NOT_WRITER', "claim section '{$this->name}' before publishing to it");
        }
        if ($length > $this->capacity) {
            throw new SectionsException('ERR_OUT_OF_RANGE', "$length bytes do not fit section '{$this->name}' ({$this->capacity} bytes)");
        }
        return $me;
    }
}
