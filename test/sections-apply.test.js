'use strict'
/*
 * The central manager, live: sections.apply(key, layout) and
 * `nodejs-shm sections apply KEY layout.json` create a table, leave it alone
 * when its layout is the same, or replace it, carrying over the last payload
 * (and its version) of every section whose name survives and fits. Every
 * process on the old table notices at once: readers and waiters follow to the
 * new table by section name (Node and PHP), writers get ERR_SHM_TABLE_RETIRED
 * and claim again; a publish racing the replacement is carried over or
 * reported, never lost silently. Nothing that is not a table is replaced or
 * removed, and `nodejs-shm rm` removes a table with its claim locks.
 */
const t = require('tap')
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const shm = require('..')
const { keyFor, cleanupTablesAfter, requirePHP, segmentByKey, semaphores } = require('./helpers')
const { nodePeer, phpPeer } = require('./fixtures/sections-common')

cleanupTablesAfter(t)
requirePHP()

const FIXTURES = path.join(__dirname, 'fixtures')
const CLI = path.join(__dirname, '..', 'bin', 'nodejs-shm.js')
const hex = (key) => '0x' + (key >>> 0).toString(16).padStart(8, '0')
const V1 = { mode: 0o600, sections: [{ name: 'prices', size: 100 }, { name: 'orders', size: 100 }, { name: 'old', size: 10 }] }
const V2 = { mode: 0o600, sections: [{ name: 'orders', size: 200 }, { name: 'prices', size: 4 }, { name: 'new', size: 10 }] }

/**
 * Retires the one-section table (section 'a', 16 bytes) at key as a manager
 * would, leaving the key empty: takes it from its key, marks it replaced,
 * removes its claim lock.
 */
function retireByHand (key) {
  const binding = require('../lib/binding')
  const { handleOf } = require('../lib/segment')
  const raw = shm.open(key, 'w')
  const table = shm.sections.attach(key)
  const { offsets: { control, data }, entry: { lock } } = table.section('a')
  table.close()
  raw.delete()
  binding.sectionRetire(handleOf(raw), new Float64Array([control, ...data, 16]), 1, Buffer.alloc(16), new Float64Array(4))
  binding.sectionLockRemove(lock.id)
  raw.close()
}

function applied (t, key, layout) {
  const result = shm.sections.apply(key, layout)
  t.teardown(() => result.table.close())
  return result
}

t.test('apply: created, unchanged, replaced with carry-over', async (t) => {
  const key = keyFor(1)
  t.teardown(() => shm.sections.remove(key))
  const first = applied(t, key, V1)
  t.match(first, { action: 'created', carried: [], dropped: [] }, 'created when missing')
  t.same(first.table.names, ['prices', 'orders', 'old'])
  const id = segmentByKey(key).shmid
  const again = applied(t, key, { ...V1 })
  t.match(again, { action: 'unchanged', carried: [], dropped: [] }, 'the same layout: unchanged')
  t.equal(segmentByKey(key).shmid, id, 'the same segment')

  const w = first.table
  for (const name of ['prices', 'orders', 'old']) w.section(name).claim()
  w.section('prices').publish('12345678')
  w.section('orders').publish('first')
  w.section('orders').publish('second order')
  w.section('old').publish('x')
  const locksBefore = w.sections.map((s) => s.entry.lock.id)
  const replaced = applied(t, key, V2)
  t.equal(replaced.action, 'replaced')
  t.same(replaced.carried, [{ name: 'orders', version: 2, length: 12 }], 'carried over: orders, with its version')
  t.same(replaced.dropped, [
    { name: 'prices', version: 1, length: 8, why: 'it needs 8 bytes; the new capacity is 4' },
    { name: 'old', version: 1, length: 1, why: 'no section of that name now' }
  ], 'dropped: what does not fit, and what is gone')
  t.comment(`re-layout carried over ${JSON.stringify(replaced.carried)}; dropped ${JSON.stringify(replaced.dropped)}`)
  const table = replaced.table
  t.same(table.names, ['orders', 'prices', 'new'])
  t.same(table.section('orders').read(), { version: 2, data: Buffer.from('second order') }, 'the carried payload reads back at its version')
  t.match(table.section('orders').info(), { lastWriterPid: process.pid, length: 12 }, 'with its writer and length')
  t.equal(table.section('prices').version, 0, 'a dropped payload: the section starts empty')
  t.not(segmentByKey(key).shmid, id, 'a new segment at the key')
  t.same(semaphores().filter((s) => locksBefore.includes(s.semid)), [], 'the old claim locks are gone')
  table.section('orders').claim()
  t.equal(table.section('orders').publish('third'), 3, 'versions go on from the carried one')

  t.match(applied(t, key, { ...V2, mode: 0o640 }), { action: 'replaced' }, 'another mode is another layout')
  t.equal(segmentByKey(key).perms & 0o777, 0o640)
})

