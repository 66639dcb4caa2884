<?php
declare(strict_types=1);

namespace NodejsShm;

/**
 * One section of a table: read it, or claim it and publish to it. This file holds its state,
 * claim, release, version, wait and info; read() is SectionReading's, publish()
 * SectionPublishing's. Every step follows docs/sections.md; each shmop_read/shmop_write, and with
 * FFI each load or store of a control word through the waker's attachment, is
 * one ordered access of the protocol (x86 keeps them in program order).
 */
final class Section
{
    use SectionReading;
    use SectionPublishing;

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
    private int $lockId;
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
            $this->lockId = $entry['lockId'];
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
            'writer' => $claim === 0 ? null : ['pid' => $claim >> 32, 'alive' => ClaimLocks::held($this->lockId) ?? Process::alive($claim), 'self' => $claim === Process::identity()],
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
