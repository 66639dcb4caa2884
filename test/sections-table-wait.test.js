'use strict'
/*
 * Waiting on many sections at once (issue 13): table.wait(names,
 * sinceVersions, options) and table.waitSync, and PHP's SectionTable::wait.
 * One sleeper for all the sections (futex_waitv on their commit words, up
 * to 128; more, or NODEJS_SHM_WAITV=0, poll), woken by Node and PHP writers
 * alike with no change to them; no measurable idle CPU; timeouts, aborts,
 * close(), retirement and terminated workers end it; bad arguments are
 * refused with codes.
 *
 * Wake-up delays are asserted by their median, far from both a loaded
 * machine's few ms and a lost wake's ~1 s (a waiter behind waking writers
 * sleeps in 1 s slices).
 */
const t = require('tap')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const shm = require('..')
const { keyFor, cleanupTablesAfter, requirePHP, median, settles, ROOT } = require('./helpers')
const { nodePeer, phpPeer } = require('./fixtures/sections-common')

cleanupTablesAfter(t)
requirePHP()

const FIXTURES = path.join(__dirname, 'fixtures')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const WAKE_MEDIAN_MS = 50
const thrown = (fn) => { try { fn() } catch (error) { return error } }

function table (t, key, names = ['a', 'b', 'c']) {
  const created = shm.sections.create(key, { mode: 0o600, sections: names.map((name) => ({ name, size: 64 })) })
  t.teardown(() => { created.close(); shm.sections.remove(key) })
  return created
}

const versions = (table, names) => names.map((name) => table.section(name).version)

/** Rounds of: wait on names here, `publisher` publishes its clock to a random one 30-70 ms in; the delays (ms). */
async function delays (t, reader, names, publisher, rounds, targets = names) {
  const result = []
  for (let i = 0; i < rounds; i++) {
    const since = versions(reader, names)
    const woken = reader.wait(names, since, { timeout: 10000 }).then((changed) => ({ changed, at: process.hrtime.bigint() }))
    await sleep(30 + Math.random() * 40)
    const name = targets[Math.floor(Math.random() * targets.length)]
    const version = await publisher.call('publish', { name, stamp: true })
    const { changed, at } = await woken
    t.same(changed, [{ name, version }], `woken with [{ name: '${name}', version: ${version} }]`)
    result.push(Number(at - reader.section(name).read().data.readBigUInt64LE(0)) / 1e6)
  }
  return result
}

t.test('a Node publish to any of the sections wakes table.wait() with its name and version', async (t) => {
  const key = keyFor(1)
  const names = ['a', 'b', 'c', 'd']
  const reader = table(t, key, names)
  const writer = nodePeer(t)
  await writer.call('attach', { key })
  for (const name of names) await writer.call('claim', { name })
  const delay = await delays(t, reader, names, writer, 12)
  t.ok(median(delay) < WAKE_MEDIAN_MS, `median ${median(delay).toFixed(2)} ms: the publish woke the one sleeper, not its once-a-second look`)
})

t.test('a PHP publish (FFI wake, no change to PHP) wakes table.wait(); without FFI, polls see it within 10 ms', async (t) => {
  const key = keyFor(2)
  const names = ['prices', 'orders', 'news']
  const reader = table(t, key, names)
  const writer = phpPeer(t)
  await writer.call('attach', { key })
  for (const name of names) await writer.call('claim', { name })
  const raw = shm.open(key, 'a')
  t.teardown(() => raw.close())
  t.same(names.map((name) => raw.read(reader.section(name).offsets.control + 20, 4).readUInt32LE()), [1, 1, 1], 'PHP with FFI claims as a writer that wakes')
  const delay = await delays(t, reader, names, writer, 12)
  t.ok(median(delay) < WAKE_MEDIAN_MS, `median ${median(delay).toFixed(2)} ms`)

  // A writer that cannot wake among them: the one sleep is a poll, capped at 10 ms, for all of them.
  shm.sections.apply(key, { mode: 0o600, sections: [...names, 'polled'].map((name) => ({ name, size: 64 })) })
  for (const name of names) await writer.call('claim', { name }) // claims end with the old table
  const noFFI = phpPeer(t, '-d', 'ffi.enable=0')
  await noFFI.call('attach', { key })
  await noFFI.call('claim', { name: 'polled' })
  const polled = await delays(t, reader, [...names, 'polled'], noFFI, 7, ['polled'])
  t.ok(median(polled) < WAKE_MEDIAN_MS, `without FFI: median ${median(polled).toFixed(2)} ms (a poll every 10 ms at most)`)
})

