<?php
declare(strict_types=1);

namespace NodejsShm;

/**
 * A section table in System V shared memory, as nodejs-shm lays it out
 * (docs/sections.md): attach by key, then read, claim, publish and wait per
 * section. Needs only shmop; claiming needs sysvsem (each section's claim
 * lock is a semaphore set the table records); FFI, when enabled, lets
 * publish() wake Node.js waiters at once. A table its manager replaced is
 * followed by readers; writers get ERR_SHM_TABLE_RETIRED and claim again.
 *
 *     $table = SectionTable::attach(0x5e000001);
 *     $prices = $table->section('prices');
 *     $prices->claim();
 *     $prices->publish(json_encode($data));
 */
final class SectionTable
{
    private const MAGIC = 'NJSHMSEC';
    private const LAYOUT_VERSION = 1;
    private const BYTE_ORDER = 0x01020304;
    private const HEADER_SIZE = 64;
    private const ENTRY_SIZE = 80;
    private const FOLLOW_SECONDS = 2.0;
    private const CONTROL_SIZE = 192;
    private const MAX_SECTIONS = 65536;

    /** @var array<string, Section> */
    private array $sections = [];
    private ?Waker $waker = null;
    private bool $wakerOpened = false;
    private bool $closed = false;

    private function __construct(
        private \Shmop $shm,
        public readonly int $key,
        public readonly bool $readOnly,
        public readonly int $mode,
        array $entries,
    ) {
        foreach ($entries as $entry) {
            $this->sections[$entry['name']] = new Section($this, $shm, $entry);
        }
    }

    /** Attaches to the table with this key; $readOnly attaches with 'a'. */
    public static function attach(int $key, bool $readOnly = false): self
    {
        $arch = php_uname('m');
        if (!in_array($arch, ['x86_64', 'amd64', 'AMD64', 'i386', 'i686', 'x86'], true)) {
            // Without fences, PHP follows the protocol safely only on a CPU that keeps loads and
            // stores in program order (docs/sections.md, section 3).
            throw new SectionsException('ERR_SHM_UNSUPPORTED', "the PHP side of sections needs an x86 CPU (this one is $arch)");
        }
        $shm = @shmop_open($key, $readOnly ? 'a' : 'w', 0, 0);
        if ($shm === false) {
            $why = error_get_last()['message'] ?? 'unknown error';
            throw new SectionsException(self::errnoName($why), sprintf('cannot attach segment 0x%08x: %s', $key & 0xffffffff, $why));
        }
        [$mode, $entries] = self::decode($key, $shm);
        return new self($shm, $key, $readOnly, $mode, $entries);
    }

    /** @return list<string> the section names, in table order */
    public function names(): array
    {
        return array_keys($this->sections);
    }

    /** @return list<Section> */
    public function sections(): array
    {
        return array_values($this->sections);
    }

    public function section(string $name): Section
    {
        if (!isset($this->sections[$name])) {
            throw new SectionsException('ERR_SHM_NO_SUCH_SECTION', sprintf(
                'no section named "%s" in table 0x%08x; it has %s', $name, $this->key & 0xffffffff, implode(', ', $this->names())));
        }
        return $this->sections[$name];
    }

    /**
     * Waits until the version of any of the named sections differs from its since version, and
     * returns [name => version] of every one that differs; [] once $timeout seconds pass (negative:
     * no limit). Polls them all with Section::wait's backoff (0.1 ms doubling to 10 ms), so a
     * publish is seen within 10 ms, whatever the number of sections. A replaced table is followed.
     * @param array<string, int> $sinceVersions section name => the version last seen
     * @return array<string, int>
     */
    public function wait(array $sinceVersions, float $timeout = -1): array
    {
        if ($this->closed) {
            throw new SectionsException('ERR_SHM_CLOSED', sprintf('the section table 0x%08x is closed', $this->key & 0xffffffff));
        }
        if ($sinceVersions === []) {
            throw new SectionsException('ERR_INVALID_ARG_VALUE', 'wait() needs at least one section: [name => version]');
        }
        $watched = [];
        foreach ($sinceVersions as $name => $since) {
            if (!is_int($since) || $since < 0) {
                throw new \TypeError(sprintf('SectionTable::wait(): the version of section "%s" must be an int >= 0, %s given', $name, get_debug_type($since)));
            }
            $watched[] = [$this->section((string) $name), $since];
        }
        $deadline = $timeout < 0 ? INF : microtime(true) + $timeout;
        $pause = Section::POLL_MIN_US;
        while (true) {
            $changed = [];
            foreach ($watched as [$section, $since]) {
                $version = $section->version(); // follows a replaced table
                if ($version !== $since) {
                    $changed[$section->name] = $version;
                }
            }
            if ($changed !== [] || microtime(true) >= $deadline) {
                return $changed;
            }
            usleep((int) min($pause, max(1, ($deadline - microtime(true)) * 1e6)));
            $pause = min($pause * 2, Section::POLL_MAX_US);
        }
    }

