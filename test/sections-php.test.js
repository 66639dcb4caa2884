'use strict'
/*
 * The PHP side of sections (php/): SectionTable and Section with plain PHP 8
 * and shmop, loaded with php/autoload.php or the PSR-4 map of
 * php/composer.json; every operation against tables made and used by Node:
 * attach by key, names, read, claim and publish, wait (polling with backoff:
 * a publish is seen within its 10 ms cap), info, and its errors
 * (SectionsException::$errorCode). Claims across the two
 * languages are in sections-claims, damaged tables in sections-validation and
 * sections-fuzz, wake-ups in sections-wake, torn reads in sections-torn.
 */
const t = require('tap')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const shm = require('..')
const { keyFor, cleanupTablesAfter, php, requirePHP, ROOT, median } = require('./helpers')
const { phpPeer } = require('./fixtures/sections-common')

cleanupTablesAfter(t)
requirePHP()

const PHP_DIR = path.join(ROOT, 'php')

function create (t, key, sections) {
  const table = shm.sections.create(key, { mode: 0o600, sections })
  t.teardown(() => { table.close(); shm.sections.remove(key) })
  return table
}

/** Runs PHP code with the library loaded (php/autoload.php) and $key set; returns what it echoes as JSON. */
function phpJSON (t, key, code, ini = []) {
  const run = php([...ini, '-r', `require '${PHP_DIR}/autoload.php'; use NodejsShm\\SectionTable; use NodejsShm\\SectionsException;
    $key = (int) $argv[1];
    function attempt(callable $fn) { try { return ['ok' => $fn()]; } catch (SectionsException $e) { return ['code' => $e->errorCode, 'message' => $e->getMessage()]; } }
    ${code}`, String(key)])
  t.equal(run.status, 0, 'PHP ran', { stderr: run.stderr })
  t.equal(run.stderr, '', 'no PHP warnings')
  return JSON.parse(run.stdout)
}

t.test('attach, names, sections, read what Node published', async (t) => {
  const key = keyFor(1)
  const names = ['prices', 'prix €', '📈', '\ufeffbom', 'x'.repeat(32)]
  const table = create(t, key, names.map((name, i) => ({ name, size: 1000 + i })))
  const binary = crypto.randomBytes(1000)
  binary[0] = 0
  binary[999] = 0
  table.section('prices').claim()
  table.section('prices').publish(binary)
  table.section('prix €').claim()
  table.section('prix €').publish('')
  const seen = phpJSON(t, key, `
    $table = SectionTable::attach($key, true);
    $prices = $table->section('prices');
    $read = $prices->read();
    echo json_encode([
      'key' => $table->key, 'readOnly' => $table->readOnly, 'mode' => $table->mode, 'names' => $table->names(),
      'sections' => array_map(fn ($s) => [$s->name, $s->capacity], $table->sections()),
      'read' => ['version' => $read['version'], 'hex' => bin2hex($read['data']), 'writerPid' => $read['writerPid'], 'publishedAt' => $read['publishedAt']],
      'version' => $prices->version(),
      'empty' => $table->section('prix €')->read()['version'] . ':' . bin2hex($table->section('prix €')->read()['data']),
      'never' => $table->section('📈')->read(),
      'info' => $prices->info(),
      'unknown' => attempt(fn () => $table->section('nope')),
      'noTable' => attempt(fn () => SectionTable::attach($key + 1)),
    ], JSON_UNESCAPED_UNICODE);`)
  t.match(seen, { key, readOnly: true, mode: 0o600, names })
  t.same(seen.sections, names.map((name, i) => [name, 1000 + i]), 'sections and capacities')
  t.same(seen.read.version, 1)
  t.equal(seen.read.hex, binary.toString('hex'), 'PHP reads Node\'s binary payload (with NULs) exactly')
  t.equal(seen.read.writerPid, process.pid)
  t.ok(Math.abs(seen.read.publishedAt * 1000 - Date.now()) < 60000, 'publishedAt: seconds since the epoch')
  t.equal(seen.version, 1)
  t.equal(seen.empty, '1:', 'an empty payload: version 1, no bytes')
  t.same(seen.never, { version: 0, data: '', publishedAt: null, writerPid: 0 }, 'never published')
  t.match(seen.info, { name: 'prices', offset: table.section('prices').offsets.data[0], capacity: 1000, length: 1000, version: 1, writer: { pid: process.pid, alive: true } })
  t.match(seen.unknown, { code: 'ERR_SHM_NO_SUCH_SECTION', message: /no section named "nope" in table 0x[0-9a-f]{8}; it has prices, prix €/ })
  t.match(seen.noTable, { code: 'ENOENT', message: /cannot attach segment/ })
})

