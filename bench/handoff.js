'use strict'
/*
 * handoff: latency from publish() in one process to the data in the reader's
 * hands in another, next to the same payload over a Unix-domain socket and
 * TCP loopback between the same processes, in the same run. The method (one
 * message, the clocks, the acknowledgement, the interleaved rounds) is in
 * docs/performance.md, "Handoff"; the processes are peers/handoff-node.js and
 * peers/handoff-php.php; research/floor.js measures C's floors the same way.
 */
const path = require('node:path')
const { median, quantile } = require('./harness')
const report = require('./report')
const { createTable, removeTable, tempDir, removeDir, nodeChild, phpChild, phpProblem } = require('./peers/children')

const NODE_PEER = path.join(__dirname, 'peers', 'handoff-node.js')
const PHP_PEER = path.join(__dirname, 'peers', 'handoff-php.php')
const SIZES = [{ bytes: 10 * 1024, label: '10KB' }, { bytes: 100 * 1024, label: '100KB' }]
const GAP_US = [300, 700] // the writer's random sleep before each message
const DROP = 5 // messages dropped at the start of every batch
const WARMUP = 60 // messages per transport before the first round

// socket ÷ shm must reach at least this (the targets)
const TARGETS = {
  node: { wait: { unix: 3 }, waitSync: { unix: 10 } },
  php: { shm: { unix: { 102400: 3 } } }
}

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
  return stats.filter((s) => s.transport === 'shm').flatMap((s) => ['unix', 'tcp'].map((sock) => {
    const b = byId[sock]
    const perRound = s.roundMedians.map((m, i) => b.roundMedians[i] / m)
    const t = ((TARGETS[writerKind] || {})[s.id] || {})[sock]
    const target = (typeof t === 'object' ? t[bytes] : t) || null
    const roundRatio = median(perRound)
    return {
      shm: s.id,
      socket: sock,
      median: b.median / s.median,
      p99: b.p99 / s.p99,
      roundRatio,
      roundMin: Math.min(...perRound),
      roundMax: Math.max(...perRound),
      target,
      verdict: target ? (roundRatio >= target ? 'PASS' : 'MISS') : null
    }
  }))
}

