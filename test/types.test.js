'use strict'
// index.d.ts, as a strict TypeScript project sees it: a usage file compiles
// (and, compiled, runs), a file of wrong uses does not, and `using` closes a
// Segment at the end of its block (compiled by tsc, and natively where V8 can).
const t = require('tap')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const vm = require('node:vm')
const { ROOT, keyFor, segmentByKey, cleanupAfter } = require('./helpers')

cleanupAfter(t)

const TYPES = path.join(__dirname, 'types')
const TSC = require.resolve('typescript/bin/tsc')

function tsc (args) {
  return spawnSync(process.execPath, [TSC, ...args], { cwd: ROOT, encoding: 'utf8' })
}

function node (t, args) {
  const run = spawnSync(process.execPath, args, { encoding: 'utf8' })
  t.equal(run.status, 0, `node ${path.basename(args[0])} exits with 0`, { stderr: run.stderr })
  return run.stdout
}

t.test('npm run test:types: the usage files compile under --strict', async (t) => {
  t.equal(require(path.join(ROOT, 'package.json')).scripts['test:types'], 'tsc -p test/types')
  const config = tsc(['-p', 'test/types', '--showConfig'])
  t.match(JSON.parse(config.stdout).compilerOptions, { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext' })
  const run = tsc(['-p', 'test/types'])
  t.same({ status: run.status, stdout: run.stdout }, { status: 0, stdout: '' }, 'no errors')
})

t.test('wrong uses do not compile: an error on each marked line, and nowhere else', async (t) => {
  const source = fs.readFileSync(path.join(TYPES, 'fail.ts'), 'utf8').split('\n')
  const marked = source.flatMap((line, i) => (/\/\/ error: /.test(line) ? [i + 1] : []))
  t.ok(marked.length > 0, `${marked.length} marked lines`)
  const run = tsc(['-p', 'test/types/tsconfig.fail.json'])
  t.equal(run.status, 2, 'tsc fails')
  const errors = run.stdout.split('\n').filter((line) => / error TS\d+:/.test(line))
  t.same(errors.filter((line) => !line.startsWith('test/types/fail.ts(')), [], 'no error outside fail.ts (index.d.ts included)')
  const lines = [...new Set(errors.map((line) => Number(/^test\/types\/fail\.ts\((\d+),/.exec(line)?.[1])))]
  t.same(lines, marked, 'the lines with errors are the marked ones')
})

t.test('compiled by tsc, the usage files run', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-types-'))
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }))
  // The compiled files require('nodejs-shm'): the checkout, under that name.
  fs.mkdirSync(path.join(out, 'node_modules'))
  fs.symlinkSync(ROOT, path.join(out, 'node_modules', 'nodejs-shm'), 'dir')
  const build = tsc(['-p', 'test/types', '--noEmit', 'false', '--outDir', out])
  t.same({ status: build.status, stdout: build.stdout }, { status: 0, stdout: '' }, 'tsc emits es2022 JavaScript')

  t.test('usage.js: every export behaves as typed', async (t) => {
    t.equal(node(t, [path.join(out, 'usage.js'), keyFor(0), keyFor(1), keyFor(2)]), 'usage ok\n')
    for (const n of [0, 1, 2]) t.equal(segmentByKey(keyFor(n)), undefined, `it deleted what it made (key ${n})`)
  })

  t.test('using.js: `using` closes the Segment at the end of its block, also when it throws', async (t) => {
    const source = fs.readFileSync(path.join(out, 'using.js'), 'utf8')
    t.notMatch(source, /\busing seg\b/, 'tsc rewrote `using` for es2022')
    const key = keyFor(3)
    const states = JSON.parse(node(t, [path.join(out, 'using.js'), key]))
    t.same(states, { closedInside: false, closedAfter: true, closedAfterThrow: true })
    t.match(segmentByKey(key), { size: 16, nattch: 0 }, 'detached, never deleted')
  })
})

// Does this V8 parse `using` declarations?
function nativeUsing () {
  try {
    new vm.Script('{ using x = null }') // eslint-disable-line no-new
    return true
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error
    return false
  }
}

t.test('`using` without TypeScript', { skip: !nativeUsing() && `V8 ${process.versions.v8} cannot parse \`using\`` }, async (t) => {
  const key = keyFor(4)
  const states = JSON.parse(node(t, [path.join(__dirname, 'fixtures', 'modern-using.js'), key]))
  t.same(states, { closedInside: false, closedAfter: true, closedAfterThrow: true })
  t.match(segmentByKey(key), { size: 16, nattch: 0 }, 'detached, never deleted')
})
