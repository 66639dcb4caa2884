'use strict'
// Bad input: no call, however wrong, crashes the process or loses data; each
// one returns or throws as specified. A seeded fuzzer in a child process, then
// the cases it found or that must never regress, one by one.
//
// The seed is random and printed; FUZZ_SEED=n repeats a run, FUZZ_CALLS=n
// changes the number of calls per function (3000).
const t = require('tap')
const { spawnSync } = require('node:child_process')
const { randomInt } = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { shm, ROOT, keyFor, segments, segmentByKey, semaphores, removeId, cleanupAfter } = require('./helpers')
const { ipcrm } = require('./keys')

cleanupAfter(t)

const FUZZ = path.join(__dirname, 'fixtures', 'node-fuzz.js')
const SEED = process.env.FUZZ_SEED === undefined ? randomInt(2 ** 32) : Number(process.env.FUZZ_SEED)
const CALLS = Number(process.env.FUZZ_CALLS || 3000)

/** Runs JavaScript in a child process with the addon as `shm`; its stdout is JSON. */
function child (code) {
  const source = `const { shm } = require(${JSON.stringify(path.join(ROOT, 'test', 'helpers'))});\n${code}`
  return spawnSync(process.execPath, ['-e', source], { encoding: 'utf8' })
}

/** The System V semaphore sets with this key. */
const semaphoresByKey = (key) => semaphores().filter((s) => s.key === (key | 0))

t.test(`thousands of random calls of every function, each as specified (seed ${SEED})`, (t) => {
  t.comment(`repeat this run with FUZZ_SEED=${SEED} npx tap test/fuzz.test.js`)
  const keys = [0, 1, 2, 3, 4, 5].map(keyFor)
  // --trace: each call goes to a file before it is made, so a crash names its call.
  const trace = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-fuzz-')), 'calls')
  t.teardown(() => fs.rmSync(path.dirname(trace), { recursive: true, force: true }))
  const args = ['--expose-gc', FUZZ, '--keys', keys.join(','), '--seed', String(SEED), '--calls', String(CALLS), '--trace', trace]
  const run = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 })
  t.teardown(() => {
    // Whatever a crashed run left: its private segments and our claim locks.
    for (const seg of segments()) if (seg.key === 0 && seg.cpid === run.pid) removeId(seg.shmid)
    for (const key of keys) for (const { semid } of semaphoresByKey(key)) ipcrm('-s', semid)
  })
  t.same({ status: run.status, signal: run.signal }, { status: 0, signal: null }, 'the fuzzing process never crashes', {
    seed: SEED,
    lastCalls: fs.readFileSync(trace, 'utf8').trim().split('\n').slice(-3)
  })
  const report = JSON.parse(run.stdout || 'null')
  // A child that ends without its report checked nothing: that is a failure, not a pass.
  if (!t.ok(report, 'the fuzzing process printed its report', { seed: SEED, stderr: run.stderr })) return t.end()
  t.equal(report.seed, SEED, 'the child ran with the seed printed above')
  t.equal(report.violations, 0, 'no call broke the contract', { seed: SEED, first: report.details })
  t.same(report.unfuzzed, [], 'every function the addon exports is fuzzed')

  for (const [fn, count] of Object.entries(report.calls)) {
    t.ok(count >= CALLS / 3, `${fn} was called ${count} times`)
  }
  // The calls reached every kind of outcome, not only the first argument check.
  const reached = {
    openSHM: ['handle', '0', 'ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE', 'ERR_INVALID_ARG_VALUE'],
    sizeSHM: ['returned', 'ERR_SHM_BAD_HANDLE', 'ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE'],
    writeSHM: ['returned', 'ERR_SHM_BAD_HANDLE', 'ERR_SHM_READ_ONLY', 'ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE'],
    readSHM: ['returned', 'ERR_SHM_BAD_HANDLE', 'ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE'],
    readLength: ['returned', 'ERR_SHM_BAD_HANDLE', 'ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE'],
    readIntoSHM: ['returned', 'ERR_SHM_BAD_HANDLE', 'ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE'],
    deleteSHM: ['1', '0', 'ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE'],
    closeSHM: ['1', '0', 'ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE'],
    lastErrorSHM: ['error'],
    viewSHM: ['returned', 'ERR_SHM_BAD_HANDLE', 'ERR_SHM_READ_ONLY'],
    statKeySHM: ['returned', 'ENOENT'],
    removeKeySHM: ['returned', 'ENOENT'],
    sectionClaim: ['returned'],
    sectionPublish: ['returned', 'ERR_SHM_NOT_WRITER'],
    sectionWait: ['returned'],
    tableWait: ['returned', 'ERR_INVALID_ARG_TYPE'],
    tableWaitSync: ['returned', 'ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE']
  }
  for (const [fn, outcomes] of Object.entries(reached)) {
    const seen = Object.keys(report.outcomes[fn] || {})
    t.same(outcomes.filter((outcome) => !seen.includes(outcome)), [], `${fn} reached ${outcomes.join(', ')}`)
  }
  t.equal(report.waitCallbacks, report.waits, `every one of the ${report.waits} asynchronous waits called back`)

  t.same(keys.filter((key) => segmentByKey(key)), [], 'the fuzzer deleted every segment it made')
  t.same(segments().filter((seg) => seg.cpid === run.pid), [], 'including the private ones')
  t.same(keys.filter((key) => semaphoresByKey(key).length), [], 'and every claim lock')
  t.end()
})

