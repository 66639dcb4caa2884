'use strict'
/*
 * protocol: what the section protocol costs in plain C, without Node: the
 * floor under the write group's publish rows and the latest group's read rows.
 * peers/protocol-floor.c (built here by gcc -O2 with ../src/sections.c as it
 * is now) times shmsect_publish and shmsect_read of n bytes of a real section
 * next to memcpy of the same bytes, interleaved in rounds. A Node publish is
 * then the copy, plus this protocol cost, plus the crossing into the addon
 * (write.publishOverCall); docs/performance.md, "Where a call's time goes".
 */
const { SIZES, median, summary } = require('./harness')
const { output, jsonLines } = require('./peers/children')
const { buildC } = require('./c-programs')

// [name, candidate fn, floor fn, what the ratio shows]
const ROWS = [
  ['publish', 'publish', 'memcpy', 'shmsect_publish (C)', 'memcpy (C)'],
  ['publishOverCopyIn', 'publish', 'copy_in', 'shmsect_publish (C)', 'memcpy into the data area (C)'],
  ['copyIn', 'copy_in', 'memcpy', 'memcpy into the data area (C)', 'memcpy (C)'],
  ['read', 'read', 'memcpy', 'shmsect_read (C)', 'memcpy (C)'],
  ['readOverCopyOut', 'read', 'copy_out', 'shmsect_read (C)', 'memcpy out of the data area (C)']
]

/** Pair rows from the samples: per round, candidate ns ÷ floor ns; the median over rounds. */
function rows (samples) {
  const ns = (size, fn) => samples.filter((s) => s.size === size && s.fn === fn)
  const out = []
  for (const { bytes, label } of SIZES) {
    for (const [name, a, b, candidate, floor] of ROWS) {
      const as = ns(bytes, a)
      const bs = ns(bytes, b)
      const ratios = as.map((s) => s.ns / bs.find((f) => f.round === s.round).ns)
      const r = summary(ratios)
      out.push({
        kind: 'pair',
        name: `protocol.${name}.${label}`,
        bytes,
        candidate,
        floor,
        ns: median(as.map((s) => s.ns)),
        floorNs: median(bs.map((s) => s.ns)),
        ratio: r.median,
        ratioMin: r.min,
        ratioMax: r.max,
        roundRatios: ratios
      })
    }
  }
  const alone = (fn) => median(samples.filter((s) => s.fn === fn).map((s) => s.ns))
  return { results: out, clockNs: alone('clock'), coarseNs: alone('coarse') }
}

const legend = [
  'In C, no Node: a section in a real System V segment, laid out as lib/section-layout.js lays one out, claimed by the program, nobody asleep. ' +
    'memcpy: glibc, page-aligned to page-aligned (what `Buffer.copy`, the Node rows\' floor, does); data area: the section\'s, 24 bytes past a 64-byte boundary (docs/sections.md). ' +
    'Each round times every function back to back (3 samples each, median); ratio = median over rounds of the round\'s ratio.',
  'Read a Node row as: `section.publish()` ≈ the copy + what protocol.publish adds to memcpy + the crossing into the addon (write.publishOverCall); ' +
    'a ratio above a Node row\'s target here means that target is out of reach for the protocol itself, whatever the binding does.'
]

module.exports = {
  title: 'Protocol: shmsect_publish and shmsect_read in C next to memcpy',
  legend,
  cases () {
    return [{
      kind: 'custom',
      name: 'protocol.c',
      async run ({ opts, progress }) {
        progress('building bench/build/protocol-floor (gcc -O2, ../src/sections.c)')
        const { binary, failure } = buildC('protocol-floor')
        if (failure) return { skipped: failure }
        progress('running protocol-floor')
        const args = ['--sizes', SIZES.map((s) => s.bytes).join(','), '--rounds', String(opts.cRounds),
          '--sample-us', String(opts.cSampleUs), '--clock', opts.clock]
        const { results, clockNs, coarseNs } = rows(jsonLines(await output(binary, args, { label: 'protocol-floor' })))
        const text = `The wall clock a publish stamps its slot with (clock_gettime(CLOCK_REALTIME), vDSO) costs ${clockNs.toFixed(1)} ns alone in this run; ` +
          `CLOCK_REALTIME_COARSE (as fine as the kernel's tick, 1–4 ms) would cost ${coarseNs.toFixed(1)} ns.`
        if (!legend.includes(text)) legend.push(text)
        return { results }
      }
    }]
  }
}
