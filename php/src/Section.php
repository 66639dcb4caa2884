<?php
declare(strict_types=1);

namespace NodejsShm;

/**
 * One section of a table: read it, or claim it and publish to it.
 * Every step follows docs/sections.md; each shmop_read/shmop_write, and with
 * FFI each load or store of a control word through the waker's attachment, is
 * one ordered access of the protocol (x86 keeps them in program order).
 */
final class Section
{
    private const CLAIM = 8;
    private const RETIRED = 16;
    private const FLAGS = 20;
    /** @internal The backoff of waits (SectionTable::wait too): 0.1 ms doubling to 10 ms. */
    public const POLL_MIN_US = 100;
    public const POLL_MAX_US = 10000;
    private const READ_TRIES = 10000;
    private const READ_MAX_NS = 100_000_000; // 100 ms of failed tries: see docs/sections.md, section 4

    public readonly string $name;
    public int $capacity;
    private int $control;
    /** @var array{0:int,1:int} */
    private array $data;
    private int $lockKey;
    private ?\SysvSemaphore $lock = null;
    private bool $claimed = false;
    /** The claim word of the process that claimed: a forked child inherits $claimed, not the lock. */
    private int $claimedBy = 0;
    private bool $lostClaim = false;
    private ?\Shmop $shm;

    /** @internal Sections come from SectionTable::section(). */
    public function __construct(private SectionTable $table, \Shmop $shm, array $entry)
    {
        $this->name = $entry['name'];
        $this->bind($shm, $entry);
    }

    /** @internal Moves the section to the table now at the key (null: it is in no table any more). */
    public function bind(?\Shmop $shm, ?array $entry): void
    {
        $this->shm = $shm;
        $this->lostClaim = $this->lostClaim || $this->claimed;
        $this->claimed = false;
        $this->lock = null;
        if ($entry !== null) {
            $this->capacity = $entry['capacity'];
            $this->control = $entry['control'];
            $this->data = $entry['data'];
            $this->lockKey = $entry['lock'];
        }
    }

    /** The committed version (0 before the first publish). */
    public function version(): int
    {
        $this->open();
        while (true) {
            // Retired, loaded after the commit: a commit that is the retirement's is never returned.
            if (($waker = $this->table->waker()) !== null) {
                $commit = $waker->u64[$this->control >> 3];
                $retired = $waker->u32[($this->control >> 2) + 4];
                $how = $retired === 0 ? null : self::how($retired);
            } else {
                $commit = $this->u64($this->control);
                $how = $this->retiredHow();
            }
            if ($how === null) {
                return $commit >> 1;
            }
            $this->table->follow($how);
            $this->open();
        }
    }

    /** Runs a reader's step; on a replaced table, follows it once and runs it again. */
    private function reading(callable $step): mixed
    {
        $this->open();
        $how = $this->retiredHow();
        if ($how === null) {
            $value = $step();
            $how = $this->retiredHow(); // the commit read may be the retirement's
            if ($how === null) {
                return $value;
            }
        }
        $this->table->follow($how);
        $this->open();
        return $step();
    }

    /** null while the table is live; else 'replaced' or 'removed'. */
    private function retiredHow(): ?string
    {
        $retired = $this->u32($this->control + self::RETIRED);
        return $retired === 0 ? null : self::how($retired);
    }

    /** What a non-zero retired word says. */
    private static function how(int $retired): string
    {
        return $retired === 2 ? 'removed' : 'replaced';
    }

    /** A writer's view of retirement: the claim ended, so it must claim again. */
    private function writerRetired(string $how): SectionsException
    {
        $this->claimed = false;
        $this->lostClaim = false;
        return new SectionsException('ERR_SHM_TABLE_RETIRED', sprintf(
            "the section table 0x%08x was %s by its manager while this process held section '%s': the claim ended, and the last publish may not have reached the new table; claim the section again (claim() follows to the table now at the key)",
            $this->table->key & 0xffffffff, $how, $this->name));
    }

