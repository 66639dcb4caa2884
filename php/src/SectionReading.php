<?php
declare(strict_types=1);

namespace NodejsShm;

/**
 * Section::read(): a reader's copy of the last complete payload (docs/sections.md, 4),
 * its loads as C integers through the waker's attachment (FFI) or with shmop_read, and the
 * bound on failed attempts. A trait of Section, whose state it reads.
 * @internal
 */
trait SectionReading
{
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
}