t.test('no argument is coerced: valueOf never runs, even one that would close the handle', (t) => {
  const key = keyFor(10)
  const handle = shm.openSHM(key, 'c', 0o600, 64)
  t.teardown(() => shm.closeSHM(handle))
  shm.writeSHM(handle, 'unchanged', 0)
  const ran = []
  const closer = (name) => ({
    valueOf () { ran.push(`${name}: valueOf`); shm.closeSHM(handle); return 0 },
    toString () { ran.push(`${name}: toString`); shm.closeSHM(handle); return 'c' },
    [Symbol.toPrimitive] () { ran.push(`${name}: toPrimitive`); shm.closeSHM(handle); return 0 }
  })
  const target = Buffer.alloc(8)
  const calls = {
    openSHM: [key, 'w', 0, 0],
    sizeSHM: [handle],
    writeSHM: [handle, 'data', 0, 4],
    readSHM: [handle, 0, 4],
    readIntoSHM: [handle, target, 0, 0, 4],
    deleteSHM: [handle],
    closeSHM: [handle],
    infoSHM: [handle],
    viewSHM: [handle],
    statSHM: [handle],
    statKeySHM: [key],
    removeKeySHM: [key]
  }
  let cases = 0
  for (const [fn, args] of Object.entries(calls)) {
    args.forEach((_, i) => {
      const wrong = args.slice()
      wrong[i] = closer(`${fn} argument ${i}`)
      const error = (() => { try { shm[fn](...wrong) } catch (caught) { return caught } })()
      if (!(error instanceof TypeError) || error.code !== 'ERR_INVALID_ARG_TYPE') {
        t.fail(`${fn} with an object as argument ${i} threw ${error && error.code}, not ERR_INVALID_ARG_TYPE`)
      }
      cases++
    })
  }
  t.same(ran, [], `none of ${cases} objects given for numbers, strings or views was converted`)
  t.equal(shm.sizeSHM(handle), 64, 'the handle they would have closed is open')
  t.equal(shm.readSHM(handle, 0, 9).toString(), 'unchanged', 'nothing was written')
  t.ok(segmentByKey(key), 'nothing was deleted')

  const proxy = new Proxy(new Uint8Array(8), { get () { ran.push('a trap'); return 0 } })
  t.throws(() => shm.writeSHM(handle, proxy, 0), { code: 'ERR_INVALID_ARG_TYPE' }, 'a Proxy of a Uint8Array is not a view')
  t.throws(() => shm.readIntoSHM(handle, proxy, 0, 0, 1), { code: 'ERR_INVALID_ARG_TYPE' }, 'not as a target either')
  t.same(ran, [], 'and none of its traps ran')
  t.end()
})

