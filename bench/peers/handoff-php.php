<?php
/*
 * handoff-php.php: the PHP writer of the handoff benchmark (bench/handoff.js
 * spawns it; with `php -d ffi.enable=0` for the row without FFI). Sends the
 * messages bench/peers/handoff-node.js describes to a Node reader: through a section
 * (php/: claim, publish; the reader acknowledges in the `ack` section, which
 * this process polls with Section::wait), or through a Unix-domain or TCP
 * socket (stream_socket_client; the reader acknowledges on the same socket).
 *
 * Commands: one JSON object per line on stdin, one answer per line on stdout.
 *   setup { key, section, ack, size, unixPath?, tcpPort? } -> { ok, ffi }
 *   send { transport: 'shm'|'unix'|'tcp', n, gapUs: [min, max] } -> { ok, done, cpuNs }
 * cpuNs: the CPU time (getrusage: user + system) this process used over the n messages.
 *   quit
 * The timestamp is hrtime(true): CLOCK_MONOTONIC, as process.hrtime in Node.
 * It is written into the payload string in place (PHP modifies a string it
 * holds the only reference to without copying it), just before publish/fwrite.
 */
declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

use NodejsShm\SectionTable;

const WAIT_S = 10.0;

function answer(array $message): void
{
    fwrite(STDOUT, json_encode($message) . "\n");
    fflush(STDOUT);
}

/** Sleeps between messages, so that every message finds its reader asleep. */
function gap(array $range): void
{
    $us = $range[0] + mt_rand() / mt_getrandmax() * ($range[1] - $range[0]);
    if ($us > 0) {
        usleep((int) $us);
    }
}

/** Writes $bytes into $buffer at $at, in place. */
function put(string &$buffer, int $at, string $bytes): void
{
    for ($i = 0, $n = strlen($bytes); $i < $n; $i++) {
        $buffer[$at + $i] = $bytes[$i];
    }
}

/** This process's CPU time so far, user + system, in nanoseconds. */
function cpuNs(): int
{
    $r = getrusage();
    return ($r['ru_utime.tv_sec'] + $r['ru_stime.tv_sec']) * 1000000000 + ($r['ru_utime.tv_usec'] + $r['ru_stime.tv_usec']) * 1000;
}

function connect(string $address)
{
    $context = stream_context_create(['socket' => ['tcp_nodelay' => true]]);
    $socket = @stream_socket_client($address, $errno, $errstr, 5, STREAM_CLIENT_CONNECT, $context);
    if ($socket === false) {
        throw new RuntimeException("cannot connect to $address: $errstr");
    }
    stream_set_timeout($socket, (int) WAIT_S);
    stream_set_read_buffer($socket, 0);
    stream_set_write_buffer($socket, 0);
    return $socket;
}

function readExactly($socket, int $length): string
{
    $data = '';
    while (strlen($data) < $length) {
        $chunk = fread($socket, $length - strlen($data));
        if ($chunk === false || $chunk === '') {
            throw new RuntimeException('no acknowledgement on the socket (timeout or closed)');
        }
        $data .= $chunk;
    }
    return $data;
}

$table = null;
$section = null;
$ack = null;
$payload = '';
$frame = '';
$sockets = [];

while (($line = fgets(STDIN)) !== false) {
    $msg = json_decode($line, true);
    try {
        if ($msg['cmd'] === 'setup') {
            $table = SectionTable::attach($msg['key']);
            $section = $table->section($msg['section']);
            $ack = $table->section($msg['ack']);
            $section->claim();
            $payload = str_repeat("\x6b", $msg['size']);
            $frame = pack('V', $msg['size']) . $payload;
            if (isset($msg['unixPath'])) {
                $sockets['unix'] = connect('unix://' . $msg['unixPath']);
            }
            if (isset($msg['tcpPort'])) {
                $sockets['tcp'] = connect('tcp://127.0.0.1:' . $msg['tcpPort']);
            }
            answer(['ok' => true, 'ffi' => $table->waker() !== null, 'pid' => getmypid(), 'php' => PHP_VERSION]);
        } elseif ($msg['cmd'] === 'send') {
            $n = $msg['n'];
            $size = strlen($payload);
            $cpu = cpuNs();
            if ($msg['transport'] === 'shm') {
                $ackVersion = $ack->version();
                for ($seq = 0; $seq < $n; $seq++) {
                    $s = pack('V', $seq);
                    put($payload, 8, $s);
                    put($payload, $size - 4, $s);
                    gap($msg['gapUs']);
                    put($payload, 0, pack('P', hrtime(true)));
                    $section->publish($payload);
                    $next = $ack->wait($ackVersion, WAIT_S);
                    if ($next === $ackVersion) {
                        throw new RuntimeException('no acknowledgement within ' . WAIT_S . ' s');
                    }
                    $ackVersion = $next;
                }
            } else {
                $socket = $sockets[$msg['transport']];
                for ($seq = 0; $seq < $n; $seq++) {
                    $s = pack('V', $seq);
                    put($frame, 4 + 8, $s);
                    put($frame, 4 + $size - 4, $s);
                    gap($msg['gapUs']);
                    put($frame, 4, pack('P', hrtime(true)));
                    for ($done = 0; $done < $size + 4; $done += $wrote) {
                        $wrote = fwrite($socket, $done ? substr($frame, $done) : $frame);
                        if ($wrote === false || $wrote === 0) {
                            throw new RuntimeException('cannot write to the socket');
                        }
                    }
                    $got = unpack('V', readExactly($socket, 4))[1];
                    if ($got !== $seq) {
                        throw new RuntimeException("acknowledgement $got for message $seq");
                    }
                }
            }
            answer(['ok' => true, 'done' => true, 'cpuNs' => cpuNs() - $cpu]);
        } elseif ($msg['cmd'] === 'quit') {
            break;
        }
    } catch (Throwable $e) {
        answer(['error' => get_class($e) . ': ' . $e->getMessage()]);
        exit(1);
    }
}
