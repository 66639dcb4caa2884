#!/usr/bin/env node
'use strict'
/*
 * Cross-host row: a PHP publish on host A to the payload in a Node reader's
 * hands on host B, through two bridges (bin/nodejs-shm.js bridge, one
 * exporting A's table, one importing into B's) and a redis-server on
 * loopback; beside Redis itself for the same payload: PHP SET + PUBLISH
 * (phpredis), Node (node-redis) receives the message and GETs the payload.
 * One-way latency: the writer stamps each payload with CLOCK_MONOTONIC, which
 * the reader shares (one machine; the two "hosts" are two tables here, as the
 * IPC namespace changes nothing in this path). Target: the bridge adds at
 * most 2x what Redis itself costs (median).
 *
 * Alone: node bench/crosshost.js [--count N] [--json]. As a group of
 * bench/index.js: { name, title, legend, cases } like the other groups.
 * Needs redis-server, php-cli with phpredis (php-redis), @redis/client.
 */
const path = require('node:path')
const net = require('node:net')
const { spawn, spawnSync } = require('node:child_process')
const { once } = require('node:events')
const readline = require('node:readline')
const shm = require('..')

const ROOT = path.join(__dirname, '..')
const SIZES = [{ bytes: 10 * 1024, label: '10KB' }, { bytes: 100 * 1024, label: '100KB' }]
const KEYS = [0x5e0b0001, 0x5e0b0002]
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function freePort () {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  return port
}

/** Starts a child and returns it once `ready(line)` is true for a line of its stdout. */
async function started (command, args, ready) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'] })
  const lines = readline.createInterface({ input: child.stdout })
  await new Promise((resolve, reject) => {
    lines.on('line', (line) => { if (ready(line)) resolve() })
    child.on('exit', (code) => reject(new Error(`${command} ${args.join(' ')} exited (${code})`)))
  })
  return child
}

function writer (options) {
  const child = spawn('php', [path.join(__dirname, 'crosshost.php'), JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] })
  return once(child, 'exit')
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))]
  return { count: s.length, medianUs: at(0.5), p99Us: at(0.99) }
}
const stamp = (data) => Number(process.hrtime.bigint() - data.readBigUInt64LE(0)) / 1000

/** PHP publish on A → bridge → Redis → bridge → Node reader on B. */
let runs = 0
async function viaBridge (port, bytes, count, gapMs) {
  const tables = KEYS.map((key) => {
    try { shm.sections.remove(key) } catch {}
    return shm.sections.create(key, { mode: 0o600, sections: [{ name: 'p', size: bytes }] })
  })
  const bin = path.join(ROOT, 'bin', 'nodejs-shm.js')
  const common = ['--redis', `redis://127.0.0.1:${port}`, '--namespace', `bench${++runs}`, '--json'] // a new stream each run
  const bridges = []
  try {
    bridges.push(await started(process.execPath, [bin, 'bridge', ...common, '--table', String(KEYS[0]), '--export', 'p'], (l) => l.startsWith('{')))
    bridges.push(await started(process.execPath, [bin, 'bridge', ...common, '--table', String(KEYS[1]), '--import', 'p'], (l) => l.startsWith('{')))
    const reader = tables[1].section('p')
    const latencies = []
    let finished = false
    const done = writer({ mode: 'bridge', key: KEYS[0], bytes, count, gapMs }).then(() => { finished = true })
    let version = reader.version
    // Until the writer is done and nothing more came for a second (a bridge sends the latest: it may skip some).
    // eslint-disable-next-line no-unmodified-loop-condition -- set by the writer's promise while the loop awaits
    for (let quiet = 0; !finished || quiet < 1;) {
      const next = await reader.wait(version, { timeout: 1000 })
      if (next === version) {
        quiet += finished
        continue
      }
      version = next
      latencies.push(stamp(reader.read().data))
    }
    await done
    return stats(latencies)
  } finally {
    for (const child of bridges) child.kill('SIGTERM')
    await Promise.all(bridges.map((child) => once(child, 'exit')))
    for (const [i, table] of tables.entries()) { table.close(); shm.sections.remove(KEYS[i]) }
  }
}

