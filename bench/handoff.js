'use strict'
/*
 * handoff: latency from publish() in one process to the data in the reader's
 * hands in another, next to the same payload over a Unix-domain socket and
 * TCP loopback between the same processes, and next to the floors: the same
 * handoffs between two C processes (peers/handoff-floor.c), run once per
 * round, interleaved with the rest. Per row: latency (median, p99, p99.9,
 * max) and the CPU time per message of the writer and of the reader, each
 * with its ratio to the row's C floor. The method (one message, the clocks,
 * the acknowledgement, the interleaved rounds, the CPU time) is in
 * docs/performance.md, "Handoff"; the processes are peers/handoff-node.js,
 * peers/handoff-php.php and peers/handoff-floor.c, and for the PHP writer's
 * own floor (PHP's publish and wake, a reader that adds nothing) the C reader
 * peers/handoff-c-reader.c.
 */
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')
const readline = require('node:readline')
const { median, distribution } = require('./harness')
const report = require('./report')
const { buildC } = require('./c-programs')
const { createTable, removeTable, tempDir, removeDir, nodeChild, phpChild, phpProblem, output, jsonLines, track } = require('./peers/children')

const NODE_PEER = path.join(__dirname, 'peers', 'handoff-node.js')
const PHP_PEER = path.join(__dirname, 'peers', 'handoff-php.php')
const SIZES = [{ bytes: 10 * 1024, label: '10KB' }, { bytes: 100 * 1024, label: '100KB' }]
const GAP_US = [300, 700] // the writer's random sleep before each message
const DROP = 5 // messages dropped at the start of every batch
const WARMUP = 60 // messages per transport before the first round

// The C floors (handoff-floor.c's transports), and each row's floor.
const C_ROWS = [
  { id: 'c-futex', c: 'futex', text: 'futex wait (memcpy in and out)', transport: 'shm' },
  { id: 'c-spin', c: 'spin', text: 'reader spinning on the version (burns a core)', transport: 'shm' },
  { id: 'c-unix', c: 'unix', text: 'Unix socket (write/read)', transport: 'unix' },
  { id: 'c-tcp', c: 'tcp', text: 'TCP loopback (write/read)', transport: 'tcp' },
  { id: 'c-sections', c: 'sections', text: 'section protocol (src/sections.c: publish, futex wait, read)', transport: 'shm' },
  { id: 'c-ring', c: 'ring', text: 'section protocol, reader in epoll_wait on an io_uring futex wait', transport: 'shm' }
].map((t) => ({ ...t, who: 'c', informative: true }))
const FLOOR = { wait: 'c-futex', waitSync: 'c-futex', nudge: 'c-futex', nudgeSync: 'c-futex', spin: 'c-spin', shm: 'c-futex', 'shm-noffi': 'c-futex', 'shm-c': 'c-futex', unix: 'c-unix', tcp: 'c-tcp' }
// The nearest floors of a shm row (no target): the same protocol in C, asleep
// where the row sleeps (what is left above it is Node's, and ours); for
// `await wait()` also Node's own event-loop wake, a socket's (nudge), for
// `waitSync()` Node's own blocking wake, a read(2) on a FIFO (nudgeSync).
const NEAREST = { wait: ['c-ring', 'nudge'], waitSync: ['c-sections', 'nudgeSync'], shm: ['c-ring'], 'shm-c': ['c-sections'], nudge: ['c-ring'], nudgeSync: ['c-sections'] }

// Issue 13's targets: this ÷ its C floor at most `floor`; Unix socket ÷ this at least `unix` (by size where an object).
const TARGETS = {
  node: { wait: { floor: 1.5, unix: 3 }, waitSync: { floor: 1.25, unix: 10 }, spin: { floor: 1.5, unix: 5 } },
  php: { shm: { floor: 1.5, unix: { 102400: 3 } } }
}

/** Builds the C floors' programs (once); returns why it could not, or null. */
function buildFloor () {
  return buildC('handoff-floor').failure || buildC('handoff-c-reader').failure || null
}

