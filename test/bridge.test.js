'use strict'
/*
 * The bridge as a library (lib/bridge.js) and as a command (bridge-cli.js),
 * in this process against a real redis-server: "hosts" here are two section
 * tables with different keys bridged under one namespace (the cross-namespace
 * runs are in bridge-hosts.test.js). Payloads larger than the local capacity,
 * malformed entries, missing tables and sections, busy sections, leases
 * refused, lost and handed over, Redis down at start and restarted, status,
 * and argument errors.
 */
const t = require('tap')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { once } = require('node:events')
const readline = require('node:readline')
const fs = require('node:fs')
const os = require('node:os')
const { createClient, RESP_TYPES } = require('@redis/client')
const shm = require('..')
const { Bridge, bridge, keys } = require('../lib/bridge')
const { keyFor, cleanupTablesAfter, ROOT } = require('./helpers')
const { redisServer, freePort, until } = require('./redis')

cleanupTablesAfter(t)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
let namespaces = 0
const namespace = () => `test-${process.pid}-${++namespaces}`

function table (t, n, sections) {
  const made = shm.sections.create(keyFor(n), { sections })
  t.teardown(() => { made.close(); shm.sections.remove(keyFor(n)) })
  return made
}

/** A started bridge that is closed at the end of the test; its log lines in .lines. */
async function started (t, options) {
  const lines = []
  const b = await bridge({ log: (line) => lines.push(line), ...options })
  b.lines = lines
  t.teardown(() => b.close())
  return b
}

const state = (b, name) => b.status().sections.find((s) => s.name === name)

async function redisClient (t, redis) {
  const client = createClient({ url: redis.url, RESP: 2, commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } })
  client.on('error', () => {})
  await client.connect()
  t.teardown(() => client.destroy())
  return client
}

t.test('export and import: the latest payload, whole; status; streams capped', async (t) => {
  const redis = await redisServer(t)
  const ns = namespace()
  const a = table(t, 1, [{ name: 'p', size: 1000 }, { name: 'big', size: 1000 }])
  const b = table(t, 2, [{ name: 'p', size: 1000 }, { name: 'big', size: 100 }])
  const exporter = await started(t, { redis: redis.url, table: keyFor(1), namespace: ns, exports: ['p', 'big'], host: 'host-a', keep: 2 })
  const importer = await started(t, { redis: redis.url, table: keyFor(2), namespace: ns, imports: ['p', 'big'], host: 'host-b' })
  t.match(state(exporter, 'p'), { direction: 'export', state: 'waiting for the first local publish', version: 0 })
  t.match(state(importer, 'p'), { direction: 'import', state: 'waiting for the first export', streamId: '0-0' })

  const writer = a.section('p')
  writer.claim()
  const reader = b.section('p')
  for (let i = 1; i <= 5; i++) {
    const before = reader.version
    writer.publish(`payload ${i} `.repeat(i * 10))
    await until(() => reader.read().data.toString() === `payload ${i} `.repeat(i * 10), 10000, `payload ${i}`)
    t.ok(reader.version > before, `payload ${i} arrived whole, as a new local version`)
  }
  await until(() => state(importer, 'p').remoteVersion === 5, 5000, 'the status')
  t.match(exporter.status(), {
    host: 'host-a', table: '0x' + (keyFor(1) >>> 0).toString(16), namespace: ns, redis: 'up',
    sections: [{ name: 'p', direction: 'export', state: 'ok', error: null, version: 5, remoteVersion: 5, streamId: /^\d+-\d+$/, lagMs: Number, leaseHolder: exporter.owner }, { name: 'big' }]
  })
  t.match(state(importer, 'p'), { state: 'ok', error: null, version: reader.version, remoteVersion: 5, lagMs: Number, leaseHolder: null })
  t.ok(state(importer, 'p').lagMs >= 0 && state(importer, 'p').lagMs < 5000, 'lag in ms')
  const client = await redisClient(t, redis)
  t.equal(await client.sendCommand(['XLEN', keys(ns, 'p').stream]), 2, 'the stream keeps the latest `keep` entries')
  t.same(keys('ns', 'a:b'), { stream: 'nodejs-shm:{ns}:stream:a:b', lease: 'nodejs-shm:{ns}:lease:a:b' })

  // A payload larger than the importing host's capacity: not published there (never a part of it), said once.
  const big = a.section('big')
  big.claim()
  big.publish(Buffer.alloc(500, 1))
  await until(() => state(importer, 'big').state === 'too large', 10000, 'the refusal')
  t.equal(b.section('big').version, 0, 'nothing published on B')
  t.match(state(importer, 'big').error, 'version 1 from host-a has 500 bytes, more than the local capacity (100); not published, waiting for the next')
  t.equal(importer.lines.filter((line) => line.includes('more than the local capacity')).length, 1)
  big.publish(Buffer.alloc(50, 2))
  await until(() => b.section('big').version === 1, 10000, 'the next one')
  t.same(b.section('big').read().data, Buffer.alloc(50, 2), 'the next version that fits is published')
  t.match(importer.lines.at(-1), "section 'big' (import): working again")

  // A restarted exporter does not send its latest version again; a restarted importer does not publish it again.
  await exporter.close()
  await exporter.close()
  await importer.close()
  const length = await client.sendCommand(['XLEN', keys(ns, 'p').stream])
  const version = reader.version
  const exporter2 = await started(t, { redis: redis.url, table: keyFor(1), namespace: ns, exports: ['p'], host: 'host-a' })
  const importer2 = await started(t, { redis: redis.url, table: keyFor(2), namespace: ns, imports: ['p'], host: 'host-b' })
  t.match(state(exporter2, 'p'), { state: 'ok' })
  t.match(state(importer2, 'p'), { state: 'ok', version })
  t.equal(await client.sendCommand(['XLEN', keys(ns, 'p').stream]), length, 'no entry added')
  t.equal(reader.version, version, 'no version added')
  writer.publish('after the restart')
  await until(() => reader.read().data.toString() === 'after the restart', 10000, 'the next payload')
})