    /**
     * The last complete payload.
     * @return array{version:int, data:string, publishedAt:?float, writerPid:int}
     */
    public function read(): array
    {
        $this->open();
        while (is_string($result = $this->readOnce())) {
            $this->table->follow($result); // replaced: go on with the table now at the key
            $this->open();
        }
        return $result;
    }

    /** Reads until one attempt succeeds, bounding the failed ones (docs/sections.md, 4). */
    private function readOnce(): array|string
    {
        $waker = $this->table->waker();
        $last = -1;
        $tries = 0;
        $failed = 0;
        $started = 0;
        $moved = false;
        while (true) {
            $commit = $waker !== null ? $this->attemptThrough($waker) : $this->attemptWithShmop();
            if (!is_int($commit)) {
                return $commit; // the payload, or how the table was retired
            }
            if ($commit !== $last) {
                [$last, $tries, $moved] = [$commit, 0, $moved || $started !== 0];
            } elseif (++$tries > self::READ_TRIES) {
                throw new SectionsException('ERR_SHM_CORRUPT', "section '{$this->name}' has a damaged control block");
            }
            if (++$failed > 16) { // bound the failed tries in time
                $now = hrtime(true);
                if ($started === 0) {
                    $started = $now;
                } elseif ($now - $started > self::READ_MAX_NS && !$moved) {
                    throw new SectionsException('ERR_SHM_CORRUPT', "section '{$this->name}' has a damaged control block");
                } elseif ($now - $started > self::READ_MAX_NS) {
                    throw new SectionsException('ERR_SHM_READ_STARVED', sprintf(
                        "no complete copy of section '%s' in %d ms: its writer keeps overtaking every read, or keeps the slots odd (a broken or hostile writer)",
                        $this->name, self::READ_MAX_NS / 1_000_000));
                }
                usleep(0);
            }
        }
    }

    /**
     * One attempt of docs/sections.md, 4, its loads one at a time as C integers through the
     * waker's attachment, and the payload in one shmop_read. Returns the payload, how the table
     * was retired, or the commit it saw when it must try again.
     */
    private function attemptThrough(Waker $waker): array|string|int
    {
        $u32 = $waker->u32;
        $u64 = $waker->u64;
        $c = $this->control >> 2; // the control block, in u32s
        $commit = $u64[$c >> 1];
        if (($retired = $u32[$c + 4]) !== 0) { // after the commit: a commit that is the retirement's is never used
            return self::how($retired);
        }
        $version = $commit >> 1;
        if ($version === 0) {
            return ['version' => 0, 'data' => '', 'publishedAt' => null, 'writerPid' => 0];
        }
        $h = $c + 16 + 16 * ($commit & 1); // the slot's header, in u32s
        $seq = $u32[$h];
        if ($seq & 1) {
            return $commit; // the writer lapped us: read the new commit
        }
        $length = $u64[($h >> 1) + 2];
        if ($u64[($h >> 1) + 1] !== $version || $length < 0 || $length > $this->capacity) {
            return $commit;
        }
        $published = $u64[($h >> 1) + 3];
        $pid = $u32[$h + 8];
        // shmop_read's length 0 means "to the end": an empty payload is read as ''.
        $data = $length > 0 ? shmop_read($this->shm, $this->data[$commit & 1], $length) : '';
        if ($u32[$h] !== $seq) {
            return $commit; // overwritten while we copied
        }
        if (($retired = $u32[$c + 4]) !== 0) {
            return self::how($retired); // retired meanwhile: the table now at the key is read instead
        }
        return ['version' => $version, 'data' => $data, 'publishedAt' => $published / 1e6, 'writerPid' => $pid];
    }

