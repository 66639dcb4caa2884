'use strict'
/*
 * harness.js: how every case is timed, and the statistics reported. A
 * candidate is always timed next to its floor, interleaved within each round;
 * the figure is the median over rounds of each round's ratio of medians, with
 * the min-max over rounds beside it (why: docs/performance.md, "Method").
 *
 * Kinds of case (a group file returns a list of these; see index.js):
 *   pair   { kind: 'pair', name, bytes, candidate: fn, floor: fn, target,
 *            candidateText, floorText, allocates, clock }
 *          fn() does one operation; target is the largest acceptable
 *          candidate / floor ratio (none: a figure without a target).
 *          allocates: samples opts.allocFactor times longer, so that each
 *          holds several of the full GCs a Buffer per call brings.
 *   sweep  { kind: 'sweep', name, bytes, args, argName, text, fn, buckets,
 *            target, allocates, clock }
 *          fn(arg) at every arg; the best and the few slowest args are then
 *          timed again, interleaved, and the largest confirmed worst / best
 *          ratio is the verdict.
 *   custom { kind: 'custom', name, run(ctx) -> { results, skipped } }
 * clock: 'wall' times a case by wall-clock time; the default is the CPU time
 * of this process (--clock wall changes it for the run).
 */

// The payload sizes the groups measure (KB = 1024 B).
const SIZES = [
  { bytes: 16, label: '16B' },
  { bytes: 10 * 1024, label: '10KB' },
  { bytes: 100 * 1024, label: '100KB' }
]

const now = process.hrtime.bigint
const tick = () => new Promise(setImmediate) // lets Ctrl-C in between samples

/*
 * One timing loop per case, compiled from its own source text, so that each
 * loop gets its own type feedback and inlines its one target: cases cannot
 * slow each other down through a shared megamorphic call site. The last
 * result goes to `sink`, so no call can be dropped.
 */
let loops = 0
let sink
const keep = (r) => { sink = r }
function makeLoop (fn) {
  const id = ++loops
  // eslint-disable-next-line no-new-func
  return new Function('fn', 'keep', `'use strict' // bench loop #${id}
    return function loop${id} (iters, arg) {
      let r
      for (let i = 0; i < iters; i++) r = fn(arg)
      keep(r)
    }`)(fn, keep)
}

let defaultClock = 'cpu'
function setClock (clock) {
  if (clock !== 'cpu' && clock !== 'wall') throw new Error(`unknown clock ${clock}: use cpu or wall`)
  defaultClock = clock
}

/** Runs loop(iters, arg) once; returns nanoseconds per operation. */
function sample (loop, iters, arg, clock = defaultClock) {
  if (clock === 'wall') {
    const start = now()
    loop(iters, arg)
    return Number(now() - start) / iters
  }
  const start = process.cpuUsage()
  loop(iters, arg)
  const used = process.cpuUsage(start)
  return (used.user + used.system) * 1000 / iters
}

/** Runs the loop (cycling through args) for about ms milliseconds, so V8 optimizes it. */
function warmUp (loop, args, ms) {
  const end = now() + BigInt(Math.round(ms * 1e6))
  let iters = 1
  for (let k = 0; now() < end; k++) {
    const t = sample(loop, iters, args[k % args.length], 'wall') * iters
    if (t < 1e6) iters *= 2 // keep each call short while it is still cold
  }
}

/** Iterations for one sample of about ms milliseconds. */
function calibrate (loop, arg, ms, clock) {
  const goal = ms * 1e6
  let iters = 1
  for (;;) {
    const total = sample(loop, iters, arg, clock) * iters
    if (total >= goal / 4 || iters >= 2 ** 40) return Math.max(1, Math.round(iters * goal / Math.max(total, 1)))
    iters *= total > 0 ? Math.min(16, Math.max(2, Math.ceil(goal / 4 / total))) : 16
  }
}

// ==== Statistics ====

/** The q-quantile of a sorted list (linear interpolation between closest ranks). */
function quantile (sorted, q) {
  if (!sorted.length) return NaN
  const at = (sorted.length - 1) * q
  const lo = Math.floor(at)
  const hi = Math.ceil(at)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo)
}
const median = (xs) => quantile([...xs].sort((a, b) => a - b), 0.5)
/** What a list of latencies is reported by: count, min, p10, median, p90, p99, p99.9, max, mean. */
function distribution (xs) {
  const s = [...xs].sort((a, b) => a - b)
  const q = (p) => quantile(s, p)
  return { count: s.length, min: s[0], p10: q(0.1), median: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: s[s.length - 1], mean: s.reduce((a, b) => a + b, 0) / s.length }
}
const summary = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) })
const verdict = (value, target) => (target === undefined || target === null ? null : value <= target ? 'PASS' : 'MISS')
const sampleMs = (c, ms, opts) => (c.allocates ? ms * opts.allocFactor : ms)
/** The index of the smallest (sign 1) or largest (sign -1) value. */
const argBest = (xs, sign = 1) => xs.reduce((b, x, j) => (sign * x < sign * xs[b] ? j : b), 0)

// ==== Pairs ====

/*
 * Within a round, each pair gets opts.samples samples of each side,
 * interleaved A B A B (B A B A on alternate rounds); rounds go round-robin
 * over all pairs, so each pair's rounds meet different background noise.
 */
