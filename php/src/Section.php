<?php
declare(strict_types=1);

namespace NodejsShm;

/**
 * One section of a table: read it, or claim it and publish to it.
 * Every step follows docs/sections.md; each shmop_read/shmop_write is one
 * ordered access of the protocol (x86 keeps them in program order).
 */
final class Section
{
    private const CLAIM = 8;
    private const SLEEPERS = 16;
    private const FLAGS = 20;
    private const POLL_MIN_US = 100;
    private const POLL_MAX_US = 10000;
    private const READ_TRIES = 10000;

    public readonly string $name;
    public readonly int $capacity;
    private int $control;
    /** @var array{0:int,1:int} */
    private array $data;
    private bool $claimed = false;

    /** @internal Sections come from SectionTable::section(). */
    public function __construct(private SectionTable $table, private \Shmop $shm, array $entry)
    {
        $this->name = $entry['name'];
        $this->capacity = $entry['capacity'];
        $this->control = $entry['control'];
        $this->data = $entry['data'];
    }

    /** The committed version (0 before the first publish). */
    public function version(): int
    {
        $this->open();
        return $this->u64($this->control) >> 1;
    }

    /**
     * The last complete payload.
     * @return array{version:int, data:string, publishedAt:?float, writerPid:int}
     */
    public function read(): array
    {
        $this->open();
        $last = -1;
        $tries = 0;
        while (true) {
            $commit = $this->u64($this->control);
            if ($commit !== $last) {
                [$last, $tries] = [$commit, 0];
            } elseif (++$tries > self::READ_TRIES) {
                throw new SectionsException('ERR_SHM_CORRUPT', "section '{$this->name}' has a damaged control block");
            }
            $version = $commit >> 1;
            if ($version === 0) {
                return ['version' => 0, 'data' => '', 'publishedAt' => null, 'writerPid' => 0];
            }
            $slot = $this->control + 64 + 64 * ($commit & 1);
            $seq = $this->u32($slot);
            if ($seq & 1) {
                continue; // the writer lapped us: read the new commit
            }
            $h = unpack('Pversion/Plength/Ppublished/Vpid', shmop_read($this->shm, $slot + 8, 28));
            if ($h['version'] !== $version || $h['length'] < 0 || $h['length'] > $this->capacity) {
                continue;
            }
            // shmop_read's length 0 means "to the end": an empty payload is read as ''.
            $data = $h['length'] > 0 ? shmop_read($this->shm, $this->data[$commit & 1], $h['length']) : '';
            if ($this->u32($slot) !== $seq) {
                continue; // overwritten while we copied
            }
            return ['version' => $version, 'data' => $data, 'publishedAt' => $h['published'] / 1e6, 'writerPid' => $h['pid']];
        }
    }

    /** Becomes the section's single writer, or throws ERR_SHM_SECTION_BUSY. */
    public function claim(): void
    {
        $this->open();
        if ($this->claimed) {
            return;
        }
        if ($this->table->readOnly) {
            throw new SectionsException('ERR_SHM_READ_ONLY', 'a table attached read-only cannot claim a section');
        }
        $me = Process::identity();
        $wakes = $this->table->waker() !== null;
        $holder = $this->table->underLock(function () use ($me, $wakes): int {
            $current = $this->u64($this->control + self::CLAIM);
            if ($current !== 0 && ($current === $me || Process::alive($current))) {
                return $current;
            }
            shmop_write($this->shm, pack('P', $me), $this->control + self::CLAIM);
            shmop_write($this->shm, pack('V', $wakes ? 1 : 0), $this->control + self::FLAGS);
            return 0;
        });
        $this->wake(); // waiters re-read who wakes them
        if ($holder !== 0) {
            throw new SectionsException('ERR_SHM_SECTION_BUSY', sprintf(
                "section '%s' of table 0x%08x is claimed by process %d, which is alive", $this->name, $this->table->key & 0xffffffff, $holder >> 32));
        }
        $this->claimed = true;
    }

    /** Stops being the section's writer. */
    public function release(): void
    {
        if (!$this->claimed) {
            return;
        }
        $this->claimed = false;
        $me = Process::identity();
        $this->table->underLock(function () use ($me): void {
            if ($this->u64($this->control + self::CLAIM) === $me) {
                shmop_write($this->shm, pack('V', 0), $this->control + self::FLAGS);
                shmop_write($this->shm, pack('P', 0), $this->control + self::CLAIM);
            }
        });
        $this->wake();
    }

    public function isClaimed(): bool
    {
        return $this->claimed;
    }

    /** Publishes $data as the next version and returns that version. */
    public function publish(string $data): int
    {
        $this->open();
        // One getmypid() per publish (PHP has no fork hook to forget a cached pid): the claim check.
        $me = Process::identity();
        if (!$this->claimed || $this->u64($this->control + self::CLAIM) !== $me) {
            throw new SectionsException('ERR_SHM_NOT_WRITER', "claim section '{$this->name}' before publishing to it");
        }
        $length = strlen($data);
        if ($length > $this->capacity) {
            throw new SectionsException('ERR_OUT_OF_RANGE', "$length bytes do not fit section '{$this->name}' ({$this->capacity} bytes)");
        }
        $commit = $this->u64($this->control);
        $which = 1 - ($commit & 1); // the slot readers are not reading
        $slot = $this->control + 64 + 64 * $which;
        $seq = $this->u32($slot) | 1; // odd: being written (stays odd after a writer died here)
        shmop_write($this->shm, pack('V', $seq), $slot);
        if ($length > 0) {
            shmop_write($this->shm, $data, $this->data[$which]);
        }
        $version = ($commit >> 1) + 1;
        shmop_write($this->shm, pack('PPPV', $version, $length, (int) (microtime(true) * 1e6), $me >> 32), $slot + 8);
        shmop_write($this->shm, pack('V', ($seq + 1) & 0xffffffff), $slot);
        shmop_write($this->shm, pack('P', $version * 2 + $which), $this->control);
        // Wake only if a waiter counted itself asleep (docs/sections.md, 7): no system call otherwise.
        $this->table->waker()?->wakeSleepers($this->control, fn (): int => $this->u32($this->control + self::SLEEPERS));
        return $version;
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
        while (($version = $this->version()) === $sinceVersion && microtime(true) < $deadline) {
            usleep((int) min($pause, max(1, ($deadline - microtime(true)) * 1e6)));
            $pause = min($pause * 2, self::POLL_MAX_US);
        }
        return $version;
    }

    /** What a table listing shows. */
    public function info(): array
    {
        $this->open();
        $claim = $this->u64($this->control + self::CLAIM);
        $commit = $this->u64($this->control);
        $slot = $this->control + 64 + 64 * ($commit & 1);
        $h = unpack('Pversion/Plength/Ppublished/Vpid', shmop_read($this->shm, $slot + 8, 28));
        $published = $commit >> 1 ? $h : ['length' => 0, 'published' => 0, 'pid' => 0];
        return [
            'name' => $this->name,
            'offset' => $this->data[0],
            'capacity' => $this->capacity,
            'length' => $published['length'],
            'version' => $commit >> 1,
            'writer' => $claim === 0 ? null : ['pid' => $claim >> 32, 'alive' => Process::alive($claim)],
            'publishedAt' => $published['published'] ? $published['published'] / 1e6 : null,
        ];
    }

    /** ERR_SHM_CLOSED once the table is closed. */
    private function open(): void
    {
        if ($this->table->isClosed()) {
            throw new SectionsException('ERR_SHM_CLOSED', sprintf('the section table 0x%08x is closed', $this->table->key & 0xffffffff));
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
