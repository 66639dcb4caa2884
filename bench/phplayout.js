'use strict'
/*
 * phplayout: PHP's copies of a whole 100 KB payload at the sections' layout
 * (data areas at 24 mod 64) and at every offset 0..64 of a plain segment,
 * timed inside PHP (peers/phplayout.php). Why 24: docs/performance.md, "PHP
 * and the sections' layout". Rounds visit every offset once, in a rotated
 * order; then the chosen offset (24) and the sweep's best and worst are timed
 * again, interleaved, in a second PHP run, which the verdict uses.
 * phplayout.publish: Section::publish() and read() at 16 B, 10 KB and 100 KB
 * against the bare shmop copy and the protocol's floors, with and without FFI.
 */
const path = require('node:path')
const { median } = require('./harness')
const report = require('./report')
const { createTable, removeTable, output, phpProblem } = require('./peers/children')

const SCRIPT = path.join(__dirname, 'peers', 'phplayout.php')
const SIZE = 100 * 1024
const CHOSEN = 24
const OFFSETS = Array.from({ length: 65 }, (_, i) => i)
const TARGET = 1.3 // chosen ÷ best offset, as the offset group holds Node's copies
// Deliberately bad offsets: distance 8 for a read (24 - 16), 16 for a write (40 - 24).
const BAD = { shmop_read: 16, shmop_write: 40 }

const legend = []
const LEGEND = [
  'Timed inside PHP (~1 ms of calls per sample, by the run\'s clock), rounds visiting every case once in a rotated order; per case the median over rounds. ' +
    'shmop_read at offset o copies at distance (24 − o) mod 4096, shmop_write at (o − 24) mod 4096 (PHP strings of this size start 24 bytes into a page).',
  '"confirmed": the chosen offset against the sweep\'s best and worst, timed again interleaved in a second PHP run (rounds of --samples runs each, ratio of their medians); the verdict is the median over rounds of chosen ÷ best (≤ 1.3×, as the offset group holds Node\'s copies).'
]

async function runPhp (input, ini = []) {
  const out = await output('php', [...ini, SCRIPT], { input: JSON.stringify(input), label: 'phplayout.php' })
  try { return JSON.parse(out) } catch { throw new Error(`phplayout.php: not JSON: ${out.slice(0, 200)}`) }
}

const us = (ns) => (Number.isFinite(ns) ? `${(ns / 1000).toFixed(2)} µs` : '–')
const x = (r) => `${r.toFixed(2)}×`

/** Per case { median, rounds } on the run's clock. */
function onClock (run, clock) {
  const cases = {}
  for (const [name, c] of Object.entries(run.cases)) cases[name] = c[clock]
  return { ...run, cases }
}

function analyse (sweep, confirm, op, samples) {
  const at = (o) => sweep.cases[`${op}@${o}`].median
  const others = OFFSETS.filter((o) => o % 64 !== CHOSEN)
  const best = others.reduce((b, o) => (at(o) < at(b) ? o : b), others[0])
  const worst = others.reduce((w, o) => (at(o) > at(w) ? o : w), others[0])
  // The offsets where a Zen-style trap would bite: distance 1..63.
  const dist = (o) => (op === 'shmop_read' ? (CHOSEN - o + 4096) % 4096 : (o - CHOSEN + 4096) % 4096)
  const trapZone = others.filter((o) => dist(o) >= 1 && dist(o) <= 63)
  const safeZone = others.filter((o) => !(dist(o) >= 1 && dist(o) <= 63))
  // Confirmation rounds: the median of each group of `samples` runs.
  const c = (name) => {
    const runs = confirm.cases[name].rounds
    const groups = []
    for (let i = 0; i + samples <= runs.length; i += samples) groups.push(median(runs.slice(i, i + samples)))
    return groups
  }
  const chosenR = c(`${op}@${CHOSEN}`)
  const ratiosTo = (o) => c(`${op}@${o}`).map((v, i) => chosenR[i] / v)
  const ratioTo = (o) => median(ratiosTo(o))
  return {
    op,
    chosen: at(CHOSEN),
    bad: { offset: BAD[op], distance: dist(BAD[op]), ns: at(BAD[op]) },
    section: sweep.cases[`${op}@section`].median,
    best: { offset: best, ns: at(best) },
    worst: { offset: worst, ns: at(worst) },
    trapZone: { offsets: `${trapZone[0]}–${trapZone[trapZone.length - 1]}`, median: median(trapZone.map(at)), max: Math.max(...trapZone.map(at)) },
    safeZone: { median: median(safeZone.map(at)) },
    confirmed: {
      chosenOverBest: ratioTo(best),
      chosenOverBestMin: Math.min(...ratiosTo(best)),
      chosenOverBestMax: Math.max(...ratiosTo(best)),
      worstOverChosen: 1 / ratioTo(worst),
      badOverChosen: 1 / ratioTo(BAD[op]),
      rounds: chosenR.length
    },
    perOffset: OFFSETS.map((o) => ({ offset: o, distance: dist(o), ns: at(o) }))
  }
}