    /** Releases the claims taken through this table; never throws. The segment is detached when the object goes. */
    public function close(): void
    {
        foreach ($this->sections as $section) {
            try {
                $section->release();
            } catch (\Throwable) {
                // what other processes did (a removed table) does not stop a close
            }
        }
        $this->closed = true;
        $this->waker = null; // detaches the waker's attachment
        $this->wakerOpened = true;
    }

    public function isClosed(): bool
    {
        return $this->closed;
    }

    /** @internal The FFI waker (and the control words as C integers), or null without FFI. */
    public function waker(): ?Waker
    {
        if (!$this->wakerOpened) {
            $this->wakerOpened = true;
            $this->waker = Waker::open($this->key, $this->readOnly);
            // The waker attaches by key, and once this table is replaced or removed the key names
            // another segment (or none): use it only if it shows this table's header (checksum,
            // creation time, creator and laid-out size), byte for byte.
            $header = shmop_read($this->shm, 0, self::HEADER_SIZE + self::ENTRY_SIZE * count($this->sections));
            if ($this->waker !== null && !$this->waker->shows($header)) {
                $this->waker = null;
            }
        }
        return $this->waker;
    }

    /**
     * @internal After ERR_SHM_TABLE_RETIRED: a replaced table is followed to the table now at the
     * key (sections move by name; claims end); a removed one, or none found in FOLLOW_SECONDS,
     * throws ERR_SHM_TABLE_RETIRED.
     */
    public function follow(string $how): void
    {
        $deadline = microtime(true) + self::FOLLOW_SECONDS;
        $entries = null;
        while ($how === 'replaced' && $entries === null) {
            $shm = @shmop_open($this->key, $this->readOnly ? 'a' : 'w', 0, 0);
            try {
                if ($shm !== false) {
                    [, $entries] = self::decode($this->key, $shm);
                    if (unpack('V', shmop_read($shm, $entries[0]['control'] + 16, 4))[1] !== 0) {
                        $entries = null; // retired too: the next one is coming
                    }
                }
            } catch (SectionsException $e) {
                if ($e->errorCode !== 'ERR_SHM_NOT_SECTIONS') {
                    break;
                }
            }
            if ($entries === null && microtime(true) >= $deadline) {
                break;
            }
            if ($entries === null) {
                usleep(1000);
            }
        }
        if ($entries === null) {
            foreach ($this->sections as $section) {
                $section->bind(null, null);
            }
            throw self::retired($this->key, $how);
        }
        $this->shm = $shm;
        $this->waker = null;
        $this->wakerOpened = false;
        $fresh = [];
        foreach ($entries as $entry) {
            $fresh[$entry['name']] = $this->sections[$entry['name']] ?? new Section($this, $shm, $entry);
            $fresh[$entry['name']]->bind($shm, $entry);
        }
        foreach ($this->sections as $name => $section) {
            if (!isset($fresh[$name])) {
                $section->bind(null, null);
            }
        }
        $this->sections = $fresh;
    }

    /** @internal The error for a table its manager retired. */
    public static function retired(int $key, string $how, ?string $name = null): SectionsException
    {
        $what = $how === 'removed'
            ? sprintf('the section table 0x%08x was removed by its manager', $key & 0xffffffff)
            : sprintf('the section table 0x%08x was replaced by its manager', $key & 0xffffffff)
              . ($name === null ? ', and no table is at its key now' : ", and the table now at its key has no section '$name'");
        return new SectionsException('ERR_SHM_TABLE_RETIRED', "$what; attach the table again to go on");
    }

