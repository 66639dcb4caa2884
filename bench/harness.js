'use strict'
/*
 * harness.js: how every case is timed, and the statistics reported.
 *
 * The machine is shared and noisy, so nothing here trusts an absolute figure:
 * a candidate is always timed next to its floor in the same run, interleaved
 * (A B A B ..., alternating which side goes first) within each round, and the
 * figure reported is the median over rounds of each round's ratio of medians,
 * with the min-max over rounds beside it.
 *
 * Kinds of case (a group file returns a list of these; see index.js):
 *   pair   { kind: 'pair', name, bytes, candidate: fn, floor: fn, target }
 *          fn() does one operation; target is the largest acceptable
 *          candidate / floor ratio (omit it for a figure without a target).
 *          allocates: true makes samples opts.allocFactor times longer: a
 *          case that allocates a Buffer per call pays for full GCs (which
 *          external memory triggers every few thousand calls), and a sample
 *          must hold several of them to be comparable with the next one.
 *          clock: 'wall' times it by wall-clock time (see sample()).
 *   sweep  { kind: 'sweep', name, bytes, args, fn, target, allocates, clock }
 *          fn(arg) does one operation at arg (e.g. a segment offset); each
 *          round visits every arg once, in a rotated order. Reported: the
 *          per-arg median over rounds, and a confirmation: the best and the
 *          few slowest args timed again, interleaved; the largest confirmed
 *          worst / best ratio is the verdict, so one noisy sample can
 *          neither fail nor pass a sweep.
 *   custom { kind: 'custom', name, run(ctx) } for anything else (copy.c).
 */

let sink // every loop's last result lands here, so no call can be dropped

/*
 * One timing loop per case, compiled from its own source text: V8 then gives
 * each loop its own feedback and optimized code, its call site sees a single
 * target and inlines it, and cases cannot slow each other down by sharing a
 * megamorphic call site.
 */
let loops = 0
function makeLoop (fn) {
  const id = ++loops
  // eslint-disable-next-line no-new-func
  return new Function('fn', `'use strict' // bench loop #${id}
    return function loop${id} (iters, arg) {
      let r
      for (let i = 0; i < iters; i++) r = fn(arg)
      return r
    }`)(fn)
}

const now = process.hrtime.bigint

/* Lets the event loop run between samples, so that Ctrl-C is handled. */
const tick = () => new Promise(setImmediate)

/*
 * Clocks. 'cpu' (the default) is the CPU time of this process
 * (process.cpuUsage: user + system, every thread): on a shared machine the
 * time this process spends waiting for a core is not the cost of the call,
 * and leaving it out makes ratios several times steadier than wall time
 * (measured here under load average 5: writeSHM 10 KB ÷ floor 1.80/1.86/1.83
 * in three runs by CPU time, 1.79/0.95/0.63 by wall time). It counts V8's
 * helper threads (GC, compiler) too, on both sides of a pair alike. 'wall'
 * (process.hrtime) is for cases that wait for something else, such as another
 * process; a case picks it with clock: 'wall', a run with --clock wall.
 */
let defaultClock = 'cpu'
function setClock (clock) {
  if (clock !== 'cpu' && clock !== 'wall') throw new Error(`unknown clock ${clock}: use cpu or wall`)
  defaultClock = clock
}

/** Runs loop(iters, arg) once; returns nanoseconds per operation. */
function sample (loop, iters, arg, clock = defaultClock) {
  if (clock === 'wall') {
    const start = now()
    sink = loop(iters, arg)
    return Number(now() - start) / iters
  }
  const start = process.cpuUsage()
  sink = loop(iters, arg)
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
    if (total >= goal / 4 || iters >= 2 ** 40) {
      return Math.max(1, Math.round(iters * goal / Math.max(total, 1)))
    }
    iters *= total > 0 ? Math.min(16, Math.max(2, Math.ceil(goal / 4 / total))) : 16
  }
}

// ==== Statistics ====

