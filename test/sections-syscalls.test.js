'use strict'
/*
 * Publish makes no system call when nobody sleeps (docs/sections.md, 6 and 7):
 * counted with strace, between two marker writes, on the publishing thread.
 * A futex wake of a section is FUTEX_WAKE without FUTEX_PRIVATE_FLAG (the
 * futex is shared between processes); Node's own futexes are private, so
 * they are told apart. With a sleeper counted, the same publish does wake.
 */
const t = require('tap')
const { spawn, spawnSync } = require('node:child_process')
const { once } = require('node:events')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const shm = require('..')
const { keyFor, cleanupTablesAfter, requirePHP } = require('./helpers')

cleanupTablesAfter(t)
requirePHP()
if (spawnSync('strace', ['-V']).error) throw new Error('these tests need strace: apt-get install -y strace')

const ROOT = path.join(__dirname, '..')
const PUBLISHES = 1000

/** Runs argv under strace; resolves with { wakes, getpid } per marked phase, on the thread that marks. */
async function traced (t, argv) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-strace-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const log = path.join(dir, 'log')
  const child = spawn('strace', ['-f', '-o', log, '-e', 'trace=futex,getpid,write,sendto', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const [code] = await once(child, 'close')
  t.equal(code, 0, 'the traced program ran', { stderr })
  const phases = {}
  let phase = null
  let tid = null
  for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
    // strace -f names the thread first, unless the program has only ever had one;
    // PHP writes to a socket (Node's pipes are sockets) with sendto.
    const marker = /^(?:(\d+) +)?(?:write|sendto)\(\d+, "MARK (\w+)/.exec(line)
    if (marker) {
      tid = marker[1] ? marker[1] + ' ' : ''
      phase = marker[2] === 'end' ? null : marker[2]
      phases[phase ?? marker[2]] ??= { wakes: 0, getpid: 0 }
      continue
    }
    if (!phase || !line.startsWith(tid)) continue
    if (/futex\(0x[0-9a-f]+, FUTEX_WAKE,/.test(line)) phases[phase].wakes++
    if (/ getpid\(/.test(line)) phases[phase].getpid++
  }
  return phases
}

t.test('Node: publish with nobody asleep makes no futex call and no getpid', async (t) => {
  const key = keyFor(1)
  const program = `
    const fs = require('node:fs')
    const shm = require(${JSON.stringify(ROOT)})
    const table = shm.sections.create(${key}, { mode: 0o600, sections: [{ name: 's', size: 102400 }] })
    const section = table.section('s')
    section.claim()
    const data = Buffer.alloc(10240, 7)
    section.publish(data) // the identity is learnt here, once
    const mark = (what) => fs.writeSync(2, 'MARK ' + what + '\\n')
    mark('idle')
    for (let i = 0; i < ${PUBLISHES}; i++) section.publish(data)
    mark('end')
    // A sleeper attached read-only: it counts itself through a read-write mapping of its own.
    const reader = shm.sections.attach(${key}, { readOnly: true })
    const pending = reader.section('s').wait(section.version, { timeout: 10000 })
    setTimeout(() => {
      mark('sleeper')
      section.publish(data)
      mark('end')
      pending.then(() => { reader.close(); table.close(); shm.sections.remove(${key}) })
    }, 100)
  `
  const phases = await traced(t, [process.execPath, '-e', program])
  t.comment(`${PUBLISHES} publishes with no sleeper: ${phases.idle.wakes} FUTEX_WAKE, ${phases.idle.getpid} getpid`)
  t.same(phases.idle, { wakes: 0, getpid: 0 }, `${PUBLISHES} publishes of 10 KB with no sleeper: no FUTEX_WAKE, no getpid`)
  t.equal(phases.sleeper.wakes, 1, 'a publish with a (read-only) waiter asleep wakes it: one FUTEX_WAKE')
})

t.test('PHP (FFI): publish with nobody asleep makes no futex call; with a Node waiter asleep, one', async (t) => {
  const key = keyFor(2)
  const table = shm.sections.create(key, { mode: 0o600, sections: [{ name: 's', size: 102400 }, { name: 'watched', size: 64 }] })
  t.teardown(() => { table.close(); shm.sections.remove(key) })
  // A waiter in this process (attached read-write: it counts itself once PHP's claim wakes it).
  const woken = table.section('watched').wait(0, { timeout: 20000 })
  const program = `
    require ${JSON.stringify(path.join(ROOT, 'php', 'autoload.php'))};
    $table = NodejsShm\\SectionTable::attach(${key});
    $section = $table->section('s');
    $section->claim();
    $data = str_repeat('x', 10240);
    $section->publish($data);
    fwrite(STDERR, "MARK idle\\n");
    for ($i = 0; $i < ${PUBLISHES}; $i++) $section->publish($data);
    fwrite(STDERR, "MARK end\\n");
    $watched = $table->section('watched');
    $watched->claim();
    usleep(300000); // the waiter re-reads the flags after the claim's wake, and counts itself
    fwrite(STDERR, "MARK sleeper\\n");
    $watched->publish('hello');
    fwrite(STDERR, "MARK end\\n");
    $table->close();
  `
  const phases = await traced(t, ['php', '-r', program])
  t.comment(`PHP, ${PUBLISHES} publishes with no sleeper: ${phases.idle.wakes} FUTEX_WAKE, ${phases.idle.getpid} getpid`)
  t.equal(phases.idle.wakes, 0, `${PUBLISHES} PHP publishes of 10 KB with no sleeper: no FUTEX_WAKE`)
  // The identity is learnt once; a fork mark (MADV_WIPEONFORK through FFI) says when to ask again.
  t.equal(phases.idle.getpid, 0, `${PUBLISHES} PHP publishes with FFI: no getpid`)
  t.equal(phases.sleeper.wakes, 1, 'a PHP publish with a Node waiter asleep: one FUTEX_WAKE')
  t.equal(await woken, 1, 'and the waiter saw version 1')
})