/** Runs one batch of n messages over a transport; returns { latencies, early, writerNs, readerNs, n }. */
async function batch (reader, t, n) {
  if (t.reader === 'c') return cBatch(t, n)
  reader.send({ cmd: 'expect', mode: t.mode, section: t.section, ack: t.ack, n })
  await reader.next() // armed
  const [answer, sent] = await Promise.all([reader.next(), t.writer.request({ cmd: 'send', transport: t.transport, n, gapUs: GAP_US })])
  return { latencies: answer.latencies.slice(DROP), early: answer.early, writerNs: sent.cpuNs, readerNs: answer.cpuNs, n }
}

/** A batch read by the C reader (peers/handoff-c-reader.c) instead of the Node reader. */
async function cBatch (t, n) {
  const child = track(spawn(buildC('handoff-c-reader').binary, [String(t.key), t.section, t.ack, String(n)], { stdio: ['ignore', 'pipe', 'pipe'] }))
  let err = ''
  child.stderr.setEncoding('utf8').on('data', (c) => { err += c })
  const exited = new Promise((resolve) => child.on('close', resolve))
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async () => {
    const { value, done } = await lines.next()
    if (done) throw new Error(`handoff-c-reader exited with ${await exited}: ${err.trim()}`)
    return value
  }
  await next() // armed: attached, and the commit it waits past read
  const [sent, result] = await Promise.all([t.writer.request({ cmd: 'send', transport: 'shm', n, gapUs: GAP_US }), next().then(JSON.parse)])
  await exited
  return { latencies: result.latencies.slice(DROP), early: 0, writerNs: sent.cpuNs, readerNs: result.cpuNs, n }
}

/** One round of the C floors (all its transports, interleaved); returns their batches by id. */
async function floorRound (bytes, n, round) {
  const lines = jsonLines(await output(buildC('handoff-floor').binary, ['--size', String(bytes), '--messages', String(n), '--drop', String(DROP),
    '--rounds', '1', '--start', String(round), '--gap-us', GAP_US.join(','), '--transports', C_ROWS.map((t) => t.c).join(',')], { label: 'handoff-floor' }))
  return Object.fromEntries(lines.map((l) => [`c-${l.transport}`, { latencies: l.latencies, early: 0, writerNs: l.writerCpuNs, readerNs: l.readerCpuNs, n: l.messages }]))
}

/** A transport's statistics from its batches: latencies (ns) of all messages and per round, CPU ns per message of each side. */
function stats (t, batches) {
  const messages = batches.reduce((sum, b) => sum + b.n, 0)
  const cpu = (side) => batches.some((b) => !Number.isFinite(b[side])) ? NaN : batches.reduce((sum, b) => sum + b[side], 0) / messages
  return {
    id: t.id,
    text: t.text,
    who: t.who,
    transport: t.transport,
    mode: t.mode,
    informative: Boolean(t.informative),
    early: batches.reduce((sum, b) => sum + b.early, 0),
    roundMedians: batches.map((b) => median(b.latencies)),
    ...distribution(batches.flatMap((b) => b.latencies)),
    writerCpuNs: cpu('writerNs'),
    readerCpuNs: cpu('readerNs')
  }
}

/** a ÷ b: of all messages' median and p99, and per round (the median of each round's ratio of medians, min–max). */
function ratioOf (a, b) {
  const perRound = a.roundMedians.map((m, i) => m / b.roundMedians[i])
  return { median: a.median / b.median, p99: a.p99 / b.p99, round: median(perRound), roundMin: Math.min(...perRound), roundMax: Math.max(...perRound) }
}

/**
 * Each row against its C floor (this ÷ floor, at most the target) and each
 * shared-memory row against the Unix socket (socket ÷ this, at least the target).
 */
function compare (writerKind, bytes, stats) {
  const byId = Object.fromEntries(stats.map((s) => [s.id, s]))
  const targetOf = (id, kind) => {
    const t = ((TARGETS[writerKind] || {})[id] || {})[kind]
    return (typeof t === 'object' ? t[bytes] : t) || null
  }
  return stats.filter((s) => s.who !== 'c').flatMap((s) => {
    const out = []
    const floor = byId[FLOOR[s.id]]
    if (floor) {
      const target = targetOf(s.id, 'floor')
      const r = ratioOf(s, floor)
      out.push({ id: s.id, ref: floor.id, kind: 'floor', ...r, target, verdict: target ? (r.round <= target ? 'PASS' : 'MISS') : null })
    }
    for (const nearest of (NEAREST[s.id] || []).map((id) => byId[id]).filter(Boolean)) {
      out.push({ id: s.id, ref: nearest.id, kind: 'nearest', ...ratioOf(s, nearest), target: null, verdict: null })
    }
    const unix = byId.unix
    if (s.transport === 'shm' && unix) {
      const target = targetOf(s.id, 'unix')
      const r = ratioOf(unix, s)
      out.push({ id: s.id, ref: 'unix', kind: 'socket', ...r, target, verdict: target ? (r.round >= target ? 'PASS' : 'MISS') : null })
    }
    return out
  })
}