function median (xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const min = (xs) => Math.min(...xs)
const max = (xs) => Math.max(...xs)

/** { median, min, max } of a list. */
const summary = (xs) => ({ median: median(xs), min: min(xs), max: max(xs) })

/** Milliseconds per sample for a case. */
const sampleMs = (c, ms, opts) => (c.allocates ? ms * opts.allocFactor : ms)

// ==== Pairs ====

/*
 * Times each pair's candidate and floor in rounds. Within a round, a pair
 * gets opts.samples samples of each side, interleaved A B A B (B A B A on
 * alternate rounds); rounds go round-robin over all pairs, so each pair's
 * rounds are spread over the whole run and meet different background noise.
 */
async function runPairs (cases, opts, progress) {
  const states = []
  for (const c of cases) {
    progress(`warming up ${c.name}`)
    const a = makeLoop(c.candidate)
    const b = makeLoop(c.floor)
    warmUp(a, [undefined], opts.warmupMs)
    warmUp(b, [undefined], opts.warmupMs)
    states.push({
      c,
      sides: [
        { loop: a, iters: calibrate(a, undefined, sampleMs(c, opts.sampleMs, opts), c.clock), rounds: [] },
        { loop: b, iters: calibrate(b, undefined, sampleMs(c, opts.sampleMs, opts), c.clock), rounds: [] }
      ],
      ratios: []
    })
    await tick()
  }
  for (let r = 0; r < opts.rounds; r++) {
    progress(`round ${r + 1}/${opts.rounds}`)
    for (let k = 0; k < states.length; k++) {
      const s = states[(k + r) % states.length]
      const times = [[], []]
      for (let i = 0; i < opts.samples; i++) {
        const first = (i + r) % 2
        for (const side of [first, 1 - first]) {
          const { loop, iters } = s.sides[side]
          times[side].push(sample(loop, iters, undefined, s.c.clock))
        }
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
      iters: [sides[0].iters, sides[1].iters],
      clock: c.clock || defaultClock
    }
  })
}

function verdict (value, target) {
  if (target === undefined || target === null) return null
  return value <= target ? 'PASS' : 'MISS'
}

// ==== Sweeps ====

/*
 * Times fn(arg) for every arg, one sample each per round, in an order rotated
 * from round to round (and reversed every other round) so that drift in the
 * background load spreads evenly over the args; each arg's samples last about
 * sweepSampleMs. Then the best and the few slowest are timed again,
 * interleaved (see the confirmation below).
 */
async function runSweep (c, opts, progress) {
  const loop = makeLoop(c.fn)
  const args = c.args
  warmUp(loop, args, opts.warmupMs)
  // Each arg gets its own iteration count for about sweepSampleMs per sample
  // (a short pre-pass at each arg): an arg that hits a 20x trap must not
  // make its samples 20x as long.
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
  let best = 0
  medians.forEach((m, j) => { if (m < medians[best]) best = j })

  /*
   * Confirmation. On a busy machine the slowest median of 64 can be one that
   * noise hit, and the truly slowest arg can hide behind it; so the few
   * slowest args (opts.confirmWorst) are timed again together with the best,
   * interleaved in rounds of their own (order rotated within each pass). Per
   * round, each one's median over the best's; the reported worst is the arg
   * with the largest median of those ratios.
   */
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
        const j = group[g]
        times[g].push(sample(loop, iters[j], args[j], c.clock))
      }
    }
    const m = times.map(median)
    m.forEach((x, g) => nsRounds[g].push(x))
    slow.forEach((_, q) => ratios[q].push(m[q + 1] / m[0]))
    await tick()
  }
  let w = 0
  ratios.forEach((rs, q) => { if (median(rs) > median(ratios[w])) w = q })
  const worst = slow.length ? slow[w] : best
  const confirmed = slow.length ? summary(ratios[w]) : { median: 1, min: 1, max: 1 }
  const buckets = (c.buckets || []).map(([lo, hi]) => {
    const inside = medians.filter((_, j) => args[j] >= lo && args[j] <= hi)
    return { from: lo, to: hi, median: inside.length ? median(inside) : null }
  })
  return {
    kind: 'sweep',
    name: c.name,
    bytes: c.bytes,
    what: c.text,
    argName: c.argName,
    // ns from the confirmation rounds (the sweep's own medians are in perArg)
    best: { arg: args[best], ns: median(nsRounds[0]) },
    worst: { arg: args[worst], ns: slow.length ? median(nsRounds[w + 1]) : median(nsRounds[0]) },
    sweepRatio: Math.max(...medians) / medians[best],
    ratio: confirmed.median,
    ratioMin: confirmed.min,
    ratioMax: confirmed.max,
    confirmed: slow.map((j, q) => ({ arg: args[j], ratio: median(ratios[q]) })),
    buckets,
    perArg: args.map((arg, j) => ({ arg, ns: medians[j] })),
    target: c.target,
    verdict: verdict(confirmed.median, c.target),
    iters,
    clock: c.clock || defaultClock
  }
}

module.exports = { setClock, tick, makeLoop, sample, warmUp, calibrate, median, summary, runPairs, runSweep, verdict }