function layoutTable (sweep, rows) {
  const head = ['PHP call (100 KB)', 'at 24 mod 64', 'in a table (offset ' + sweep.dataOffset + ')', 'at a bad offset', 'confirmed: bad ÷ 24', 'best other offset', 'worst other offset',
    'offsets at distance 1–63: median (max)', 'other offsets: median', 'confirmed: 24 ÷ best', 'confirmed: worst ÷ 24']
  const body = [
    ['`Section::read()` (whole API)', '–', us(sweep.cases['Section::read'].median), '–', '–', '–', '–', '–', '–', '–', '–'],
    ['`Section::publish()` (whole API)', '–', us(sweep.cases['Section::publish'].median), '–', '–', '–', '–', '–', '–', '–', '–'],
    ...rows.map((r) => [
      `\`${r.op}\` (distance ${r.op === 'shmop_read' ? '24 − o' : 'o − 24'})`,
      us(r.chosen), us(r.section),
      `${us(r.bad.ns)} (o = ${r.bad.offset}, distance ${r.bad.distance})`,
      x(r.confirmed.badOverChosen),
      `${us(r.best.ns)} (o = ${r.best.offset})`, `${us(r.worst.ns)} (o = ${r.worst.offset})`,
      `${us(r.trapZone.median)} (${us(r.trapZone.max)}), o = ${r.trapZone.offsets}`,
      us(r.safeZone.median),
      x(r.confirmed.chosenOverBest), x(r.confirmed.worstOverChosen)
    ])
  ]
  return report.table(head.map((h, i) => [h, i ? 'r' : 'l']), body)
}

// PHP's publish and read at these sizes against the bare copy and the protocol's floors (peers/phplayout.php, protocol).
const PROTOCOL_SIZES = [{ bytes: 16, label: '16B' }, { bytes: 10 * 1024, label: '10KB' }, { bytes: 100 * 1024, label: '100KB' }]
const PUBLISH_TARGET = 1.3 // issue 13: PHP publish ≤ 1.3× PHP's bare shmop_write

/** Per-round ratios of two cases of one run: { ratio (median), ratioMin, ratioMax }. */
function roundRatios (run, candidate, floor) {
  const a = run.cases[candidate].rounds
  const b = run.cases[floor].rounds
  const ratios = a.map((v, i) => v / b[i])
  return { ratio: median(ratios), ratioMin: Math.min(...ratios), ratioMax: Math.max(...ratios) }
}

/** The pair rows of one PHP run (with or without FFI) at one size. */
function protocolPairs (run, how, { bytes, label }) {
  const floor = run.ffi ? `publishFloorFfi@${bytes}` : `publishFloorShmop@${bytes}`
  const floorText = run.ffi ? 'the FFI publish\'s accesses and fence, no PHP logic' : 'its shmop calls, no PHP logic'
  const readFloor = run.ffi ? `readFloorFfi@${bytes}` : `readFloorShmop@${bytes}`
  const readFloorText = run.ffi ? 'the FFI read\'s ten loads and its shmop_read, no PHP logic' : 'a read\'s four shmop_reads, no PHP logic'
  const pair = (name, candidate, floorCase, floorName, target) => {
    const r = roundRatios(run, candidate, floorCase)
    return {
      kind: 'pair', name: `phplayout.${label} (${how}): ${name}`, bytes, candidate, floor: floorName,
      ns: run.cases[candidate].median, floorNs: run.cases[floorCase].median, ...r,
      ...(target ? { target, verdict: r.ratio <= target ? 'PASS' : 'MISS' } : {})
    }
  }
  return [
    pair('publish ÷ shmop_write', `publish@${bytes}`, `shmop_write@${bytes}`, `a bare shmop_write of ${label}`, run.ffi ? PUBLISH_TARGET : undefined),
    pair('publish ÷ protocol floor', `publish@${bytes}`, floor, `the protocol floor (${floorText})`),
    pair('read ÷ shmop_read', `read@${bytes}`, `shmop_read@${bytes}`, `a bare shmop_read of ${label}`),
    pair('read ÷ protocol floor', `read@${bytes}`, readFloor, `the protocol floor (${readFloorText})`)
  ]
}

