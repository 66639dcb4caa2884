#!/usr/bin/env node
'use strict'
/*
 * The benchmark runner: `npm run bench [-- [filters...] [options]]`.
 *
 * Layout (better-sqlite3's benchmark/ shape): this runner; harness.js, which
 * times cases and does the statistics; machine.js, which describes the
 * machine; shm.js, which loads the addon and owns the benchmark's segments;
 * and one file per group of cases (GROUPS below). A group file exports
 *   { name, title, legend: [lines], cases (ctx) -> [case, ...] }
 * where each case is a 'pair', 'sweep' or 'custom' case (see harness.js) and
 * ctx is { shm, segment (size), aligned (bytes, pageOffset), opts, progress }.
 * To add a group, write bench/<name>.js and add <name> to GROUPS.
 *
 * Every figure is a ratio to a floor measured in the same run, interleaved:
 * the machine is shared and noisy, and absolute figures drift 2-3x.
 */
const machine = require('./machine')
const harness = require('./harness')
const shm = require('./shm')

const GROUPS = ['read', 'write', 'modern', 'offset', 'copy', 'handoff', 'phplayout']

const USAGE = `Usage: npm run bench -- [filter ...] [options]

  filter          run only the cases whose name contains one of the filters
                  (case-insensitive), e.g. \`read\`, \`100KB\`, \`offset.writeSHM\`
  --quick         fewer and shorter samples (about a third of the time; noisier)
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

function parseArgs (argv) {
  const opts = {
    quick: false,
    json: false,
    list: false,
    strict: false,
    filters: [],
    clock: 'cpu'
  }
  const numbers = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--quick') opts.quick = true
    else if (arg === '--json') opts.json = true
    else if (arg === '--list') opts.list = true
    else if (arg === '--strict') opts.strict = true
    else if (arg === '--clock') opts.clock = argv[++i]
    else if (arg === '--addon') {
      opts.addon = argv[++i]
      if (!opts.addon) throw new Error('--addon needs a file name')
    }
    else if (arg === '--save') {
      opts.save = argv[++i]
      if (!opts.save) throw new Error('--save needs a file name')
    }
    else if (arg === '--help' || arg === '-h') opts.help = true
    else if (['--rounds', '--samples', '--sample-ms', '--sweep-rounds'].includes(arg)) {
      const value = Number(argv[++i])
      if (!(value > 0)) throw new Error(`${arg} needs a positive number`)
      numbers[arg.slice(2)] = value
    } else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}\n\n${USAGE}`)
    else opts.filters.push(arg.toLowerCase())
  }
  const q = opts.quick
  Object.assign(opts, {
    rounds: numbers.rounds || (q ? 3 : 7),
    samples: numbers.samples || (q ? 3 : 5),
    sampleMs: numbers['sample-ms'] || (q ? 5 : 10),
    warmupMs: q ? 60 : 200,
    allocFactor: 4, // samples of cases that allocate a Buffer per call are this much longer
    sweepRounds: numbers['sweep-rounds'] || (q ? 3 : 5),
    confirmWorst: q ? 3 : 4, // slowest offsets of a sweep timed again against the best
    sweepSampleMs: numbers['sample-ms'] || (q ? 3 : 10),
    // C copies allocate nothing, so their samples can be short: a short sample
    // is less often cut by another process's time slice, and many of them
    // give the medians something to work with on a busy machine.
    cRounds: q ? 9 : 21,
    cSampleUs: q ? 200 : 250
  })
  return opts
}

const selected = (opts, name) => !opts.filters.length || opts.filters.some((f) => name.toLowerCase().includes(f))

// ==== Formatting ====