t.test('apply refuses what is not a section table, and bad layouts', async (t) => {
  const key = keyFor(2)
  const plain = shm.open(key, 'n', 0o600, 4096)
  t.teardown(() => { plain.delete(); plain.close() })
  plain.write('PHP data')
  t.throws(() => shm.sections.apply(key, V1), { code: 'ERR_SHM_NOT_SECTIONS' }, 'a plain segment is refused')
  t.equal(plain.read(0, 8).toString(), 'PHP data', 'and left as it was')
  t.throws(() => shm.sections.apply(keyFor(3), { sections: [] }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => shm.sections.apply(0, V1), { code: 'ERR_OUT_OF_RANGE' })
  t.equal(segmentByKey(keyFor(3)), undefined, 'nothing made')
})

t.test('processes on the replaced table: readers and waiters follow, writers must claim again (Node and PHP)', async (t) => {
  const key = keyFor(4)
  t.teardown(() => shm.sections.remove(key))
  const { table: old } = applied(t, key, V1)
  old.section('orders').claim()
  old.section('orders').publish('v1')
  const readers = { node: nodePeer(t), php: phpPeer(t) }
  const waiters = { node: nodePeer(t), php: phpPeer(t) } // a peer answers one request at a time
  const writers = { node: nodePeer(t), php: phpPeer(t) }
  for (const p of [readers, waiters, writers].flatMap(Object.values)) await p.call('attach', { key })
  await writers.node.call('claim', { name: 'prices' })
  await writers.php.call('claim', { name: 'old' })
  const localReader = shm.sections.attach(key, { readOnly: true })
  t.teardown(() => localReader.close())
  const orders = localReader.section('orders')

  // Waits pending on the old table: one on a section that survives, one on a section that goes.
  const surviving = orders.wait(1)
  const going = localReader.section('old').wait(0)
  const nodeWait = waiters.node.call('wait', { name: 'orders', since: 1, timeout: 10000 })
  const phpWait = waiters.php.call('wait', { name: 'orders', since: 1, timeout: 10000 })
  await new Promise((resolve) => setTimeout(resolve, 100))
  const started = Date.now()
  const { table } = applied(t, key, V2)
  await t.rejects(going, { code: 'ERR_SHM_TABLE_RETIRED', message: /replaced by its manager \(sections\.apply\), and the table now at its key has no section 'old'/ },
    'a wait on a section that is gone ends at once, saying so')
  t.ok(Date.now() - started < 1000, `at once (${Date.now() - started} ms)`)

  // Readers follow by name (the version carried over).
  t.same(orders.read(), { version: 1, data: Buffer.from('v1') }, 'a Node reader follows to the new table')
  t.same(localReader.names, ['orders', 'prices', 'new'], 'and sees its sections')
  t.same(await readers.node.call('read', { name: 'orders' }), { version: 1, hex: Buffer.from('v1').toString('hex') }, 'a Node reader in another process too')
  t.same(await readers.php.call('read', { name: 'orders' }), { version: 1, hex: Buffer.from('v1').toString('hex') }, 'and a PHP reader')

  // Writers were told; they claim again on the new table.
  await t.rejects(writers.node.call('publish', { name: 'prices', hex: '00' }), { code: 'ERR_SHM_TABLE_RETIRED', message: /claim the section again/ }, 'the Node writer is told its claim ended')
  await t.rejects(writers.php.call('publish', { name: 'old', hex: '00' }), { code: 'ERR_SHM_TABLE_RETIRED', message: /claim the section again/ }, 'and the PHP writer')
  t.throws(() => old.section('orders').publish('lost?'), { code: 'ERR_SHM_TABLE_RETIRED' }, 'and this process\'s writer')
  await writers.node.call('claim', { name: 'prices' })
  t.equal(await writers.node.call('publish', { name: 'prices', hex: '01' }), 1, 'the Node writer claims again (on the new table) and publishes')
  await t.rejects(writers.php.call('claim', { name: 'old' }), { code: 'ERR_SHM_TABLE_RETIRED', message: /has no section 'old'/ }, 'PHP claiming a section that is gone: told so')
  await writers.php.call('claim', { name: 'orders' })
  t.equal(await writers.php.call('publish', { name: 'orders', hex: Buffer.from('v2').toString('hex') }), 2, 'PHP claims again on the new table and publishes')

  // The waits that followed end with that publish.
  t.equal(await surviving, 2, 'the Node wait followed and saw version 2')
  t.equal(await nodeWait, 2, 'so did the Node wait in another process')
  t.equal(await phpWait, 2, 'and the PHP wait')
  t.same(table.section('orders').read(), { version: 2, data: Buffer.from('v2') })
})

/** A writer publishing as fast as it can; resolves with the versions it saw published, once it stops. */
function racingWriter (command, script, key) {
  const child = spawn(command, [path.join(FIXTURES, script), JSON.stringify({ key, name: 'orders', report: true, min: 16, max: 64 })], { stdio: ['ignore', 'pipe', 'pipe'] })
  const versions = []
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr += chunk })
  // PHP's CLI prints an uncaught exception on stdout: only the lines that are numbers are versions.
  readline.createInterface({ input: child.stdout }).on('line', (line) => { if (/^\d+$/.test(line)) versions.push(Number(line)); else stderr += line })
  return {
    started: new Promise((resolve) => child.stdout.once('data', resolve)),
    ended: new Promise((resolve) => child.on('close', (code) => resolve({ code, versions, stderr })))
  }
}

