'use strict'
/*
 * handoff: latency from publish() in one process to the data in the reader's
 * hands in another, next to the same payload sent over a Unix-domain socket
 * and over TCP loopback between the same processes, measured in the same run.
 *
 * Processes (bench/handoff-node.js, bench/handoff-php.php): one Node reader,
 * and one writer (Node; or PHP with FFI plus PHP with ffi.enable=0) per case.
 * The reader serves every transport of its case, so shm and sockets are timed
 * between the very same pair of processes.
 *
 * One message: the writer sleeps a random 0.3-0.7 ms (so that the reader is
 * asleep in its wait when the message comes, as a reader mostly is), takes
 * t0 = CLOCK_MONOTONIC (process.hrtime.bigint / PHP hrtime(true), one clock for
 * every process on Linux), writes t0 into the payload and publishes or writes
 * it; the reader takes t1 once it holds the whole payload (after readInto()
 * into a Buffer allocated once; for sockets, once the length-prefixed payload
 * sits in one Buffer) and records t1 - t0; then it acknowledges (a section
 * publish, or 4 bytes back on the socket) and the writer waits for that before
 * the next message: every message is a separate handoff, not a stream. The
 * writer waits for that the cheapest way its transport offers (Node:
 * ack.waitSync(), or the event loop for a socket; PHP: Section::wait() or a
 * blocking fread): on a busy machine writer and reader often share a core,
 * and a reader woken by a publish only runs once the writer yields it.
 *
 * C floors (handoff-floor.c, built by gcc into bench/build/): the same method
 * between two C processes, futex and sockets with nothing around them: what
 * this machine allows any implementation.
 *
 * Method on a shared, noisy machine: the transports of a case are interleaved
 * in rounds (the order rotated and reversed from round to round); each round
 * runs a batch of messages per transport, whose first few are dropped (cold
 * after the other transports ran). Reported per transport: median and p99 of
 * all recorded messages; per comparison: socket ÷ shm of those medians and
 * p99s, and the median (min-max) over rounds of each round's ratio of medians,
 * which is the verdict.
 */
const fs = require('node:fs')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')
const { createTable, removeTable, track, tempDir, removeDir, nodeChild, phpChild, phpProblem, quantile, median } = require('./handoff-lib')

const NODE_CHILD = path.join(__dirname, 'handoff-node.js')
const PHP_CHILD = path.join(__dirname, 'handoff-php.php')
const FLOOR_SOURCE = path.join(__dirname, 'handoff-floor.c')
const FLOOR = path.join(__dirname, 'build', 'handoff-floor') // bench/build/ is ignored by git
const SIZES = [{ bytes: 10 * 1024, label: '10KB' }, { bytes: 100 * 1024, label: '100KB' }]
const GAP_US = [300, 700]
const DROP = 5 // messages dropped at the start of every batch
const WARMUP = 60 // messages per transport before the first round

// socket ÷ shm must reach at least this (the targets)
const TARGETS = {
  node: { wait: { unix: 3 }, waitSync: { unix: 10 } },
  php: { shm: { unix: { 102400: 3 } } }
}

const legend = []
const LEGEND = [
  'One message: the writer sleeps 0.3–0.7 ms (random), takes t0 = CLOCK_MONOTONIC (`process.hrtime.bigint()`; PHP `hrtime(true)`), writes it into the payload, then `publish()`es it or writes it (u32 length + payload) to the socket; ' +
    'the reader takes t1 once it holds the whole payload (`readInto()` a Buffer allocated once; socket: the payload assembled in one Buffer) and records t1 − t0, then acknowledges (a publish to a second section, or 4 bytes back on the socket); the writer waits for the acknowledgement before the next message, the cheapest way its transport offers (Node: `ack.waitSync()`, or the event loop for a socket; PHP: `Section::wait()`, or a blocking `fread`).',
  'Node reader in every row (`wait`: `await section.wait(v)` then `readInto`; `waitSync`: a separate process blocking in `section.waitSync(v)`; sockets: `net` \'data\' events, TCP with Nagle off). ' +
    'PHP writer: php/autoload.php `Section::publish` (FFI on: wakes the reader through futex; `ffi.enable=0`: the reader polls, 0.1 ms doubling to 10 ms), or `stream_socket_client` + `fwrite`.',
  'Interleaved: in each round every transport of a case runs one batch (order rotated and reversed from round to round); the first messages of each batch are dropped. ' +
    '"÷ this" columns are socket latency ÷ shm latency (higher is better for shm); the verdict is the median over rounds of each round\'s ratio of medians, min–max beside it.'
]
const results = [] // every case measured so far, for the legend's table

