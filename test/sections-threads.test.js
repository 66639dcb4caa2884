'use strict'
/*
 * Claims die with their thread: a worker thread that claimed a section and
 * ends (worker.terminate(), an uncaught exception, process.exit() in the
 * worker) gives its claims back when its environment is torn down, so the
 * replacement worker, the main thread and other processes (PHP) claim at
 * once. A table collected without close() gives its claims back too.
 */
const t = require('tap')
const { once } = require('node:events')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { Worker } = require('node:worker_threads')
const shm = require('..')
const { keyFor, cleanupTablesAfter, requirePHP } = require('./helpers')
const { peer } = require('./fixtures/sections-common')

cleanupTablesAfter(t)
requirePHP()

const LIB = JSON.stringify(path.join(__dirname, '..'))
// A worker that claims sections and publishes, then waits to be told how to end.
const WRITER = `
  const { parentPort, workerData } = require('node:worker_threads')
  const shm = require(${LIB})
  const table = shm.sections.attach(workerData.key)
  for (const name of workerData.names) {
    try {
      table.section(name).claim()
      table.section(name).publish('from worker ' + workerData.id)
    } catch (error) {
      parentPort.postMessage({ error: error.code })
    }
  }
  parentPort.on('message', (how) => {
    if (how === 'throw') setImmediate(() => { throw new Error('the worker crashes') })
    if (how === 'exit') process.exit(3)
  })
  parentPort.postMessage({ claimed: workerData.names })
`

function writer (key, names, id) {
  const worker = new Worker(WRITER, { eval: true, execArgv: [], workerData: { key, names, id } })
  return { worker, ready: once(worker, 'message').then(([message]) => message) }
}

function table (t, key) {
  const made = shm.sections.create(key, { sections: ['a', 'b', 'c'].map((name) => ({ name, size: 64 })) })
  t.teardown(() => { made.close(); shm.sections.remove(key) })
  return made
}

const php = (t) => peer(t, 'php', [path.join(__dirname, 'fixtures', 'sections-peer.php')])

for (const how of ['terminate', 'throw', 'exit']) {
  t.test(`a worker that claimed, then ended by ${how}: the claims come back at once`, async (t) => {
    const key = keyFor(how.length)
    const mine = table(t, key)
    const first = writer(key, ['a', 'b'], 1)
    t.same(await first.ready, { claimed: ['a', 'b'] }, 'the worker claims a and b')
    t.throws(() => mine.section('a').claim(), { code: 'ERR_SHM_SECTION_BUSY', message: /this process, through another object or thread/ }, 'the main thread is busy meanwhile')
    const other = php(t)
    await other.call('attach', { key })
    await t.rejects(other.call('claim', { name: 'b' }), { code: 'ERR_SHM_SECTION_BUSY' }, 'and so is PHP')

    // Not events.once: it rejects on 'error', which is how a crash is reported.
    const exited = new Promise((resolve) => first.worker.once('exit', resolve))
    const errored = new Promise((resolve) => first.worker.once('error', resolve))
    if (how === 'terminate') await first.worker.terminate()
    else first.worker.postMessage(how)
    const code = await exited
    if (how === 'throw') t.match(await errored, { message: 'the worker crashes' }, 'an uncaught exception ended it')
    t.equal(code, { terminate: 1, throw: 1, exit: 3 }[how], `exit code ${code}`)

    const second = writer(key, ['a'], 2)
    t.same(await second.ready, { claimed: ['a'] }, 'the replacement worker claims a at once')
    t.equal(mine.section('a').read().data.toString(), 'from worker 2', 'and publishes')
    await other.call('claim', { name: 'b' })
    t.pass('PHP claims b at once')
    await second.worker.terminate()
    mine.section('a').claim()
    t.ok(mine.section('a').claimed, 'after the second worker, the main thread claims a')
  })
}

t.test('a table collected without close() gives its claims back', async (t) => {
  const key = keyFor(10)
  table(t, key)
  const run = spawnSync(process.execPath, ['--expose-gc', '-e', `
    const shm = require(${LIB})
    ;(() => { shm.sections.attach(${key}).section('a').claim() })() // dropped without close()
    const other = shm.sections.attach(${key})
    ;(async () => {
      for (let i = 0; i < 100; i++) {
        try { other.section('a').claim(); console.log('claimed after', i, 'collections'); return } catch (error) {
          if (i === 0) console.log('busy while the first table lives:', error.code)
        }
        globalThis.gc()
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      console.log('never claimed')
    })()
  `], { encoding: 'utf8', timeout: 30000 })
  t.match(run.stdout, /^busy while the first table lives: ERR_SHM_SECTION_BUSY\nclaimed after \d+ collections\n$/, 'held until the table is collected, then free', { stderr: run.stderr })
})