t.test("PHP's SectionTable::wait sees a Node publish to any of its sections", async (t) => {
  const key = keyFor(3)
  const names = ['a', 'b', 'c']
  const writer = table(t, key, names)
  for (const name of names) writer.section(name).claim()
  writer.section('b').publish('first')
  const waiter = phpPeer(t)
  await waiter.call('attach', { key })
  const timedOut = await waiter.call('waitMany', { since: { a: 0, b: 1, c: 0 }, timeout: 30 })
  t.same(timedOut.changed, {}, 'a timeout returns []')
  t.same((await waiter.call('waitMany', { since: { a: 0, b: 0 }, timeout: 5000 })).changed, { b: 1 }, 'a version already past returns at once')
  const rounds = []
  for (let i = 0; i < 5; i++) {
    const since = { a: writer.section('a').version, b: writer.section('b').version, c: writer.section('c').version }
    const woken = waiter.call('waitMany', { since, timeout: 10000 })
    await sleep(50)
    const name = names[i % 3]
    const published = process.hrtime.bigint()
    const version = writer.section(name).publish(`v${i}`)
    const { changed, at } = await woken
    t.same(changed, { [name]: version }, `PHP saw ${name} at version ${version}`)
    rounds.push(Number(BigInt(at) - published) / 1e6)
  }
  // PHP polls with backoff capped at 10 ms (as Section::wait): a publish is seen within about that.
  t.ok(median(rounds) < WAKE_MEDIAN_MS, `median ${median(rounds).toFixed(2)} ms`)
  const error = await waiter.call('waitMany', { since: { nope: 0 } }).catch((error) => error)
  t.equal(error.code, 'ERR_SHM_NO_SUCH_SECTION', 'an unknown name is ERR_SHM_NO_SUCH_SECTION')
  t.equal((await waiter.call('waitMany', { since: {} }).catch((error) => error)).code, 'ERR_INVALID_ARG_VALUE', 'no names')
  t.equal((await waiter.call('waitMany', { since: { a: 'x' } }).catch((error) => error)).code, 'TypeError', 'a version that is not an int')
  await waiter.call('close')
  t.equal((await waiter.call('waitMany', { since: { a: 0 } }).catch((error) => error)).code, 'ERR_SHM_CLOSED', 'a closed table')
})

for (const [n, sections, env, sleeper] of [
  [4, 64, { NODEJS_SHM_WAIT_THREADS: '0' }, 'futex_waitv'],
  [5, 64, { NODEJS_SHM_WAIT_THREADS: '1' }, 'futex_waitv'],
  [6, 130, { NODEJS_SHM_WAIT_THREADS: '0' }, 'poll'],
  [7, 64, { NODEJS_SHM_WAIT_THREADS: '1', NODEJS_SHM_WAITV: '0' }, 'poll']
]) {
  t.test(`${sections} sections, ${JSON.stringify(env)}: one sleeper (${sleeper}), no measurable idle CPU, woken at once`, async (t) => {
    const run = spawnSync(process.execPath, [path.join(FIXTURES, 'sections-table-wait.js'), JSON.stringify({ key: keyFor(n), sections, idleMs: 1000 })], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 60000
    })
    t.equal(run.status, 0, 'the child ran', { stderr: run.stderr })
    const { mechanism, threadsAdded, sleepers, after, cpuMs, woken, wakeMs } = JSON.parse(run.stdout)
    t.equal(mechanism, env.NODEJS_SHM_WAIT_THREADS === '1' ? 'threads' : shm.sections.waitMechanism(), `waits sleep on ${mechanism}`)
    // One sleeper: one helper thread, or none (the event loop's ring).
    t.equal(threadsAdded, mechanism === 'threads' ? 1 : 0, `the wait added ${threadsAdded} threads`)
    const counted = sleeper === 'poll' ? 0 : 1 // a poll sleeps where no writer need wake it
    t.same(sleepers, Array(sections).fill(counted), `every section counts ${counted} sleeper`)
    t.same(after, Array(sections).fill(0), 'none once the wait is over')
    // Asleep: ~0 ms; a poll at 100 wake-ups a second ~ 1-5 ms; a busy loop 1 000 ms.
    t.ok(cpuMs < 50, `${cpuMs.toFixed(1)} ms of CPU in 1 s while the wait was pending`)
    t.same(woken, [{ name: `s${sections >> 1}`, version: 1 }], 'woken with the section published')
    t.ok(wakeMs < 500, `woken ${wakeMs.toFixed(2)} ms after the publish`)
    t.comment(`${sections} sections, ${mechanism}, ${sleeper}: idle CPU ${cpuMs.toFixed(2)} ms/s, wake ${wakeMs.toFixed(2)} ms`)
  })
}

