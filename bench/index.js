#!/usr/bin/env node
'use strict'
/*
 * The benchmark runner: `npm run bench [-- [filters...] [options]]`.
 *
 * harness.js times cases and does the statistics, report.js writes Markdown,
 * machine.js describes the machine, shm.js loads the addon and owns the
 * segments; one file per group (GROUPS), the processes they start in peers/,
 * and research programs, run only with --research, in research/. A group file
 * exports { title, legend: [lines], cases (ctx) -> [case, ...] } (cases:
 * harness.js), where ctx is { shm, segment (size), aligned (bytes, pageOffset),
 * opts, progress }. Every figure is a ratio to a floor measured in the same
 * run, interleaved (docs/performance.md).
 */
const os = require('node:os')
const path = require('node:path')
const { parseArgs } = require('node:util')
const machine = require('./machine')
const harness = require('./harness')
const report = require('./report')
const shm = require('./shm')

const GROUPS = ['latest', 'read', 'write', 'protocol', 'segment', 'offset', 'handoff', 'idle', 'phplayout', 'crosshost']
const RESEARCH = ['research/copy']

const USAGE = `Usage: npm run bench -- [filter ...] [options]

  filter          run only the cases whose name contains one of the filters
                  (case-insensitive), e.g. \`read\`, \`100KB\`, \`offset.writeSHM\`
  --quick         fewer and shorter samples (about a third of the time; noisier)
  --research      also run the research groups (bench/research/: copy)
  --json          print the results as one JSON document on stdout
                  (through npm, add -s: npm run -s bench -- --json)
  --save FILE     also write that JSON document to FILE
  --addon FILE    benchmark this build of shm.node instead of build/Release
  --list          list the case names and exit
  --strict        exit with status 1 if a target is missed
  --rounds N      rounds for pairs and confirmations (default 7; quick 3)
  --samples N     samples per side per round (default 5; quick 3)
  --sample-ms N   milliseconds per sample (default 10; quick 5)
  --sweep-rounds N  rounds of each offset sweep (default 5; quick 3)
  --clock cpu|wall  time by this process's CPU time (default: steadier on a
                  shared machine) or by wall-clock time
  --help          this text
`

const OPTIONS = {
  quick: { type: 'boolean' },
  research: { type: 'boolean' },
  json: { type: 'boolean' },
  save: { type: 'string' },
  addon: { type: 'string' },
  list: { type: 'boolean' },
  strict: { type: 'boolean' },
  rounds: { type: 'string' },
  samples: { type: 'string' },
  'sample-ms': { type: 'string' },
  'sweep-rounds': { type: 'string' },
  clock: { type: 'string', default: 'cpu' },
  help: { type: 'boolean', short: 'h' }
}

function options (args) {
  let parsed
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true })
  } catch (error) {
    throw Object.assign(new Error(`${error.message}\n\n${USAGE}`), { usage: true })
  }
  const v = parsed.values
  const number = (name, quick, slow) => {
    if (v[name] === undefined) return v.quick ? quick : slow
    const n = Number(v[name])
    if (!(n > 0)) throw Object.assign(new Error(`--${name} needs a positive number`), { usage: true })
    return n
  }
  const sampleMs = number('sample-ms', 5, 10)
  return {
    ...v,
    filters: parsed.positionals.map((f) => f.toLowerCase()),
    rounds: number('rounds', 3, 7),
    samples: number('samples', 3, 5),
    sampleMs,
    warmupMs: v.quick ? 60 : 200,
    allocFactor: 4, // samples of cases that allocate a Buffer per call are this much longer
    sweepRounds: number('sweep-rounds', 3, 5),
    confirmWorst: v.quick ? 3 : 4, // slowest offsets of a sweep timed again against the best
    sweepSampleMs: v['sample-ms'] === undefined ? (v.quick ? 3 : 10) : sampleMs,
    // C copies allocate nothing, so their samples can be short, and many
    // short samples give the medians something to work with on a busy machine.
    cRounds: v.quick ? 9 : 21,
    cSampleUs: v.quick ? 200 : 250
  }
}

const selected = (opts, name) => !opts.filters.length || opts.filters.some((f) => name.toLowerCase().includes(f))

