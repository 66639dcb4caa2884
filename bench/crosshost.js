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
 * bench/index.js (npm run bench -- crosshost): { title, legend, cases } like
 * the other groups. Needs redis-server, php-cli with phpredis (php-redis) and
 * @redis/client; without them the group says which is missing and skips.
 */
const path = require('node:path')
const net = require('node:net')
const { spawn, spawnSync } = require('node:child_process')
const { once } = require('node:events')
const readline = require('node:readline')
const { distribution } = require('./harness')
const report = require('./report')
const { createTable, removeTable, track } = require('./peers/children')

const ROOT = path.join(__dirname, '..')
const SIZES = [{ bytes: 10 * 1024, label: '10KB' }, { bytes: 100 * 1024, label: '100KB' }]
const TARGET = 2 // the bridge path ÷ Redis itself, median
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
  const child = track(spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'] }))
  const lines = readline.createInterface({ input: child.stdout })
  await new Promise((resolve, reject) => {
    lines.on('line', (line) => { if (ready(line)) resolve() })
    child.on('exit', (code) => reject(new Error(`${command} ${args.join(' ')} exited (${code})`)))
  })
  return child
}

function writer (options) {
  const child = track(spawn('php', [path.join(__dirname, 'crosshost.php'), JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] }))
  return once(child, 'exit')
}

const stamp = (data) => Number(process.hrtime.bigint() - data.readBigUInt64LE(0)) / 1000

/** PHP publish on A → bridge → Redis → bridge → Node reader on B. */
let runs = 0
async function viaBridge (port, bytes, count, gapMs) {
  const tables = [0, 1].map(() => createTable([{ name: 'p', size: bytes }]))
  const bin = path.join(ROOT, 'bin', 'nodejs-shm.js')
  const common = ['--redis', `redis://127.0.0.1:${port}`, '--namespace', `bench${++runs}`, '--json'] // a new stream each run
  const bridges = []
  try {
    bridges.push(await started(process.execPath, [bin, 'bridge', ...common, '--table', String(tables[0].key), '--export', 'p'], (l) => l.startsWith('{')))
    bridges.push(await started(process.execPath, [bin, 'bridge', ...common, '--table', String(tables[1].key), '--import', 'p'], (l) => l.startsWith('{')))
    const reader = tables[1].table.section('p')
    const latencies = []
    let finished = false
    const done = writer({ mode: 'bridge', key: tables[0].key, bytes, count, gapMs }).then(() => { finished = true })
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
    return latencies
  } finally {
    for (const child of bridges) child.kill('SIGTERM')
    await Promise.all(bridges.map((child) => once(child, 'exit')))
    for (const { key, table } of tables) { table.close(); removeTable(key) }
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
  return latencies
}

/** Both paths for one size, interleaved in `rounds` halves. */
async function measure (bytes, { count = 200, gapMs = 20, rounds = 2 } = {}) {
  const port = await freePort()
  const redis = track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }))
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
      bridge.push(...await viaBridge(port, bytes, count / rounds, gapMs))
      direct.push(...await viaRedis(port, bytes, count / rounds, gapMs))
    }
    // µs, as the row prints them: median, p99, p99.9, max
    const us = (xs) => {
      const d = distribution(xs)
      return { count: d.count, medianUs: d.median, p99Us: d.p99, p999Us: d.p999, maxUs: d.max }
    }
    const result = { bytes, count, gapMs, bridge: us(bridge), redis: us(direct) }
    result.ratio = result.bridge.medianUs / result.redis.medianUs
    result.verdict = result.ratio <= TARGET ? 'PASS' : 'MISS'
    return result
  } finally {
    redis.kill('SIGKILL')
  }
}