t.test('export: each entry is exactly the payload and when it was published, a shorter one after a longer one too, and after the table is replaced with the section larger', async (t) => {
  const redis = await redisServer(t)
  const ns = namespace()
  const a = table(t, 3, [{ name: 'p', size: 100 }])
  table(t, 4, [{ name: 'p', size: 1000 }])
  const b = shm.sections.attach(keyFor(4))
  t.teardown(() => b.close())
  const exporter = await started(t, { redis: redis.url, table: keyFor(3), namespace: ns, exports: ['p'], host: 'host-a' })
  await started(t, { redis: redis.url, table: keyFor(4), namespace: ns, imports: ['p'], host: 'host-b' })
  const client = await redisClient(t, redis)
  const reader = b.section('p')
  const writer = a.section('p')
  writer.claim()
  const check = async (payload) => {
    const version = writer.publish(payload)
    await until(() => state(exporter, 'p').version === version, 10000, `version ${version} exported`)
    const [[, list]] = await client.sendCommand(['XREVRANGE', keys(ns, 'p').stream, '+', '-', 'COUNT', '1'])
    const fields = {}
    for (let i = 0; i < list.length; i += 2) fields[list[i].toString()] = list[i + 1].toString('latin1')
    t.same(fields, {
      version: String(version),
      published: String(writer.info().publishedAt.getTime()),
      host: 'host-a',
      length: String(payload.length),
      data: payload.toString('latin1')
    }, `the entry of ${payload.length} bytes`)
    await until(() => reader.read().data.equals(payload), 10000, `${payload.length} bytes on B`)
  }
  for (const payload of [Buffer.alloc(100, 1), Buffer.from('short'), Buffer.alloc(0), Buffer.alloc(60, 3)]) await check(payload)

  shm.sections.apply(keyFor(3), { sections: [{ name: 'p', size: 500 }] })
  t.throws(() => writer.publish('x'), { code: 'ERR_SHM_TABLE_RETIRED' }, 'the writer learns of the new table')
  writer.claim() // there
  await check(Buffer.alloc(400, 4))
  await check(Buffer.from('shorter again'))
  t.match(state(exporter, 'p'), { state: 'ok', error: null })
})