for (const [language, command, script] of [['Node', process.execPath, 'sections-writer.js'], ['PHP', 'php', 'sections-writer.php']]) {
  t.test(`a ${language} writer publishing through the replacement: every publish it was not told about is carried over`, async (t) => {
    const key = keyFor(language === 'Node' ? 5 : 6)
    t.teardown(() => shm.sections.remove(key))
    applied(t, key, V1)
    const writer = racingWriter(command, script, key)
    await writer.started
    await new Promise((resolve) => setTimeout(resolve, 50))
    const { carried, table } = applied(t, key, V2)
    const { code, versions, stderr } = await writer.ended
    t.not(code, 0, 'the writer stopped with an error')
    t.match(stderr, /ERR_SHM_TABLE_RETIRED/, 'ERR_SHM_TABLE_RETIRED')
    const last = versions.at(-1)
    t.ok(versions.length > 0, `it published ${versions.length} versions first`)
    // Carried over: every version it published without an error; perhaps also the one that
    // reported the error (both sides saw the other: docs/sections.md, section 8).
    t.ok(carried[0].version === last || carried[0].version === last + 1,
      `the carried version ${carried[0].version} is the last one it published without an error (${last}), or the next`)
    t.equal(table.section('orders').version, carried[0].version)
  })
}

t.test('nodejs-shm sections apply KEY layout.json, and nodejs-shm rm KEY on a table', async (t) => {
  const key = keyFor(7)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-apply-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = (name, layout) => { fs.writeFileSync(path.join(dir, name), typeof layout === 'string' ? layout : JSON.stringify(layout)); return path.join(dir, name) }
  const cli = (...args) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })
  const v1 = file('v1.json', { mode: '0600', sections: [{ name: 'prices', size: 100 }, { name: 'orders', size: 100 }] })
  const v2 = file('v2.json', { mode: '0600', sections: [{ name: 'orders', size: 50 }, { name: 'new', size: 10 }] })

  let run = cli('sections', 'apply', hex(key), v1)
  t.equal(run.stdout, `created section table ${hex(key)}: 2 sections (prices, orders)\n`, 'created')
  run = cli('sections', 'apply', hex(key), v1)
  t.equal(run.stdout, `unchanged section table ${hex(key)}: 2 sections (prices, orders)\n`, 'unchanged')
  const writer = shm.sections.attach(key)
  writer.section('orders').claim()
  writer.section('orders').publish('order 1')
  writer.section('prices').claim()
  writer.section('prices').publish('p')
  run = cli('sections', 'apply', hex(key), v2)
  t.equal(run.stdout, [
    `replaced section table ${hex(key)}: 2 sections (orders, new)`,
    '  carried over \'orders\': version 1, 7 bytes',
    '  dropped \'prices\' (version 1): no section of that name now', ''].join('\n'), 'replaced, saying what it carried over')
  t.equal(run.status, 0)
  writer.close()

  for (const [layout, message] of [['{', /cannot read the layout/], [JSON.stringify({ mode: 'rw', sections: [] }), /"mode" must be octal/]]) {
    run = cli('sections', 'apply', hex(key), file('bad.json', layout))
    t.equal(run.status, 2, `a bad layout file: usage error (${run.stderr.trim()})`)
    t.match(run.stderr, message)
  }
  run = cli('sections', 'apply', hex(key), file('empty.json', { sections: [] }))
  t.equal(run.status, 1, 'a layout apply refuses: exit 1')
  t.match(run.stderr, /ERR_INVALID_ARG_TYPE/)
  run = cli('sections', 'apply', hex(key))
  t.equal(run.status, 2, 'a missing layout: usage error')

  const locks = shm.sections.attach(key).sections.map((s) => s.entry.lock.id)
  run = cli('rm', hex(key))
  t.match(run.stdout, new RegExp(`^removed section table ${hex(key)}: segment id \\d+ marked for deletion \\(it goes at its last detach\\), 2 claim locks removed \\(semaphore set ids ${locks.join(', ')}\\); processes using it were told it is retired\\n$`), 'rm on a table says what it removed')
  t.same(semaphores().filter((s) => locks.includes(s.semid)), [], 'and leaves no claim lock behind')
  t.equal(segmentByKey(key), undefined)

  const one = file('one.json', { mode: '0600', sections: [{ name: 'only', size: 8 }] })
  run = cli('sections', 'apply', hex(key), one)
  t.equal(run.stdout, `created section table ${hex(key)}: 1 section (only)\n`, 'one section: singular')
  const [lock] = shm.sections.attach(key).sections.map((s) => s.entry.lock.id)
  run = cli('rm', hex(key))
  t.match(run.stdout, new RegExp(`, 1 claim lock removed \\(semaphore set id ${lock}\\);`), 'rm of a table of one section: singular too')

  const plain = shm.open(keyFor(8), 'n', 0o600, 64)
  plain.close()
  run = cli('rm', hex(keyFor(8)))
  t.equal(run.stdout, `marked ${hex(keyFor(8))} for deletion (it goes at its last detach)\n`, 'rm on a plain segment: as before')
})