function ns (value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–'
  if (value < 10) return `${value.toFixed(2)} ns`
  if (value < 1000) return `${Math.round(value)} ns`
  if (value < 1e6) return `${(value / 1000).toPrecision(3)} µs`
  return `${(value / 1e6).toPrecision(3)} ms`
}
const ratio = (r) => (r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`)
const range = (lo, hi) => `${lo.toFixed(2)}–${hi.toFixed(2)}`
const target = (t) => (t === undefined || t === null ? '–' : `≤ ${t}×`)
const result = (v) => (v === 'MISS' ? '**MISS**' : v || '–')
const size = (bytes) => (bytes >= 1024 ? `${bytes / 1024} KB` : `${bytes} B`)

/** A Markdown table; columns are [title, align] with align 'l' or 'r'. */
function table (columns, rows) {
  const cells = [columns.map(([t]) => t), ...rows.map((r) => r.map(String))]
  const widths = columns.map((_, i) => Math.max(3, ...cells.map((r) => r[i].length)))
  const line = (r) => `| ${r.map((c, i) => (columns[i][1] === 'r' ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`
  const rule = `| ${widths.map((w, i) => (columns[i][1] === 'r' ? '-'.repeat(w - 1) + ':' : '-'.repeat(w))).join(' | ')} |`
  return [line(cells[0]), rule, ...cells.slice(1).map(line)].join('\n')
}

function pairTable (results) {
  return table(
    [['case', 'l'], ['size', 'r'], ['ns/op', 'r'], ['floor ns/op', 'r'], ['ratio', 'r'], ['min–max over rounds', 'r'], ['target', 'r'], ['result', 'l']],
    results.map((r) => [r.name, size(r.bytes), ns(r.ns), ns(r.floorNs), ratio(r.ratio), range(r.ratioMin, r.ratioMax), target(r.target), result(r.verdict)])
  )
}

function sweepTable (results) {
  return table(
    [['case', 'l'], ['best (at)', 'r'], ['worst (at)', 'r'], ['sweep spread', 'r'], ['confirmed worst ÷ best', 'r'], ['min–max', 'r'],
      ['0', 'r'], ['1–15', 'r'], ['16–31', 'r'], ['32–63', 'r'], ['target', 'r'], ['result', 'l']],
    results.map((r) => [
      r.name,
      `${ns(r.best.ns)} (${r.best.arg})`,
      `${ns(r.worst.ns)} (${r.worst.arg})`,
      ratio(r.sweepRatio),
      ratio(r.ratio),
      range(r.ratioMin, r.ratioMax),
      ...r.buckets.map((b) => ns(b.median)),
      target(r.target),
      result(r.verdict)
    ])
  )
}

function copyTable (results) {
  return table(
    [['GLIBC_TUNABLES', 'l'], ['size', 'r'], ['copy', 'l'], ['d=0', 'r'], ['1–15', 'r'], ['16–31', 'r'], ['32–63', 'r'], ['64', 'r'],
      ['best (d)', 'r'], ['worst (d)', 'r'], ['worst ÷ best', 'r'], ['confirmed', 'r'], ['min–max', 'r'],
      ['÷ memcpy, median', 'r'], ['÷ memcpy, max (d)', 'r'], ['result', 'l']],
    results.map((r) => [
      r.tunables,
      size(r.size),
      r.fn,
      ...r.buckets.map((b) => ns(b.median)),
      `${ns(r.best.ns)} (${r.best.d})`,
      `${ns(r.worst.ns)} (${r.worst.d})`,
      ratio(r.sweepRatio),
      ratio(r.ratio),
      range(r.ratioMin, r.ratioMax),
      r.fn === 'memcpy' ? '–' : ratio(r.vsMemcpyMedian),
      r.fn === 'memcpy' ? '–' : `${ratio(r.vsMemcpyMax)} (${r.vsMemcpyMaxAt})`,
      result(r.verdict)
    ])
  )
}

function formatGroup (g) {
  const out = [`### ${g.title}`, '']
  if (g.error) return [...out, `Failed: ${g.error}`, ''].join('\n')
  if (g.skipped) return [...out, `Skipped: ${g.skipped}`, ''].join('\n')
  const byKind = (kind) => g.results.filter((r) => r.kind === kind)
  if (byKind('pair').length) out.push(pairTable(byKind('pair')), '')
  if (byKind('sweep').length) out.push(sweepTable(byKind('sweep')), '')
  if (byKind('copy').length) out.push(copyTable(byKind('copy')), '')
  for (const line of g.legend || []) out.push(`- ${line}`)
  out.push('')
  return out.join('\n')
}

function verdicts (groups) {
  return groups.flatMap((g) => (g.results || []).filter((r) => r.verdict === 'PASS' || r.verdict === 'MISS'))
}

function describeVerdict (r) {
  const figure = r.kind === 'pair'
    ? `${ratio(r.ratio)} of its floor (${range(r.ratioMin, r.ratioMax)}; ${ns(r.ns)} vs ${ns(r.floorNs)})`
    : r.kind === 'sweep'
      ? `worst ÷ best ${ratio(r.ratio)} (${range(r.ratioMin, r.ratioMax)}; worst at ${r.argName} ${r.worst.arg}: ${ns(r.worst.ns)}, best at ${r.best.arg}: ${ns(r.best.ns)})`
      : r.criterion === 'vs-memcpy'
        ? `no trap in memcpy here, so held to memcpy: up to ${ratio(r.vsMemcpyMax)} of memcpy (at d=${r.vsMemcpyMaxAt}; median over d ${ratio(r.vsMemcpyMedian)}); its own worst ÷ best ${ratio(r.ratio)} (${range(r.ratioMin, r.ratioMax)}; worst at d=${r.worst.d}: ${ns(r.worst.ns)}, best at d=${r.best.d}: ${ns(r.best.ns)})`
        : `memcpy has the trap here: worst ÷ best ${ratio(r.ratio)} (${range(r.ratioMin, r.ratioMax)}; worst at d=${r.worst.d}: ${ns(r.worst.ns)}, best at d=${r.best.d}: ${ns(r.best.ns)})`
  return `- ${r.verdict === 'MISS' ? '**MISS**' : 'PASS'} ${r.name}: ${figure}, target ${target(r.target)}`
}

// ==== Running ====

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  if (opts.help) return process.stdout.write(USAGE)
  harness.setClock(opts.clock)
  if (opts.addon) shm.useAddon(opts.addon)
  const say = (text) => process.stderr.write(process.stderr.isTTY ? `\r\x1b[K${text}` : `${text}\n`)
  const done = () => { if (process.stderr.isTTY) process.stderr.write('\r\x1b[K') }

  const ctx = {
    get shm () { return shm.addon },
    segment: (size, o) => shm.segment(size, o),
    aligned: shm.aligned,
    opts,
    progress: say
  }

  const about = machine.describe()
  const started = Date.now()
  const groups = []
  for (const name of GROUPS) {
    const group = require(`./${name}`)
    const g = { name, title: group.title, legend: group.legend, results: [] }
    let cases
    try {
      cases = group.cases(ctx).filter((c) => selected(opts, c.name))
    } catch (error) {
      g.error = error.message
      if (selected(opts, name)) groups.push(g)
      continue
    }
    if (opts.list) {
      for (const c of cases) process.stdout.write(`${c.name}\n`)
      continue
    }
    if (!cases.length) continue
    groups.push(g)
    const progress = (text) => say(`${name}: ${text}`)
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
  }
  done()
  shm.cleanup()
  if (opts.list) return

  const loadavgEnd = require('node:os').loadavg().map((x) => Number(x.toFixed(2)))
  const rel = shm.addonFile && require('node:path').relative(process.cwd(), shm.addonFile)
  about.addon = rel && !rel.startsWith('..') ? rel : shm.addonFile
  const all = verdicts(groups)
  const missed = all.filter((r) => r.verdict === 'MISS')
  const settings = {
    quick: opts.quick,
    filters: opts.filters,
    clock: opts.clock,
    rounds: opts.rounds,
    samples: opts.samples,
    sampleMs: opts.sampleMs,
    allocFactor: opts.allocFactor,
    sweepRounds: opts.sweepRounds,
    sweepSampleMs: opts.sweepSampleMs,
    cRounds: opts.cRounds,
    cSampleUs: opts.cSampleUs,
    seconds: Math.round((Date.now() - started) / 1000)
  }
  const doc = JSON.stringify({ machine: { ...about, loadavgEnd }, settings, groups }, null, 2) + '\n'
  if (opts.save) require('node:fs').writeFileSync(opts.save, doc)
  if (opts.json) {
    process.stdout.write(doc)
  } else {
    const out = [
      `## Benchmark (${about.date.slice(0, 10)})`,
      '',
      machine.format(about, { loadavgEnd }),
      ...(about.addon ? [`- **Addon:** ${about.addon}`] : []),
      `- **Method:** ${settings.clock === 'cpu' ? 'CPU time of the process (process.cpuUsage)' : 'wall-clock time'}; ` +
        `${settings.rounds} rounds × ${settings.samples} samples per side of ~${settings.sampleMs} ms ` +
        `(${settings.sampleMs * settings.allocFactor} ms for cases that allocate a Buffer per call), ` +
        `candidate and floor interleaved; ratio = median over rounds of (candidate median ÷ floor median). ` +
        `Sweeps: ${settings.sweepRounds} rounds × 1 sample of ~${settings.sweepSampleMs} ms per offset; ` +
        `C: ${settings.cRounds} rounds × 1 sample of ~${settings.cSampleUs} µs per distance and copy. ` +
        `${settings.quick ? 'Quick mode. ' : ''}Took ${settings.seconds} s.`,
      ''
    ]
    for (const g of groups) out.push(formatGroup(g))
    if (all.length) {
      out.push(`### Targets: ${all.length - missed.length} PASS, ${missed.length} MISS`, '')
      out.push(...all.map(describeVerdict), '')
    }
    process.stdout.write(out.join('\n'))
  }
  if (opts.strict && missed.length) process.exitCode = 1
}

// `npm run bench -- --list | head` closes the pipe early: not an error.
process.stdout.on('error', (error) => {
  if (error.code !== 'EPIPE') throw error
  shm.cleanup()
  process.exit(0)
})

main().catch((error) => {
  shm.cleanup()
  process.stderr.write(`bench: ${error && error.stack ? error.stack : error}\n`)
  process.exit(1)
})