/** The processes and transports of one case; pushes the processes to procs. */
async function start (writerKind, key, bytes, unixPath, procs, cReader) {
  const php = writerKind === 'php'
  const fifoPath = path.join(path.dirname(unixPath), 'nudge.fifo')
  const made = spawnSync('mkfifo', [fifoPath], { encoding: 'utf8' })
  if (made.status !== 0) throw new Error(`mkfifo failed: ${made.error || made.stderr}`)
  const reader = nodeChild(NODE_PEER, ['reader'], 'handoff reader (node)')
  procs.push(reader)
  const { tcpPort } = await reader.request({ cmd: 'setup', key, capacity: bytes, unixPath, fifoPath, ackSections: php ? ['ack', 'ack-noffi'] : ['ack'] })
  const setup = { cmd: 'setup', key, section: 'msg', ack: 'ack', size: bytes, unixPath, tcpPort, fifoPath }
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
      transports: [{ id: 'wait', text: 'shm, `await wait()`', ...shm, mode: 'wait' }, { id: 'waitSync', text: 'shm, `waitSync()`', ...shm, mode: 'waitSync' },
        { id: 'spin', text: 'shm, `waitSync({ spin })` (burns a core)', ...shm, mode: 'spin' },
        { id: 'nudge', text: 'shm, reader woken in its event loop by a 1-byte Unix socket write (\'data\')', ...shm, transport: 'nudge', mode: 'nudge', informative: true },
        { id: 'nudgeSync', text: 'shm, reader woken from `fs.readSync` by a 1-byte FIFO write', ...shm, transport: 'nudgeSync', mode: 'nudgeSync', informative: true },
        ...sockets]
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
      // PHP's own floor: the same publish and wake, read by a C reader that adds nothing to the wake-up.
      ...(cReader && a.ffi ? [{ id: 'shm-c', who: 'phpc', text: 'shm, FFI wake; C reader (futex wait, memcpy out)', ...shm, key, reader: 'c', informative: true }] : []),
      { id: 'shm-noffi', text: 'shm, no FFI (reader polls ≤ 10 ms)', ...shm, writer: noffi, section: 'msg-noffi', ack: 'ack-noffi', mode: 'wait', informative: true },
      ...sockets
    ]
  }
}

/** One case: a writer kind ('node' or 'php') at one size, with the C floors interleaved. */
async function runCase ({ opts, progress }, writerKind, { bytes, label: sizeLabel }, label) {
  const rounds = opts.rounds * 2
  const perBatch = opts.samples * 20
  const list = [{ name: 'msg', size: bytes }, { name: 'ack', size: 64 }]
  if (writerKind === 'php') list.push({ name: 'msg-noffi', size: bytes }, { name: 'ack-noffi', size: 64 })
  const { key, table } = createTable(list)
  const dir = tempDir()
  const procs = []
  try {
    const noFloor = buildFloor()
    if (noFloor) note(`C floors not measured: ${noFloor.split('\n')[0]}`)
    progress(`${label}: starting processes`)
    const { reader, machine, transports } = await start(writerKind, key, bytes, path.join(dir, 'reader.sock'), procs, !noFloor)
    for (const t of transports) {
      progress(`${label}: warming up ${t.id}`)
      await batch(reader, t, WARMUP)
    }
    const items = noFloor ? transports : [...transports, { id: 'c' }]
    const rows = noFloor ? transports : [...transports, ...C_ROWS]
    const data = new Map(rows.map((t) => [t.id, []]))
    for (let r = 0; r < rounds; r++) {
      progress(`${label}: round ${r + 1}/${rounds}`)
      const order = items.map((_, i) => items[(i + r) % items.length])
      if (r % 2) order.reverse()
      for (const t of order) {
        if (t.id !== 'c') data.get(t.id).push(await batch(reader, t, perBatch + DROP))
        else for (const [id, b] of Object.entries(await floorRound(bytes, perBatch + DROP, r))) data.get(id).push(b)
      }
    }
    // A floor the C program left out (io_uring without futex waits) has no batches: no row.
    const all = rows.filter((t) => data.get(t.id).length).map((t) => stats({ who: writerKind, ...t }, data.get(t.id)))
    if (!noFloor && !data.get('c-ring').length) note('C ring floor not measured: io_uring cannot sleep on a futex here (Linux 6.7+ needed).')
    return { writer: writerKind, bytes, label: sizeLabel, rounds, perBatch, drop: DROP, gapUs: GAP_US, machine, transports: all, comparisons: compare(writerKind, bytes, all) }
  } finally {
    await Promise.all(procs.map((p) => p.stop()))
    // Not before: removing a table retires it (its waits end at once, its readers are told).
    table.close()
    removeTable(key)
    removeDir(dir)
  }
}