t.test('a follower waits for the next table, up to 2 s, and says when none came', async (t) => {
  const key = keyFor(9)
  const layout = { mode: 0o600, sections: [{ name: 'a', size: 16 }] }
  shm.sections.create(key, layout).close()
  const reader = shm.sections.attach(key, { readOnly: true })
  t.teardown(() => reader.close())
  // The next table comes 200 ms after the retirement, from another process (started first: under load, Node starts slowly).
  const later = spawn(process.execPath, ['-e', `const shm = require(${JSON.stringify(path.join(__dirname, '..'))})
    process.stdout.write('ready\\n')
    process.stdin.once('data', () => setTimeout(() => { shm.sections.apply(${key}, ${JSON.stringify(layout)}).table.close(); process.exit(0) }, 200))`])
  await new Promise((resolve) => later.stdout.once('data', resolve))
  retireByHand(key)
  later.stdin.write('go\n')
  const started = Date.now()
  t.equal(reader.section('a').version, 0, 'the reader followed to the table that came later')
  t.ok(Date.now() - started >= 150, `after waiting for it (${Date.now() - started} ms)`)
  await new Promise((resolve) => later.on('close', resolve))

  retireByHand(key)
  const before = Date.now()
  t.throws(() => reader.section('a').read(), { code: 'ERR_SHM_TABLE_RETIRED', message: /replaced by its manager \(sections\.apply\), and no table is at its key now/ }, 'no next table: the reason')
  t.ok(Date.now() - before >= 1900, `after 2 s (${Date.now() - before} ms)`)
  t.equal(reader.retired, 'replaced', 'table.retired says so')
  t.throws(() => reader.section('a').version, { code: 'ERR_SHM_TABLE_RETIRED' }, 'and so does every later call')
})

