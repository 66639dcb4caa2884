<?php
/*
 * phplayout.php: PHP's copies of a whole 100 KB payload at the sections'
 * layout (data areas at 24 mod 64) and at every other offset, timed inside PHP
 * with hrtime(true) (bench/phplayout.js runs it and reports; why 24: docs/performance.md).
 *
 * shmop_read() copies into a new string and shmop_write() from one; a string
 * of that size is a page-aligned allocation whose bytes start 24 bytes in
 * (the zend_string header), so the copy's distance (dst - src) mod 4096 is
 * 24 - offset for a read and offset - 24 for a write: a multiple of 64 at the
 * sections' layout, and 1..63 (glibc memcpy's rep-movsb trap on some CPUs)
 * for reads at offsets 0..23 mod 64 and writes at 25..63 mod 64.
 *
 * Input (one JSON object on stdin): { key, size, offsets, rounds, sampleMs, protocol? }
 *   key: a section table with a section 'data' of at least size bytes (and,
 *   for protocol, the sections 'publish' of 100 KB and 'read<bytes>' per size)
 *   protocol: true times Section::publish and Section::read at 16 B, 10 KB
 *   and 100 KB instead of the offsets, beside their floors (see below)
 * Output (one JSON object on stdout): per case and clock (wall: hrtime;
 * cpu: getrusage user + system, steadier on a shared machine), the median ns
 * per call over rounds and every round's figure; and where FFI can tell, the
 * page offsets of the strings PHP copies from and into.
 */
declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

use NodejsShm\SectionTable;

$in = json_decode(stream_get_contents(STDIN), true);
$size = $in['size'];
$payload = str_repeat("\x6c", $size);

// A plain segment for the offset sweep: private, marked for deletion at once
// (the mapping stays usable; nothing outlives this process).
$plain = shmop_open(0, 'c', 0600, $size + 4096);
if ($plain === false) {
    fwrite(STDERR, "cannot create a private shmop segment\n");
    exit(1);
}
shmop_delete($plain);
shmop_write($plain, str_repeat("\x6d", $size + 4096), 0);

$table = SectionTable::attach($in['key']);
$section = $table->section('data');
$section->claim();
$section->publish($payload);
$dataOffset = $section->info()['offset'];

/* Where PHP's strings keep their bytes (FFI: memchr returns the address it is given). */
$where = null;
if (extension_loaded('ffi')) {
    try {
        $libc = FFI::cdef('uintptr_t memchr(const void *s, int c, size_t n);', 'libc.so.6');
        $page = static fn (string $s): int => $libc->memchr($s, ord($s[0]), 1) % 4096;
        $read = shmop_read($plain, 0, $size);
        $where = ['payloadString' => $page($payload), 'shmopReadString' => $page($read), 'sectionReadString' => $page($section->read()['data'])];
        unset($read);
    } catch (Throwable $e) {
        $where = ['error' => $e->getMessage()];
    }
}

$cases = [];
$tableShm = (fn () => $this->shm)->call($section);
if (empty($in['protocol'])) {
    $cases['Section::read'] = static fn () => $section->read();
    $cases['Section::publish'] = static fn () => $section->publish($payload);
    foreach ($in['offsets'] as $o) {
        $cases["shmop_read@$o"] = static fn () => shmop_read($plain, $o, $size);
    }
    foreach ($in['offsets'] as $o) {
        $cases["shmop_write@$o"] = static fn () => shmop_write($plain, $payload, $o);
    }
    // The same calls on the table's own segment, at the section's data area.
    $cases['shmop_read@section'] = static fn () => shmop_read($tableShm, $dataOffset, $size);
    $cases['shmop_write@section'] = static fn () => shmop_write($tableShm, $payload, $dataOffset);
} else {
    $cases += protocolCases($table, $tableShm, $in['key']);
}

/**
 * Section::publish and Section::read at each size, beside what they cannot avoid:
 * - shmop_write / shmop_read: the bare copy of the payload, at the section's data area;
 * - publish floor (shmop): the protocol's accesses as PHP's shmop API makes them, with no PHP
 *   logic around them (constant strings, no pack or unpack): one shmop_read of the control line
 *   (commit, claim, retired, both seq), the seq made odd, the payload, the slot header, the seq
 *   made even, the commit, and one shmop_read of retired and the sleeper count after them;
 * - publish floor (FFI), where FFI is usable: the same accesses as Section::publish makes them
 *   then: the payload's shmop_write, the control words loaded and stored as C integers through a
 *   second attachment, and the full fence (pthread_spin_trylock) a wake needs;
 * - read floor (shmop): a read's four copies without FFI: the control line, the slot header, the
 *   payload, retired and the seq again;
 * - read floor (FFI), where FFI is usable: a read's accesses as Section::read makes them then:
 *   its ten loads as C integers and the payload's shmop_read;
 * - getmypid(): the system call a publish without FFI makes to check its claim.
 * The floors write to a private segment laid out like one section (control block at 0, data at
 * 280: 24 mod 64), never to the table.
 */