t.test('imports that cannot start yet: no table, no section, a busy section, malformed entries', async (t) => {
  const redis = await redisServer(t)
  const ns = namespace()
  const client = await redisClient(t, redis)
  const stream = (name) => keys(ns, name).stream
  await client.sendCommand(['XADD', stream('p'), '*', 'version', '7', 'published', String(Date.now()), 'host', 'elsewhere', 'length', '2', 'data', 'hi'])
  const importer = await started(t, { redis: redis.url, table: keyFor(3), namespace: ns, imports: ['p', 'q', 'absent'] })
  t.match(state(importer, 'p'), { state: 'retrying', error: /^ENOENT: no segment with key/ }, 'no table yet')

  const b = table(t, 3, [{ name: 'p', size: 100 }, { name: 'q', size: 100 }])
  const q = b.section('q')
  q.claim() // a local writer holds it
  await until(() => b.section('p').version === 1, 10000, 'the table appears: p gets the latest entry at once')
  t.equal(b.section('p').read().data.toString(), 'hi')
  t.match(state(importer, 'p'), { state: 'ok', remoteVersion: 7 })
  await until(() => state(importer, 'absent').error?.startsWith('No section named'), 5000, 'absent')
  await until(() => state(importer, 'q').error?.includes('is claimed by process'), 5000, 'q busy')
  t.match(importer.lines.join('\n'), /section 'q' \(import\): Section 'q' of table 0x[0-9a-f]+ is claimed by process \d+( \([^)]*\))?: its claim lock is held/)

  // An entry without its fields, and one whose length does not match: skipped, never published.
  await client.sendCommand(['XADD', stream('p'), '*', 'version', '8'])
  await until(() => state(importer, 'p').state === 'skipped', 5000, 'the malformed entry')
  t.match(state(importer, 'p').error, /^stream entry \d+-\d+ is malformed \(0 bytes of data, length field NaN\); skipped$/)
  await client.sendCommand(['XADD', stream('p'), '*', 'version', '9', 'published', '0', 'host', 'h', 'length', '5', 'data', 'abc'])
  await until(() => state(importer, 'p').error?.includes('3 bytes of data, length field 5'), 5000, 'the short entry')
  t.equal(b.section('p').version, 1, 'nothing published')

  q.release()
  await client.sendCommand(['XADD', stream('q'), '*', 'version', '1', 'published', String(Date.now()), 'host', 'h', 'length', '3', 'data', 'q-1'])
  await until(() => q.read().data.toString() === 'q-1', 10000, 'q claimed once free')
  await client.sendCommand(['XADD', stream('p'), '*', 'version', '10', 'published', String(Date.now()), 'host', 'h', 'length', '2', 'data', 'ok'])
  await until(() => b.section('p').read().data.toString() === 'ok', 10000, 'p again')
  t.match(state(importer, 'absent'), { state: 'retrying' }, 'a missing section keeps retrying')
  await importer.close() // before the table's removal (teardowns run last first)
})