    /**
     * The same attempt without FFI, in four shmop_reads: the control line with both slots' seq,
     * the slot header, the payload, then retired and the seq again.
     */
    private function attemptWithShmop(): array|string|int
    {
        $shm = $this->shm;
        $control = $this->control;
        // Commit, retired and both seq words in one copy. Each is still one aligned load (a
        // shmop_read of 8 bytes was one memcpy too, no more atomic per word); their order among
        // themselves does not matter: a seq loaded before the commit is only more cautious (the
        // header and payload are loaded after it, by later calls), and a commit that is the
        // retirement's (docs/sections.md, 8) names a version no slot holds, so the header check
        // below fails and the next attempt sees retired.
        $line = shmop_read($shm, $control, 132);
        ['c' => $commit, 'r' => $retired] = unpack('Pc/x8/Vr', $line);
        if ($retired !== 0) {
            return self::how($retired);
        }
        $version = $commit >> 1;
        if ($version === 0) {
            return ['version' => 0, 'data' => '', 'publishedAt' => null, 'writerPid' => 0];
        }
        $slot = 64 + 64 * ($commit & 1);
        $seq = unpack('V', $line, $slot)[1];
        if ($seq & 1) {
            return $commit;
        }
        $h = unpack('Pversion/Plength/Ppublished/Vpid', shmop_read($shm, $control + $slot + 8, 28));
        if ($h['version'] !== $version || $h['length'] < 0 || $h['length'] > $this->capacity) {
            return $commit;
        }
        $data = $h['length'] > 0 ? shmop_read($shm, $this->data[$commit & 1], $h['length']) : '';
        // Retired and the seq again in one copy, both after the payload's.
        ['r' => $retired, 's' => $again] = unpack('Vr/@' . ($slot - 16) . '/Vs', shmop_read($shm, $control + self::RETIRED, $slot - 12));
        if ($again !== $seq) {
            return $commit;
        }
        if ($retired !== 0) {
            return self::how($retired);
        }
        return ['version' => $version, 'data' => $data, 'publishedAt' => $h['published'] / 1e6, 'writerPid' => $h['pid']];
    }

    /**
     * Becomes the section's single writer, or throws ERR_SHM_SECTION_BUSY; never waits. The claim
     * is the section's claim lock (sem_acquire($sem, true) on the set the table records), which
     * the kernel gives back when this process ends.
     */
    public function claim(): void
    {
        $this->open();
        if ($this->claimed) {
            return;
        }
        if ($this->table->readOnly) {
            throw new SectionsException('ERR_SHM_READ_ONLY', 'a table attached read-only cannot claim a section');
        }
        if (($how = $this->retiredHow()) !== null) {
            $this->table->follow($how); // claiming again on a replaced table: on the table now at the key
            $this->open();
        }
        if (!function_exists('sem_get')) {
            throw new SectionsException('ERR_SHM_UNSUPPORTED', 'claiming a section needs the sysvsem extension');
        }
        if ($this->lock === null) {
            $lock = @sem_get($this->lockKey, 1, $this->table->mode, false);
            if ($lock === false) {
                $why = error_get_last()['message'] ?? 'unknown error';
                throw new SectionsException('ERR_SHM_CORRUPT', sprintf("section '%s': cannot open its claim lock (key 0x%08x): %s", $this->name, $this->lockKey & 0xffffffff, $why));
            }
            $this->lock = $lock;
        }
        error_clear_last();
        if (!@sem_acquire($this->lock, true)) {
            if (($error = error_get_last()) !== null) { // EAGAIN (busy) warns nothing
                $this->lock = null;
                throw new SectionsException('ERR_SHM_CORRUPT', sprintf("section '%s': its claim lock (key 0x%08x) cannot be used: %s", $this->name, $this->lockKey & 0xffffffff, $error['message']));
            }
            $holder = $this->u64($this->control + self::CLAIM) >> 32;
            throw new SectionsException('ERR_SHM_SECTION_BUSY', sprintf(
                "section '%s' of table 0x%08x is claimed by %s: its claim lock is held, and the kernel frees it when the holder ends",
                $this->name, $this->table->key & 0xffffffff, $holder ? "process $holder" : 'a process that has not recorded its pid yet'));
        }
        $this->claimedBy = Process::identity();
        shmop_write($this->shm, pack('P', $this->claimedBy), $this->control + self::CLAIM);
        shmop_write($this->shm, pack('V', $this->table->waker() !== null ? 1 : 0), $this->control + self::FLAGS);
        $this->wake(); // waiters re-read who wakes them
        $this->claimed = true;
        $this->lostClaim = false;
    }