function protocolTable (runs) {
  const head = ['PHP', 'size', '`Section::publish()`', 'bare `shmop_write`', 'floor: shmop calls', 'floor: FFI accesses + fence', 'publish ÷ write', 'publish ÷ its floor',
    '`Section::read()`', 'bare `shmop_read`', 'floor: 4 shmop_reads', 'floor: FFI loads + copy', 'read ÷ shmop_read', 'read ÷ its floor']
  const body = runs.flatMap(([how, run]) => PROTOCOL_SIZES.map(({ bytes, label }) => {
    const at = (name) => run.cases[`${name}@${bytes}`]?.median
    const own = run.ffi ? 'publishFloorFfi' : 'publishFloorShmop'
    const ownRead = run.ffi ? 'readFloorFfi' : 'readFloorShmop'
    return [how, label, us(at('publish')), us(at('shmop_write')), us(at('publishFloorShmop')), us(at('publishFloorFfi')),
      x(roundRatios(run, `publish@${bytes}`, `shmop_write@${bytes}`).ratio), x(roundRatios(run, `publish@${bytes}`, `${own}@${bytes}`).ratio),
      us(at('read')), us(at('shmop_read')), us(at('readFloorShmop')), us(at('readFloorFfi')),
      x(roundRatios(run, `read@${bytes}`, `shmop_read@${bytes}`).ratio), x(roundRatios(run, `read@${bytes}`, `${ownRead}@${bytes}`).ratio)]
  }))
  return report.table(head.map((h, i) => [h, i > 1 ? 'r' : 'l']), body)
}

const publishCase = {
  kind: 'custom',
  name: 'phplayout.publish',
  async run ({ opts, progress }) {
    const { problem } = phpProblem()
    if (problem) return { skipped: problem }
    const { key, table } = createTable([{ name: 'data', size: SIZE }, { name: 'publish', size: SIZE },
      ...PROTOCOL_SIZES.map(({ bytes }) => ({ name: `read${bytes}`, size: bytes }))])
    table.close()
    try {
      const clock = opts.clock === 'wall' ? 'wall' : 'cpu'
      const input = { key, size: SIZE, offsets: [], rounds: opts.rounds * opts.samples, sampleMs: 1, protocol: true }
      const runs = []
      for (const [how, ini] of [['FFI', []], ['no FFI', ['-d', 'ffi.enable=0']]]) {
        progress(`phplayout.publish: Section::publish and read against their floors (${how})`)
        runs.push([how, onClock(await runPhp(input, ini), clock)])
      }
      const [[, withFfi], [, withoutFfi]] = runs
      legend.push('**PHP publish and read against the bare copy and the protocol\'s floors** (a third and fourth PHP run, one with `-d ffi.enable=0`; every case of a run interleaved, ' +
        `${input.rounds} rounds, ratios = median over rounds of the per-round ratio). ` +
        'Floor "shmop calls": a publish\'s accesses as shmop makes them, with constant strings and no PHP logic (a 132-byte shmop_read of the control line, 5 shmop_writes: seq, payload, header, seq, commit; a 12-byte shmop_read after). ' +
        'Floor "FFI accesses + fence": the same accesses as `Section::publish` makes them with FFI (the payload\'s shmop_write, the control words as C integers through a second attachment, `pthread_spin_trylock` as the full fence). ' +
        'Read floors: a read\'s four shmop_reads (without FFI); its ten loads as C integers and the payload\'s shmop_read (with FFI). ' +
        `getmypid() (a publish without FFI calls it): ${us(withoutFfi.cases['getmypid()'].median)}` +
        (withFfi.ffi ? '' : '. **FFI was not usable here**: both runs took the shmop path') + `.\n\n${protocolTable(runs)}\n`)
      return { results: runs.flatMap(([how, run]) => PROTOCOL_SIZES.flatMap((size) => protocolPairs(run, how, size))) }
    } finally {
      removeTable(key)
    }
  }
}