const WHO = { node: 'Node → Node', php: 'PHP → Node', phpc: 'PHP → C (PHP\'s floor)', c: 'C → C (floor)' }
const verdictText = (v) => (v === 'MISS' ? '**MISS**' : v || '–')

/** The latency table of a list of measured cases: one row per transport and size, the README's handoff table. */
function latencyTable (cases) {
  const order = ['node', 'php']
  const sorted = [...cases].sort((a, b) => order.indexOf(a.writer) - order.indexOf(b.writer) || a.bytes - b.bytes)
  const rows = sorted.flatMap((c) => c.transports.map((t) => {
    const floorOf = c.comparisons.find((k) => k.id === t.id && k.kind === 'floor')
    const floor = floorOf && c.transports.find((f) => f.id === floorOf.ref)
    const unix = c.comparisons.find((k) => k.id === t.id && k.kind === 'socket')
    const nearest = c.comparisons.filter((k) => k.id === t.id && k.kind === 'nearest')
    const of = (k) => `${report.ratio(k.round)} (${report.ratio(k.roundMin)}–${report.ratio(k.roundMax)}) of ${k.ref.startsWith('c-') ? `C ${k.ref.slice(2)}` : k.ref}`
    // a figure, and beside it its ratio to the same figure of the row's floor
    const cell = (key, format) => `${format(t[key])}${floor ? ` (${report.ratio(t[key] / floor[key])})` : ''}`
    const judged = [floorOf, unix].filter((k) => k && k.target)
    return [
      WHO[t.who], t.text, report.size(c.bytes),
      ...['median', 'p99', 'p999', 'max'].map((k) => cell(k, report.us)),
      floorOf ? of(floorOf) : '–',
      nearest.map(of).join('; ') || '–',
      unix ? report.ratio(unix.round) : '–',
      cell('writerCpuNs', report.us), cell('readerCpuNs', report.us),
      judged.map((k) => (k.kind === 'floor' ? `≤ ${k.target}× floor` : `≥ ${k.target}× Unix`)).join(', ') || '–',
      judged.map((k) => verdictText(k.verdict)).join(', ') || '–'
    ]
  }))
  return report.table([['writer → reader', 'l'], ['transport', 'l'], ...report.right(['size', 'median µs', 'p99 µs', 'p99.9 µs', 'max µs',
    '÷ floor, per round: median (min–max)', '÷ nearest floor, per round', 'Unix ÷ this', 'writer CPU µs/msg', 'reader CPU µs/msg', 'target']), ['result', 'l']], rows)
}

/*
 * The group's legend: the latency table of what it measured so far (a blank
 * line ends the bullet list the runner prints legend lines in, so that the
 * table renders as a table), the fixed lines, then notes.
 */
function legendOf (cases) {
  const table = cases.length
    ? [`Latency, one way, per message (µs; ${cases[0].rounds} rounds × ${cases[0].perBatch} messages per transport), and CPU time per message:\n\n${latencyTable(cases)}\n`]
    : []
  return [...table, ...FIXED, ...notes]
}