t.test('claim and publish in PHP; Node reads it', async (t) => {
  const key = keyFor(2)
  const table = create(t, key, [{ name: 'a', size: 64 }, { name: 'b', size: 8 }])
  const payload = crypto.randomBytes(64)
  payload[10] = 0
  const seen = phpJSON(t, key, `
    $table = SectionTable::attach($key);
    $a = $table->section('a');
    $steps = ['before' => $a->isClaimed(), 'unclaimed' => attempt(fn () => $a->publish('x'))];
    $a->claim();
    $a->claim(); // again: nothing happens
    $steps['claimed'] = $a->isClaimed();
    $steps['v1'] = $a->publish(hex2bin('${payload.toString('hex')}'));
    $steps['tooBig'] = attempt(fn () => $a->publish(str_repeat('x', 65)));
    $steps['full'] = $a->publish(str_repeat('y', 64));
    $steps['v3'] = $a->publish(hex2bin('${payload.toString('hex')}'));
    $b = $table->section('b');
    $b->claim();
    $steps['empty'] = $b->publish('');
    $steps['info'] = $a->info();
    $b->release();
    $b->release(); // again: nothing happens
    $steps['released'] = $b->isClaimed();
    $steps['closedBefore'] = $table->isClosed();
    $table->close();
    $steps['closed'] = $table->isClosed();
    $steps['afterClose'] = $a->isClaimed();
    echo json_encode($steps);`)
  t.match(seen, { before: false, unclaimed: { code: 'ERR_SHM_NOT_WRITER' }, claimed: true, v1: 1, full: 2, v3: 3, empty: 1, released: false, closedBefore: false, closed: true, afterClose: false })
  t.match(seen.tooBig, { code: 'ERR_OUT_OF_RANGE', message: /65 bytes do not fit section 'a' \(64 bytes\)/ })
  t.match(seen.info, { name: 'a', length: 64, version: 3 })
  t.same(table.section('a').read(), { version: 3, data: payload }, 'Node reads PHP\'s payload exactly')
  t.same(table.section('b').read(), { version: 1, data: Buffer.alloc(0) }, 'and its empty payload')
  t.equal(table.section('a').info().writer, null, 'close() released PHP\'s claim')
  t.equal(table.section('a').info().lastWriterPid > 0, true)
})

for (const [how, ini] of [['with FFI', []], ['without FFI', ['-d', 'ffi.enable=0']]]) {
  t.test(`a forked child of a PHP claimant is not the writer, and its close() keeps the parent's claim (${how})`, async (t) => {
    const key = keyFor(how === 'with FFI' ? 11 : 12)
    const table = create(t, key, [{ name: 's', size: 64 }])
    // The child inherits the Section object (claimed) but not the claim lock (SEM_UNDO is not
    // inherited): its publish must fail the claim check, and its close() must not release the lock. With FFI the identity is cached, and
    // only the fork mark (a MADV_WIPEONFORK page, Process::identity) makes it ask again.
    const seen = phpJSON(t, key, `
      if (!function_exists('pcntl_fork')) { fwrite(STDERR, "this test needs PHP's pcntl extension\n"); exit(1); }
      $table = SectionTable::attach($key);
      $s = $table->section('s');
      $s->claim();
      $steps = ['first' => $s->publish('one'), 'ffi' => $table->waker() !== null];
      [$parent, $child] = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, 0);
      $pid = pcntl_fork();
      if ($pid === 0) {
        $r = attempt(fn () => $s->publish('child'));
        $table->close(); // must not give back the parent's claim lock
        fwrite($child, "closed\n");
        fgets($child); // lives on until the parent has looked
        exit(($r['code'] ?? '') === 'ERR_SHM_NOT_WRITER' ? 0 : 2);
      }
      fgets($parent);
      $other = SectionTable::attach($key);
      $steps['stillHeld'] = attempt(fn () => $other->section('s')->claim())['code'] ?? 'claimed';
      fwrite($parent, "seen\n");
      pcntl_waitpid($pid, $status);
      $steps['child'] = pcntl_wexitstatus($status);
      $steps['second'] = $s->publish('two');
      $table->close();
      echo json_encode($steps);`, ini)
    t.same(seen, { first: 1, ffi: how === 'with FFI', child: 0, second: 2, stillHeld: 'ERR_SHM_SECTION_BUSY' },
      'the child got ERR_SHM_NOT_WRITER, and its close() left the claim to the parent, which goes on publishing')
    t.same(table.section('s').read(), { version: 2, data: Buffer.from('two') }, 'nothing of the child\'s reached the section')
  })
}