t.test('a damaged retired word is damage, not a retirement', async (t) => {
  const key = keyFor(10)
  const made = shm.sections.create(key, { mode: 0o600, sections: [{ name: 'a', size: 16 }] })
  t.teardown(() => { made.close(); shm.sections.remove(key) })
  const raw = shm.open(key, 'w')
  t.teardown(() => raw.close())
  const word = made.section('a').offsets.control + 16
  raw.write(Buffer.from([7, 0, 0, 0]), word)
  t.throws(() => made.section('a').read(), { code: 'ERR_SHM_CORRUPT', message: "The section's retired word holds a value no manager writes: the segment is corrupt" }, 'a value no manager writes')
  raw.write(Buffer.from([1, 0, 0, 0]), word)
  t.throws(() => made.section('a').version, { code: 'ERR_SHM_CORRUPT', message: /a control block says the table was replaced, yet it is still the table at its key/ }, '"replaced", while the table is still at its key')
  raw.write(Buffer.from([0, 0, 0, 0]), word)
  t.equal(made.section('a').version, 0, 'repaired')
})

t.test('a wait started on a retired section ends at once, for any since-version, with either sleeper', async (t) => {
  // A retired section never changes again: a sleeper that went on would wake
  // at once forever (the event loop or a helper thread spinning).
  for (const threads of ['0', '1']) {
    const key = keyFor(11)
    const child = spawnSync(process.execPath, ['-e', `
      const shm = require(${JSON.stringify(path.join(__dirname, '..'))})
      const binding = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'binding'))})
      const { handleOf } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'segment'))})
      shm.sections.create(${key}, { mode: 0o600, sections: [{ name: 'a', size: 16 }] }).close()
      const raw = shm.open(${key}, 'a')
      const { offsets: { control, data } } = shm.sections.attach(${key}).section('a')
      const where = new Float64Array([control, ...data, 16])
      const version = binding.sectionVersion(handleOf(raw), where) + 1 // retiring changes the commit word
      shm.sections.remove(${key}) // retires the table, as its manager would
      const started = Date.now()
      const ended = []
      for (const since of [version, version - 1, version + 1]) {
        binding.sectionWait(handleOf(raw), where, since, 10000, (v, retired) => {
          ended.push({ since, v, retired })
          if (ended.length === 3) {
            console.log(JSON.stringify({ ms: Date.now() - started, version, ended, mechanism: shm.sections.waitMechanism() }))
            raw.close()
          }
        })
      }`], { encoding: 'utf8', timeout: 8000, env: { ...process.env, NODEJS_SHM_WAIT_THREADS: threads } })
    t.same([child.status, child.signal], [0, null], `NODEJS_SHM_WAIT_THREADS=${threads}: the process ended by itself`, { stderr: child.stderr })
    const { ms, version, ended, mechanism } = JSON.parse(child.stdout)
    t.ok(ms < 1000, `${mechanism}: the three waits ended in ${ms} ms (the timeout was 10 s)`)
    t.same(ended.map(({ v, retired }) => [v, retired]), [[version, 2], [version, 2], [version, 2]], '... each with the version and the retired word (2: removed)')
  }
})

t.test('a writer that follows a replaced table by reading has lost its claim: told at its next publish, it claims again', async (t) => {
  const key = keyFor(12)
  t.teardown(() => shm.sections.remove(key))
  const { table: old } = applied(t, key, { mode: 0o600, sections: [{ name: 'a', size: 16 }] })
  const writer = shm.sections.attach(key)
  t.teardown(() => writer.close())
  const a = writer.section('a')
  a.claim()
  a.publish('one')
  old.close()
  applied(t, key, { mode: 0o600, sections: [{ name: 'a', size: 32 }] })
  t.same(a.read(), { version: 1, data: Buffer.from('one') }, 'the writer reads: it follows, the payload carried over')
  t.notOk(a.claimed, 'its claim ended with the old table')
  t.throws(() => a.publish('two'), { code: 'ERR_SHM_TABLE_RETIRED', message: /claim the section again/ }, 'publishing says so')
  a.claim()
  t.equal(a.publish('two'), 2, 'claimed again on the new table, it publishes')
})