const FIXED = [
  'The method (one message; t0 → t1; the acknowledgement; interleaved rounds; CPU time): docs/performance.md, "Handoff". ' +
    'Node reader in every Node and PHP row (`await wait()`: `await section.wait(v)` then `readInto`; `waitSync()`: blocking in `section.waitSync(v)`; ' +
    '`waitSync({ spin })`: checking for 2 ms before it sleeps, longer than the writer\'s gap; sockets: `net` \'data\' events, TCP with Nagle off; ' +
    'nudge, nudgeSync: the writer publishes, then writes 1 byte, and the reader, woken by its \'data\' event or from `fs.readSync` of a FIFO, calls `readInto`: Node\'s own wakes, nothing of ours). ' +
    'PHP writer: php/ `Section::publish` (FFI on: wakes the reader through futex; `ffi.enable=0`: the reader polls, 0.1 ms doubling to 10 ms), or `stream_socket_client` + `fwrite`. ' +
    'C → C: peers/handoff-floor.c, one batch of each of its transports per round, interleaved with the rows above it (same size): the floor of each row; ' +
    'its "section protocol" rows run src/sections.c itself, the second with the reader in `epoll_wait` on an io_uring futex wait, as `await wait()` sleeps. ' +
    'PHP → C: the PHP writer\'s publish and FFI wake, read by peers/handoff-c-reader.c (the sections protocol in C: sleeper count, futex wait, memcpy out), ' +
    'so that PHP → C ÷ C → C is what the PHP writer adds, and PHP → Node ÷ PHP → C what the Node reader adds.',
  'In brackets: the figure ÷ the same figure of the row\'s C floor (shm rows: the futex wait, `spin`: the spinning reader, sockets: the same socket in C). ' +
    '"÷ floor, per round" is the median over rounds of each round\'s ratio of medians (min–max beside it), the verdict against "≤ … floor"; ' +
    '"÷ nearest floor" the same against the floors nearest the row (`await wait()`: C ring and nudge; `waitSync()`: C sections and nudgeSync), without a target; ' +
    '"Unix ÷ this" the same for the Unix socket\'s latency ÷ this row\'s (higher is better for shm), the verdict against "≥ … Unix". ' +
    'CPU µs/msg: the CPU time (user + system, every thread) the writer process, and the reader process, used over the timed batches, ÷ their messages; ' +
    'it includes the acknowledgement and, for a spinning reader, the spin through the writer\'s 0.3–0.7 ms gap.'
]
const measured = []
const notes = []
const legend = []
const refresh = () => legend.splice(0, legend.length, ...legendOf(measured))
const note = (text) => { if (!notes.includes(text)) notes.push(text) }

/** The runner's pair rows: one per comparison with a target (and PHP's without one). */
function pairRows (c) {
  const byId = Object.fromEntries(c.transports.map((t) => [t.id, t]))
  const text = (t) => `${WHO[t.who]}, ${t.text}: median one-way latency`
  return c.comparisons.filter((k) => k.target || k.kind === 'nearest' || (c.writer === 'php' && (k.id === 'shm' || k.id === 'shm-c'))).map((k) => {
    // the runner's pair semantics: candidate ÷ floor, at most target (socket ÷ this, at least target, turned round)
    const candidate = byId[k.id]
    const floor = byId[k.ref]
    const invert = k.kind === 'socket'
    return {
      kind: 'pair',
      name: `handoff.${c.writer}.${k.id}.${c.label} ÷ ${k.kind === 'socket' ? 'unix' : k.ref}`,
      bytes: c.bytes,
      candidate: text(candidate),
      floor: text(floor),
      ns: candidate.median,
      floorNs: floor.median,
      ratio: invert ? 1 / k.round : k.round,
      ratioMin: invert ? 1 / k.roundMax : k.roundMin,
      ratioMax: invert ? 1 / k.roundMin : k.roundMax,
      target: k.target ? (invert ? Number((1 / k.target).toFixed(3)) : k.target) : undefined,
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
  WHO,
  title: 'Handoff: publish() in one process to the data in the reader\'s hands in another, next to sockets and C\'s floors',
  legend,
  cases () {
    refresh()
    return ['node', 'php'].flatMap((w) => SIZES.map((s) => makeCase(w, s)))
  }
}
