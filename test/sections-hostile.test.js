'use strict'
// A process that can write a section table (a 0666 table, a buggy writer) can
// keep both seq words odd while it bumps the commit word: every try of a read
// fails, and the commit check alone (10 000 tries with no publish) never
// trips. Reads give up after 100 ms of failed tries with
// ERR_SHM_READ_STARVED, in Node and in PHP (docs/sections.md, section 4).
const t = require('tap')
const { spawn } = require('node:child_process')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const shm = require('..')
const { keyFor, cleanupTablesAfter, requirePHP, ROOT } = require('./helpers')

cleanupTablesAfter(t)
requirePHP()

/** A table with one published section, and a hostile worker on it (stopped at teardown). */
async function hostile (t, key) {
  const table = shm.sections.create(key, { mode: 0o600, sections: [{ name: 's', size: 64 }] })
  const section = table.section('s')
  section.claim()
  section.publish('honest')
  const stop = new SharedArrayBuffer(4)
  const worker = new Worker(path.join(__dirname, 'fixtures', 'sections-hostile.js'), {
    workerData: { key, control: section.offsets.control, seconds: 10, stop }
  })
  t.teardown(async () => {
    Atomics.store(new Int32Array(stop), 0, 1)
    await new Promise((resolve) => worker.once('exit', resolve))
    table.close()
    shm.sections.remove(key)
  })
  await new Promise((resolve) => worker.once('message', resolve))
  return section
}

t.test('Node: read() and readInto() under a hostile peer fail within a second (ERR_SHM_READ_STARVED, or ERR_SHM_CORRUPT if it stalls)', async (t) => {
  const key = keyFor(0)
  const section = await hostile(t, key)
  const reader = shm.sections.attach(key, { readOnly: true }).section('s')
  for (const [what, call] of [['read()', () => reader.read()], ['readInto()', () => reader.readInto(Buffer.alloc(64))], ['the writer\'s read()', () => section.read()]]) {
    const started = process.hrtime.bigint()
    // While the hostile thread runs, the commit word moves: ERR_SHM_READ_STARVED.
    // On a loaded machine it may be descheduled for the whole read: the reader
    // then sees an odd slot under a commit word that stands still, which is
    // damage as far as anyone can tell (ERR_SHM_CORRUPT). Either way, an error
    // in bounded time.
    const expected = {
      ERR_SHM_READ_STARVED: `No complete copy of section 's' of table 0x${(key >>> 0).toString(16)} in 100 ms: its writer overtook every read, ` +
        'or keeps the slots odd (a broken or hostile process with write access to the table)',
      ERR_SHM_CORRUPT: "The section's control block holds values no writer writes: the segment is corrupt"
    }
    let error
    try {
      call()
    } catch (caught) {
      error = caught
    }
    t.equal(error?.message, expected[error?.code], `${what}: ${error?.code}`)
    const ms = Number(process.hrtime.bigint() - started) / 1e6
    t.ok(ms < 1000, `${what} gave up after ${Math.round(ms)} ms`)
  }
})

t.test('PHP: Section::read() under a hostile peer fails within a second (ERR_SHM_READ_STARVED, or ERR_SHM_CORRUPT if it stalls)', async (t) => {
  const key = keyFor(1)
  await hostile(t, key)
  const code = `require '${ROOT}/php/autoload.php';
    $section = NodejsShm\\SectionTable::attach((int) $argv[1], true)->section('s');
    $started = hrtime(true);
    try { $section->read(); $code = null; } catch (NodejsShm\\SectionsException $e) { $code = $e->errorCode; $message = $e->getMessage(); }
    echo json_encode(['code' => $code, 'message' => $message ?? null, 'ms' => (hrtime(true) - $started) / 1e6]);`
  const child = spawn('php', ['-r', code, String(key)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => { stdout += chunk })
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const status = await new Promise((resolve) => child.on('close', resolve))
  t.equal(status, 0, 'PHP ran', { stderr })
  const seen = JSON.parse(stdout)
  // As for Node: ERR_SHM_CORRUPT when the hostile thread did not run during the read.
  t.match(seen, seen.code === 'ERR_SHM_CORRUPT'
    ? { message: /^ERR_SHM_CORRUPT: section 's' has a damaged control block/ }
    : { code: 'ERR_SHM_READ_STARVED', message: /^ERR_SHM_READ_STARVED: no complete copy of section 's' in 100 ms/ }, `PHP: ${seen.code}`)
  t.ok(seen.ms < 1000, `PHP's read() gave up after ${Math.round(seen.ms)} ms`)
})