t.test('one exporter per section: refused, handed over on close, lost and taken back', async (t) => {
  const redis = await redisServer(t)
  const ns = namespace()
  const client = await redisClient(t, redis)
  const a = table(t, 4, [{ name: 'p', size: 100 }])
  const c = table(t, 5, [{ name: 'p', size: 100 }])
  const first = await started(t, { redis: redis.url, table: keyFor(4), namespace: ns, exports: ['p'], host: 'host-a', leaseMs: 1000 })
  const second = await started(t, { redis: redis.url, table: keyFor(5), namespace: ns, exports: ['p'], host: 'host-c', leaseMs: 1000 })
  t.match(state(second, 'p'), { state: 'refused', leaseHolder: first.owner, error: `export refused: the section is exported by ${first.owner}; this bridge takes over when that lease expires` })
  const w = c.section('p')
  w.claim()
  w.publish('from c')
  a.section('p').claim()
  a.section('p').publish('from a')
  const latest = async () => {
    const [entry] = await client.sendCommand(['XREVRANGE', keys(ns, 'p').stream, '+', '-', 'COUNT', '1'])
    return entry?.[1][entry[1].length - 1].toString()
  }
  await until(async () => (await latest()) === 'from a', 5000, 'a\'s export')
  await sleep(300)
  t.equal(await latest(), 'from a', 'only the lease holder exports')

  await first.close() // gives the lease back: no wait for its expiry
  await until(() => state(second, 'p').state === 'ok', 5000, 'the takeover')
  t.equal(await latest(), 'from c', 'the new exporter sends its latest version')

  // Someone deletes the lease (or Redis lost it): the next export is refused by Redis, and the lease taken again.
  await client.sendCommand(['DEL', keys(ns, 'p').lease])
  w.publish('after the loss')
  await until(async () => (await latest()) === 'after the loss', 5000, 'the export after the loss')
  t.equal((await client.sendCommand(['GET', keys(ns, 'p').lease])).toString(), second.owner, 'the lease is held again')

  // Closing while waiting for a lease.
  const third = await started(t, { redis: redis.url, table: keyFor(4), namespace: ns, exports: ['p'], host: 'host-a', leaseMs: 60000 })
  t.match(state(third, 'p'), { state: 'refused' })
  await third.close()
})

t.test('Redis down at start, then restarted empty: one line each way, and the latest state again', async (t) => {
  const redis = await redisServer(t)
  await redis.stop()
  const ns = namespace()
  const a = table(t, 6, [{ name: 'p', size: 100 }])
  const b = table(t, 7, [{ name: 'p', size: 100 }, { name: 'q', size: 100 }])
  b.section('q').claim() // a local writer holds q: the importer's retries go on while Redis is away
  const w = a.section('p')
  w.claim()
  w.publish('before')
  const exporter = new Bridge({ redis: redis.url, table: keyFor(6), namespace: ns, exports: ['p'] })
  const lines = []
  const importer = new Bridge({ redis: redis.url, table: keyFor(7), namespace: ns, imports: ['p', 'q'], log: (line) => lines.push(line) })
  const starting = Promise.all([exporter.start(), importer.start()])
  await sleep(700)
  t.equal(importer.status().redis, 'down')
  await redis.start()
  await starting
  const reader = b.section('p')
  await until(() => reader.read().data.toString() === 'before', 10000, 'the first state')
  t.equal(lines.filter((line) => line.startsWith('redis ')).length, 2, 'one line for the outage, one for the return', { lines })

  await redis.stop()
  w.publish('while down')
  await sleep(700)
  await redis.start()
  await until(() => reader.read().data.toString() === 'while down', 10000, 'the state written while Redis was down')
  t.equal(lines.filter((line) => line.includes('reconnecting')).length, 2)
  await redis.stop()
  await until(() => exporter.status().redis === 'down', 5000, 'the outage noticed')
  await exporter.close() // with Redis down: its lease expires by itself
  await importer.close()
})