t.test('PHP waits by polling: a Node publish ends the wait; a timeout returns the same version', async (t) => {
  const key = keyFor(3)
  const table = create(t, key, [{ name: 's', size: 16 }])
  const s = table.section('s')
  s.claim()
  const waiter = phpPeer(t)
  await waiter.call('attach', { key, readOnly: true })
  t.equal(await waiter.call('wait', { name: 's', since: 0, timeout: 50 }), 0, 'timeout: the same version')
  const woken = waiter.call('wait', { name: 's', since: 0, timeout: 10000 })
  await new Promise((resolve) => setTimeout(resolve, 100))
  s.publish('hello PHP')
  t.equal(await woken, 1, 'the publish ends the wait')
  t.same(await waiter.call('read', { name: 's' }), { version: 1, hex: Buffer.from('hello PHP').toString('hex') })
  t.equal(await waiter.call('wait', { name: 's', since: 0 }), 1, 'a version that already differs returns at once')
  s.publish('again')
  const waits = [waiter.call('wait', { name: 's', since: 2, timeout: 10000 })]
  await new Promise((resolve) => setTimeout(resolve, 50))
  s.publish('third')
  t.same(await Promise.all(waits), [3])
})

t.test('a PHP waiter sees a Node publish at its next poll: within 10 ms once its sleeps reach the cap', async (t) => {
  // PHP polls, sleeping 0.1 ms doubling up to 10 ms (Section::wait, docs/sections.md §7).
  const POLL_CAP_MS = 10
  const key = keyFor(6)
  const s = create(t, key, [{ name: 's', size: 16 }]).section('s')
  s.claim()
  const waiter = phpPeer(t)
  await waiter.call('attach', { key, readOnly: true })
  const delays = []
  for (let i = 0; i < 11; i++) {
    const woken = waiter.call('wait', { name: 's', since: s.version, timeout: 10000, stamp: true })
    // 450-750 ms into the wait: were the cap 1 s, the waiter would be in its
    // sleep of 409.6 ms (409.5-819.1 ms into the wait) and see it 69-369 ms late.
    await new Promise((resolve) => setTimeout(resolve, 450 + Math.random() * 300))
    const before = process.hrtime.bigint()
    const version = s.publish('x')
    const { version: seen, at } = await woken
    t.equal(seen, version, `woken by the publish of version ${version}`)
    delays.push(Number(BigInt(at) - before) / 1e6)
  }
  t.comment(`Node publish -> PHP wait: median ${median(delays).toFixed(2)} ms, max ${Math.max(...delays).toFixed(2)} ms (${delays.map((d) => d.toFixed(2)).join(' ')})`)
  t.ok(median(delays) < 5 * POLL_CAP_MS, `a poll every ${POLL_CAP_MS} ms at most saw the publishes: median under ${5 * POLL_CAP_MS} ms`)
})

t.test('a damaged control block: ERR_SHM_CORRUPT in both languages, not a hang', async (t) => {
  const key = keyFor(4)
  const table = create(t, key, [{ name: 's', size: 16 }])
  const s = table.section('s')
  s.claim()
  s.publish('fine')
  // The commit word names version 5 in slot 0, whose header holds nothing of the kind.
  const raw = shm.open(key, 'w')
  t.teardown(() => raw.close())
  const commit = Buffer.alloc(8)
  commit.writeBigUInt64LE(5n * 2n)
  raw.write(commit, s.offsets.control)
  t.throws(() => s.read(), { code: 'ERR_SHM_CORRUPT', message: /control block holds values no writer writes/ }, 'Node')
  t.throws(() => s.info(), { code: 'ERR_SHM_CORRUPT' }, 'Node: info()')
  const seen = phpJSON(t, key, "echo json_encode(attempt(fn () => SectionTable::attach($key)->section('s')->read()));")
  t.match(seen, { code: 'ERR_SHM_CORRUPT', message: /damaged control block/ }, 'PHP')
  // A slot header that claims more bytes than the capacity.
  commit.writeBigUInt64LE(1n * 2n + 1n)
  raw.write(commit, s.offsets.control)
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(17n)
  raw.write(length, s.offsets.control + 128 + 16)
  t.throws(() => s.read(), { code: 'ERR_SHM_CORRUPT' }, 'Node: a length beyond the capacity')
  t.match(phpJSON(t, key, "echo json_encode(attempt(fn () => SectionTable::attach($key)->section('s')->read()));"), { code: 'ERR_SHM_CORRUPT' }, 'PHP too')
  // A writer repairs it: the next publish is whole again.
  t.equal(s.publish('repaired'), 2)
  t.same(s.read(), { version: 2, data: Buffer.from('repaired') })
})

