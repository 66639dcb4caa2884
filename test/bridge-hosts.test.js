'use strict'
/*
 * The bridge between two hosts, each simulated by its own System V IPC
 * namespace (unshare --ipc), with its own section table and its own bridge
 * process (bin/nodejs-shm.js bridge), through a real redis-server on
 * loopback. Node and PHP writers on host A, Node and PHP readers and waiters
 * on host B: every payload whole, versions never go back, and B shows A's
 * latest state after each fault (exporting bridge killed, importing bridge
 * killed, Redis killed and restarted empty). And one exporter across hosts.
 * A host's segments and semaphores go with its namespace, when its last
 * process (all killed at the end, also on failure) exits.
 */
const t = require('tap')
const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')
const { spawn } = require('node:child_process')
const { once } = require('node:events')
const { createClient, RESP_TYPES } = require('@redis/client')
const { requirePHP, ROOT } = require('./helpers')
const { redisServer, until } = require('./redis')

requirePHP()
const KEY = '0x5e000100'
const BIN = path.join(ROOT, 'bin', 'nodejs-shm.js')
const FIXTURES = path.join(__dirname, 'fixtures')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A host: a new IPC namespace held by an idle process; spawn() runs a
 * command in it (nsenter). Every process of the host is killed when the test
 * ends, and the namespace, with its IPC objects, goes with them.
 */
async function host (t, name) {
  // The keeper ends when its stdin does: also if this process dies without its teardown.
  const keeper = spawn('unshare', ['--ipc', process.execPath, '-e', 'process.stdin.resume().on("end", () => process.exit())'], { stdio: ['pipe', 'ignore', 'ignore'] })
  const children = new Set([keeper])
  const killAll = () => { for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') }
  t.teardown(killAll)
  const ours = fs.readlinkSync('/proc/self/ns/ipc')
  await until(() => { try { return fs.readlinkSync(`/proc/${keeper.pid}/ns/ipc`) !== ours } catch { return false } }, 5000, `host ${name}'s namespace`)
  const h = {
    name,
    spawn (args, options = {}) {
      const child = spawn('nsenter', ['-t', String(keeper.pid), '--ipc', ...args], { stdio: ['pipe', 'pipe', 'pipe'], ...options })
      children.add(child)
      child.out = ''
      child.err = ''
      child.stdout.on('data', (chunk) => { child.out += chunk })
      child.stderr.on('data', (chunk) => { child.err += chunk })
      child.exited = once(child, 'exit')
      return child
    },
    /** Runs a command to its end; returns its stdout parsed as JSON (last line). */
    async json (args) {
      const child = h.spawn(args)
      const [code] = await child.exited
      if (code !== 0) throw new Error(`${args.join(' ')} on host ${name} exited ${code}: ${child.err}`)
      return JSON.parse(child.out.trim().split('\n').pop())
    }
  }
  await h.json(['node', '-e', `require(${JSON.stringify(ROOT)}).sections.create(${KEY}, { sections: [{ name: 'p', size: 65536 }, { name: 'q', size: 1000 }] }).close(); console.log('{}')`])
  return h
}

/** The bridge command on a host, with --json status every 100 ms: { child, status, log, stop(), kill() }. */
function bridge (h, redis, args) {
  const child = h.spawn(['node', BIN, 'bridge', '--redis', redis.url, '--table', KEY, '--lease', '1000', '--json', '--status-every', '0.1', ...args])
  const b = { child, status: null }
  readline.createInterface({ input: child.stdout }).on('line', (line) => { b.status = JSON.parse(line) })
  b.section = (name) => b.status?.sections.find((s) => s.name === name)
  b.log = () => child.err
  b.until = (fn, ms, what) => until(() => b.status && fn(b), ms, `${what}; bridge log: ${child.err}`)
  b.stop = async () => { child.kill('SIGTERM'); const [code] = await child.exited; return code }
  b.kill = async () => { child.kill('SIGKILL'); await child.exited }
  return b
}

/** A node or PHP reader on a host (bridge-reader.*), once it says "ready". */
async function reader (h, command) {
  const child = h.spawn(command === 'php'
    ? ['php', path.join(FIXTURES, 'bridge-reader.php'), JSON.stringify({ key: Number(KEY), name: 'p' })]
    : ['node', path.join(FIXTURES, 'bridge-reader.js'), JSON.stringify({ key: Number(KEY), name: 'p' })])
  await until(() => child.out.startsWith('ready\n') || child.exitCode !== null, 10000, `the ${command} reader`)
  return child
}

/** Publishes on a host for ms with the Node or PHP writer fixture; returns the last version. */
async function write (h, command, ms, name = 'p') {
  const options = JSON.stringify({ key: Number(KEY), name, ms, min: 16, max: name === 'p' ? 65536 : 1000 })
  const { last } = await h.json(command === 'php'
    ? ['php', path.join(FIXTURES, 'sections-writer.php'), options]
    : ['node', path.join(FIXTURES, 'sections-writer.js'), options])
  return last
}

/** What host h shows once its payload carries version atLeast (or after 15 s). */
const probe = (h, atLeast, name = 'p') => h.json(['node', path.join(FIXTURES, 'bridge-probe.js'), JSON.stringify({ key: Number(KEY), name, atLeast, timeout: 15000 })])

async function redisClient (t, redis) {
  const client = createClient({ url: redis.url, RESP: 2, commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } })
  client.on('error', () => {})
  await client.connect()
  t.teardown(() => client.destroy())
  return client
}

