'use strict'
// The C tests (test/c, see its Makefile) of shmop.c and of the section
// protocol: built and run under AddressSanitizer + UBSan with gcc and clang,
// the threaded one (sections) under ThreadSanitizer too, then once more with
// gcov, which must show every line of the COVERED files executed.
const t = require('tap')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { cleanupAfter, segments, removeId, semaphores } = require('./helpers')
const { RANGES, keyRange } = require('./keys')

const ROOT = path.join(__dirname, '..')
const DIR = path.join(__dirname, 'c')
const COV = path.join(DIR, 'build', 'cov')
const SANITIZERS = {
  ASAN_OPTIONS: 'detect_leaks=1',
  UBSAN_OPTIONS: 'print_stacktrace=1',
  TSAN_OPTIONS: 'halt_on_error=1'
}

const make = (...targets) => spawnSync('make', ['-s', '-j2', '-C', DIR, ...targets], { encoding: 'utf8' })

/** Segments a test program left: its keys, or private ones it created. */
function leftBy (pid) {
  const keys = keyRange(RANGES.cTests, pid) // harness.c's keys
  return segments().filter((s) => keys.owns(s.key) || (s.key === 0 && s.cpid === pid))
}

/** Semaphore sets (claim locks) a test program left under its keys. */
const semaphoresLeftBy = (pid) => semaphores().filter((s) => keyRange(RANGES.cTests, pid).owns(s.key))

/** Parses TAP: the plan (and whether it came before every test line), the test lines, and any "Bail out!". */
function parseTap (stdout) {
  const tests = []
  let plan = null
  let planFirst = false
  let bail = null
  for (const line of stdout.split('\n')) {
    const test = /^(not ok|ok) (\d+)(?: - (.*))?$/.exec(line)
    if (test) tests.push({ ok: test[1] === 'ok', n: Number(test[2]), name: test[3] || '' })
    else if (/^1\.\.\d+$/.test(line) && plan === null) {
      plan = Number(line.slice(3))
      planFirst = tests.length === 0
    } else if (line.startsWith('Bail out!')) bail = line
  }
  return { tests, plan, planFirst, bail }
}

/** Runs one test program and asserts it passed as a whole and line by line. */
function runProgram (t, program) {
  const run = spawnSync(path.join(DIR, program), [], {
    cwd: DIR,
    encoding: 'utf8',
    env: { ...process.env, ...SANITIZERS },
    maxBuffer: 16 << 20,
    timeout: 240000
  })
  const { tests, plan, planFirst, bail } = parseTap(run.stdout || '')
  const failed = tests.filter((test) => !test.ok).map((test) => `not ok ${test.n} - ${test.name}`)
  t.equal(run.status, 0, `${program} exits with 0`, { stderr: (run.stderr || '').slice(-8000), signal: run.signal })
  t.equal(bail, null, 'it does not bail out')
  t.ok(plan > 0, `it prints a plan (${plan})`)
  t.ok(planFirst, 'it declares the plan before its first test, so a test that silently stops running is caught')
  t.equal(tests.length, plan, 'it runs every planned test')
  t.same(failed, [], 'every test line is ok')
  const left = leftBy(run.pid)
  t.same(left.map((s) => s.shmid), [], 'it leaves no segment behind')
  for (const s of left) removeId(s.shmid)
  const sems = semaphoresLeftBy(run.pid)
  t.same(sems.map((s) => s.semid), [], 'it leaves no semaphore set behind')
  for (const s of sems) spawnSync('ipcrm', ['-s', String(s.semid)], { stdio: 'ignore' })
  return run.status === 0 && failed.length === 0
}

/** Product files whose every line the gcov builds must run, relative to the top. */
const COVERED = [
  'shmop.c', 'src/copy.c', 'src/handles.c', 'src/shmop-posix.c',
  'src/sections.c', 'src/sections-many.c', 'src/sections-posix.c', 'src/sections-linux.c', 'src/sections-poll.c',
  'src/futex-ring-linux.c', 'src/futex-ring-none.c'
]

/**
 * Lines of the COVERED files that gcov counts as executable, by file, each
 * with whether any program ran it. gcov names sources as the compiler saw
 * them (relative to test/c).
 */
function coveredLines (listings) {
  const files = new Map(COVERED.map((file) => [file, new Map()]))
  for (const listing of listings) {
    let lines = null
    for (const row of listing.split('\n')) {
      const m = /^\s*([^:]+):\s*(\d+):(.*)$/.exec(row)
      if (!m) continue
      const [, count, number, source] = m
      if (number === '0') {
        if (source.startsWith('Source:')) lines = files.get(path.relative(ROOT, path.resolve(DIR, source.slice(7)))) || null
        continue
      }
      if (!lines || count.trim() === '-') continue
      const ran = !/^(#####|=====)$/.test(count.trim())
      const line = lines.get(Number(number)) || { source, ran: false }
      line.ran = line.ran || ran
      lines.set(Number(number), line)
    }
  }
  return files
}

cleanupAfter(t)

t.test('C tests of shmop.c and the section protocol', (t) => {
  const build = make('build', 'coverage-build')
  if (!t.equal(build.status, 0, 'make -C test/c build coverage-build', { output: build.stdout + build.stderr })) {
    return t.end()
  }
  const programs = make('list').stdout.split('\n').filter(Boolean)
  const sanitized = programs.filter((p) => !p.startsWith('build/cov/'))
  const covered = programs.filter((p) => p.startsWith('build/cov/'))
  t.ok(sanitized.some((p) => p.startsWith('build/gcc/')), 'gcc builds are among them', { programs })
  t.ok(sanitized.some((p) => p.startsWith('build/clang/')), 'so are clang builds', { programs })
  t.ok(sanitized.includes('build/tsan/sections'), 'and the threaded tests under ThreadSanitizer', { programs })
  t.ok(covered.length > 0, 'so are the gcov builds')

  for (const program of sanitized) t.test(program, async (t) => { runProgram(t, program) })

  t.test('every line of the covered C files runs (gcov)', async (t) => {
    for (const name of fs.readdirSync(COV)) if (name.endsWith('.gcda')) fs.rmSync(path.join(COV, name))
    let passed = true
    for (const program of covered) passed = runProgram(t, program) && passed
    const gcov = make('gcov')
    if (!t.equal(gcov.status, 0, 'make -C test/c gcov', { output: gcov.stdout + gcov.stderr })) return
    const listings = covered.map((p) => fs.readFileSync(path.join(DIR, `${p}.gcov`), 'utf8'))
    for (const [file, lines] of coveredLines(listings)) {
      t.ok(lines.size > 5, `gcov lists ${lines.size} executable lines of ${file}`)
      const missed = [...lines].filter(([, line]) => !line.ran).map(([n, line]) => `${file}:${n}: ${line.source.trim()}`)
      t.same(missed, [], `no line of ${file} went unexecuted`)
    }
    t.ok(passed, 'the gcov builds passed their tests too')
  })
  t.end()
})