/** PHP SET + PUBLISH → Node subscriber → GET. */
async function viaRedis (port, bytes, count, gapMs) {
  const { createClient, RESP_TYPES } = require('@redis/client')
  const client = createClient({ url: `redis://127.0.0.1:${port}`, commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } })
  const subscriber = client.duplicate()
  await Promise.all([client.connect(), subscriber.connect()])
  const latencies = []
  let finish
  const all = new Promise((resolve) => { finish = resolve })
  await subscriber.subscribe('bench:crosshost', async () => {
    const data = await client.sendCommand(['GET', 'bench:crosshost'])
    latencies.push(stamp(data))
    if (latencies.length === count) finish()
  })
  await writer({ mode: 'redis', port, bytes, count, gapMs })
  await Promise.race([all, sleep(5000)])
  client.destroy()
  subscriber.destroy()
  return stats(latencies)
}

/** Both paths for one size, interleaved in `rounds` halves. */
async function measure (bytes, { count = 200, gapMs = 20, rounds = 2 } = {}) {
  const port = await freePort()
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  try {
    for (let tries = 0; ; tries++) {
      const socket = net.connect(port, '127.0.0.1')
      const ok = await new Promise((resolve) => { socket.once('connect', () => resolve(true)); socket.once('error', () => resolve(false)) })
      socket.destroy()
      if (ok) break
      if (tries > 200) throw new Error('redis-server did not start')
      await sleep(25)
    }
    const bridge = []
    const direct = []
    for (let round = 0; round < rounds; round++) {
      bridge.push(await viaBridge(port, bytes, count / rounds, gapMs))
      direct.push(await viaRedis(port, bytes, count / rounds, gapMs))
    }
    const median = (list) => list.map((s) => s.medianUs).sort((a, b) => a - b)[Math.floor(list.length / 2)]
    const p99 = (list) => Math.max(...list.map((s) => s.p99Us))
    const result = {
      bytes,
      bridge: { medianUs: median(bridge), p99Us: p99(bridge), count: bridge.reduce((n, s) => n + s.count, 0) },
      redis: { medianUs: median(direct), p99Us: p99(direct), count: direct.reduce((n, s) => n + s.count, 0) }
    }
    result.ratio = result.bridge.medianUs / result.redis.medianUs
    result.verdict = result.ratio <= 2 ? 'PASS' : 'MISS'
    return result
  } finally {
    redis.kill('SIGKILL')
  }
}

function problem () {
  if (spawnSync('redis-server', ['--version']).status !== 0) return 'redis-server is not installed'
  const php = spawnSync('php', ['-r', 'echo class_exists("Redis") && function_exists("shmop_open") ? "ok" : "no";'], { encoding: 'utf8' })
  if (php.stdout !== 'ok') return 'php-cli with shmop and phpredis (php-redis) is needed'
  return null
}

const legend = [
  'PHP publish on host A to the payload in a Node reader\'s hands on host B, through two bridges and Redis on loopback,',
  'beside PHP SET + PUBLISH to a Node subscriber that GETs the payload. One-way, median µs (p99); target: bridge ≤ 2× Redis.'
]

const row = (label, r) => `| PHP → Node, ${label} | ${r.bridge.medianUs.toFixed(0)} (${r.bridge.p99Us.toFixed(0)}) | ${r.redis.medianUs.toFixed(0)} (${r.redis.p99Us.toFixed(0)}) | ${r.ratio.toFixed(2)}× | ${r.verdict} |`

module.exports = {
  name: 'crosshost',
  title: 'Across hosts: a publish on host A to the reader on host B through the bridge, beside Redis itself',
  legend,
  cases () {
    return SIZES.map(({ bytes, label }) => ({
      kind: 'custom',
      name: `crosshost.${label}`,
      async run (ctx) {
        const why = problem()
        if (why) return { results: [] }
        const result = await measure(bytes, { count: ctx.opts.quick ? 100 : 400 })
        ctx.progress(row(label, result))
        return { results: [{ kind: 'crosshost', name: `crosshost.${label}`, ...result }] }
      }
    }))
  },
  measure,
  row
}

if (require.main === module) {
  (async () => {
    const why = problem()
    if (why) throw new Error(`crosshost: ${why}`)
    const count = Number(process.argv[process.argv.indexOf('--count') + 1]) || 400
    const results = []
    for (const { bytes, label } of SIZES) results.push([label, await measure(bytes, { count })])
    if (process.argv.includes('--json')) return console.log(JSON.stringify(results.map(([, r]) => r), null, 2))
    console.log('| writer → reader | bridge | Redis SET+PUBLISH/GET | ratio | ≤ 2× |\n|---|--:|--:|--:|---|')
    for (const [label, r] of results) console.log(row(label, r))
  })().catch((error) => { console.error(error); process.exitCode = 1 })
}