t.test('argument errors', async (t) => {
  const ok = { redis: 'redis://127.0.0.1:1', table: 1, exports: ['p'] }
  const cases = [
    [{ ...ok, redis: 'http://x' }, TypeError, 'ERR_INVALID_ARG_TYPE', /redis:\/\/ or rediss:\/\/ URL/],
    [{ ...ok, redis: undefined }, TypeError, 'ERR_INVALID_ARG_TYPE', /URL; got undefined/],
    [{ ...ok, table: 0 }, TypeError, 'ERR_INVALID_ARG_TYPE', /section table's key/],
    [{ ...ok, table: '1' }, TypeError, 'ERR_INVALID_ARG_TYPE', /section table's key/],
    [{ ...ok, exports: [] }, TypeError, 'ERR_INVALID_ARG_VALUE', /at least one section/],
    [{ ...ok, exports: 'p' }, TypeError, 'ERR_INVALID_ARG_VALUE', /at least one section/],
    [{ ...ok, imports: 'p' }, TypeError, 'ERR_INVALID_ARG_VALUE', /at least one section/],
    [{ ...ok, imports: ['p'] }, TypeError, 'ERR_INVALID_ARG_VALUE', /each once, in one direction/],
    [{ ...ok, exports: [''] }, TypeError, 'ERR_INVALID_ARG_VALUE', /at least one section/],
    [{ ...ok, exports: [1] }, TypeError, 'ERR_INVALID_ARG_VALUE', /at least one section/],
    [{ ...ok, namespace: 'a:b' }, RangeError, 'ERR_INVALID_ARG_VALUE', /without ':'/],
    [{ ...ok, namespace: 5 }, RangeError, 'ERR_INVALID_ARG_VALUE', /"namespace"/],
    [{ ...ok, leaseMs: 99 }, RangeError, 'ERR_OUT_OF_RANGE', /"leaseMs" option must be an integer >= 100; got 99/],
    [{ ...ok, keep: 0.5 }, RangeError, 'ERR_OUT_OF_RANGE', /"keep" option must be an integer >= 1; got 0.5/]
  ]
  for (const [options, Type, code, message] of cases) {
    t.throws(() => new Bridge(options), Object.assign(new Type('x'), { code, message }), JSON.stringify(options))
  }
  t.throws(() => new Bridge(), { code: 'ERR_INVALID_ARG_TYPE' })
  const b = new Bridge(ok)
  t.match(b, { host: require('node:os').hostname(), owner: /^.+ pid \d+ [0-9a-f]{8}$/ })
  await b.close() // never started: nothing to do
})

t.test('the bridge command: --json status lines, logs on stderr, SIGTERM, usage errors', async (t) => {
  const redis = await redisServer(t)
  const ns = namespace()
  const a = table(t, 8, [{ name: 'p', size: 100 }])
  const b = table(t, 9, [{ name: 'p', size: 100 }])
  const run = (args) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'nodejs-shm.js'), 'bridge', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.statuses = []
    child.err = ''
    readline.createInterface({ input: child.stdout }).on('line', (line) => child.statuses.push(JSON.parse(line)))
    child.stderr.on('data', (chunk) => { child.err += chunk })
    child.exited = once(child, 'exit')
    t.teardown(() => child.kill('SIGKILL'))
    return child
  }
  const exporter = run(['--redis', redis.url, '--table', String(keyFor(8)), '--namespace', ns, '--export', 'p', '--json', '--status-every', '0.05', '--lease', '2000', '--keep', '3', '--host', 'cli-a'])
  const importer = run(['--redis', redis.url, '--table', '0x' + (keyFor(9) >>> 0).toString(16), '--namespace', ns, '--import', 'p', '--import', 'absent'])
  await until(() => exporter.statuses.length >= 3, 30000, 'status lines')
  t.match(exporter.statuses[0], { host: 'cli-a', namespace: ns, redis: 'up', sections: [{ name: 'p', direction: 'export', leaseHolder: /^cli-a pid / }] })
  await until(() => importer.err.includes('running as'), 30000, 'the importer')
  const w = a.section('p')
  w.claim()
  w.publish('via the command')
  await until(() => b.section('p').read().data.toString() === 'via the command', 10000, 'the payload')
  await until(() => exporter.statuses.at(-1).sections[0].version === 1, 5000, 'the status')
  exporter.kill('SIGTERM')
  importer.kill('SIGINT')
  t.same((await exporter.exited)[0], 0)
  t.same((await importer.exited)[0], 0)
  t.match(exporter.err, /^nodejs-shm bridge: running as cli-a pid \d+ [0-9a-f]{8}: p \(export, waiting for the first local publish\)\n$/)
  t.match(exporter.statuses.at(-1).sections[0], { state: 'ok', version: 1 })
  t.equal(importer.statuses.length, 0, 'no status lines without --json')
  t.match(importer.err, /^nodejs-shm bridge: section 'absent' \(import\): No section named "absent" in table 0x[0-9a-f]+; it has "p"\n/, 'one line per problem, on stderr')

  for (const [args, message] of [
    [['--table', '1'], /--redis and --table are required; usage: nodejs-shm bridge --redis URL/],
    [['--redis', redis.url, '--table', '1', '--export', 'p', '--lease', 'soon'], /--lease must be a number, not 'soon'/],
    [['--redis', redis.url, '--table', 'x', '--export', 'p'], /invalid KEY 'x'/],
    [['--redis', redis.url, '--table', '1', '--export', 'p', '--lease', '5'], /"leaseMs" option must be an integer >= 100; got 5/]
  ]) {
    const child = run(args)
    const [code] = await child.exited
    t.equal(code, message.source.includes('leaseMs') ? 1 : 2, args.join(' '))
    t.match(child.err, message)
  }
})