/** Why this machine cannot run the row (one line), or null. */
let why
function problem () {
  if (why === undefined) why = missing()
  return why
}
function missing () {
  if (spawnSync('redis-server', ['--version']).status !== 0) return 'redis-server is not installed (Debian: apt-get install redis-server)'
  const php = spawnSync('php', ['-r', 'echo class_exists("Redis") && function_exists("shmop_open") ? "ok" : "no";'], { encoding: 'utf8' })
  if (php.stdout !== 'ok') return 'php-cli with shmop and phpredis is needed (Debian: apt-get install php-cli php-redis)'
  try { require.resolve('@redis/client') } catch { return '@redis/client is not installed (npm install @redis/client)' }
  return null
}
let said = false

const FIXED = [
  'PHP publish on host A to the payload in a Node reader\'s hands on host B, through two bridges (bin/nodejs-shm.js bridge) and redis-server on loopback, ' +
    'beside PHP SET + PUBLISH (phpredis) to a Node subscriber (@redis/client) that GETs the payload. One-way latency, µs; ' +
    'the two hosts are two section tables of this machine. Target: bridge ÷ Redis ≤ 2× (median). A bridge sends the latest version: it may skip some, which the count shows.'
]
const measured = []
const legend = []

const fixed = (us) => (Number.isFinite(us) ? us.toFixed(0) : '–')
const figures = (s) => `${fixed(s.medianUs)} (${fixed(s.p99Us)}, ${fixed(s.p999Us)}, ${fixed(s.maxUs)})`
/** The rows as a Markdown table: the README's "Across hosts" latency table. */
const crosshostTable = (results) => report.table(
  [['PHP writer on A → Node reader on B', 'l'], ...report.right(['size', 'bridge: median (p99, p99.9, max)', 'received', 'Redis itself: median (p99, p99.9, max)', 'bridge ÷ Redis', 'target']), ['result', 'l']],
  results.map((r) => [`every ${r.gapMs} ms, ${r.count} publishes`, report.size(r.bytes), figures(r.bridge), String(r.bridge.count), figures(r.redis), report.ratio(r.ratio), `≤ ${TARGET}×`,
    r.verdict === 'MISS' ? '**MISS**' : r.verdict])
)
const row = (label, r) => `| PHP → Node, ${label} | ${figures(r.bridge)} | ${figures(r.redis)} | ${r.ratio.toFixed(2)}× | ${r.verdict} |`

module.exports = {
  title: 'Across hosts: a publish on host A to the reader on host B through the bridge, beside Redis itself',
  legend,
  cases () {
    legend.splice(0, legend.length, ...FIXED)
    return SIZES.map(({ bytes, label }) => ({
      kind: 'custom',
      name: `crosshost.${label}`,
      async run (ctx) {
        if (problem()) {
          if (!said) ctx.progress(`skipped: ${problem()}`)
          said = true
          return { skipped: problem() }
        }
        const result = await measure(bytes, { count: ctx.opts.quick ? 100 : 400 })
        measured.push(result)
        legend.splice(0, legend.length, `Latency, one way (µs):\n\n${crosshostTable(measured)}\n`, ...FIXED)
        const pair = {
          kind: 'pair',
          name: `crosshost.${label} bridge ÷ redis`,
          bytes,
          candidate: 'PHP on A → bridge → Redis → bridge → Node on B: median one-way latency',
          floor: 'PHP SET + PUBLISH → Node GET: median one-way latency',
          ns: result.bridge.medianUs * 1000,
          floorNs: result.redis.medianUs * 1000,
          ratio: result.ratio,
          ratioMin: result.ratio,
          ratioMax: result.ratio,
          target: TARGET,
          verdict: result.verdict,
          clock: 'wall'
        }
        return { results: [pair, { kind: 'crosshost', name: `crosshost.${label}`, ...result }] }
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
    console.log('| writer → reader | bridge: median (p99, p99.9, max) µs | Redis SET+PUBLISH/GET | ratio | ≤ 2× |\n|---|--:|--:|--:|---|')
    for (const [label, r] of results) console.log(row(label, r))
  })().catch((error) => { console.error(error); process.exitCode = 1 })
}