module.exports = {
  title: 'PHP copies of a 100 KB payload: the sections\' layout (24 mod 64) against every other offset',
  legend,
  cases () {
    legend.length = 0
    legend.push(...LEGEND)
    return [{
      kind: 'custom',
      name: 'phplayout.100KB',
      async run ({ opts, progress }) {
        const { problem } = phpProblem()
        if (problem) return { skipped: problem }
        const { key, table } = createTable([{ name: 'data', size: SIZE }])
        table.close()
        try {
          const rounds = opts.rounds * 3
          progress(`phplayout.100KB: sweeping offsets 0..64 (${rounds} rounds)`)
          const clock = opts.clock === 'wall' ? 'wall' : 'cpu'
          const sweep = onClock(await runPhp({ key, size: SIZE, offsets: OFFSETS, rounds, sampleMs: 1 }), clock)
          const pick = (op) => {
            const others = OFFSETS.filter((o) => o % 64 !== CHOSEN)
            const at = (o) => sweep.cases[`${op}@${o}`].median
            return [others.reduce((b, o) => (at(o) < at(b) ? o : b), others[0]), others.reduce((w, o) => (at(o) > at(w) ? o : w), others[0])]
          }
          const again = [...new Set([CHOSEN, ...Object.values(BAD), ...pick('shmop_read'), ...pick('shmop_write')])]
          progress(`phplayout.100KB: confirming offsets ${again.join(', ')}`)
          const confirm = onClock(await runPhp({ key, size: SIZE, offsets: again, rounds: opts.rounds * opts.samples, sampleMs: 1 }), clock)
          const rows = ['shmop_read', 'shmop_write'].map((op) => analyse(sweep, confirm, op, opts.samples))
          legend.unshift(`Clock: ${clock === 'cpu' ? 'CPU time of the PHP process (getrusage user + system; --clock wall: hrtime)' : 'hrtime (wall clock)'}. PHP ${sweep.php}; the section's data area at offset ${sweep.dataOffset} (${sweep.dataOffset % 64} mod 64); ` +
            (sweep.strings && sweep.strings.payloadString !== undefined
              ? `PHP strings of 100 KB start at page offset ${sweep.strings.payloadString} (payload), ${sweep.strings.shmopReadString} (shmop_read's result), ${sweep.strings.sectionReadString} (Section::read's), seen through FFI:\n\n${layoutTable(sweep, rows)}\n`
              : `string page offsets not checked (no FFI):\n\n${layoutTable(sweep, rows)}\n`))
          const results = rows.map((r) => ({
            kind: 'pair',
            name: `phplayout.${r.op}.100KB at 24 ÷ best offset`,
            bytes: SIZE,
            candidate: `${r.op} of 100 KB at offset 24 (mod 64)`,
            floor: `${r.op} of 100 KB at the best other offset (${r.best.offset})`,
            ns: r.chosen,
            floorNs: r.best.ns,
            ratio: r.confirmed.chosenOverBest,
            ratioMin: r.confirmed.chosenOverBestMin,
            ratioMax: r.confirmed.chosenOverBestMax,
            target: TARGET,
            verdict: r.confirmed.chosenOverBest <= TARGET ? 'PASS' : 'MISS',
            clock
          }))
          results.push({ kind: 'phplayout', name: 'phplayout.100KB', clock, php: sweep.php, dataOffset: sweep.dataOffset, strings: sweep.strings, section: { read: sweep.cases['Section::read'].median, publish: sweep.cases['Section::publish'].median }, rows })
          return { results }
        } finally {
          removeTable(key)
        }
      }
    }, publishCase]
  }
}
