'use strict'
/*
 * idle: what 1 000 pending section.wait()s cost while nothing is published,
 * and one table.wait() on 64 sections, beside an idle Node process with
 * nothing pending (the floor): the CPU time
 * of each process (process.cpuUsage: every thread) over the same seconds,
 * all processes measured at once, in rounds. The waits of a thread on one
 * section share one sleeper (one futex sleep on the event loop's io_uring,
 * or one helper thread); 1 000 waits on 1 000 sections have 1 000 sleepers;
 * a table wait has one sleeper for all its sections (futex_waitv).
 * Each table's sections are claimed by this process, so the waiters sleep on
 * the futex, counted in the sections' control blocks (docs/sections.md, 7),
 * as they do behind a live writer. Both ways of sleeping: the default
 * (io_uring on Linux 6.7+) and helper threads (NODEJS_SHM_WAIT_THREADS=1).
 */
const path = require('node:path')
const { median } = require('./harness')
const report = require('./report')
const { createTable, removeTable, nodeChild } = require('./peers/children')
const shm = require('..')

const PEER = path.join(__dirname, 'peers', 'idle-waits.js')
const WAITS = 1000
const SETTLE_MS = 1500 // past every sleeper's first steps (polls of 0.1 ms doubling, then futex sleeps)

const legend = []
const FIXED = [
  'CPU ms/s: the process\'s CPU time (user + system, every thread) ÷ the wall-clock seconds it was measured, median over rounds; ' +
    '÷ floor: the median over rounds of each round\'s ratio to the idle process (all processes measured over the same seconds); ' +
    'above floor: CPU ms/s − the floor\'s. Threads: the process\'s threads (/proc/self/status), the floor\'s in brackets. ' +
    'Sleepers: the waiters counted in the sections\' control blocks while asleep (one per thread and section: a futex sleep on the io_uring, or a helper thread; ' +
    'a table wait\'s one sleeper is counted in each of its sections, so that their writers wake it). ' +
    'Nothing is published; the sections are claimed by the bench process, so waiters sleep on the futex and look up once a second.'
]

function rowsFor (mechanism) {
  const rows = [{ id: 'floor', text: 'idle Node process, nothing pending (the floor)', waits: 0, sections: 1 }]
  const ways = mechanism === 'io_uring' ? [['io_uring', '0'], ['threads', '1']] : [['threads', '1']]
  for (const [way, env] of ways) {
    rows.push({ id: `one.${way}`, text: '1 000 `wait()`s on one section', waits: WAITS, sections: 1, env },
      { id: `many.${way}`, text: '1 000 `wait()`s on 1 000 sections', waits: WAITS, sections: WAITS, env },
      { id: `table64.${way}`, text: 'one `table.wait()` on 64 sections', waits: 1, sections: 64, table: true, env })
  }
  return rows
}

/** The sleepers counted in a table's control blocks (u32 at control + 24), read through a read-only attach. */
function sleepers (key, table) {
  const raw = shm.open(key, 'a')
  try {
    return table.sections.reduce((sum, s) => sum + raw.read(s.offsets.control + 24, 4).readUInt32LE(0), 0)
  } finally {
    raw.close()
  }
}

async function measure ({ opts, progress }) {
  const seconds = opts.quick ? 1 : 2
  const rounds = opts.rounds
  const rows = rowsFor(shm.sections.waitMechanism())
  const live = []
  try {
    for (const row of rows) {
      progress(`starting ${row.id}`)
      const { key, table } = createTable(Array.from({ length: row.sections }, (_, i) => ({ name: `s${i}`, size: 8 })))
      const entry = { row, key, table, cpu: [] }
      live.push(entry)
      for (const s of table.sections) s.claim() // a claimant that wakes: waiters sleep on the futex, counted
      entry.child = nodeChild(PEER, [], `idle waits (${row.id})`, row.env ? { ...process.env, NODEJS_SHM_WAIT_THREADS: row.env } : process.env)
      Object.assign(entry, await entry.child.request({ cmd: 'setup', key, waits: row.waits, sections: row.sections, table: row.table, settleMs: SETTLE_MS }))
    }
    for (let r = 0; r < rounds; r++) {
      progress(`round ${r + 1}/${rounds} (${seconds} s)`)
      const answers = await Promise.all(live.map((e) => e.child.request({ cmd: 'measure', ms: seconds * 1000 })))
      answers.forEach((a, i) => { live[i].cpu.push(a.cpuNs / 1e6 / (a.wallMs / 1000)); live[i].threads = a.threads })
    }
    for (const e of live) e.sleepers = sleepers(e.key, e.table)
    const floor = live[0]
    return live.map((e) => {
      const perRound = e.cpu.map((c, i) => c / floor.cpu[i])
      return {
        kind: 'idle',
        name: `idle.${e.row.id}`,
        text: e.row.waits ? `${e.row.text}, ${e.mechanism}` : e.row.text, // the way its waits slept, as the process reported it
        waits: e.row.waits,
        sections: e.row.sections,
        mechanism: e.mechanism,
        seconds,
        rounds,
        cpuMsPerS: median(e.cpu),
        cpuMsPerSRounds: e.cpu,
        ratio: median(perRound),
        ratioMin: Math.min(...perRound),
        ratioMax: Math.max(...perRound),
        aboveFloorMsPerS: median(e.cpu.map((c, i) => c - floor.cpu[i])),
        threads: e.threads,
        floorThreads: floor.threads,
        sleepers: e.sleepers
      }
    })
  } finally {
    await Promise.all(live.map((e) => e.child && e.child.stop()))
    for (const e of live) {
      e.table.close()
      removeTable(e.key)
    }
  }
}

/** The table of the rows: the README's idle table. */
function idleTable (results) {
  const fixed = (x) => (Number.isFinite(x) ? x.toFixed(x < 1 ? 3 : 2) : '–')
  const isFloor = (r) => r.name === 'idle.floor'
  return report.table([['process', 'l'], ...report.right(['CPU ms/s', '÷ floor: median (min–max)', 'above floor ms/s', 'threads', 'sleepers'])],
    results.map((r) => [r.text, fixed(r.cpuMsPerS),
      isFloor(r) ? '–' : `${report.ratio(r.ratio)} (${report.ratio(r.ratioMin)}–${report.ratio(r.ratioMax)})`,
      isFloor(r) ? '–' : fixed(r.aboveFloorMsPerS), r.threads === null ? '–' : isFloor(r) ? String(r.threads) : `${r.threads} (${r.floorThreads})`, String(r.sleepers)]))
}

module.exports = {
  title: 'Idle: CPU of 1 000 pending waits, and of a wait on 64 sections, while nothing is published, beside an idle process',
  legend,
  cases () {
    legend.splice(0, legend.length, ...FIXED)
    return [{
      kind: 'custom',
      name: 'idle.1000waits',
      async run (ctx) {
        const results = await measure(ctx)
        legend.unshift(`Idle CPU (${results[0].rounds} rounds of ${results[0].seconds} s; waits sleep by ${results.slice(1).map((r) => r.mechanism).filter((m, i, a) => a.indexOf(m) === i).join(' and ')}):\n\n${idleTable(results)}\n`)
        return { results }
      }
    }]
  }
}