t.test('the README\'s bridge example runs', async (t) => {
  const redis = await redisServer(t)
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const code = /## Across hosts[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)[1]
    .replaceAll('redis://redis.internal:6379', redis.url).replaceAll('0x5e000100', String(keyFor(10)))
  table(t, 10, [{ name: 'prices', size: 100 }])
  const lines = []
  const AsyncFunction = (async () => {}).constructor
  const run = new AsyncFunction('require', 'console', code + '\nreturn { state, version, remoteVersion, lagMs }')
  const seen = await run((name) => require(name === 'nodejs-shm' ? '..' : name), { error: (line) => lines.push(line) })
  t.same(seen, { state: 'waiting for the first export', version: 0, remoteVersion: 0, lagMs: null })
  t.same(lines, [])
})

t.test('logs never show the Redis password', async (t) => {
  const port = await freePort()
  const lines = []
  const b = new Bridge({ redis: `redis://user:secret@127.0.0.1:${port}`, table: keyFor(11), exports: ['p'], log: (line) => lines.push(line) })
  await b.start() // resolves: the table is missing
  await until(() => lines.some((line) => line.startsWith('redis ')), 5000, 'the outage line')
  t.notMatch(lines.join('\n'), /secret/)
  t.match(lines.join('\n'), `redis redis://127.0.0.1:${port}: `)
  await b.close()
})

t.test('without @redis/client installed, the bridge says what to install', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-noredis-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  for (const file of ['index.js', 'package.json', 'build/Release/shm.node', ...['lib', 'bin', 'node_modules/node-gyp-build'].flatMap((d) => fs.readdirSync(path.join(ROOT, d)).map((f) => `${d}/${f}`))]) {
    fs.mkdirSync(path.join(dir, path.dirname(file)), { recursive: true })
    fs.copyFileSync(path.join(ROOT, file), path.join(dir, file))
  }
  const { NODE_OPTIONS, ...env } = process.env // tap's loaders live in the checkout's node_modules
  const child = spawn(process.execPath, [path.join(dir, 'bin', 'nodejs-shm.js'), 'bridge', '--redis', 'redis://127.0.0.1:1', '--table', '1', '--export', 'p'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const [code] = await once(child, 'exit')
  t.equal(code, 1)
  t.equal(stderr, 'nodejs-shm: ERR_SHM_BRIDGE_NO_CLIENT: The bridge needs the Redis client @redis/client (node-redis): npm install @redis/client\n')
})

t.test('the command\'s run(), in this process: one log line per problem, status lines, stop', async (t) => {
  const redis = await redisServer(t)
  table(t, 12, [{ name: 'p', size: 100 }])
  const out = []
  const err = []
  let stop
  const running = require('../lib/bridge-cli').run(
    { redis: redis.url, table: String(keyFor(12)), import: ['p', 'absent'], json: true, 'status-every': '0.02' },
    Number,
    { stdout: { write: (text) => out.push(text) }, stderr: { write: (text) => err.push(text) }, stop: new Promise((resolve) => { stop = resolve }) })
  await until(() => out.length >= 3, 10000, 'status lines')
  stop()
  await running
  t.match(err.join(''), /section 'absent' \(import\): No section named "absent"/)
  t.match(JSON.parse(out.at(-1)).sections, [{ name: 'p', state: 'waiting for the first export' }, { name: 'absent', state: 'retrying' }])
})