t.test('usable with Composer: the PSR-4 map of php/composer.json loads every class', async (t) => {
  const composer = JSON.parse(fs.readFileSync(path.join(PHP_DIR, 'composer.json'), 'utf8'))
  t.match(composer, { name: /\//, type: 'library', require: { php: /^>=8/, 'ext-shmop': '*' }, autoload: { 'psr-4': { 'NodejsShm\\': 'src/' } } })
  const key = keyFor(5)
  const table = create(t, key, [{ name: 's', size: 16 }])
  table.section('s').claim()
  table.section('s').publish('via composer')
  // What Composer's generated autoloader does with that map, without Composer.
  const run = php(['-r', `
    $composer = json_decode(file_get_contents($argv[1] . '/composer.json'), true);
    foreach ($composer['autoload']['psr-4'] as $prefix => $dir) {
      spl_autoload_register(function ($class) use ($prefix, $dir, $argv) {
        if (str_starts_with($class, $prefix)) require $argv[1] . '/' . $dir . str_replace('\\\\', '/', substr($class, strlen($prefix))) . '.php';
      });
    }
    foreach (glob($argv[1] . '/src/*.php') as $file) {
      $class = 'NodejsShm\\\\' . basename($file, '.php');
      if (!class_exists($class) && !trait_exists($class)) { fwrite(STDERR, "$class is not in $file\\n"); exit(1); }
    }
    echo NodejsShm\\SectionTable::attach((int) $argv[2])->section('s')->read()['data'];`, PHP_DIR, String(key)])
  t.same({ status: run.status, stderr: run.stderr, stdout: run.stdout }, { status: 0, stderr: '', stdout: 'via composer' }, 'every file in src/ holds the class (or trait) its name says; the table reads')
})

t.test('info() has the same shape in PHP as in Node, in each language\'s idiom', async (t) => {
  const key = keyFor(9)
  const table = create(t, key, [{ name: 'a', size: 64 }, { name: 'b', size: 64 }, { name: 'c', size: 8 }])
  table.section('a').claim()
  table.section('a').publish('from node')
  const seen = phpJSON(t, key, `
    $table = SectionTable::attach($key);
    $table->section('b')->claim();
    $table->section('b')->publish('from php');
    $show = function (array $i): array {
      $at = $i['publishedAt'];
      $i['publishedAt'] = $at === null ? null : ['class' => get_class($at), 'us' => (int) $at->format('Uu'), 'tz' => $at->format('P')];
      return $i;
    };
    echo json_encode(['a' => $show($table->section('a')->info()), 'b' => $show($table->section('b')->info()), 'pid' => getmypid()]);
    $table->section('b')->release();`)
  const shape = (info) => ({ ...info, publishedAt: info.publishedAt === null ? null : 'date', writer: info.writer && Object.keys(info.writer) })
  const nodeA = table.section('a').info()
  t.same(Object.keys(seen.a), Object.keys(nodeA), 'the same keys, in the same order')
  t.same({ ...shape(seen.a), writer: seen.a.writer }, { ...shape(nodeA), writer: { ...nodeA.writer, self: false } },
    'the same values for Node\'s section, seen from PHP (PHP is not its writer)')
  t.same(seen.a.publishedAt.class, 'DateTimeImmutable', 'publishedAt: a DateTimeImmutable')
  t.equal(seen.a.publishedAt.tz, '+00:00', 'in UTC')
  t.equal(Math.floor(seen.a.publishedAt.us / 1000), nodeA.publishedAt.getTime(), 'the same instant as Node\'s Date (to the ms)')
  t.same(nodeA.writer, { pid: process.pid, alive: true, self: true }, 'Node: its own claim')
  t.same(seen.b.writer, { pid: seen.pid, alive: true, self: true }, 'PHP: its own claim is self')
  t.equal(seen.b.lastWriterPid, seen.pid, 'PHP: lastWriterPid')
  const nodeB = table.section('b').info()
  t.same(shape(nodeB), { ...shape(seen.b), writer: null }, 'Node sees what PHP saw (its claim released since)')
  t.equal(nodeB.lastWriterPid, seen.pid)

  const never = phpJSON(t, key, 'echo json_encode(SectionTable::attach($key)->section(\'c\')->info());')
  t.same(never, table.section('c').info(), 'never published: the same in both (publishedAt null, lastWriterPid 0)')
})