/** A transport's statistics from its latencies (ns), all and per round. */
function stats (t, rounds, extra = {}) {
  const s = rounds.flat().sort((a, b) => a - b)
  return {
    id: t.id,
    text: t.text,
    transport: t.transport,
    informative: Boolean(t.informative),
    ...extra,
    roundMedians: rounds.map(median),
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

/** The processes and transports of one case; pushes the processes to procs. */
async function start (writerKind, key, bytes, unixPath, procs) {
  const php = writerKind === 'php'
  const reader = nodeChild(NODE_PEER, ['reader'], 'handoff reader (node)')
  procs.push(reader)
  const { tcpPort } = await reader.request({ cmd: 'setup', key, capacity: bytes, unixPath, ackSections: php ? ['ack', 'ack-noffi'] : ['ack'] })
  const setup = { cmd: 'setup', key, section: 'msg', ack: 'ack', size: bytes, unixPath, tcpPort }
  const writer = php ? phpChild([PHP_PEER], 'handoff writer (php)') : nodeChild(NODE_PEER, ['writer'], 'handoff writer (node)')
  procs.push(writer)
  const a = await writer.request(setup)
  const sockets = [
    { id: 'unix', text: 'Unix socket', writer, transport: 'unix', mode: 'socket' },
    { id: 'tcp', text: 'TCP loopback', writer, transport: 'tcp', mode: 'socket' }
  ]
  const shm = { writer, section: 'msg', ack: 'ack', transport: 'shm' }
  if (!php) {
    return {
      reader,
      machine: {},
      transports: [{ id: 'wait', text: 'shm, `wait`', ...shm, mode: 'wait' }, { id: 'waitSync', text: 'shm, `waitSync`', ...shm, mode: 'waitSync' }, ...sockets]
    }
  }
  const noffi = phpChild(['-d', 'ffi.enable=0', PHP_PEER], 'handoff writer (php, ffi.enable=0)')
  procs.push(noffi)
  const b = await noffi.request({ cmd: 'setup', key, section: 'msg-noffi', ack: 'ack-noffi', size: bytes })
  return {
    reader,
    machine: { php: a.php, ffi: a.ffi, noffiHasFfi: b.ffi },
    transports: [
      { id: 'shm', text: a.ffi ? 'shm, FFI wake' : 'shm (FFI unavailable!)', ...shm, mode: 'wait' },
      { id: 'shm-noffi', text: 'shm, no FFI (reader polls ≤ 10 ms)', ...shm, writer: noffi, section: 'msg-noffi', ack: 'ack-noffi', mode: 'wait', informative: true },
      ...sockets
    ]
  }
}

/** One case: a writer kind ('node' or 'php') at one size. */
async function runCase ({ opts, progress }, writerKind, { bytes, label: sizeLabel }, label) {
  const rounds = opts.rounds * 2
  const perBatch = opts.samples * 20
  const list = [{ name: 'msg', size: bytes }, { name: 'ack', size: 64 }]
  if (writerKind === 'php') list.push({ name: 'msg-noffi', size: bytes }, { name: 'ack-noffi', size: 64 })
  const { key, table } = createTable(list)
  const dir = tempDir()
  const procs = []
  try {
    progress(`${label}: starting processes`)
    const { reader, machine, transports } = await start(writerKind, key, bytes, path.join(dir, 'reader.sock'), procs)
    // Everyone is attached and has claimed: the key can go.
    table.close()
    removeTable(key)
    for (const t of transports) {
      progress(`${label}: warming up ${t.id}`)
      await batch(reader, t, WARMUP)
    }
    const data = new Map(transports.map((t) => [t.id, { rounds: [], early: 0 }]))
    for (let r = 0; r < rounds; r++) {
      progress(`${label}: round ${r + 1}/${rounds}`)
      const order = transports.map((_, i) => transports[(i + r) % transports.length])
      if (r % 2) order.reverse()
      for (const t of order) {
        const answer = await batch(reader, t, perBatch + DROP)
        data.get(t.id).rounds.push(answer.latencies.slice(DROP))
        data.get(t.id).early += answer.early
      }
    }
    const all = transports.map((t) => stats(t, data.get(t.id).rounds, { mode: t.mode, early: data.get(t.id).early }))
    return { writer: writerKind, bytes, label: sizeLabel, rounds, perBatch, drop: DROP, gapUs: GAP_US, machine, transports: all, comparisons: compare(writerKind, bytes, all) }
  } finally {
    await Promise.all(procs.map((p) => p.stop()))
    removeTable(key)
    removeDir(dir)
  }
}

const WHO = { node: 'Node → Node', php: 'PHP → Node', c: 'C → C (floor)' }

/** The latency table of a list of measured cases. */
function latencyTable (cases) {
  const order = Object.keys(WHO)
  const sorted = [...cases].sort((a, b) => order.indexOf(a.writer) - order.indexOf(b.writer) || a.bytes - b.bytes)
  const rows = sorted.flatMap((c) => c.transports.map((t) => {
    const unix = c.comparisons.find((k) => k.shm === t.id && k.socket === 'unix')
    const tcp = c.comparisons.find((k) => k.shm === t.id && k.socket === 'tcp')
    return [
      WHO[c.writer], t.text, report.size(c.bytes), report.us(t.median), report.us(t.p99),
      unix ? report.ratio(unix.median) : '–',
      unix ? `${report.ratio(unix.roundRatio)} (${report.ratio(unix.roundMin)}–${report.ratio(unix.roundMax)})` : '–',
      unix ? report.ratio(unix.p99) : '–',
      tcp ? report.ratio(tcp.median) : '–',
      unix && unix.target ? `≥ ${unix.target}×` : '–',
      unix && unix.verdict ? (unix.verdict === 'MISS' ? '**MISS**' : 'PASS') : '–'
    ]
  }))
  return report.table([['writer → reader', 'l'], ['transport', 'l'], ...report.right(['size', 'median µs', 'p99 µs', 'Unix ÷ this: median',
    'per round: median (min–max)', 'Unix ÷ this: p99', 'TCP ÷ this: median', 'target']), ['result', 'l']], rows)
}

/*
 * A group's legend: the latency table of what it measured so far (a blank
 * line ends the bullet list the runner prints legend lines in, so that the
 * table renders as a table), the fixed lines, then notes.
 */
function legendOf (cases, fixed, notes) {
  const table = cases.length
    ? [`Latency, one way, per message (µs; ${cases[0].rounds} rounds × ${cases[0].perBatch} messages per transport):\n\n${latencyTable(cases)}\n`]
    : []
  return [...table, ...fixed, ...notes]
}

const FIXED = [
  'The method (one message; t0 → t1; the acknowledgement; interleaved rounds): docs/performance.md, "Handoff". ' +
    'Node reader in every row (`wait`: `await section.wait(v)` then `readInto`; `waitSync`: blocking in `section.waitSync(v)`; sockets: `net` \'data\' events, TCP with Nagle off). ' +
    'PHP writer: php/ `Section::publish` (FFI on: wakes the reader through futex; `ffi.enable=0`: the reader polls, 0.1 ms doubling to 10 ms), or `stream_socket_client` + `fwrite`.',
  '"÷ this" columns are socket latency ÷ shm latency (higher is better for shm); the verdict is the median over rounds of each round\'s ratio of medians, min–max beside it.'
]
const measured = []
const notes = []
const legend = []
const refresh = () => legend.splice(0, legend.length, ...legendOf(measured, FIXED, notes))
const note = (text) => { if (!notes.includes(text)) notes.push(text) }

/** The runner's pair rows: one per comparison with a target (and PHP's at 10 KB). */
function pairRows (c) {
  const who = c.writer === 'node' ? 'Node' : 'PHP'
  const sock = c.transports.find((t) => t.id === 'unix')
  return c.comparisons.filter((k) => k.socket === 'unix' && k.shm !== 'shm-noffi' && (k.target || c.writer !== 'node')).map((k) => {
    const shm = c.transports.find((t) => t.id === k.shm)
    return {
      kind: 'pair',
      name: `handoff.${c.writer}.${k.shm}.${c.label} ÷ unix`,
      bytes: c.bytes,
      candidate: `${who} → Node, ${shm.text}: median one-way latency`,
      floor: `${who} → Node, Unix socket: median one-way latency`,
      ns: shm.median,
      floorNs: sock.median,
      // the runner's pair semantics: candidate ÷ floor, at most target
      ratio: 1 / k.roundRatio,
      ratioMin: 1 / k.roundMax,
      ratioMax: 1 / k.roundMin,
      target: k.target ? Number((1 / k.target).toFixed(3)) : undefined,
      verdict: k.verdict,
      clock: 'wall'
    }
  })
}

function makeCase (writerKind, size) {
  const name = `handoff.${writerKind}.${size.label}`
  return {
    kind: 'custom',
    name,
    async run (ctx) {
      try {
        const problem = writerKind === 'php' && phpProblem().problem
        if (problem) {
          note(`PHP rows not measured: ${problem}.`)
          return { results: [] }
        }
        let c
        try {
          c = await runCase(ctx, writerKind, size, name)
        } catch (error) {
          // One broken case must not end a long run: say so, and go on.
          note(`**${name} failed**: ${String(error.message).split('\n')[0]}`)
          ctx.progress(`${name} failed: ${error.stack}`)
          return { results: [] }
        }
        measured.push(c)
        if (c.machine.php && !c.machine.ffi) note('**PHP could not use FFI here**: its "FFI wake" rows polled too.')
        if (c.machine.noffiHasFfi) note('**PHP with `-d ffi.enable=0` still had FFI**: its "no FFI" rows woke the reader.')
        for (const t of c.transports) {
          if (t.early > t.count / 20) note(`${name} ${t.id}: ${t.early} messages were published before the reader waited (the gap was too short for this machine).`)
        }
        return { results: [...pairRows(c), { kind: 'handoff', name, ...c }] }
      } finally {
        refresh()
      }
    }
  }
}

module.exports = {
  title: 'Handoff: publish() in one process to the data in the reader\'s hands in another, next to sockets',
  legend,
  cases () {
    refresh()
    return ['node', 'php'].flatMap((w) => SIZES.map((s) => makeCase(w, s)))
  },
  // for research/floor.js
  SIZES,
  GAP_US,
  DROP,
  stats,
  compare,
  legendOf
}