t.test('timeouts, versions already past, abort, close()', async (t) => {
  const key = keyFor(8)
  const names = ['a', 'b', 'c']
  const writer = table(t, key, names)
  const reader = shm.sections.attach(key, { readOnly: true })
  t.teardown(() => reader.close())
  writer.section('c').claim()
  let started = Date.now()
  t.same(await reader.wait(names, [0, 0, 0], { timeout: 30 }), [], 'a timeout resolves with []')
  t.ok(Date.now() - started >= 25, 'after the timeout')
  t.same(await reader.wait(names, [0, 0, 0], 0), [], 'a timeout of 0 ends at once')
  t.same(reader.waitSync(names, [0, 0, 0], 20), [], 'waitSync: [] after the timeout')
  t.same(reader.waitSync(names, [0, 0, 0], { timeout: 0 }), [], 'waitSync({ timeout: 0 })')
  writer.section('c').publish('x')
  t.same(await reader.wait(names, [0, 0, 0]), [{ name: 'c', version: 1 }], 'a version already past resolves at once')
  t.same(reader.waitSync(['c', 'a'], [0, 0]), [{ name: 'c', version: 1 }], 'waitSync too, in the order of names')
  t.same(await reader.wait(['a', 'c'], [1, 0]), [{ name: 'a', version: 0 }, { name: 'c', version: 1 }], 'every section that differs')

  const stop = new AbortController()
  const aborted = reader.wait(names, [0, 0, 1], { signal: stop.signal })
  setTimeout(() => stop.abort(new Error('enough')), 20)
  await t.rejects(aborted, { message: 'enough' }, 'an abort rejects with its reason')
  await t.rejects(reader.wait(names, [0, 0, 1], { signal: AbortSignal.abort('why') }), 'why', 'an aborted signal rejects at once')

  const pending = reader.wait(names, [0, 0, 1], { timeout: 60000 })
  await sleep(20)
  started = Date.now()
  reader.close()
  t.same(await pending, [], 'close() ends a pending wait with []')
  t.ok(Date.now() - started < 1000, 'at once')
  await t.rejects(reader.wait(names, [0, 0, 1]), { code: 'ERR_SHM_CLOSED' }, 'a closed table')
})

t.test('bad arguments: the errors waitSync throws, wait rejects with', async (t) => {
  const key = keyFor(9)
  const reader = table(t, key, ['a', 'b'])
  const cases = [
    [['a', 'b', 'a'], [0, 0], 'RangeError', 'ERR_INVALID_ARG_VALUE', "The argument 'names' must hold 1 or more distinct section names. Received [ 'a', 'b', 'a' ]"],
    [[], [], 'RangeError', 'ERR_INVALID_ARG_VALUE', "The argument 'names' must hold 1 or more distinct section names. Received []"],
    ['a', [0], 'TypeError', 'ERR_INVALID_ARG_TYPE', 'The "names" argument must be an array of section names. Received type string (\'a\')'],
    [['a'], 0, 'TypeError', 'ERR_INVALID_ARG_TYPE', 'The "sinceVersions" argument must be an array of versions, one per name. Received type number (0)'],
    [['a', 'b'], [0], 'RangeError', 'ERR_INVALID_ARG_VALUE', "The argument 'sinceVersions' must hold one version per name (2). Received 1 versions"],
    [['a', 'nope'], [0, 0], 'RangeError', 'ERR_SHM_NO_SUCH_SECTION', /nope/],
    [['a', 'b'], [0, 'x'], 'TypeError', 'ERR_INVALID_ARG_TYPE', /"sinceVersions\[1\]"/],
    [['a', 'b'], [-1, 0], 'RangeError', 'ERR_OUT_OF_RANGE', /"sinceVersions\[0\]"/],
    [['a', 'b'], [0, 1.5], 'RangeError', 'ERR_OUT_OF_RANGE', /"sinceVersions\[1\]"/],
    [['a'], [0], 'RangeError', 'ERR_OUT_OF_RANGE', /"timeout"/, -1],
    [['a'], [0], 'TypeError', 'ERR_INVALID_ARG_TYPE', /"timeout"/, '5']
  ]
  for (const [names, since, name, code, message, timeout] of cases) {
    const label = `(${JSON.stringify(names)}, ${JSON.stringify(since)}${timeout === undefined ? '' : `, ${JSON.stringify(timeout)}`})`
    t.throws(() => reader.waitSync(names, since, timeout), { name, code, message }, `waitSync${label}`)
    await t.rejects(reader.wait(names, since, timeout === undefined ? {} : { timeout }), { name, code, message }, `wait${label}`)
  }
  await t.rejects(reader.wait(['a'], [0], 'x'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"options"/ })
  await t.rejects(reader.wait(['a'], [0], { signal: {} }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"options.signal"/ })
  const closed = shm.sections.attach(keyFor(9))
  closed.close()
  t.equal(thrown(() => closed.waitSync(['a'], [0])).code, 'ERR_SHM_CLOSED', 'waitSync on a closed table')
})