async function runPairs (cases, opts, progress) {
  const states = []
  for (const c of cases) {
    progress(`warming up ${c.name}`)
    const sides = [c.candidate, c.floor].map((fn) => {
      const loop = makeLoop(fn)
      warmUp(loop, [undefined], opts.warmupMs)
      return { loop, iters: calibrate(loop, undefined, sampleMs(c, opts.sampleMs, opts), c.clock), rounds: [] }
    })
    states.push({ c, sides, ratios: [] })
    await tick()
  }
  for (let r = 0; r < opts.rounds; r++) {
    progress(`round ${r + 1}/${opts.rounds}`)
    for (let k = 0; k < states.length; k++) {
      const s = states[(k + r) % states.length]
      const times = [[], []]
      for (let i = 0; i < opts.samples; i++) {
        const first = (i + r) % 2
        for (const side of [first, 1 - first]) times[side].push(sample(s.sides[side].loop, s.sides[side].iters, undefined, s.c.clock))
      }
      const [ma, mb] = times.map(median)
      s.sides[0].rounds.push(ma)
      s.sides[1].rounds.push(mb)
      s.ratios.push(ma / mb)
      await tick()
    }
  }
  return states.map(({ c, sides, ratios }) => {
    const ratio = summary(ratios)
    return {
      kind: 'pair',
      name: c.name,
      bytes: c.bytes,
      candidate: c.candidateText,
      floor: c.floorText,
      ns: median(sides[0].rounds),
      floorNs: median(sides[1].rounds),
      ratio: ratio.median,
      ratioMin: ratio.min,
      ratioMax: ratio.max,
      roundRatios: ratios,
      target: c.target,
      verdict: verdict(ratio.median, c.target),
      iters: sides.map((s) => s.iters),
      clock: c.clock || defaultClock
    }
  })
}

// ==== Sweeps ====

/*
 * fn(arg) for every arg, one sample each per round, in an order rotated (and
 * reversed every other round) so that drift in the load spreads evenly; each
 * arg gets its own iteration count, so an arg that hits a 20x trap does not
 * make its samples 20x as long. Then the confirmation: on a busy machine the
 * slowest median of 64 can be one that noise hit, so the best and the
 * opts.confirmWorst slowest args are timed again, interleaved, in rounds of
 * their own; the worst is the arg with the largest median ratio to the best.
 */
async function runSweep (c, opts, progress) {
  const loop = makeLoop(c.fn)
  const args = c.args
  warmUp(loop, args, opts.warmupMs)
  const probe = calibrate(loop, args[0], Math.min(1, opts.sweepSampleMs), 'wall')
  const iters = args.map((arg) => {
    const total = sample(loop, probe, arg, 'wall') * probe
    return Math.max(1, Math.round(probe * sampleMs(c, opts.sweepSampleMs, opts) * 1e6 / Math.max(total, 1)))
  })
  const perArg = args.map(() => [])
  for (let r = 0; r < opts.sweepRounds; r++) {
    progress(`round ${r + 1}/${opts.sweepRounds}`)
    const start = (r * 7) % args.length
    for (let k = 0; k < args.length; k++) {
      const j = r % 2 ? (start + k) % args.length : (start - k + args.length) % args.length
      perArg[j].push(sample(loop, iters[j], args[j], c.clock))
      await tick()
    }
  }
  const medians = perArg.map(median)
  const best = argBest(medians)

  progress('confirming worst / best')
  const slow = medians.map((m, j) => j).filter((j) => j !== best)
    .sort((x, y) => medians[y] - medians[x]).slice(0, opts.confirmWorst)
  const group = [best, ...slow]
  const ratios = slow.map(() => [])
  const nsRounds = group.map(() => [])
  for (let r = 0; r < opts.rounds; r++) {
    const times = group.map(() => [])
    for (let i = 0; i < opts.samples; i++) {
      for (let k = 0; k < group.length; k++) {
        const g = (k + i + r) % group.length
        times[g].push(sample(loop, iters[group[g]], args[group[g]], c.clock))
      }
    }
    const m = times.map(median)
    m.forEach((x, g) => nsRounds[g].push(x))
    slow.forEach((_, q) => ratios[q].push(m[q + 1] / m[0]))
    await tick()
  }
  const w = argBest(ratios.map(median), -1)
  const confirmed = slow.length ? summary(ratios[w]) : { median: 1, min: 1, max: 1 }
  return {
    kind: 'sweep',
    name: c.name,
    bytes: c.bytes,
    what: c.text,
    argName: c.argName,
    // ns from the confirmation rounds (the sweep's own medians are in perArg)
    best: { arg: args[best], ns: median(nsRounds[0]) },
    worst: slow.length ? { arg: args[slow[w]], ns: median(nsRounds[w + 1]) } : { arg: args[best], ns: median(nsRounds[0]) },
    sweepRatio: Math.max(...medians) / medians[best],
    ratio: confirmed.median,
    ratioMin: confirmed.min,
    ratioMax: confirmed.max,
    confirmed: slow.map((j, q) => ({ arg: args[j], ratio: median(ratios[q]) })),
    buckets: buckets(c.buckets, args.map((arg, j) => [arg, medians[j]])),
    perArg: args.map((arg, j) => ({ arg, ns: medians[j] })),
    target: c.target,
    verdict: verdict(confirmed.median, c.target),
    iters,
    clock: c.clock || defaultClock
  }
}

/** Per [lo, hi] bucket, the median of the values whose arg lies in it. */
function buckets (ranges = [], pairs) {
  return ranges.map(([lo, hi]) => {
    const inside = pairs.filter(([arg]) => arg >= lo && arg <= hi).map(([, v]) => v)
    return { from: lo, to: hi, median: inside.length ? median(inside) : null }
  })
}

module.exports = {
  SIZES, setClock, tick, sample, warmUp, calibrate, quantile, median, distribution, summary, buckets, argBest, verdict, runPairs, runSweep, get sink () { return sink }
}