function protocolCases(SectionTable $table, Shmop $tableShm, int $key): array
{
    $sizes = [16, 10240, 102400];
    $publish = $table->section('publish');
    $publish->claim();
    $publishData = $publish->info()['offset'];
    $floor = shmop_open(0, 'c', 0600, 280 + 102400);
    shmop_delete($floor);
    $ffi = null;
    if (extension_loaded('ffi') && $table->waker() !== null) {
        $libc = FFI::cdef('int shmget(int key, size_t size, int flags); void *shmat(int id, const void *address, int flags);'
            . 'int shmctl(int id, int cmd, void *buffer); int pthread_spin_trylock(volatile int *lock);', 'libc.so.6');
        $id = $libc->shmget(0, 192, 0600 | 01000); // IPC_PRIVATE, IPC_CREAT
        $segment = $libc->shmat($id, null, 0);
        $libc->shmctl($id, 0, null); // IPC_RMID: gone when this process ends
        $ffi = ['libc' => $libc, 'u32' => FFI::cast('uint32_t *', $segment), 'u64' => FFI::cast('uint64_t *', $segment),
            'fence' => FFI::addr($libc->new('int', false, true))];
    }
    [$odd, $even, $header, $commit] = [pack('V', 1), pack('V', 2), pack('PPPV', 1, 16, 0, 1), pack('P', 3)];
    $cases = ['getmypid()' => static fn () => getmypid()];
    foreach ($sizes as $n) {
        $payload = str_repeat("\x6e", $n);
        $reader = $table->section("read$n");
        $reader->claim();
        $reader->publish($payload);
        $readData = $reader->info()['offset'];
        $cases["publish@$n"] = static fn () => $publish->publish($payload);
        $cases["shmop_write@$n"] = static fn () => shmop_write($tableShm, $payload, $publishData);
        $cases["publishFloorShmop@$n"] = static function () use ($floor, $payload, $odd, $even, $header, $commit): void {
            shmop_read($floor, 0, 132);
            shmop_write($floor, $odd, 128);
            shmop_write($floor, $payload, 280);
            shmop_write($floor, $header, 136);
            shmop_write($floor, $even, 128);
            shmop_write($floor, $commit, 0);
            shmop_read($floor, 16, 12);
        };
        if ($ffi !== null) {
            $cases["publishFloorFfi@$n"] = static function () use ($floor, $payload, $ffi): int {
                ['u32' => $u32, 'u64' => $u64] = $ffi;
                $loaded = $u32[4] + $u64[1] + $u64[0] + $u32[32]; // retired, claim, commit, seq
                $u32[32] = 1;
                shmop_write($floor, $payload, 280);
                $u64[17] = 1;
                $u64[18] = 16;
                $u64[19] = 0;
                $u32[40] = 1;
                $u32[32] = 2;
                $u64[0] = 3;
                $ffi['libc']->pthread_spin_trylock($ffi['fence']);
                return $loaded + $u32[6] + $u32[4]; // sleepers, retired
            };
        }
        $cases["read@$n"] = static fn () => $reader->read();
        $cases["shmop_read@$n"] = static fn () => shmop_read($tableShm, $readData, $n);
        if ($ffi !== null) {
            $cases["readFloorFfi@$n"] = static function () use ($floor, $n, $ffi): int {
                ['u32' => $u32, 'u64' => $u64] = $ffi;
                $loaded = $u64[0] + $u32[4] + $u32[16] + $u64[9] + $u64[10] + $u64[11] + $u32[24]; // commit, retired, seq, header
                $data = shmop_read($floor, 280, $n);
                return strlen($data) + $loaded + $u32[16] + $u32[4]; // seq, retired
            };
        }
        $cases["readFloorShmop@$n"] = static function () use ($floor, $n): void {
            shmop_read($floor, 0, 132);
            shmop_read($floor, 136, 28);
            shmop_read($floor, 280, $n);
            shmop_read($floor, 16, 52);
        };
    }
    return $cases;
}

/** CPU time of this process (user + system) in nanoseconds. */
function cpuNs(): float
{
    $u = getrusage();
    return ($u['ru_utime.tv_sec'] + $u['ru_stime.tv_sec']) * 1e9 + ($u['ru_utime.tv_usec'] + $u['ru_stime.tv_usec']) * 1e3;
}

/** [wall, cpu] nanoseconds per call over $iters calls. */
function sample(callable $fn, int $iters): array
{
    $c = cpuNs();
    $t = hrtime(true);
    for ($i = 0; $i < $iters; $i++) {
        $fn();
    }
    $wall = (hrtime(true) - $t) / $iters;
    return [$wall, (cpuNs() - $c) / $iters];
}

// Warm up and size each case's samples.
$iters = [];
foreach ($cases as $name => $fn) {
    sample($fn, 20);
    $one = sample($fn, 20)[0];
    $iters[$name] = max(1, (int) round($in['sampleMs'] * 1e6 / max($one, 1)));
}

$names = array_keys($cases);
$n = count($names);
$perRound = array_fill_keys($names, []);
$cpuRound = array_fill_keys($names, []);
for ($r = 0; $r < $in['rounds']; $r++) {
    $start = ($r * 7) % $n;
    for ($k = 0; $k < $n; $k++) {
        $j = $r % 2 ? ($start + $k) % $n : ($start - $k + $n) % $n;
        $name = $names[$j];
        [$perRound[$name][], $cpuRound[$name][]] = sample($cases[$name], $iters[$name]);
    }
}

function median(array $xs): float
{
    sort($xs);
    $m = intdiv(count($xs), 2);
    return count($xs) % 2 ? $xs[$m] : ($xs[$m - 1] + $xs[$m]) / 2;
}

$out = ['php' => PHP_VERSION, 'ffi' => $table->waker() !== null, 'dataOffset' => $dataOffset, 'strings' => $where, 'cases' => []];
foreach ($perRound as $name => $xs) {
    $out['cases'][$name] = ['wall' => ['median' => median($xs), 'rounds' => $xs], 'cpu' => ['median' => median($cpuRound[$name]), 'rounds' => $cpuRound[$name]], 'iters' => $iters[$name]];
}
$table->close();
echo json_encode($out), "\n";