// A view (viewSHM) is the segment's memory: copying between it and its own
// segment must act as memmove() does, for overlapping bytes of one mapping and
// for one page mapped twice (two handles). memcpy() loses data in both cases.
t.test('a view as the data or the target of a call on its own segment', (t) => {
  const key = keyFor(20)
  const size = 1 << 20
  const first = shm.openSHM(key, 'c', 0o600, size)
  const second = shm.openSHM(key, 'w', 0, 0)
  t.teardown(() => { shm.closeSHM(first); shm.closeSHM(second) })
  const pattern = Buffer.alloc(size)
  for (let i = 0; i < size; i++) pattern[i] = (i * 7 + (i >> 8)) & 0xff

  const cases = [[100, 1], [5000, 1], [5000, 7], [100000, 1], [100000, 4096], [300000, 33]]
  for (const through of ['the same handle', 'another handle']) {
    for (const [length, distance] of cases) {
      const viewOf = () => shm.viewSHM(through === 'the same handle' ? first : second)
      for (const [from, to] of [[0, distance], [distance, 0]]) {
        const expected = Buffer.from(pattern)
        pattern.copy(expected, to, from, from + length)
        shm.writeSHM(first, pattern, 0)
        shm.writeSHM(first, viewOf().subarray(from, from + length), to)
        t.ok(shm.readSHM(first, 0, 0).equals(expected), `writeSHM of ${length} bytes from ${from} to ${to}, view through ${through}`)
        shm.writeSHM(first, pattern, 0)
        shm.readIntoSHM(first, viewOf(), to, from, length)
        t.ok(shm.readSHM(first, 0, 0).equals(expected), `readIntoSHM of ${length} bytes from ${from} to ${to}, view through ${through}`)
      }
    }
  }
  t.end()
})

t.test('section calls through a read-only handle are refused, never a crash', (t) => {
  const key = keyFor(30)
  const writer = shm.openSHM(key, 'c', 0o600, 65536)
  t.teardown(() => { shm.deleteSHM(writer); shm.closeSHM(writer) })
  const calls = {
    sectionClaim: 'shm.sectionClaim(reader, section, -1, false)',
    sectionPublish: "shm.sectionPublish(reader, section, 'x')",
    sectionRelease: 'shm.sectionRelease(reader, section)',
    sectionRetire: 'shm.sectionRetire(reader, section, 1, Buffer.alloc(512), new Float64Array(4))',
    sectionVersion: 'shm.sectionVersion(reader, section)'
  }
  for (const [fn, call] of Object.entries(calls)) {
    // Each in a child of its own: a write to a read-only mapping is SIGSEGV.
    const run = child(`
      const reader = shm.openSHM(${key}, 'a', 0, 0)
      const section = new Float64Array([0, 256 + 24, 1024 + 24, 512])
      try { console.log(JSON.stringify({ returned: ${call} })) } catch (error) { console.log(JSON.stringify({ code: error.code })) }
    `)
    t.same({ status: run.status, signal: run.signal }, { status: 0, signal: null }, `${fn}: the process survives`, { stderr: run.stderr })
    // A release through a handle that holds no claim (a read-only one never does) writes nothing.
    const expected = { sectionVersion: { returned: 0 }, sectionRelease: { returned: false } }[fn] ?? { code: 'ERR_SHM_READ_ONLY' }
    t.same(JSON.parse(run.stdout || 'null'), expected, expected.code ? `${fn} throws ERR_SHM_READ_ONLY` : `${fn} reads through it, or does nothing`)
  }
  t.end()
})