    /** Validates the header and table; returns [mode, entries]. */
    private static function decode(int $key, \Shmop $shm): array
    {
        $size = shmop_size($shm);
        $hex = sprintf('0x%08x', $key & 0xffffffff);
        if ($size < self::HEADER_SIZE || shmop_read($shm, 0, 8) !== self::MAGIC) {
            throw new SectionsException('ERR_SHM_NOT_SECTIONS', "segment $hex is not a section table");
        }
        $head = unpack('Vversion/Vorder/Vheader/Vcount/Psize/Pcreated/Vpid/Vmode', shmop_read($shm, 8, 40));
        if ($head['version'] !== self::LAYOUT_VERSION) {
            throw new SectionsException('ERR_SHM_LAYOUT_VERSION', "segment $hex holds a section table of layout version {$head['version']}; this library reads version " . self::LAYOUT_VERSION);
        }
        $corrupt = static fn (string $what) => new SectionsException('ERR_SHM_CORRUPT', "the section table in segment $hex is corrupt: $what");
        $count = $head['count'];
        if ($head['order'] !== self::BYTE_ORDER) {
            throw $corrupt('its byte-order mark is not 0x01020304 little-endian');
        }
        if ($count < 1 || $count > self::MAX_SECTIONS || $head['header'] !== self::HEADER_SIZE + self::ENTRY_SIZE * $count) {
            throw $corrupt("$count sections in a header of {$head['header']} bytes");
        }
        $laidOut = $head['size'];
        if ($laidOut < 0 || $laidOut > $size || $head['header'] > $laidOut) {
            throw $corrupt("it lays out $laidOut bytes in a segment of $size");
        }
        $header = shmop_read($shm, 0, $head['header']);
        $stored = unpack('V', $header, 60)[1];
        if (crc32(substr_replace($header, "\0\0\0\0", 60, 4)) !== $stored) {
            throw $corrupt('its checksum does not match');
        }
        $entries = [];
        $parts = [];
        for ($i = 0; $i < $count; $i++) {
            $at = self::HEADER_SIZE + self::ENTRY_SIZE * $i;
            $raw = substr($header, $at, 32);
            $name = rtrim($raw, "\0");
            if ($name === '' || str_contains($name, "\0") || !preg_match('//u', $name) || isset($entries[$name])) {
                throw $corrupt("section $i has an empty, repeated or malformed name");
            }
            $e = unpack('Pcontrol/Pcapacity/Pdata0/Pdata1', $header, $at + 32);
            $lock = unpack('lkey/lid', $header, $at + 64);
            foreach ($e as $value) {
                if ($value < 0) {
                    throw $corrupt("section '$name' has an offset beyond 2^63");
                }
            }
            if ($e['control'] % 64 !== 0 || $e['data0'] % 64 !== 24 || $e['data1'] % 64 !== 24 || $e['capacity'] < 1) {
                throw $corrupt("section '$name' is misaligned or has no capacity");
            }
            $parts[] = [$e['control'], self::CONTROL_SIZE];
            $parts[] = [$e['data0'], $e['capacity']];
            $parts[] = [$e['data1'], $e['capacity']];
            $entries[$name] = ['name' => $name, 'control' => $e['control'], 'capacity' => $e['capacity'], 'data' => [$e['data0'], $e['data1']],
                'lock' => $lock['key'], 'lockId' => $lock['id']];
        }
        usort($parts, static fn ($a, $b) => $a[0] <=> $b[0]);
        $reached = $head['header'];
        foreach ($parts as [$start, $length]) {
            if ($start < $reached || $length > $laidOut - $start) {
                throw $corrupt('its sections overlap or reach outside it');
            }
            $reached = $start + $length;
        }
        foreach ($entries as $name => $entry) {
            if (($problem = ClaimLocks::problem($key, $entry)) !== null) {
                throw $corrupt("section '$name': $problem");
            }
        }
        return [$head['mode'] & 0777, array_values($entries)];
    }

    /** The errno name for one of PHP's shmop/sysvsem warnings. */
    private static function errnoName(string $warning): string
    {
        $names = ['No such file or directory' => 'ENOENT', 'Permission denied' => 'EACCES', 'Invalid argument' => 'EINVAL',
            'File exists' => 'EEXIST', 'Cannot allocate memory' => 'ENOMEM', 'No space left on device' => 'ENOSPC'];
        foreach ($names as $text => $name) {
            if (str_contains($warning, $text)) {
                return $name;
            }
        }
        return 'EUNKNOWN';
    }
}