/** Runs one group's selected cases; returns its entry of the report, or null. */
async function runGroup (name, ctx, say) {
  const { opts } = ctx
  const group = require(`./${name}`)
  const g = { name: path.basename(name), title: group.title, legend: group.legend, results: [] }
  let cases
  try {
    cases = group.cases(ctx).filter((c) => selected(opts, c.name))
  } catch (error) {
    return selected(opts, g.name) ? { ...g, error: error.message } : null
  }
  if (opts.list) {
    for (const c of cases) process.stdout.write(`${c.name}\n`)
    return null
  }
  if (!cases.length) return null
  const progress = (text) => say(`${g.name}: ${text}`)
  const pairs = cases.filter((c) => c.kind === 'pair')
  if (pairs.length) g.results.push(...await harness.runPairs(pairs, opts, progress))
  for (const c of cases.filter((c) => c.kind === 'sweep')) {
    g.results.push(await harness.runSweep(c, opts, (text) => progress(`${c.name}: ${text}`)))
  }
  for (const c of cases.filter((c) => c.kind === 'custom')) {
    const out = await c.run({ ...ctx, progress })
    if (out.skipped) g.skipped = out.skipped
    g.results.push(...(out.results || []))
  }
  return g
}

function method (s) {
  return `- **Method:** ${s.clock === 'cpu' ? 'CPU time of the process (process.cpuUsage)' : 'wall-clock time'}; ` +
    `${s.rounds} rounds × ${s.samples} samples per side of ~${s.sampleMs} ms ` +
    `(${s.sampleMs * s.allocFactor} ms for cases that allocate a Buffer per call), ` +
    'candidate and floor interleaved; ratio = median over rounds of (candidate median ÷ floor median). ' +
    `Sweeps: ${s.sweepRounds} rounds × 1 sample of ~${s.sweepSampleMs} ms per offset; ` +
    `C: ${s.cRounds} rounds × 1 sample of ~${s.cSampleUs} µs per distance and copy. ` +
    `${s.quick ? 'Quick mode. ' : ''}Took ${s.seconds} s.`
}

async function main () {
  const opts = options(process.argv.slice(2))
  if (opts.help) return process.stdout.write(USAGE)
  harness.setClock(opts.clock)
  if (opts.addon) shm.useAddon(opts.addon)
  const say = (text) => process.stderr.write(process.stderr.isTTY ? `\r\x1b[K${text}` : `${text}\n`)
  const ctx = { get shm () { return shm.addon }, segment: shm.segment, aligned: shm.aligned, opts, progress: say }

  const about = machine.describe()
  const started = Date.now()
  const groups = []
  for (const name of [...GROUPS, ...(opts.research ? RESEARCH : [])]) {
    const g = await runGroup(name, ctx, say)
    if (g) groups.push(g)
  }
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K')
  shm.cleanup()
  if (opts.list) return

  const rel = shm.addonFile && path.relative(process.cwd(), shm.addonFile)
  about.addon = rel && !rel.startsWith('..') ? rel : shm.addonFile
  const loadavgEnd = os.loadavg().map((x) => Number(x.toFixed(2)))
  const all = report.verdicts(groups)
  const missed = all.filter((r) => r.verdict === 'MISS')
  const settings = {
    ...Object.fromEntries(['filters', 'clock', 'rounds', 'samples', 'sampleMs', 'allocFactor', 'sweepRounds',
      'sweepSampleMs', 'cRounds', 'cSampleUs'].map((k) => [k, opts[k]])),
    quick: Boolean(opts.quick),
    seconds: Math.round((Date.now() - started) / 1000)
  }
  const doc = JSON.stringify({ machine: { ...about, loadavgEnd }, settings, groups }, null, 2) + '\n'
  if (opts.save) require('node:fs').writeFileSync(opts.save, doc)
  if (opts.strict && missed.length) process.exitCode = 1
  if (opts.json) return process.stdout.write(doc)
  const out = [
    `## Benchmark (${about.date.slice(0, 10)})`, '',
    machine.format(about, { loadavgEnd }),
    ...(about.addon ? [`- **Addon:** ${about.addon}`] : []),
    method(settings), '',
    ...groups.map(report.formatGroup)
  ]
  if (all.length) out.push(`### Targets: ${all.length - missed.length} PASS, ${missed.length} MISS`, '', ...all.map(report.describeVerdict), '')
  process.stdout.write(out.join('\n'))
}

// `npm run bench -- --list | head` closes the pipe early: not an error.
process.stdout.on('error', (error) => {
  if (error.code !== 'EPIPE') throw error
  shm.cleanup()
  process.exit(0)
})

main().catch((error) => {
  shm.cleanup()
  process.stderr.write(`bench: ${error.usage ? error.message : error && error.stack ? error.stack : error}\n`)
  process.exit(error.usage ? 2 : 1)
})