function us (ns) {
  if (!Number.isFinite(ns)) return '–'
  const v = ns / 1000
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)
}
const x = (r) => (Number.isFinite(r) ? (r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`) : '–')
const size = (bytes) => `${bytes / 1024} KB`

/** Runs one batch of n messages over a transport; returns the reader's answer. */
async function batch (reader, t, n) {
  reader.send({ cmd: 'expect', mode: t.mode, section: t.section, ack: t.ack, n })
  await reader.next() // armed
  const sent = t.writer.request({ cmd: 'send', transport: t.transport, n, gapUs: GAP_US })
  const [answer] = await Promise.all([reader.next(), sent])
  return answer
}

/** Every shm transport against each socket: socket ÷ shm, with the targets. */
function compare (writerKind, bytes, stats) {
  const byId = Object.fromEntries(stats.map((s) => [s.id, s]))
  const comparisons = []
  for (const s of stats.filter((s) => s.transport === 'shm')) {
    for (const sock of ['unix', 'tcp']) {
      const b = byId[sock]
      const perRound = s.roundMedians.map((m, i) => b.roundMedians[i] / m)
      const t = ((TARGETS[writerKind] || {})[s.id] || {})[sock]
      const target = typeof t === 'object' ? t[bytes] : t
      const verdictRatio = median(perRound)
      comparisons.push({
        shm: s.id,
        socket: sock,
        median: b.median / s.median,
        p99: b.p99 / s.p99,
        roundRatio: verdictRatio,
        roundMin: Math.min(...perRound),
        roundMax: Math.max(...perRound),
        target: target || null,
        verdict: target ? (verdictRatio >= target ? 'PASS' : 'MISS') : null
      })
    }
  }
  return comparisons
}

/** Distribution of a list of latencies (ns). */
function describe (xs) {
  const s = [...xs].sort((a, b) => a - b)
  return {
    count: s.length,
    min: s[0],
    p10: quantile(s, 0.1),
    median: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    max: s[s.length - 1],
    mean: s.reduce((a, b) => a + b, 0) / s.length
  }
}

/*
 * One case: a writer kind ('node' or 'php') at one size. Starts the processes,
 * runs the rounds, returns { transports, comparisons }.
 */
async function runCase (ctx, writerKind, bytes, sizeLabel, label) {
  const { opts, progress } = ctx
  const rounds = opts.rounds * 2
  const perBatch = opts.samples * 20
  const php = writerKind === 'php'
  const list = [{ name: 'msg', size: bytes }, { name: 'ack', size: 64 }]
  if (php) list.push({ name: 'msg-noffi', size: bytes }, { name: 'ack-noffi', size: 64 })
  const { key, table } = createTable(list)
  const dir = tempDir()
  const unixPath = path.join(dir, 'reader.sock')
  const procs = []
  try {
    progress(`${label}: starting processes`)
    const reader = nodeChild(NODE_CHILD, ['reader'], 'handoff reader (node)')
    procs.push(reader)
    const { tcpPort } = await reader.request({
      cmd: 'setup', key, capacity: bytes, unixPath, ackSections: php ? ['ack', 'ack-noffi'] : ['ack']
    })
    const setup = { cmd: 'setup', key, section: 'msg', ack: 'ack', size: bytes, unixPath, tcpPort }
    let transports
    const machine = {}
    if (!php) {
      const writer = nodeChild(NODE_CHILD, ['writer'], 'handoff writer (node)')
      procs.push(writer)
      await writer.request(setup)
      const shm = { writer, section: 'msg', ack: 'ack' }
      transports = [
        { id: 'wait', text: 'shm, `wait`', ...shm, transport: 'shm', mode: 'wait' },
        { id: 'waitSync', text: 'shm, `waitSync`', ...shm, transport: 'shm', mode: 'waitSync' },
        { id: 'unix', text: 'Unix socket', writer, transport: 'unix', mode: 'socket' },
        { id: 'tcp', text: 'TCP loopback', writer, transport: 'tcp', mode: 'socket' }
      ]
    } else {
      const writer = phpChild([PHP_CHILD], 'handoff writer (php)')
      procs.push(writer)
      const a = await writer.request(setup)
      const noffi = phpChild(['-d', 'ffi.enable=0', PHP_CHILD], 'handoff writer (php, ffi.enable=0)')
      procs.push(noffi)
      const b = await noffi.request({ cmd: 'setup', key, section: 'msg-noffi', ack: 'ack-noffi', size: bytes })
      Object.assign(machine, { php: a.php, ffi: a.ffi, noffiHasFfi: b.ffi })
      transports = [
        { id: 'shm', text: a.ffi ? 'shm, FFI wake' : 'shm (FFI unavailable!)', writer, section: 'msg', ack: 'ack', transport: 'shm', mode: 'wait' },
        { id: 'shm-noffi', text: 'shm, no FFI (reader polls ≤ 10 ms)', writer: noffi, section: 'msg-noffi', ack: 'ack-noffi', transport: 'shm', mode: 'wait', informative: true },
        { id: 'unix', text: 'Unix socket', writer, transport: 'unix', mode: 'socket' },
        { id: 'tcp', text: 'TCP loopback', writer, transport: 'tcp', mode: 'socket' }
      ]
    }
    // Everyone is attached and has claimed: the key can go (see handoff-lib.js).
    table.close()
    removeTable(key)

    for (const t of transports) {
      progress(`${label}: warming up ${t.id}`)
      await batch(reader, t, WARMUP)
    }
    const data = new Map(transports.map((t) => [t.id, { all: [], rounds: [], early: 0 }]))
    for (let r = 0; r < rounds; r++) {
      progress(`${label}: round ${r + 1}/${rounds}`)
      const k = transports.length
      const order = transports.map((_, i) => transports[(i + r) % k])
      if (r % 2) order.reverse()
      for (const t of order) {
        const answer = await batch(reader, t, perBatch + DROP)
        const kept = answer.latencies.slice(DROP)
        const d = data.get(t.id)
        d.all.push(...kept)
        d.rounds.push(median(kept))
        d.early += answer.early
      }
    }

    const stats = transports.map((t) => {
      const d = data.get(t.id)
      return { id: t.id, text: t.text, mode: t.mode, transport: t.transport, informative: !!t.informative, early: d.early, roundMedians: d.rounds, ...describe(d.all) }
    })
    const comparisons = compare(writerKind, bytes, stats)
    return { writer: writerKind, bytes, label: sizeLabel, rounds, perBatch, drop: DROP, gapUs: GAP_US, machine, transports: stats, comparisons }
  } finally {
    await Promise.all(procs.map((p) => p.stop()))
    removeTable(key)
    removeDir(dir)
  }
}

const WHO = { node: 'Node → Node', php: 'PHP → Node', c: 'C → C (floor)' }

/** The legend's latency table, over every case measured so far. */
function latencyTable () {
  const head = ['writer → reader', 'transport', 'size', 'median µs', 'p99 µs', 'Unix ÷ this: median', 'per round: median (min–max)', 'Unix ÷ this: p99', 'TCP ÷ this: median', 'target', 'result']
  const rows = []
  const order = Object.keys(WHO)
  const sorted = [...results].sort((a, b) => order.indexOf(a.writer) - order.indexOf(b.writer) || a.bytes - b.bytes)
  for (const c of sorted) {
    for (const t of c.transports) {
      const unix = c.comparisons.find((k) => k.shm === t.id && k.socket === 'unix')
      const tcp = c.comparisons.find((k) => k.shm === t.id && k.socket === 'tcp')
      rows.push([
        WHO[c.writer], t.text, size(c.bytes), us(t.median), us(t.p99),
        unix ? x(unix.median) : '–',
        unix ? `${x(unix.roundRatio)} (${x(unix.roundMin)}–${x(unix.roundMax)})` : '–',
        unix ? x(unix.p99) : '–',
        tcp ? x(tcp.median) : '–',
        unix && unix.target ? `≥ ${unix.target}×` : '–',
        unix && unix.verdict ? (unix.verdict === 'MISS' ? '**MISS**' : 'PASS') : '–'
      ])
    }
  }
  const right = new Set([2, 3, 4, 5, 6, 7, 8, 9])
  const widths = head.map((h, i) => Math.max(3, h.length, ...rows.map((r) => r[i].length)))
  const line = (r) => `| ${r.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`
  const rule = `| ${widths.map((w, i) => (right.has(i) ? '-'.repeat(w - 1) + ':' : '-'.repeat(w))).join(' | ')} |`
  return [line(head), rule, ...rows.map(line)].join('\n')
}

function refreshLegend (notes) {
  legend.length = 0
  if (results.length) {
    // A blank line ends the bullet list the runner prints legend lines in, so the table renders as a table.
    legend.push(`Latency, one way, per message (µs; ${results[0].rounds} rounds × ${results[0].perBatch} messages per transport):\n\n${latencyTable()}\n`)
  }
  legend.push(...LEGEND, ...notes)
}

const notes = []

/** The runner's pair rows: one per comparison with a target (and PHP's at 10 KB). */
function pairRows (c) {
  const rows = []
  for (const k of c.comparisons) {
    if (k.socket !== 'unix' || k.shm === 'shm-noffi') continue
    if (!k.target && c.writer === 'node') continue
    const shm = c.transports.find((t) => t.id === k.shm)
    const sock = c.transports.find((t) => t.id === 'unix')
    rows.push({
      kind: 'pair',
      name: `handoff.${c.writer}.${k.shm}.${c.label} ÷ unix`,
      bytes: c.bytes,
      candidate: `${c.writer === 'node' ? 'Node' : 'PHP'} → Node, ${shm.text}: median one-way latency`,
      floor: `${c.writer === 'node' ? 'Node' : 'PHP'} → Node, Unix socket: median one-way latency`,
      ns: shm.median,
      floorNs: sock.median,
      // the runner's pair semantics: candidate ÷ floor, at most target
      ratio: 1 / k.roundRatio,
      ratioMin: 1 / k.roundMax,
      ratioMax: 1 / k.roundMin,
      target: k.target ? Number((1 / k.target).toFixed(3)) : undefined,
      verdict: k.verdict,
      clock: 'wall'
    })
  }
  return rows
}

/** Builds bench/build/handoff-floor; returns why it could not, or null. */
let built = null
function buildFloor () {
  if (built !== null) return built
  fs.mkdirSync(path.dirname(FLOOR), { recursive: true })
  const r = spawnSync('gcc', ['-O2', '-std=gnu11', '-Wall', '-Wextra', FLOOR_SOURCE, '-o', FLOOR], { encoding: 'utf8' })
  built = r.error ? `gcc not found (${r.error.code})` : r.status !== 0 ? `gcc failed: ${r.stderr.trim()}` : ''
  return built
}

const FLOOR_TEXT = {
  futex: 'shm, futex wait (memcpy in and out)',
  spin: 'shm, reader spinning (burns a core)',
  unix: 'Unix socket (write/read)',
  tcp: 'TCP loopback (write/read)'
}

/** The C floors at one size: the same method, no Node and no PHP (handoff-floor.c). */
async function runFloor (ctx, bytes, sizeLabel, label) {
  const { opts, progress } = ctx
  const rounds = opts.rounds * 2
  const perBatch = opts.samples * 20
  progress(`${label}: ${rounds} rounds`)
  const child = track(spawn(FLOOR, ['--size', String(bytes), '--messages', String(perBatch + DROP), '--drop', String(DROP),
    '--rounds', String(rounds), '--gap-us', GAP_US.join(',')], { stdio: ['ignore', 'pipe', 'pipe'] }))
  const lines = await new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 600000)
    child.stdout.setEncoding('utf8').on('data', (c) => { out += c })
    child.stderr.setEncoding('utf8').on('data', (c) => { err += c })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code !== 0) reject(new Error(`handoff-floor exited with ${signal || code}: ${err.trim()}`))
      else resolve(out.trim().split('\n').map((l) => JSON.parse(l)))
    })
  })
  const ids = ['futex', 'spin', 'unix', 'tcp']
  const stats = ids.map((id) => {
    const mine = lines.filter((l) => l.transport === id)
    return {
      id,
      text: FLOOR_TEXT[id],
      transport: id === 'futex' || id === 'spin' ? 'shm' : id,
      informative: true,
      early: 0,
      roundMedians: mine.map((l) => median(l.latencies)),
      ...describe(mine.flatMap((l) => l.latencies))
    }
  })
  return { writer: 'c', bytes, label: sizeLabel, rounds, perBatch, drop: DROP, gapUs: GAP_US, machine: {}, transports: stats, comparisons: compare('c', bytes, stats) }
}

function makeFloorCase ({ bytes, label }) {
  const name = `handoff.c.${label}`
  return {
    kind: 'custom',
    name,
    async run (ctx) {
      const problem = buildFloor()
      if (problem) {
        notes.push(`C floor rows not measured: ${problem}.`)
        refreshLegend(notes)
        return { results: [] }
      }
      let c
      try {
        c = await runFloor(ctx, bytes, label, name)
      } catch (error) {
        notes.push(`**${name} failed**: ${String(error.message).split('\n')[0]}`)
        refreshLegend(notes)
        return { results: [] }
      }
      results.push(c)
      refreshLegend(notes)
      return { results: [{ kind: 'handoff', name, ...c }] }
    }
  }
}

function makeCase (writerKind, { bytes, label }) {
  const name = `handoff.${writerKind}.${label}`
  return {
    kind: 'custom',
    name,
    async run (ctx) {
      if (writerKind === 'php') {
        const { problem } = phpProblem()
        if (problem) {
          notes.push(`PHP rows not measured: ${problem}.`)
          refreshLegend(notes)
          return { results: [] }
        }
      }
      let c
      try {
        c = await runCase(ctx, writerKind, bytes, label, name)
      } catch (error) {
        // One broken case must not end a long run: say so, and go on.
        notes.push(`**${name} failed**: ${String(error.message).split('\n')[0]}`)
        ctx.progress(`${name} failed: ${error.stack}`)
        refreshLegend(notes)
        return { results: [] }
      }
      results.push(c)
      if (c.machine.php && !c.machine.ffi && !notes.some((n) => n.includes('could not use FFI'))) {
        notes.push('**PHP could not use FFI here**: its "FFI wake" rows polled too.')
      }
      if (c.machine.noffiHasFfi && !notes.some((n) => n.includes('ffi.enable=0'))) {
        notes.push('**PHP with `-d ffi.enable=0` still had FFI**: its "no FFI" rows woke the reader.')
      }
      for (const t of c.transports) {
        if (t.early > t.count / 20) {
          notes.push(`${name} ${t.id}: ${t.early} messages were published before the reader waited (the gap was too short for this machine).`)
        }
      }
      refreshLegend(notes)
      return { results: [...pairRows(c), { kind: 'handoff', name, ...c }] }
    }
  }
}

module.exports = {
  name: 'handoff',
  title: 'Handoff: publish() in one process to the data in the reader\'s hands in another, next to sockets',
  legend,
  cases () {
    refreshLegend(notes)
    return [...['node', 'php'].flatMap((w) => SIZES.map((s) => makeCase(w, s))), ...SIZES.map(makeFloorCase)]
  }
}
