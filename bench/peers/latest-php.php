<?php
// The PHP data source of bench/latest.js: argv[1] is JSON { key, name, bytes,
// unix }. It publishes `bytes` bytes into the section, keeps the same bytes
// as its latest state in memory, and answers every byte it receives on a
// Unix-socket or TCP connection with that state (a 4-byte length, then the
// bytes), as a PHP process serving its state on request would. It prints one
// JSON line { version, tcpPort } once it listens, and quits at end of stdin.
declare(strict_types=1);

require dirname(__DIR__, 2) . '/php/autoload.php';

use NodejsShm\SectionTable;

$o = json_decode($argv[1], true, 512, JSON_THROW_ON_ERROR);
$table = SectionTable::attach($o['key']);
$section = $table->section($o['name']);
$section->claim();
$state = random_bytes($o['bytes']);
$version = $section->publish($state);
$frame = pack('V', strlen($state)) . $state;

$unix = stream_socket_server('unix://' . $o['unix'], $errno, $error);
$tcp = stream_socket_server('tcp://127.0.0.1:0', $errno, $error);
if (!$unix || !$tcp) {
    fwrite(STDOUT, json_encode(['error' => "listen: $error"]) . "\n");
    exit(1);
}
$port = (int) substr(strrchr(stream_socket_get_name($tcp, false), ':'), 1);
fwrite(STDOUT, json_encode(['version' => $version, 'tcpPort' => $port]) . "\n");

$clients = [];
for (;;) {
    $read = [STDIN, $unix, $tcp, ...$clients];
    $write = $except = null;
    if (stream_select($read, $write, $except, null) === false) {
        break;
    }
    foreach ($read as $stream) {
        if ($stream === STDIN) {
            if (fgets(STDIN) === false || feof(STDIN)) {
                break 2;
            }
        } elseif ($stream === $unix || $stream === $tcp) {
            $client = stream_socket_accept($stream);
            if ($stream === $tcp && function_exists('socket_import_stream')) {
                socket_set_option(socket_import_stream($client), SOL_TCP, TCP_NODELAY, 1);
            }
            stream_set_write_buffer($client, 0);
            $clients[] = $client;
        } else {
            $asked = fread($stream, 64);
            if ($asked === '' || $asked === false) {
                $clients = array_filter($clients, fn ($c) => $c !== $stream);
                fclose($stream);
                continue;
            }
            for ($i = 0; $i < strlen($asked); $i++) {
                for ($sent = 0; $sent < strlen($frame);) {
                    $n = fwrite($stream, $sent ? substr($frame, $sent) : $frame);
                    if (!$n) {
                        break 2;
                    }
                    $sent += $n;
                }
            }
        }
    }
}
$table->close();