t.test('waits with a timeout that follow a replaced table keep their deadline', async (t) => {
  const key = keyFor(13)
  t.teardown(() => shm.sections.remove(key))
  const layout = (size) => ({ mode: 0o600, sections: [{ name: 'a', size }] })
  const { table: first } = applied(t, key, layout(16))
  first.section('a').claim()
  first.section('a').publish('one')
  const reader = shm.sections.attach(key, { readOnly: true })
  t.teardown(() => reader.close())
  const a = reader.section('a')

  const started = Date.now()
  const following = a.wait(1, { timeout: 5000 })
  await new Promise((resolve) => setTimeout(resolve, 50))
  const { table: second } = applied(t, key, layout(32))
  await new Promise((resolve) => setTimeout(resolve, 50))
  second.section('a').claim()
  second.section('a').publish('two')
  t.equal(await following, 2, 'a wait that followed sees the publish on the new table')
  t.ok(Date.now() - started < 2000, `before its deadline (${Date.now() - started} ms)`)

  // The table is replaced, and the deadline passes, while this thread is busy.
  const late = a.wait(2, 50)
  applied(t, key, layout(64))
  for (const until = Date.now() + 150; Date.now() < until;);
  t.equal(await late, 2, 'a wait whose deadline passed during the replacement resolves with the version it waited on')
})

t.test('a reader that follows to a damaged table is told it is damaged', async (t) => {
  const key = keyFor(14)
  const layout = { mode: 0o600, sections: [{ name: 'a', size: 16 }] }
  shm.sections.create(key, layout).close()
  const reader = shm.sections.attach(key, { readOnly: true })
  t.teardown(() => reader.close())
  // Retired by hand, as a manager does, then a new table whose control block is damaged.
  retireByHand(key)
  const next = shm.sections.create(key, layout)
  t.teardown(() => { next.close(); shm.sections.remove(key) })
  const damage = shm.open(key, 'w')
  t.teardown(() => damage.close())
  damage.write(Buffer.from([1, 0, 0, 0]), next.section('a').offsets.control + 16) // "replaced", yet at its key
  t.throws(() => reader.section('a').read(), { code: 'ERR_SHM_CORRUPT', message: /a control block says the table was replaced, yet it is still the table at its key/ },
    'the damage, not "retired"')
  damage.write(Buffer.from([0, 0, 0, 0]), next.section('a').offsets.control + 16)
  t.same(reader.section('a').read(), { version: 0, data: Buffer.alloc(0) }, 'repaired, the reader follows')
})

t.test('nodejs-shm rm and sections apply speak of one section and one lock in the singular, and of missing locks', async (t) => {
  const binding = require('../lib/binding')
  const key = keyFor(15)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-apply-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const layout = path.join(dir, 'one.json')
  fs.writeFileSync(layout, JSON.stringify({ mode: '0600', sections: [{ name: 'only', size: 8 }] }))
  const cli = (...args) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })
  let run = cli('sections', 'apply', hex(key), layout)
  t.equal(run.stdout, `created section table ${hex(key)}: 1 section (only)\n`)
  const [lock] = shm.sections.attach(key).sections.map((s) => s.entry.lock.id)
  run = cli('rm', hex(key))
  t.equal(run.stdout, `removed section table ${hex(key)}: segment id ${run.stdout.match(/segment id (\d+)/)[1]} marked for deletion (it goes at its last detach), ` +
    `1 claim lock removed (semaphore set id ${lock}); processes using it were told it is retired\n`)

  cli('sections', 'apply', hex(key), layout)
  binding.sectionLockRemove(shm.sections.attach(key).section('only').entry.lock.id) // someone removed it by hand
  run = cli('rm', hex(key))
  t.match(run.stdout, /, 0 claim locks removed \(semaphore set ids -\); /, 'a table whose lock someone removed: none to remove')
  t.equal(segmentByKey(key), undefined, 'the segment is gone all the same')
})