/** The stream's latest entry: { host, version, length } (or null). */
async function latest (client, name, namespace = KEY) {
  const [entry] = await client.sendCommand(['XREVRANGE', `nodejs-shm:{${namespace}}:stream:${name}`, '+', '-', 'COUNT', '1'])
  if (!entry) return null
  const fields = {}
  for (let i = 0; i < entry[1].length; i += 2) fields[entry[1][i].toString()] = entry[1][i + 1]
  return { host: fields.host.toString(), version: Number(fields.version.toString()), length: fields.data.length, own: Number(fields.data.readBigUInt64LE(0)) }
}

t.test('Node and PHP writers on A, Node and PHP readers on B, through faults', async (t) => {
  const redis = await redisServer(t)
  const [a, b] = await Promise.all([host(t, 'A'), host(t, 'B')])
  let exporter = bridge(a, redis, ['--export', 'p', '--host', 'host-a'])
  let importer = bridge(b, redis, ['--import', 'p', '--host', 'host-b'])
  await exporter.until((x) => x.section('p').state === 'waiting for the first local publish', 15000, 'the exporter')
  await importer.until((x) => x.section('p').state === 'waiting for the first export', 15000, 'the importer')
  const readers = [await reader(b, 'node'), await reader(b, 'php')]

  const shown = async (version, what) => {
    const seen = await probe(b, version)
    t.same(seen, { version: seen.version, own: version, whole: true }, `B shows version ${version} whole: ${what}`)
  }

  const v1 = await write(a, 'node', 1000)
  await shown(v1, 'a Node writer on A')

  await exporter.kill()
  const v2 = await write(a, 'node', 300)
  exporter = bridge(a, redis, ['--export', 'p', '--host', 'host-a'])
  await shown(v2, 'the exporting bridge killed, A written meanwhile, the bridge restarted (after its old lease expired)')

  await importer.kill()
  const v3 = await write(a, 'php', 300)
  importer = bridge(b, redis, ['--import', 'p', '--host', 'host-b'])
  await shown(v3, 'the importing bridge killed, a PHP writer on A meanwhile, the bridge restarted: the latest entry first')

  await redis.stop()
  const v4 = await write(a, 'node', 300)
  await sleep(300)
  await redis.start()
  await shown(v4, 'Redis killed, A written while it was down, Redis restarted empty')

  await redis.stop()
  await redis.start()
  const client = await redisClient(t, redis)
  t.match(await until(() => latest(client, 'p'), 15000, 'the re-export'), { host: 'host-a', own: v4, version: v4 },
    'Redis restarted empty again with no new write: the exporter puts the latest version back')

  for (const child of readers) child.stdin.write(`${v4}\n`)
  for (const child of readers) {
    const [code] = await child.exited
    t.equal(code, 0, 'the reader ended', { stderr: child.err })
    const [stats] = Object.values(JSON.parse(child.out.trim().split('\n').pop()))
    t.equal(stats.bad, 0, 'every payload whole, no version went back', { samples: stats.samples })
    t.equal(stats.last, v4, 'the reader saw the latest version')
    t.ok(stats.versions >= 4, `the reader saw ${stats.versions} versions of ${v4}`)
  }
  for (const [name, x] of [['exporter', exporter], ['importer', importer]]) {
    t.equal(x.log().match(/reconnecting/g)?.length, 2, `the ${name} said once per outage that Redis was gone`, { log: x.log() })
    t.equal(x.log().match(/connected again/g)?.length, 2, `the ${name} said when it was back`)
    t.equal(x.log().split('\n').filter((line) => line.includes('redis:')).length, 4, 'and nothing else about Redis', { log: x.log() })
    t.equal(await x.stop(), 0, `the ${name} stops on SIGTERM`)
    t.match(x.section('p'), { state: 'ok', error: null }, `the ${name}'s last status`)
  }
  t.match(exporter.section('p'), { direction: 'export', version: v4, remoteVersion: v4, leaseHolder: /^host-a pid \d+ [0-9a-f]{8}$/ })
  t.match(importer.section('p'), { direction: 'import', remoteVersion: v4, streamId: /^\d+-\d+$/ })
})

t.test('one exporter across hosts: the second is refused, and takes over when the lease of a dead one expires', async (t) => {
  const redis = await redisServer(t)
  const [a, b] = await Promise.all([host(t, 'A'), host(t, 'B')])
  const client = await redisClient(t, redis)
  const first = bridge(a, redis, ['--export', 'q', '--host', 'host-a'])
  await first.until((x) => x.section('q').state.startsWith('waiting'), 15000, 'the first exporter')
  const second = bridge(b, redis, ['--export', 'q', '--host', 'host-b'])
  await second.until((x) => x.section('q').state === 'refused', 15000, 'the refusal')
  t.match(second.log(), /section 'q' \(export\): export refused: the section is exported by host-a pid \d+ [0-9a-f]{8}; this bridge takes over when that lease expires\n/,
    'the second exporter says why, in one line')
  t.match(second.section('q'), { state: 'refused', leaseHolder: /^host-a / })

  const va = await write(a, 'node', 200, 'q')
  await until(() => latest(client, 'q').then((e) => e?.version === va && e), 10000, 'A\'s export')
  const vb = await write(b, 'node', 100, 'q')
  await sleep(500)
  t.match(await latest(client, 'q'), { host: 'host-a', version: va }, 'B\'s own writes are not exported while A holds the lease')

  await first.kill()
  const killed = Date.now()
  await second.until((x) => x.section('q').state === 'ok', 15000, 'the takeover')
  const took = Date.now() - killed
  t.ok(took < 6000, `B took over ${took} ms after A's bridge died (lease 1000 ms)`)
  t.match(await latest(client, 'q'), { host: 'host-b', version: vb }, 'then B\'s latest version is exported')
  t.match(second.section('q'), { leaseHolder: /^host-b / })
  t.equal(second.log().match(/export refused/g).length, 1, 'the refusal was said once, not at every retry')
  t.equal(await second.stop(), 0)
})
