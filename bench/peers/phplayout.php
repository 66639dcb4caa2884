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
 * Input (one JSON object on stdin): { key, size, offsets, rounds, sampleMs }
 *   key: a section table with a section 'data' of at least size bytes
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
$cases['Section::read'] = static fn () => $section->read();
$cases['Section::publish'] = static fn () => $section->publish($payload);
foreach ($in['offsets'] as $o) {
    $cases["shmop_read@$o"] = static fn () => shmop_read($plain, $o, $size);
}
foreach ($in['offsets'] as $o) {
    $cases["shmop_write@$o"] = static fn () => shmop_write($plain, $payload, $o);
}
// The same calls on the table's own segment, at the section's data area.
$tableShm = (fn () => $this->shm)->call($section);
$cases['shmop_read@section'] = static fn () => shmop_read($tableShm, $dataOffset, $size);
$cases['shmop_write@section'] = static fn () => shmop_write($tableShm, $payload, $dataOffset);

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

$out = ['php' => PHP_VERSION, 'dataOffset' => $dataOffset, 'strings' => $where, 'cases' => []];
foreach ($perRound as $name => $xs) {
    $out['cases'][$name] = ['wall' => ['median' => median($xs), 'rounds' => $xs], 'cpu' => ['median' => median($cpuRound[$name]), 'rounds' => $cpuRound[$name]], 'iters' => $iters[$name]];
}
$table->close();
echo json_encode($out), "\n";
