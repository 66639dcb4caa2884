<?php
// The writer of bench/crosshost.js: publishes `count` payloads of `bytes`
// bytes, `gapMs` apart, each starting with hrtime(true) (CLOCK_MONOTONIC ns,
// the clock of Node's process.hrtime), either into section 'p' of a table
// (mode "bridge") or to Redis as SET + PUBLISH (mode "redis", phpredis).
// argv[1]: JSON { mode, key, port, bytes, count, gapMs }.
declare(strict_types=1);

require __DIR__ . '/../php/autoload.php';

$o = json_decode($argv[1], true, 512, JSON_THROW_ON_ERROR);
$body = random_bytes($o['bytes'] - 8);
if ($o['mode'] === 'bridge') {
    $table = NodejsShm\SectionTable::attach($o['key']);
    $section = $table->section('p');
    $section->claim();
    $send = static fn (string $data) => $section->publish($data);
} else {
    $redis = new Redis();
    $redis->connect('127.0.0.1', $o['port']);
    $send = static function (string $data) use ($redis): void {
        $redis->set('bench:crosshost', $data);
        $redis->publish('bench:crosshost', '1');
    };
}
for ($i = 0; $i < $o['count']; $i++) {
    $send(pack('P', hrtime(true)) . $body);
    usleep($o['gapMs'] * 1000);
}
echo "done\n";