t.test('retirement: a removed table ends the wait at once; a replaced one is followed', async (t) => {
  const key = keyFor(10)
  const names = ['a', 'b', 'c']
  const layout = { mode: 0o600, sections: names.map((name) => ({ name, size: 64 })) }
  shm.sections.create(key, layout).close()
  t.teardown(() => { try { shm.sections.remove(key) } catch {} })
  const writer = shm.sections.attach(key)
  const reader = shm.sections.attach(key)
  t.teardown(() => { writer.close(); reader.close() })
  writer.section('b').claim()
  writer.section('b').publish('before')

  // Replaced: the wait goes on on the new table (the carried-over version is no change), and wakes there.
  const followed = reader.wait(names, [0, 1, 0], { timeout: 10000 })
  await sleep(50)
  shm.sections.apply(key, { ...layout, sections: [...layout.sections, { name: 'd', size: 8 }] })
  await sleep(50)
  writer.section('c').claim() // follows to the new table
  writer.section('c').publish('after')
  t.same(await followed, [{ name: 'c', version: 1 }], 'the wait followed the replaced table and woke there')
  t.ok(reader.names.includes('d'), 'the reader is on the new table')

  shm.sections.apply(key, { ...layout, sections: [...layout.sections, { name: 'e', size: 8 }] })
  t.same(await reader.wait(names, [0, 1, 1], 0), [], 'a wait with no time left ends after following')
  shm.sections.apply(key, { ...layout, sections: [...layout.sections, { name: 'f', size: 8 }] })
  t.same(reader.waitSync(names, [0, 1, 1], 10), [], 'waitSync follows too')
  t.ok(reader.names.includes('f'), 'onto the table now at the key')

  // Replaced by a table without one of the sections: the wait ends with that news.
  const gone = reader.wait(names, [0, 1, 1], { timeout: 10000 })
  await sleep(50)
  shm.sections.apply(key, { mode: 0o600, sections: [{ name: 'a', size: 64 }, { name: 'b', size: 64 }] })
  await t.rejects(gone, { code: 'ERR_SHM_TABLE_RETIRED', message: /no section 'c'|has no section/ }, 'a section gone with the old table')

  // Removed: at once, not at the timeout.
  const removed = reader.wait(['a', 'b'], [0, 1], { timeout: 60000 }).catch((error) => error)
  await sleep(50)
  const started = Date.now()
  shm.sections.remove(key)
  const error = await removed
  t.equal(error.code, 'ERR_SHM_TABLE_RETIRED', 'a removed table rejects')
  t.equal(error.retired, 'removed')
  t.ok(Date.now() - started < 1000, `at once (${Date.now() - started} ms)`)
  await t.rejects(reader.wait(['a'], [0]), { code: 'ERR_SHM_TABLE_RETIRED' }, 'and so does every later wait')
})

t.test('a worker terminated while it waits (wait or waitSync) ends at once and leaves no sleeper counted', async (t) => {
  const key = keyFor(11)
  const names = Array.from({ length: 8 }, (_, i) => `s${i}`)
  const writer = table(t, key, names)
  for (const name of names) writer.section(name).claim()
  const raw = shm.open(key, 'a')
  t.teardown(() => raw.close())
  const sleepers = () => names.map((name) => raw.read(writer.section(name).offsets.control + 24, 4).readUInt32LE())
  for (const how of ['wait', 'waitSync']) {
    const worker = new Worker(`
      const { parentPort } = require('node:worker_threads')
      const table = require(${JSON.stringify(ROOT)}).sections.attach(${key})
      const names = ${JSON.stringify(names)}
      parentPort.postMessage('waiting')
      ${how === 'wait' ? 'table.wait(names, names.map(() => 0))' : 'table.waitSync(names, names.map(() => 0))'}`, { eval: true })
    await new Promise((resolve) => worker.once('message', resolve))
    await sleep(200)
    // waitSync wakes every 50 ms to see whether it was terminated, un-counting and re-counting itself.
    t.same(await settles(sleepers, Array(names.length).fill(1)), Array(names.length).fill(1), `${how}: one sleeper, counted in each section`)
    const started = Date.now()
    await worker.terminate()
    t.ok(Date.now() - started < 1000, `${how}: terminate() took ${Date.now() - started} ms`)
    t.same(sleepers(), Array(names.length).fill(0), `${how}: no sleeper left counted`)
  }
})