    /** Stops being the section's writer; never throws for what other processes did. */
    public function release(): void
    {
        if (!$this->claimed) {
            return;
        }
        $this->claimed = false;
        if ($this->claimedBy !== Process::identity()) {
            // A forked child: the lock is its parent's (SEM_UNDO entries are not inherited), and a
            // sem_release here would free it for others while the parent still writes.
            return;
        }
        if ($this->shm !== null && $this->u64($this->control + self::CLAIM) === $this->claimedBy) {
            shmop_write($this->shm, pack('V', 0), $this->control + self::FLAGS);
            shmop_write($this->shm, pack('P', 0), $this->control + self::CLAIM);
        }
        @sem_release($this->lock); // a removed set holds nothing to give back
        $this->wake();
    }

    public function isClaimed(): bool
    {
        return $this->claimed;
    }

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

    /**
     * Waits until the version differs from $sinceVersion, polling with backoff
     * (0.1 ms doubling to 10 ms); returns the version then. $timeout is in
     * seconds (negative: no limit); on timeout the unchanged version is returned.
     */
    public function wait(int $sinceVersion, float $timeout = -1): int
    {
        $this->open();
        $deadline = $timeout < 0 ? INF : microtime(true) + $timeout;
        $pause = self::POLL_MIN_US;
        while (($version = $this->version()) === $sinceVersion && microtime(true) < $deadline) { // version() follows
            usleep((int) min($pause, max(1, ($deadline - microtime(true)) * 1e6)));
            $pause = min($pause * 2, self::POLL_MAX_US);
        }
        return $version;
    }

    /** What a table listing shows. */
    public function info(): array
    {
        return $this->reading(fn (): array => $this->infoOnce());
    }

    private function infoOnce(): array
    {
        $claim = $this->u64($this->control + self::CLAIM);
        $commit = $this->u64($this->control);
        $slot = $this->control + 64 + 64 * ($commit & 1);
        $h = unpack('Pversion/Plength/Ppublished/Vpid', shmop_read($this->shm, $slot + 8, 28));
        $version = $commit >> 1;
        $published = $version ? $h : ['length' => 0, 'published' => 0, 'pid' => 0];
        // The shape of Node's info(): the same keys, the time as a date (UTC, microseconds).
        $us = $published['published'];
        return [
            'name' => $this->name,
            'offset' => $this->data[0],
            'capacity' => $this->capacity,
            'length' => $published['length'],
            'version' => $version,
            'writer' => $claim === 0 ? null : ['pid' => $claim >> 32, 'alive' => Process::alive($claim), 'self' => $claim === Process::identity()],
            'lastWriterPid' => $published['pid'],
            'publishedAt' => $version ? \DateTimeImmutable::createFromFormat('U.u', sprintf('%d.%06d', intdiv($us, 1000000), $us % 1000000)) : null,
        ];
    }

    /** ERR_SHM_CLOSED once the table is closed. */
    private function open(): void
    {
        if ($this->table->isClosed()) {
            throw new SectionsException('ERR_SHM_CLOSED', sprintf('the section table 0x%08x is closed', $this->table->key & 0xffffffff));
        }
        if ($this->shm === null) {
            throw SectionTable::retired($this->table->key, 'replaced', $this->name);
        }
    }

    private function wake(): void
    {
        $this->table->waker()?->wake($this->control);
    }

    private function u64(int $offset): int
    {
        return unpack('P', shmop_read($this->shm, $offset, 8))[1];
    }

    private function u32(int $offset): int
    {
        return unpack('V', shmop_read($this->shm, $offset, 4))[1];
    }
}
